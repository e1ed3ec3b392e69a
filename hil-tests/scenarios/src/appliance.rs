//! The real `flakeboot serve` on the test LAN: its config, its log, its boot events, its store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flakeboot_testbed::{Proc, Serve, ServeError, TestLan, flakeboot_bin};
use serde_json::Value;

use crate::events::LoggedEvent;
use crate::lan::{LAN_IF, LAN_V6_PREFIX, POOL};

/// Something went wrong running the appliance.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    #[error("scratch directory for the appliance: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("writing the appliance's config {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("`flakeboot {command}` failed: {message}")]
    Inspect { command: String, message: String },
}

/// DHCP mode of the appliance under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// flakeboot is the LAN's DHCP server (pool 10.77.0.100-199) and sends RAs for fd77::/64.
    Router,
    /// Another DHCP server hands out addresses; flakeboot answers boot requests only.
    Proxy,
}

/// The appliance's config, built like the TOML a user writes.
#[derive(Debug, Clone)]
pub struct ApplianceConfig {
    mode: Mode,
    hosts: Vec<HostEntry>,
    machines: Vec<MachineEntry>,
    menu: Option<(String, Duration)>,
    /// `[[flakes]]` entries: (url, name).
    flakes: Vec<(String, String)>,
    /// Run nix offline as root even without `[[flakes]]` (flakes added later, from the UI).
    offline_nix: bool,
    /// `[nix] allowed_paths`: the directories local flakes may come from.
    allowed_paths: Vec<PathBuf>,
    /// `[ipxe] dir`: where the iPXE binaries come from (default: Debian's `/usr/lib/ipxe`).
    ipxe_dir: Option<PathBuf>,
    report_timeout: Option<std::time::Duration>,
    /// `[preflight] timeout` with pre-flight on; `None`: `[preflight] enabled = false` (most
    /// scenarios' hosts are not systems that report).
    preflight: Option<Duration>,
    /// `[preflight] firmware = "uefi"` (default: BIOS).
    preflight_uefi: bool,
}

/// A `[[hosts]]` entry.
#[derive(Debug, Clone)]
struct HostEntry {
    name: String,
    description: String,
    kernel: PathBuf,
    initrd: PathBuf,
    cmdline: String,
}

/// A `[[machines]]` entry.
#[derive(Debug, Clone)]
struct MachineEntry {
    mac: String,
    host: String,
    extra_cmdline: String,
}

impl ApplianceConfig {
    pub fn new(mode: Mode) -> ApplianceConfig {
        ApplianceConfig {
            mode,
            hosts: Vec::new(),
            machines: Vec::new(),
            menu: None,
            flakes: Vec::new(),
            offline_nix: false,
            allowed_paths: Vec::new(),
            ipxe_dir: None,
            report_timeout: None,
            preflight: None,
            preflight_uefi: false,
        }
    }

