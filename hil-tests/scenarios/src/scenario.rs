//! One scenario: an isolated LAN, the appliance, clients, and assertions that print everything
//! needed to see where a boot stopped when they fail (console tails, the appliance's log tail and
//! its boot events).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use flakeboot_catalogue::{BootStage, ClientFirmware};
use flakeboot_testbed::{
    ClientKind, Netns, Proc, QemuClient, SerialConsole, SerialLine, TestLan, kernel,
    marker_initramfs, marker_line, require_root, require_tool, unique_token, workspace_root,
};

use crate::appliance::{Appliance, ApplianceConfig, Mode};
use crate::events::{LoggedEvent, events_for, missing_stages};
use crate::lan::{add_router, scenario_lan};
use crate::peers;
use crate::timeline::Timeline;

/// The bootable host every scenario serves: the pinned kernel and this run's marker initramfs.
pub const HOST: &str = "marker";
/// Its description (shown in the menu).
pub const HOST_DESCRIPTION: &str = "flakeboot hil-tests marker system";
/// Its kernel command line (each machine adds `fbt.marker=<client>`).
pub const HOST_CMDLINE: &str = "console=ttyS0 panic=-1";

/// A scenario in progress. Create it first in a test, so it is dropped last.
#[derive(Debug)]
pub struct Scenario {
    name: String,
    token: String,
    kernel: PathBuf,
    initrd: PathBuf,
    lan: TestLan,
    /// The LAN's existing router, once [`Scenario::start_lan_dhcp_server`] added it.
    router: Option<Netns>,
    appliance: Option<Appliance>,
    peers: Vec<Proc>,
    consoles: Mutex<Vec<(SerialConsole, String)>>,
    dir: tempfile::TempDir,
}

