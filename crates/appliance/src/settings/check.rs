//! Settings a user saves (the web UI's forms, the JSON API, the first-run setup) and a
//! machine's settings, checked before they are saved with the config file's own rules
//! ([`flakeboot_config::problems`] and, on this machine, [`flakeboot_config::system`]): the
//! settings are laid over the config file ([`effective_config`]) and the result checked as a
//! whole, so a saved value can never make a boot fail that the same value in the file would
//! have been refused for. Each problem comes back as the settings field it concerns, for the
//! form to show next to its input and the API to return as a field error.

use std::sync::Arc;

use flakeboot_catalogue::MacAddr;
use flakeboot_config::{Config, Field, HostNames, MachineConfig, System};
use flakeboot_store::ApplianceSettings;
use serde::Serialize;

use crate::settings::plan::effective_config;

/// One problem of a setting: the field (as the API and the forms name it) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// What a machine's page or the API would save for one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineSettings {
    /// The host it boots, `local` for its local disk; `None`: the boot menu.
    pub host: Option<String>,
    /// The host its next boot gets once.
    pub boot_once: Option<String>,
    /// The host name it is given (`flakeboot.hostname=`).
    pub hostname: Option<String>,
    /// Extra kernel parameters for this machine only.
    pub kernel_params: String,
}

/// Checks settings against the config file they are laid over and the machine they run on.
#[derive(Clone)]
pub struct SettingsCheck {
    file: Arc<Config>,
    /// `None`: no checks against this machine (tests of the UI alone).
    system: Option<Arc<dyn System + Send + Sync>>,
}

impl std::fmt::Debug for SettingsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCheck")
            .field("lan", &self.file.lan.interface)
            .field("system", &self.system.is_some())
            .finish()
    }
}

impl Default for SettingsCheck {
    /// The settings' own rules only: a config file of defaults, no machine.
    fn default() -> Self {
        SettingsCheck {
            file: Arc::new(Config::with_defaults("lan0")),
            system: None,
        }
    }
}

impl SettingsCheck {
    /// Checks against `file` and `system` (the daemon: [`crate::system::LiveSystem`]).
    pub fn new(file: Config, system: Option<Arc<dyn System + Send + Sync>>) -> SettingsCheck {
        SettingsCheck {
            file: Arc::new(file),
            system,
        }
    }

    /// Every problem of `settings`; empty when they may be saved. `flake_hosts`: the flake
    /// hosts that can be booted now (`flake#host`). Blocking (netlink, the file system): call
    /// it off the async threads.
    pub fn settings(
        &self,
        settings: &ApplianceSettings,
        flake_hosts: &[String],
    ) -> Vec<FieldError> {
        let config = effective_config(&self.file, settings);
        let mut problems = flakeboot_config::problems(&config, Some(flake_hosts));
        if let Some(system) = &self.system {
            problems.extend(flakeboot_config::system::lan_problems(
                &config,
                system.as_ref(),
            ));
            problems.extend(flakeboot_config::system::wan_problems(
                &config,
                system.as_ref(),
            ));
        }
        let mut errors: Vec<FieldError> = Vec::new();
        for p in problems {
            match settings_field(&p.field) {
                Some(field) => push_once(&mut errors, field, p.message),
                // The config file's own values: it was checked when the daemon started.
                None => tracing::debug!(problem = %p, "not a settings field: ignored"),
            }
        }
        errors
    }

