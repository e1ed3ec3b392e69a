//! The configuration file (`flakeboot.toml`): what the user writes, with defaults that make
//! everything but `[lan] interface` optional. Unknown keys are errors. Runtime state (the
//! resolved appliance address, leases, machines seen) lives elsewhere.

mod dhcp;
mod dns;
mod error;
mod flakes;
mod locate;
mod logs;
mod preflight;
mod problem;
pub mod system;
mod updates;
mod validate;
mod vpn;
mod wan;

pub use dhcp::{DhcpConfig, DhcpMode, Ipv6RaConfig, Reservation};
pub use dns::DnsConfig;
pub use error::ConfigError;
pub use flakes::{
    DEFAULT_CHECK_EVERY, DEFAULT_SUBSTITUTERS, DEFAULT_TRUSTED_PUBLIC_KEYS, FlakeConfig,
    MAX_CHECK_EVERY, MAX_DNS_LABEL, MAX_DNS_NAME, MIN_CHECK_EVERY, NEVER_FLAKE_SOURCES, NixConfig,
    check_every_problem, notify_txt_problem,
};
pub use locate::Lines;
pub use logs::{LogsConfig, MAX_LINES, MAX_LINES_PER_MACHINE};
pub use preflight::{
    DEFAULT_PREFLIGHT_SUBNET, PREFLIGHT_MEMORY, PREFLIGHT_TIMEOUT, PreflightAccel, PreflightConfig,
    PreflightFirmware,
};
pub use problem::{Field, Problem, Segment};
pub use system::{InterfaceFacts, PathKind, System};
pub use updates::{DEFAULT_TXT_EVERY, TXT_EVERY, UpdatesConfig, parse_resolver};
pub use validate::{
    HostNames, MAX_CMDLINE, MAX_MENU_TIMEOUT, flake_host_problems, machine_problems, problems,
    valid_hostname,
};
pub use vpn::VpnConfig;
pub use wan::{Ipv4Cidr, WanConfig, WanMode};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flakeboot_catalogue::MacAddr;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lan: LanConfig,
    #[serde(default)]
    pub dhcp: DhcpConfig,
    #[serde(default)]
    pub tftp: TftpConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub ipxe: IpxeConfig,
    #[serde(default)]
    pub web: WebUiConfig,
    #[serde(default)]
    pub menu: MenuConfig,
    /// What flakeboot expects of a booted system (`[boot]`).
    #[serde(default)]
    pub boot: BootReportConfig,
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    #[serde(default)]
    pub machines: Vec<MachineConfig>,
    /// Flakes whose NixOS hosts are bootable (`[[flakes]]`).
    #[serde(default)]
    pub flakes: Vec<FlakeConfig>,
    /// How nix is run (`[nix]`).
    #[serde(default)]
    pub nix: NixConfig,
    /// Names of the WireGuard interfaces for remote management (`[vpn]`).
    #[serde(default)]
    pub vpn: VpnConfig,
    /// The upstream port (`[wan]`): forwarded to with NAT and firewalled in router mode.
    #[serde(default)]
    pub wan: WanConfig,
    /// The caching DNS forwarder on the LAN address (`[dns]`; on in router mode).
    #[serde(default)]
    pub dns: DnsConfig,
    /// The pre-flight boot of each new generation (`[preflight]`).
    #[serde(default)]
    pub preflight: PreflightConfig,
    /// How automatic updates learn of new revisions (`[updates]`: the TXT records' resolver).
    #[serde(default)]
    pub updates: UpdatesConfig,
    /// The receiver of the machines' console and logs (`[logs]`).
    #[serde(default)]
    pub logs: LogsConfig,
    /// Where the store lives; `--state-dir` overrides it.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LanConfig {
    /// The LAN port to serve (boot services bind to it with SO_BINDTODEVICE).
    pub interface: String,
    /// The appliance's address on the LAN; default: the interface's first IPv4 address.
    pub address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TftpConfig {
    pub enabled: bool,
    pub port: u16,
    /// At most this many transfers at once; more get ERROR 0 "server busy, retry".
    pub max_transfers: usize,
    /// At most this many transfers at once to one client address (and one per address and
    /// port: a repeated request from a port that is being served is dropped). A client at its
    /// cap gets ERROR 0 "server busy, retry"; other clients are not affected.
    pub max_per_client: usize,
    /// A new transfer whose first block (or OACK) is not acknowledged within this time is
    /// dropped, instead of retransmitting for the whole `timeout` x `retries` budget.
    #[serde(with = "humantime_serde")]
    pub first_ack_timeout: Duration,
    /// Retransmission timeout when the client does not ask for one.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is given up.
    pub retries: u32,
    /// Largest block size offered (further capped by the interface MTU).
    pub max_blksize: u16,
    /// Largest window offered (RFC 7440).
    pub max_windowsize: u16,
}