impl Scenario {
    /// Check the tools, fetch/build the artifacts and create a LAN with `clients` taps.
    pub fn new(name: &str, clients: usize) -> Scenario {
        require_root();
        for tool in [
            "qemu-system-x86_64",
            "busybox",
            "cpio",
            "ip",
            "apt-get",
            "dpkg",
        ] {
            require_tool(tool);
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("fbt-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let kernel = kernel().unwrap_or_else(|e| panic!("{name}: kernel: {e}"));
        let token = unique_token();
        let initrd = dir.path().join("marker-initrd.gz");
        marker_initramfs(&initrd, &token).unwrap_or_else(|e| panic!("{name}: initramfs: {e}"));
        let lan = scenario_lan(name, clients).unwrap_or_else(|e| panic!("{name}: LAN: {e}"));
        eprintln!("== scenario {name}: marker token {token}");
        Scenario {
            name: name.to_owned(),
            token,
            kernel,
            initrd,
            lan,
            router: None,
            appliance: None,
            peers: Vec::new(),
            consoles: Mutex::new(Vec::new()),
            dir,
        }
    }

    /// A config serving the marker host, in `mode`.
    pub fn config(&self, mode: Mode) -> ApplianceConfig {
        ApplianceConfig::new(mode).host(
            HOST,
            HOST_DESCRIPTION,
            &self.kernel,
            &self.initrd,
            HOST_CMDLINE,
        )
    }

    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    pub fn initrd(&self) -> &Path {
        &self.initrd
    }

    /// The NixOS-shaped fixture flake (hil-tests/fixtures/nixos-shaped, with this scenario's
    /// kernel) prepared in a new temporary directory: that directory (removed when dropped)
    /// and the flake's git repository in it.
    pub fn nixos_shaped_flake(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("fbt-nixos-")
            .tempdir()
            .unwrap_or_else(|e| self.fail(&format!("temp dir: {e}")));
        let flake = dir.path().join("flake");
        let prepare =
            flakeboot_testbed::workspace_root().join("hil-tests/fixtures/nixos-shaped/prepare.sh");
        let out = std::process::Command::new(&prepare)
            .arg(&flake)
            .arg(&self.kernel)
            .output()
            .unwrap_or_else(|e| self.fail(&format!("{}: {e}", prepare.display())));
        if !out.status.success() {
            self.fail(&format!(
                "prepare.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        (dir, flake)
    }

    pub fn lan(&self) -> &TestLan {
        &self.lan
    }

    /// A scratch directory that lives as long as the scenario.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start `flakeboot serve` with `config` on the LAN and wait until it serves.
    pub fn start_appliance(&mut self, config: &ApplianceConfig) {
        eprintln!("== {}: appliance config\n{}", self.name, config.to_toml());
        match Appliance::start(&self.lan, config) {
            Ok(a) => self.appliance = Some(a),
            Err(e) => self.fail(&format!("the appliance did not start: {e}")),
        }
    }

    /// Restart the appliance with another config, keeping its state directory.
    pub fn restart_appliance(&mut self, config: &ApplianceConfig) {
        eprintln!(
            "== {}: appliance config (restart)\n{}",
            self.name,
            config.to_toml()
        );
        let result = match self.appliance.as_mut() {
            Some(a) => a.restart(&self.lan, config),
            None => self.fail("no appliance was started"),
        };
        if let Err(e) = result {
            self.fail(&format!("the appliance did not restart: {e}"));
        }
    }

    /// Stop the appliance (its store can then be read with [`Scenario::appliance`]).
    pub fn stop_appliance(&mut self) {
        match self.appliance.as_mut() {
            Some(a) => a.stop(),
            None => self.fail("no appliance was started"),
        }
    }

    /// The appliance started by [`Scenario::start_appliance`].
    pub fn appliance(&self) -> &Appliance {
        match &self.appliance {
            Some(a) => a,
            None => self.fail("no appliance was started"),
        }
    }

    /// Put a DHCP server that knows nothing about PXE on the LAN (a home router: dnsmasq).
    pub fn start_lan_dhcp_server(&mut self) {
        require_tool("dnsmasq");
        let dir = self.dir.path().to_owned();
        let proc = add_router(&self.lan).and_then(|ns| {
            let router = self.router.insert(ns);
            peers::lan_dhcp_server(router, &dir)
        });
        match proc {
            Ok(p) => self.peers.push(p),
            Err(e) => self.fail(&format!("cannot start the LAN's dnsmasq: {e}")),
        }
    }

    /// Everything the LAN's own DHCP server (see [`Scenario::start_lan_dhcp_server`]) logged.
    pub fn lan_dhcp_log(&self) -> String {
        self.peers
            .iter()
            .find(|p| p.log_path().ends_with("dnsmasq.log"))
            .map(Proc::output)
            .unwrap_or_default()
    }

    /// Start the reference boot server (dnsmasq + busybox httpd) serving a script that boots
    /// the marker host with `fbt.marker=<client_marker>`.
    pub fn start_reference_server(&mut self, client_marker: &str) {
        let www = self.dir.path().join("www");
        let setup = std::fs::create_dir_all(&www)
            .and_then(|()| std::fs::copy(&self.kernel, www.join("vmlinuz")))
            .and_then(|_| std::fs::copy(&self.initrd, www.join("initrd.gz")))
            .and_then(|_| {
                std::fs::write(
                    www.join("boot.ipxe"),
                    format!(
                        "#!ipxe\nkernel http://10.77.0.1:8080/vmlinuz initrd=initrd.gz \
                         {HOST_CMDLINE} fbt.marker={client_marker}\n\
                         initrd --name initrd.gz http://10.77.0.1:8080/initrd.gz\nboot\n"
                    ),
                )
            });
        if let Err(e) = setup {
            self.fail(&format!("reference server files: {e}"));
        }
        match peers::reference_boot_server(&self.lan.server, self.dir.path(), &www) {
            Ok((dhcp, http)) => self.peers.extend([dhcp, http]),
            Err(e) => self.fail(&format!("cannot start the reference server: {e}")),
        }
        // Let the HTTP server bind before a client can ask it.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// This run's marker token (in every marker line).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Power on a client on tap `tap`.
    pub fn power_on(&self, name: &str, kind: ClientKind, tap: usize, mac: &str) -> QemuClient {
        self.started(
            name,
            kind,
            mac,
            QemuClient::start(&self.lan.server, name, kind, self.lan.tap_dev(tap), mac),
        )
    }

    /// Power on a client on tap `tap` with a local disk (a raw image, see
    /// [`flakeboot_testbed::marker_disk`]) after the network in its boot order.
    pub fn power_on_with_disk(
        &self,
        name: &str,
        kind: ClientKind,
        tap: usize,
        mac: &str,
        disk: &Path,
    ) -> QemuClient {
        self.started(
            name,
            kind,
            mac,
            QemuClient::start_with_disk(
                &self.lan.server,
                name,
                kind,
                self.lan.tap_dev(tap),
                mac,
                disk,
            ),
        )
    }

    fn started(
        &self,
        name: &str,
        kind: ClientKind,
        mac: &str,
        started: Result<QemuClient, flakeboot_testbed::QemuError>,
    ) -> QemuClient {
        match started {
            Ok(c) => {
                self.consoles
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((c.console().clone(), mac.to_owned()));
                eprintln!(
                    "== {}: powered on {name} ({}, {mac}, accel {}), console log {}",
                    self.name,
                    kind.as_str(),
                    c.accel().as_str(),
                    c.console().log_path().display()
                );
                c
            }
            Err(e) => self.fail(&format!("cannot start {name}: {e}")),
        }
    }

    /// Wait for the marker line of `client` (booted with `fbt.marker=<client_marker>`).
    pub fn expect_marker(
        &self,
        client: &QemuClient,
        client_marker: &str,
        timeout: Duration,
    ) -> SerialLine {
        let needle = marker_line(&self.token, client_marker);
        match client.wait_for_serial(&needle, timeout) {
            Ok(line) => {
                eprintln!(
                    "== {}: {} reached the marker: {line}",
                    self.name,
                    client.name()
                );
                line
            }
            Err(e) => self.fail(&format!("{e}")),
        }
    }

    /// Every boot event the appliance logged.
    pub fn appliance_events(&self) -> Vec<LoggedEvent> {
        self.appliance
            .as_ref()
            .map(Appliance::events)
            .unwrap_or_default()
    }

    /// The appliance's events for `client` (`lone_client`: MAC-less events are all its).
    pub fn client_events(&self, client: &QemuClient, lone_client: bool) -> Vec<LoggedEvent> {
        events_for(&self.appliance_events(), client.mac(), lone_client)
    }

    /// Assert the appliance served every one of `stages` to `client`. Events are written by a
    /// background task, so this waits up to 5 s for the last ones.
    pub fn expect_stages(&self, client: &QemuClient, stages: &[BootStage], lone_client: bool) {
        let mut missing = Vec::new();
        for _ in 0..50 {
            missing = missing_stages(&self.client_events(client, lone_client), stages);
            if missing.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        self.fail(&format!(
            "the appliance recorded no served {names:?} event for {} ({})",
            client.name(),
            client.mac()
        ));
    }

    /// Assert the appliance's first DHCP event for `client` identified its firmware as `firmware`.
    pub fn expect_firmware(&self, client: &QemuClient, firmware: ClientFirmware) {
        let events = self.client_events(client, false);
        let first = events.iter().find(|e| e.is_stage(BootStage::Dhcp));
        if first.and_then(LoggedEvent::firmware) != Some(firmware) {
            self.fail(&format!(
                "{} should have been seen as {} first, the appliance logged {:?}",
                client.name(),
                firmware.as_str(),
                first.map(|e| e.firmware.clone())
            ));
        }
    }

    /// Print the client's stage timings (appliance events and console) and return them.
    pub fn report(&self, client: &QemuClient, lone_client: bool) -> Timeline {
        let events = self.client_events(client, lone_client);
        let t = Timeline::new(&self.name, client, &events);
        eprintln!(
            "appliance boot events for {} ({}):",
            client.name(),
            client.mac()
        );
        for e in &events {
            eprintln!("  {e}");
        }
        eprint!("{t}");
        println!("{}", t.summary());
        t
    }

    /// Print the diagnostics and fail the test.
    pub fn fail(&self, what: &str) -> ! {
        self.print_diagnostics();
        panic!("scenario {}: {what}", self.name)
    }

    /// Consoles, the appliance's log and boot events, the peers' logs; the full logs are also
    /// copied to `target/hil-logs/<scenario>/` (for CI to keep).
    pub fn print_diagnostics(&self) {
        eprintln!(
            "==================== {}: diagnostics ====================",
            self.name
        );
        let keep = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from)
            .join("hil-logs")
            .join(&self.name);
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::fs::create_dir_all(&keep);
        let consoles = self
            .consoles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (console, _) in consoles.iter() {
            let _ = std::fs::copy(
                console.log_path(),
                keep.join(format!("serial-{}.log", console.name())),
            );
        }
        if let Some(a) = &self.appliance {
            let _ = std::fs::copy(a.log_path(), keep.join("flakeboot.log"));
            let _ = std::fs::copy(a.config_path(), keep.join("flakeboot.toml"));
        }
        for p in &self.peers {
            if let Some(name) = p.log_path().file_name() {
                let _ = std::fs::copy(p.log_path(), keep.join(name));
            }
        }
        eprintln!("(full logs kept in {})", keep.display());
        for (console, mac) in consoles.iter() {
            eprintln!(
                "--- serial console of {} ({mac}), last 40 lines ({}) ---\n{}",
                console.name(),
                console.log_path().display(),
                console.tail(40)
            );
        }
        match &self.appliance {
            Some(a) => {
                eprintln!("--- appliance log, last 40 lines ---\n{}", a.log_tail(40));
                eprintln!("--- appliance boot events ---");
                for e in a.events() {
                    eprintln!("  {e}");
                }
                eprintln!("--- appliance config ({}) ---", a.config_path().display());
            }
            None => eprintln!("--- no appliance running ---"),
        }
        for p in &self.peers {
            eprintln!(
                "--- peer log {} ---\n{}",
                p.log_path().display(),
                p.tail(30)
            );
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(scenario {} ended by a panic)", self.name);
        }
    }
}