    /// Every problem of one machine's settings; empty when they may be saved.
    pub fn machine(
        &self,
        mac: MacAddr,
        machine: &MachineSettings,
        flake_hosts: &[String],
    ) -> Vec<FieldError> {
        let config = MachineConfig {
            mac,
            host: machine.host.clone(),
            extra_cmdline: machine.kernel_params.clone(),
            hostname: machine.hostname.clone(),
        };
        let hosts = HostNames::of(&self.file, Some(flake_hosts));
        let mut errors = Vec::new();
        if let Some(once) = &machine.boot_once {
            let message = if once == flakeboot_catalogue::LOCAL_DISK {
                Some("boot once takes a host; for the local disk, set the machine's host to \"local\"".to_owned())
            } else if !hosts.knows(once) {
                Some(format!(
                    "there is no host named {once:?} to boot once: use a [[hosts]] name or a flake's host (flake#host)"
                ))
            } else {
                None
            };
            if let Some(message) = message {
                push_once(&mut errors, "boot_once", message);
            }
        }
        for p in flakeboot_config::machine_problems(&config, &hosts) {
            let field = match p.field.keys().as_slice() {
                ["host"] => "host",
                ["hostname"] => "hostname",
                _ => "kernel_params",
            };
            push_once(&mut errors, field, p.message);
        }
        errors
    }
}

fn push_once(errors: &mut Vec<FieldError>, field: &'static str, message: String) {
    if !errors
        .iter()
        .any(|e| e.field == field && e.message == message)
    {
        errors.push(FieldError { field, message });
    }
}