    /// `[boot] report_timeout`: how long after its initrd a boot shows "no report".
    pub fn report_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.report_timeout = Some(timeout);
        self
    }

    /// A bootable host from files.
    pub fn host(
        mut self,
        name: &str,
        description: &str,
        kernel: &Path,
        initrd: &Path,
        cmdline: &str,
    ) -> Self {
        self.hosts.push(HostEntry {
            name: name.to_owned(),
            description: description.to_owned(),
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            cmdline: cmdline.to_owned(),
        });
        self
    }

    /// Assign the machine `mac` to `host`, with extra kernel parameters for it alone.
    pub fn machine(mut self, mac: &str, host: &str, extra_cmdline: &str) -> Self {
        self.machines.push(MachineEntry {
            mac: mac.to_owned(),
            host: host.to_owned(),
            extra_cmdline: extra_cmdline.to_owned(),
        });
        self
    }

    /// Pre-flight on: every new generation boots in the daemon's VM first, within `timeout`.
    pub fn preflight(mut self, timeout: Duration) -> Self {
        self.preflight = Some(timeout);
        self
    }

    /// Pre-flight VMs boot under UEFI (OVMF) instead of BIOS.
    pub fn preflight_uefi(mut self) -> Self {
        self.preflight_uefi = true;
        self
    }

    /// The menu unassigned machines get: its default entry and timeout.
    pub fn menu(mut self, default: &str, timeout: Duration) -> Self {
        self.menu = Some((default.to_owned(), timeout));
        self
    }

    /// A `[[flakes]]` entry (assign its hosts with [`ApplianceConfig::machine`]). With any flake,
    /// nix runs offline as root: `[nix] substituters = []`, `build-users-group = ""`. A local
    /// flake's directory (`git+file://DIR`, `path:DIR`) is listed in `[nix] allowed_paths`.
    pub fn flake(mut self, url: &str, name: &str) -> Self {
        let local = url
            .strip_prefix("git+file://")
            .or_else(|| url.strip_prefix("path:"))
            .map(|rest| rest.split(['?', '#']).next().unwrap_or(rest));
        if let Some(dir) = local {
            self = self.allow_path(Path::new(dir));
        }
        self.flakes.push((url.to_owned(), name.to_owned()));
        self
    }

    /// List `dir` in `[nix] allowed_paths`: local flakes under it may be added (from the web UI
    /// or the API too).
    pub fn allow_path(mut self, dir: &Path) -> Self {
        self.allowed_paths.push(dir.to_owned());
        self
    }

    /// Let nix run offline as root (as [`ApplianceConfig::flake`] does) with no `[[flakes]]`
    /// entry: for flakes added at run time, through the web UI or the API.
    /// `[ipxe] dir`: serve the iPXE binaries in `dir`.
    pub fn ipxe_dir(mut self, dir: &Path) -> Self {
        self.ipxe_dir = Some(dir.to_owned());
        self
    }

    pub fn offline_nix(mut self) -> Self {
        self.offline_nix = true;
        self
    }

    /// The config file's text.
    pub fn to_toml(&self) -> String {
        let mut t = format!("[lan]\ninterface = \"{LAN_IF}\"\n\n[dhcp]\n");
        match self.mode {
            Mode::Router => {
                let _ = writeln!(t, "mode = \"router\"");
                let _ = writeln!(t, "range = [\"{}\", \"{}\"]", POOL[0], POOL[1]);
                let _ = writeln!(
                    t,
                    "\n[dhcp.ipv6_ra]\nenabled = true\nprefix = \"{LAN_V6_PREFIX}\""
                );
            }
            Mode::Proxy => {
                let _ = writeln!(t, "mode = \"proxy\"");
            }
        }
        if let Some((default, timeout)) = &self.menu {
            let _ = writeln!(
                t,
                "\n[menu]\ndefault = \"{default}\"\ntimeout = \"{}ms\"",
                timeout.as_millis()
            );
        }
        for h in &self.hosts {
            let _ = writeln!(
                t,
                "\n[[hosts]]\nname = \"{}\"\ndescription = \"{}\"\nkernel = \"{}\"\n\
                 initrd = \"{}\"\ncmdline = \"{}\"",
                h.name,
                h.description,
                h.kernel.display(),
                h.initrd.display(),
                h.cmdline
            );
        }
        for m in &self.machines {
            let _ = writeln!(
                t,
                "\n[[machines]]\nmac = \"{}\"\nhost = \"{}\"\nextra_cmdline = \"{}\"",
                m.mac, m.host, m.extra_cmdline
            );
        }
        if let Some(timeout) = self.report_timeout {
            let _ = writeln!(t, "\n[boot]\nreport_timeout = \"{}s\"", timeout.as_secs());
        }
        match self.preflight {
            Some(timeout) => {
                // `accel` stays the default, "auto": KVM where it runs guests, else TCG.
                let _ = writeln!(
                    t,
                    "\n[preflight]\nenabled = true\ntimeout = \"{}s\"",
                    timeout.as_secs(),
                );
                if self.preflight_uefi {
                    let _ = writeln!(t, "firmware = \"uefi\"");
                }
            }
            None => {
                let _ = writeln!(t, "\n[preflight]\nenabled = false");
            }
        }
        for (url, name) in &self.flakes {
            let _ = writeln!(t, "\n[[flakes]]\nurl = \"{url}\"\nname = \"{name}\"");
        }
        if !self.flakes.is_empty() || self.offline_nix || !self.allowed_paths.is_empty() {
            let _ = writeln!(
                t,
                "\n[nix]\nsubstituters = []\nextra_options = {{ \"build-users-group\" = \"\" }}"
            );
            let dirs: Vec<String> = self
                .allowed_paths
                .iter()
                .map(|d| format!("{:?}", d.display().to_string()))
                .collect();
            let _ = writeln!(t, "allowed_paths = [{}]", dirs.join(", "));
        }
        if let Some(dir) = &self.ipxe_dir {
            let _ = writeln!(t, "\n[ipxe]\ndir = {:?}", dir.display().to_string());
        }
        t
    }
}