impl Default for TftpConfig {
    fn default() -> Self {
        TftpConfig {
            enabled: true,
            port: 69,
            max_transfers: 256,
            max_per_client: 4,
            first_ack_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            retries: 5,
            max_blksize: 1468,
            max_windowsize: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Port of the plain-HTTP boot server (scripts, kernels, initrds, iPXE binaries).
    pub port: u16,
    /// Open connections from one client address; the next one is closed at once.
    pub max_connections_per_client: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            port: 80,
            max_connections_per_client: 32,
        }
    }
}

/// The management web UI and API (HTTPS only, on the LAN address: never on all interfaces).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebUiConfig {
    pub enabled: bool,
    /// HTTPS port on the LAN address.
    pub port: u16,
    /// Names for the generated certificate besides the LAN address (e.g. "flakeboot.lan").
    pub names: Vec<String>,
}

impl Default for WebUiConfig {
    fn default() -> Self {
        WebUiConfig {
            enabled: true,
            port: 443,
            names: vec!["flakeboot".to_owned()],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IpxeConfig {
    /// Directory holding undionly.kpxe, ipxe.efi and snponly.efi (Debian's `ipxe` package).
    pub dir: PathBuf,
    /// An ARM64 iPXE EFI binary, served as `ipxe-arm64.efi` when set.
    pub arm64_efi: Option<PathBuf>,
    /// Which binary x86-64 UEFI PXE clients get: `ipxe.efi` (own drivers) or `snponly.efi`.
    pub uefi_binary: UefiBinary,
}

impl Default for IpxeConfig {
    fn default() -> Self {
        IpxeConfig {
            dir: PathBuf::from("/usr/lib/ipxe"),
            arm64_efi: None,
            uefi_binary: UefiBinary::IpxeEfi,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum UefiBinary {
    #[default]
    #[serde(rename = "ipxe.efi")]
    IpxeEfi,
    #[serde(rename = "snponly.efi")]
    SnponlyEfi,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MenuConfig {
    /// Host booted when the menu times out; default: the first host. `"local"` boots the disk.
    pub default: Option<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            default: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[boot]`: what flakeboot keeps of boots. The booted system reports to `POST /boot/report`
/// (the boot server it finds in `flakeboot.server=` on its command line); machines and their
/// boot events are recorded within bounds anyone on the LAN cannot raise.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BootReportConfig {
    /// How long after its initrd a system has to report before its boot shows "no report"
    /// (between 1m and 24h).
    #[serde(with = "humantime_serde")]
    pub report_timeout: Duration,
    /// At most this many machine records. Only a DHCP exchange (a MAC seen on the wire)
    /// creates one; at the cap the least recently seen machine nobody configured (no host,
    /// label, boot options or reservation) is forgotten to make room.
    pub max_machines: usize,
    /// Boot events kept per machine (per MAC); the oldest are dropped first.
    pub events_per_machine: usize,
}

impl Default for BootReportConfig {
    fn default() -> Self {
        BootReportConfig {
            report_timeout: Duration::from_secs(600),
            max_machines: 4096,
            events_per_machine: 200,
        }
    }
}

/// A bootable host given by its files (the flake issue adds hosts built from flakes).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    #[serde(default)]
    pub cmdline: String,
    /// Shown next to the name in the menu.
    #[serde(default)]
    pub description: String,
}

/// A machine pinned to a host by MAC.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub mac: MacAddr,
    /// The host it boots: a `[[hosts]]` name, a flake's host (`flake#host`), or `"local"` (its
    /// local disk); none: the menu.
    pub host: Option<String>,
    /// Appended to the host's command line for this machine only.
    #[serde(default)]
    pub extra_cmdline: String,
    pub hostname: Option<String>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/flakeboot")
}

impl Config {
    /// Parse and validate a config file's text. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config = Config::parse_unchecked(text, origin)?;
        let problems = problems(&config, None);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                file: origin.to_path_buf(),
                problems,
            })
        }
    }

    /// Parse a config file's text without the checks of [`problems`]: its syntax, keys and
    /// types only (`check-config` runs the checks itself to place each problem on its line).
    pub fn parse_unchecked(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: origin.to_path_buf(),
            line: e.span().map(|span| locate::line_at(text, span.start)),
            message: e.message().trim_end().to_owned(),
        })
    }

    /// Every default, serving `interface`: a config file that names only its LAN port.
    pub fn with_defaults(interface: &str) -> Config {
        Config {
            lan: LanConfig {
                interface: interface.to_owned(),
                address: None,
            },
            dhcp: DhcpConfig::default(),
            tftp: TftpConfig::default(),
            http: HttpConfig::default(),
            ipxe: IpxeConfig::default(),
            web: WebUiConfig::default(),
            menu: MenuConfig::default(),
            boot: BootReportConfig::default(),
            hosts: Vec::new(),
            machines: Vec::new(),
            flakes: Vec::new(),
            nix: NixConfig::default(),
            vpn: VpnConfig::default(),
            wan: WanConfig::default(),
            dns: DnsConfig::default(),
            preflight: PreflightConfig::default(),
            updates: UpdatesConfig::default(),
            logs: LogsConfig::default(),
            state_dir: default_state_dir(),
        }
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }
}