/// The settings field a config field comes from (see [`effective_config`]), or `None` for the
/// config file's own values. The WAN's and the forwarder's are named by their place in the
/// API's `wan` and `dns` objects.
fn settings_field(field: &Field) -> Option<&'static str> {
    Some(match field.keys().as_slice() {
        ["lan", ..] => "lan_interface",
        // The file's router option must lie in the subnet of the LAN port chosen.
        ["dhcp", "router"] => "lan_interface",
        ["dhcp", "mode"] => "dhcp_mode",
        ["dhcp", "range" | "ranges", ..] => "dhcp_ranges",
        ["dhcp", "reservations", ..] => "reservations",
        ["menu", "default"] => "menu_default",
        ["menu", "timeout"] => "menu_timeout_secs",
        ["nix", "substituters", ..] => "substituters",
        ["nix", "builders", ..] => "builders",
        ["wan", "interface"] => "wan.interface",
        ["wan", "mode"] => "wan.mode",
        ["wan", "address"] => "wan.address",
        ["wan", "gateway"] => "wan.gateway",
        ["wan", "dns", ..] => "wan.dns",
        ["dns", "enabled"] => "dns.enabled",
        ["dns", "upstream", ..] => "dns.upstream",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::path::Path;

    use flakeboot_config::{InterfaceFacts, PathKind};
    use flakeboot_store::{
        DhcpModeSetting, DnsSettings, ReservationSetting, WanModeSetting, WanSettings,
    };

    use super::*;
    use crate::settings::from_config::settings_from_config;

    struct Fake(BTreeMap<&'static str, InterfaceFacts>);

    impl System for Fake {
        fn interface(&self, name: &str) -> Result<Option<InterfaceFacts>, String> {
            Ok(self.0.get(name).cloned())
        }
        fn interface_names(&self) -> Vec<String> {
            self.0.keys().map(|k| (*k).to_owned()).collect()
        }
        fn path(&self, _: &Path) -> PathKind {
            PathKind::Missing
        }
    }

    const FILE: &str = "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\n\
        range = [\"10.0.0.100\", \"10.0.0.150\"]\n\
        [[hosts]]\nname = \"demo\"\nkernel = \"/srv/k\"\ninitrd = \"/srv/i\"\n";

    fn check() -> (SettingsCheck, ApplianceSettings) {
        let file = Config::parse(FILE, Path::new("t.toml")).unwrap();
        let settings = settings_from_config(&file);
        let mut interfaces = BTreeMap::new();
        let facts = |a: [u8; 4]| InterfaceFacts {
            ipv4: vec![(Ipv4Addr::from(a), 24)],
        };
        interfaces.insert("lan0", facts([10, 0, 0, 2]));
        interfaces.insert("lan1", facts([10, 1, 0, 2]));
        interfaces.insert("bare0", InterfaceFacts::default());
        interfaces.insert("wan0", InterfaceFacts::default());
        (
            SettingsCheck::new(file, Some(Arc::new(Fake(interfaces)))),
            settings,
        )
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field).collect()
    }

    const FLAKE_HOSTS: &[String] = &[];

    #[test]
    fn the_config_files_settings_pass() {
        let (check, settings) = check();
        assert_eq!(check.settings(&settings, FLAKE_HOSTS), []);
    }

    #[test]
    fn ranges_outside_the_subnet_or_backwards_are_refused() {
        let (check, mut s) = check();
        s.dhcp_ranges = vec![[
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(192, 168, 1, 20),
        ]];
        let e = check.settings(&s, FLAKE_HOSTS);
        assert_eq!(fields(&e), ["dhcp_ranges"]);
        assert!(
            e[0].message
                .contains("not inside the LAN's subnet 10.0.0.0/24"),
            "{e:?}"
        );
        s.dhcp_ranges = vec![[Ipv4Addr::new(10, 0, 0, 90), Ipv4Addr::new(10, 0, 0, 80)]];
        assert!(
            check.settings(&s, FLAKE_HOSTS)[0]
                .message
                .contains("backwards")
        );
        s.dhcp_ranges.clear();
        assert_eq!(fields(&check.settings(&s, FLAKE_HOSTS)), ["dhcp_ranges"]);
        // A reservation outside the subnet.
        s.dhcp_ranges = vec![[Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 110)]];
        s.reservations.push(ReservationSetting {
            mac: "52:54:00:00:00:07".parse().unwrap(),
            address: Ipv4Addr::new(10, 9, 0, 7),
            hostname: None,
        });
        assert_eq!(fields(&check.settings(&s, FLAKE_HOSTS)), ["reservations"]);
    }

    #[test]
    fn a_lan_port_must_exist_with_an_address_and_take_the_ranges_along() {
        let (check, mut s) = check();
        s.lan_interface = "nosuch0".into();
        let e = check.settings(&s, FLAKE_HOSTS);
        assert_eq!(fields(&e), ["lan_interface"]);
        assert!(
            e[0].message.contains("use one of: bare0, lan0, lan1, wan0"),
            "{e:?}"
        );
        s.lan_interface = "bare0".into();
        assert!(
            check.settings(&s, FLAKE_HOSTS)[0]
                .message
                .contains("no IPv4 address")
        );
        // Another subnet: the old ranges do not fit it; in proxy mode they are not used.
        s.lan_interface = "lan1".into();
        assert_eq!(fields(&check.settings(&s, FLAKE_HOSTS)), ["dhcp_ranges"]);
        s.dhcp_mode = DhcpModeSetting::Proxy;
        assert_eq!(check.settings(&s, FLAKE_HOSTS), []);
    }

    #[test]
    fn the_menu_default_must_name_a_host() {
        let (check, mut s) = check();
        s.menu_default = Some("ghost".into());
        let e = check.settings(&s, FLAKE_HOSTS);
        assert_eq!(fields(&e), ["menu_default"]);
        s.menu_default = Some("lab#alpha".into());
        assert_eq!(check.settings(&s, &["lab#alpha".to_owned()]), []);
        s.menu_default = Some("local".into());
        s.menu_timeout_secs = 7200;
        assert_eq!(
            fields(&check.settings(&s, FLAKE_HOSTS)),
            ["menu_timeout_secs"]
        );
    }

    /// The WAN port and the forwarder are refused for what the file would be refused for, each
    /// problem on its field.
    #[test]
    fn the_wan_and_the_forwarder_are_checked_like_the_file() {
        let (checker, mut s) = check();
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let wan = WanSettings {
            interface: Some("wan0".into()),
            mode: WanModeSetting::Static,
            address: None,
            gateway: Some(ip(198, 51, 100, 1)),
            dns: vec![ip(203, 0, 113, 53)],
        };
        let mut try_wan = |edit: &dyn Fn(&mut WanSettings)| {
            let mut w = wan.clone();
            edit(&mut w);
            s.wan = Some(w);
            checker.settings(&s, FLAKE_HOSTS)
        };
        let e = try_wan(&|_| {});
        assert_eq!(fields(&e), ["wan.address"], "{e:?}");
        assert!(e[0].message.contains("needs the port's address"), "{e:?}");
        let e = try_wan(&|w| w.address = Some((ip(203, 0, 113, 2), 24)));
        assert_eq!(fields(&e), ["wan.gateway"], "{e:?}");
        assert!(
            e[0].message
                .contains("not another address in 203.0.113.2/24's subnet")
        );
        let good = |w: &mut WanSettings| {
            w.address = Some((ip(203, 0, 113, 2), 24));
            w.gateway = Some(ip(203, 0, 113, 1));
        };
        assert_eq!(try_wan(&good), []);
        let e = try_wan(&|w| {
            good(w);
            w.interface = Some("lan0".into());
        });
        assert_eq!(fields(&e), ["wan.interface"], "{e:?}");
        assert!(e[0].message.contains("is the LAN port too"), "{e:?}");
        let e = try_wan(&|w| {
            good(w);
            w.interface = Some("nosuch1".into());
        });
        assert_eq!(fields(&e), ["wan.interface"], "{e:?}");
        assert!(
            e[0].message.contains("does not exist on this machine"),
            "{e:?}"
        );
        let e = try_wan(&|w| {
            good(w);
            w.address = Some((ip(10, 0, 0, 9), 16));
            w.gateway = Some(ip(10, 0, 0, 1));
        });
        assert_eq!(fields(&e), ["wan.address"], "{e:?}");
        assert!(
            e[0].message.contains("holds the LAN address 10.0.0.2"),
            "{e:?}"
        );
        // DHCP on the WAN takes no static values.
        let e = try_wan(&|w| {
            good(w);
            w.mode = WanModeSetting::Dhcp;
        });
        assert_eq!(
            fields(&e),
            ["wan.address", "wan.gateway", "wan.dns"],
            "{e:?}"
        );
        assert_eq!(
            try_wan(&|w| *w = WanSettings {
                interface: Some("wan0".into()),
                ..WanSettings::default()
            }),
            []
        );
        // No WAN but static values.
        let e = try_wan(&|w| {
            good(w);
            w.interface = None;
        });
        assert_eq!(fields(&e), ["wan.interface"], "{e:?}");

        // The forwarder's upstream: addresses of name servers, never the LAN address (found on
        // the port: the file does not pin it).
        let (check, mut s) = check();
        s.dns = Some(DnsSettings {
            enabled: Some(true),
            upstream: vec![ip(9, 9, 9, 9), ip(10, 0, 0, 2), ip(0, 0, 0, 0)],
        });
        let e = check.settings(&s, FLAKE_HOSTS);
        assert_eq!(fields(&e), ["dns.upstream", "dns.upstream"], "{e:?}");
        assert!(
            e.iter()
                .any(|e| e.message.contains("is the appliance's LAN address"))
        );
        assert!(
            e.iter()
                .any(|e| e.message.contains("0.0.0.0 is not a name server"))
        );
        s.dns = Some(DnsSettings {
            enabled: None,
            upstream: vec![ip(9, 9, 9, 9)],
        });
        assert_eq!(check.settings(&s, FLAKE_HOSTS), []);
    }

    /// Whatever passes the checks boots: random host names, command lines, machine host names
    /// and kernel parameters (built from the pieces iPXE cares about); every combination the
    /// config's rules accept gives a boot script for the machine and a menu with no entry left
    /// out, every one they refuse was refused for a reason the renderer has too.
    #[test]
    fn any_validated_values_render() {
        use flakeboot_catalogue::BootSpec;
        use flakeboot_config::HostConfig;
        use flakeboot_httpboot::script::{ScriptContext, render};

        use crate::boot_policy::PolicyState;

        // Mostly harmless pieces, so that a fair share of the combinations passes.
        const PARAMS: &[&str] = &["console=ttyS0", "a", "-", "_", ".", "=", "/", " ", ","];
        const NAMES: &[&str] = &["demo", "a", "-", "_", "01"];
        const HOSTNAMES: &[&str] = &["node", "a", "-", ".", "3"];
        const RISKY: &[&str] = &[
            "||", "&&", ";", "#", "#!ipxe", "${x}", "$", "\n", "\t", "\"", "'", "\\", "é", "x#y",
            "a|b", "a&&b",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut text = move |safe: &[&'static str], max: u64| {
            let mut s = String::new();
            for _ in 0..=next() % max {
                let pieces = if next() % 12 == 0 { RISKY } else { safe };
                s.push_str(pieces[usize::try_from(next() % pieces.len() as u64).unwrap()]);
            }
            s
        };
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let ctx = ScriptContext {
            base_url: "http://10.0.0.2",
            mac: Some(mac),
        };
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..5_000 {
            let name = text(NAMES, 4);
            let mut config = Config::with_defaults("lan0");
            config.hosts.push(HostConfig {
                name: name.clone(),
                kernel: "/k".into(),
                initrd: "/i".into(),
                cmdline: text(PARAMS, 6),
                description: text(PARAMS, 3),
            });
            let hostname = text(HOSTNAMES, 3);
            config.machines.push(MachineConfig {
                mac,
                host: Some(name),
                extra_cmdline: text(PARAMS, 6),
                hostname: (!hostname.is_empty()).then_some(hostname),
            });
            if !flakeboot_config::problems(&config, Some(&[])).is_empty() {
                invalid += 1;
                continue;
            }
            valid += 1;
            let state = PolicyState::from_config(
                &config,
                Vec::new(),
                flakeboot_nix::CurrentGenerations::default(),
                ctx.base_url.to_owned(),
            );
            let spec = state.boot_spec(Some(mac));
            assert!(matches!(spec, BootSpec::Host(_)), "{config:?}");
            let rendered = render(&spec, &ctx);
            assert!(rendered.is_ok(), "{config:?}: {rendered:?}");
            let menu = render(&state.boot_spec(None), &ctx).unwrap();
            assert!(menu.skipped.is_empty(), "{config:?}: {:?}", menu.skipped);
        }
        assert!(
            valid > 500 && invalid > 500,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn a_machines_settings_are_checked_like_the_files() {
        let (check, _) = check();
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let ok = MachineSettings {
            host: Some("demo".into()),
            hostname: Some("rack3-node1".into()),
            kernel_params: "console=ttyS0 loglevel=7".into(),
            boot_once: Some("demo".into()),
        };
        assert_eq!(check.machine(mac, &ok, FLAKE_HOSTS), []);
        let local = MachineSettings {
            host: Some("local".into()),
            boot_once: Some("demo".into()),
            ..MachineSettings::default()
        };
        assert_eq!(check.machine(mac, &local, FLAKE_HOSTS), []);
        let bad = MachineSettings {
            host: Some("ghost".into()),
            hostname: Some("bad name".into()),
            kernel_params: "quiet || shell".into(),
            boot_once: Some("lab#ghost".into()),
        };
        let e = check.machine(mac, &bad, FLAKE_HOSTS);
        assert_eq!(
            fields(&e),
            ["boot_once", "host", "hostname", "kernel_params"],
            "{e:?}"
        );
        assert!(e[0].message.contains("\"lab#ghost\""), "{e:?}");
        // Boot once is a host; the local disk is the machine's own host.
        let once_local = MachineSettings {
            boot_once: Some("local".into()),
            ..MachineSettings::default()
        };
        let e = check.machine(mac, &once_local, FLAKE_HOSTS);
        assert_eq!(fields(&e), ["boot_once"], "{e:?}");
    }
}