/// A running `flakeboot serve` (ended by PID on drop).
#[derive(Debug)]
pub struct Appliance {
    proc: Proc,
    state_dir: PathBuf,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Appliance {
    /// Write the config, start `flakeboot serve --log-format json` in the LAN's namespace and wait
    /// for "serving".
    pub fn start(lan: &TestLan, config: &ApplianceConfig) -> Result<Appliance, ApplianceError> {
        let dir = tempfile::Builder::new()
            .prefix("fbt-appliance-")
            .tempdir()
            .map_err(ApplianceError::TempDir)?;
        let config_path = dir.path().join("flakeboot.toml");
        std::fs::write(&config_path, config.to_toml()).map_err(|source| ApplianceError::Write {
            path: config_path.clone(),
            source,
        })?;
        let state_dir = dir.path().join("state");
        let proc = Serve::new(&config_path, &state_dir)
            .arg("--log-format")
            .arg("json")
            .start(&lan.server)?;
        Ok(Appliance {
            proc,
            state_dir,
            config_path,
            _dir: dir,
        })
    }

    /// Stop the daemon and start it again with `config`, on the same state directory (its
    /// store, generations and pre-flight logs kept).
    pub fn restart(
        &mut self,
        lan: &TestLan,
        config: &ApplianceConfig,
    ) -> Result<(), ApplianceError> {
        self.proc.stop();
        std::fs::write(&self.config_path, config.to_toml()).map_err(|source| {
            ApplianceError::Write {
                path: self.config_path.clone(),
                source,
            }
        })?;
        self.proc = Serve::new(&self.config_path, &self.state_dir)
            .arg("--log-format")
            .arg("json")
            .start(&lan.server)?;
        Ok(())
    }

    /// Every boot event logged so far.
    pub fn events(&self) -> Vec<LoggedEvent> {
        LoggedEvent::parse_log(&self.proc.output())
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        self.proc.tail(n)
    }

    /// The daemon's log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The daemon's `--state-dir` (its store and API socket).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stop the daemon (SIGTERM), so its store can be read.
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// `flakeboot machines --json` (call [`Appliance::stop`] first): the machines the store knows.
    pub fn stored_machines(&self) -> Result<Vec<Value>, ApplianceError> {
        let out = self.inspect(&["machines", "--json"])?;
        match serde_json::from_str::<Value>(&out) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Ok(vec![other]),
            Err(e) => Err(ApplianceError::Inspect {
                command: "machines --json".into(),
                message: format!("unexpected output ({e}): {out}"),
            }),
        }
    }

    /// `flakeboot events --mac MAC` (call [`Appliance::stop`] first), as printed.
    pub fn stored_events(&self, mac: &str) -> Result<String, ApplianceError> {
        self.inspect(&["events", "--mac", mac])
    }

    /// `flakeboot <args> --state-dir <its state dir>`: with the daemon running, over its
    /// owner-only API socket (no token); stopped, from its store. Its stdout, or the error.
    pub fn cli(&self, args: &[&str]) -> Result<String, ApplianceError> {
        self.inspect(args)
    }

    fn inspect(&self, args: &[&str]) -> Result<String, ApplianceError> {
        let out = Command::new(flakeboot_bin())
            .args(args)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .map_err(|e| ApplianceError::Inspect {
                command: args.join(" "),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ApplianceError::Inspect {
                command: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scenarios generate is a config the real daemon accepts.
    #[test]
    fn generated_configs_pass_the_config_crate() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        let initrd = dir.path().join("initrd.gz");
        std::fs::write(&kernel, b"k").unwrap();
        std::fs::write(&initrd, b"i").unwrap();
        for mode in [Mode::Router, Mode::Proxy] {
            let config = ApplianceConfig::new(mode)
                .host("marker", "a host", &kernel, &initrd, "console=ttyS0")
                .machine("52:54:00:fb:00:01", "marker", "fbt.marker=c1")
                .menu("marker", Duration::from_secs(3));
            let text = config.to_toml();
            let parsed = flakeboot_config::Config::parse(&text, Path::new("generated.toml"))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(parsed.lan.interface, LAN_IF);
            assert_eq!(parsed.hosts.len(), 1);
            assert_eq!(parsed.machines[0].extra_cmdline, "fbt.marker=c1");
            assert_eq!(parsed.menu.timeout, Duration::from_secs(3));
        }
    }

    /// Without `[[flakes]]`, nix runs offline only when asked (flakes added from the web UI).
    #[test]
    fn offline_nix_without_config_flakes() {
        let plain = ApplianceConfig::new(Mode::Router).to_toml();
        assert!(!plain.contains("[nix]"), "{plain}");
        let text = ApplianceConfig::new(Mode::Router).offline_nix().to_toml();
        let parsed = flakeboot_config::Config::parse(&text, Path::new("generated.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(parsed.flakes.is_empty());
        assert_eq!(parsed.nix.substituters, Some(vec![]));
        assert_eq!(parsed.nix.extra_options["build-users-group"], "");
    }
}
