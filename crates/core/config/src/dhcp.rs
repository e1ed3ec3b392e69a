use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use flakeboot_catalogue::MacAddr;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// Answer only network-boot clients, beside the LAN's own DHCP server.
    #[default]
    Proxy,
    /// Be the LAN's DHCP server.
    Router,
    /// No DHCP at all (another server hands out the boot options).
    Off,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    /// One address range, first and last address inclusive (router mode).
    pub range: Option<[Ipv4Addr; 2]>,
    /// More ranges (router mode).
    pub ranges: Vec<[Ipv4Addr; 2]>,
    /// Subnet mask (option 1); default: the interface's prefix.
    pub netmask: Option<Ipv4Addr>,
    /// Default gateway (option 3); default: the appliance's address.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6); default: the appliance itself when its DNS forwarder runs
    /// (`[dns]`, on in router mode), else a static WAN's `dns`.
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    #[serde(with = "humantime_serde")]
    pub lease_time: Duration,
    /// How long a DECLINEd address is kept out of the pool.
    #[serde(with = "humantime_serde")]
    pub decline_quarantine: Duration,
    pub reservations: Vec<Reservation>,
    /// Port of the PXE boot server (proxy mode; UEFI firmware often asks there).
    pub pxe_port: u16,
    pub port: u16,
    pub ipv6_ra: Ipv6RaConfig,
    /// How often the appliance probes for the LAN's other DHCP servers (a DISCOVER of its own;
    /// also at start and on a mode change).
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long another DHCP server stays listed after it was last heard.
    #[serde(with = "humantime_serde")]
    pub server_expiry: Duration,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            mode: DhcpMode::Proxy,
            range: None,
            ranges: Vec::new(),
            netmask: None,
            router: None,
            dns: Vec::new(),
            domain: None,
            lease_time: Duration::from_secs(3600),
            decline_quarantine: Duration::from_secs(600),
            reservations: Vec::new(),
            pxe_port: 4011,
            port: 67,
            ipv6_ra: Ipv6RaConfig::default(),
            probe_interval: Duration::from_secs(180),
            server_expiry: Duration::from_secs(600),
        }
    }
}

impl DhcpConfig {
    /// Every configured range, `range` first.
    pub fn all_ranges(&self) -> Vec<[Ipv4Addr; 2]> {
        self.range
            .iter()
            .chain(self.ranges.iter())
            .copied()
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

/// IPv6 router advertisements (router mode). Without one iPXE waits ~13 s for autoconfiguration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ipv6RaConfig {
    pub enabled: bool,
    /// A /64 prefix; default: a ULA prefix derived from the interface's MAC.
    pub prefix: Option<Ipv6Addr>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for Ipv6RaConfig {
    fn default() -> Self {
        Ipv6RaConfig {
            enabled: true,
            prefix: None,
            interval: Duration::from_secs(30),
        }
    }
}
