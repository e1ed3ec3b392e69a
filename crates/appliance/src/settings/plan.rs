//! What the settings saved in the web UI or API mean for the running daemon, as pure functions:
//! the configuration in effect (the file with the saved settings over it) and what must change
//! between two of them.

use std::time::Duration;

use flakeboot_config::{Config, DhcpMode, Ipv4Cidr, Reservation, WanConfig, WanMode};
use flakeboot_nix::NixSettings;
use flakeboot_store::{ApplianceSettings, DhcpModeSetting, WanModeSetting};

/// The DHCP mode a saved setting means.
pub fn dhcp_mode_of(setting: DhcpModeSetting) -> DhcpMode {
    match setting {
        DhcpModeSetting::Proxy => DhcpMode::Proxy,
        DhcpModeSetting::Router => DhcpMode::Router,
        DhcpModeSetting::Off => DhcpMode::Off,
    }
}

/// The configuration in effect: the config file with the settings saved in the UI over it
/// (they win once saved). An empty LAN port in the settings keeps the file's.
pub fn effective_config(file: &Config, settings: &ApplianceSettings) -> Config {
    let mut config = file.clone();
    if !settings.lan_interface.is_empty() && settings.lan_interface != file.lan.interface {
        config.lan.interface = settings.lan_interface.clone();
        // The file's pinned address is one of its own port's addresses.
        config.lan.address = None;
    }
    let dhcp = &mut config.dhcp;
    dhcp.mode = dhcp_mode_of(settings.dhcp_mode);
    if settings.dhcp_ranges != dhcp.all_ranges() {
        dhcp.range = None;
        dhcp.ranges = settings.dhcp_ranges.clone();
    }
    dhcp.reservations = settings
        .reservations
        .iter()
        .map(|r| Reservation {
            mac: r.mac,
            address: r.address,
            hostname: r.hostname.clone(),
        })
        .collect();
    config.menu.default = settings.menu_default.clone();
    config.menu.timeout = Duration::from_secs(settings.menu_timeout_secs);
    // The settings show "no substituters" for both of the file's "not set" (nix's own
    // default) and `[]` (none): while the list is the file's, keep the file's meaning; a list
    // cleared in the UI means nix's own default.
    let file_substituters = file.nix.substituters.clone().unwrap_or_default();
    config.nix.substituters = if settings.substituters == file_substituters {
        file.nix.substituters.clone()
    } else if settings.substituters.is_empty() {
        None
    } else {
        Some(settings.substituters.clone())
    };
    config.nix.builders = settings.builders.clone();
    // Unset (a record saved before these were settings): the file's.
    if let Some(wan) = &settings.wan {
        config.wan = WanConfig {
            interface: wan.interface.clone().filter(|i| !i.is_empty()),
            mode: match wan.mode {
                WanModeSetting::Dhcp => WanMode::Dhcp,
                WanModeSetting::Static => WanMode::Static,
            },
            address: wan.address.map(|(address, prefix_len)| Ipv4Cidr {
                address,
                prefix_len,
            }),
            gateway: wan.gateway,
            dns: wan.dns.clone(),
        };
    }
    if let Some(dns) = &settings.dns {
        config.dns.enabled = dns.enabled;
        config.dns.upstream = dns.upstream.clone();
    }
    config
}

/// What must change to go from one configuration in effect to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// The LAN port changed: move HTTP boot, TFTP and DHCP to it.
    pub move_lan: bool,
    /// DHCP mode, ranges or reservations changed: restart DHCP (or stop it: mode off).
    pub restart_dhcp: bool,
    /// The menu's default or timeout changed: rebuild the catalogue.
    pub rebuild_catalogue: bool,
    /// Substituters or builders changed: the next build runs nix with new settings.
    pub nix: bool,
    /// `[wan]` changed: the WAN port's firewall, static address and route, NAT.
    pub wan: bool,
    /// The forwarder's settings or its upstream (a static WAN's `dns`) changed: restart it.
    pub restart_dns: bool,
}

impl Plan {
    /// The changes from `old` to `new`.
    pub fn between(old: &Config, new: &Config) -> Plan {
        let move_lan = old.lan != new.lan;
        let upstream_changed = crate::wan::upstream_dns(old) != crate::wan::upstream_dns(new);
        // Router mode hands out the DNS servers (option 6, `router_mode::dns_servers`):
        // `[dhcp] dns` (in `dhcp`), else the forwarder on port 53 (`None`), else a static WAN's.
        let option_6 = |c: &Config| {
            let forwarder = c.dns.is_on(c.dhcp.mode) && c.dns.port == 53;
            (!forwarder).then(|| crate::wan::upstream_dns(c))
        };
        let option_6_changed = new.dhcp.mode == DhcpMode::Router && option_6(old) != option_6(new);
        Plan {
            move_lan,
            restart_dhcp: move_lan || old.dhcp != new.dhcp || option_6_changed,
            rebuild_catalogue: old.menu != new.menu,
            nix: old.nix != new.nix,
            wan: old.wan != new.wan,
            restart_dns: old.dns != new.dns || upstream_changed,
        }
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

/// How nix runs under `config`, keeping the binary of the settings in use.
pub fn nix_settings(config: &Config, current: &NixSettings) -> NixSettings {
    NixSettings {
        nix_bin: current.nix_bin.clone(),
        files: current.files.clone(),
        git_ssh: current.git_ssh.clone(),
        ..NixSettings::from_config(&config.nix)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use crate::settings::from_config::settings_from_config;
    use flakeboot_store::{DnsSettings, ReservationSetting, WanSettings};

    use super::*;

    const FILE: &str = r#"
[lan]
interface = "lan0"
address = "10.0.0.2"
[dhcp]
mode = "router"
range = ["10.0.0.100", "10.0.0.150"]
lease_time = "10m"
[menu]
timeout = "5s"
[nix]
substituters = []
extra_options = { build-users-group = "" }
[[hosts]]
name = "demo"
kernel = "/srv/k"
initrd = "/srv/i"
"#;

    fn file() -> Config {
        Config::parse(FILE, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn unsaved_settings_change_nothing() {
        let file = file();
        let settings = settings_from_config(&file);
        let effective = effective_config(&file, &settings);
        assert!(Plan::between(&file, &effective).is_empty());
        assert_eq!(effective.dhcp.all_ranges(), file.dhcp.all_ranges());
        assert_eq!(effective.lan, file.lan);
        // `substituters = []` (none at all) stays none, not nix's default.
        assert_eq!(effective.nix.substituters, Some(vec![]));
        // Whatever the file does not hold in the settings is the file's.
        assert_eq!(effective.dhcp.lease_time, file.dhcp.lease_time);
        assert_eq!(effective.hosts, file.hosts);
    }

    fn plan(edit: impl FnOnce(&mut ApplianceSettings)) -> (Plan, Config) {
        let file = file();
        let mut settings = settings_from_config(&file);
        edit(&mut settings);
        let effective = effective_config(&file, &settings);
        (Plan::between(&file, &effective), effective)
    }

    #[test]
    fn a_new_range_restarts_dhcp_only() {
        let b = [Ipv4Addr::new(10, 0, 0, 200), Ipv4Addr::new(10, 0, 0, 220)];
        let (p, c) = plan(|s| s.dhcp_ranges = vec![b]);
        assert_eq!(
            p,
            Plan {
                restart_dhcp: true,
                ..Plan::default()
            }
        );
        assert_eq!(c.dhcp.all_ranges(), [b]);
    }

    #[test]
    fn mode_and_reservations_restart_dhcp() {
        let (p, c) = plan(|s| s.dhcp_mode = DhcpModeSetting::Proxy);
        assert!(p.restart_dhcp && !p.move_lan && !p.rebuild_catalogue && !p.nix);
        assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
        let (p, c) = plan(|s| s.dhcp_mode = DhcpModeSetting::Off);
        assert!(p.restart_dhcp);
        assert_eq!(c.dhcp.mode, DhcpMode::Off);
        let (p, c) = plan(|s| {
            s.reservations.push(ReservationSetting {
                mac: "52:54:00:00:00:07".parse().unwrap(),
                address: Ipv4Addr::new(10, 0, 0, 7),
                hostname: Some("seven".into()),
            })
        });
        assert!(p.restart_dhcp && !p.move_lan);
        assert_eq!(c.dhcp.reservations.len(), 1);
        assert_eq!(c.dhcp.reservations[0].hostname.as_deref(), Some("seven"));
    }

    #[test]
    fn a_new_lan_port_moves_everything_and_drops_the_pinned_address() {
        let (p, c) = plan(|s| s.lan_interface = "lan1".into());
        assert!(p.move_lan && p.restart_dhcp && !p.rebuild_catalogue && !p.nix);
        assert_eq!(c.lan.interface, "lan1");
        assert_eq!(c.lan.address, None);
        // An empty port (never chosen) keeps the file's.
        let (p, c) = plan(|s| s.lan_interface.clear());
        assert!(p.is_empty());
        assert_eq!(c.lan.address, Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn wan_and_dns_changes_restart_what_they_touch() {
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        // Unset (a record of an earlier version): the file's.
        let (p, c) = plan(|s| {
            s.wan = None;
            s.dns = None;
        });
        assert!(p.is_empty());
        assert_eq!(c.wan, file().wan);
        // Another upstream: the forwarder restarts; DHCP still hands out the forwarder.
        let (p, c) = plan(|s| {
            s.dns = Some(DnsSettings {
                enabled: None,
                upstream: vec![ip(9, 9, 9, 9)],
            })
        });
        assert_eq!(
            p,
            Plan {
                restart_dns: true,
                ..Plan::default()
            }
        );
        assert_eq!(c.dns.upstream, [ip(9, 9, 9, 9)]);
        // The forwarder off in router mode: DHCP hands out other servers now.
        let (p, c) = plan(|s| {
            s.dns = Some(DnsSettings {
                enabled: Some(false),
                upstream: Vec::new(),
            })
        });
        assert!(p.restart_dns && p.restart_dhcp && !p.wan && !p.move_lan);
        assert!(!c.dns.is_on(c.dhcp.mode));
        // A static WAN: the WAN side changes, and its name servers are the forwarder's upstream.
        let wan = WanSettings {
            interface: Some("wan0".into()),
            mode: WanModeSetting::Static,
            address: Some((ip(203, 0, 113, 2), 24)),
            gateway: Some(ip(203, 0, 113, 1)),
            dns: vec![ip(203, 0, 113, 53)],
        };
        let (p, c) = plan(|s| s.wan = Some(wan.clone()));
        assert_eq!(
            p,
            Plan {
                wan: true,
                restart_dns: true,
                ..Plan::default()
            }
        );
        assert_eq!(c.wan.address.unwrap().to_string(), "203.0.113.2/24");
        assert_eq!(crate::wan::upstream_dns(&c), [ip(203, 0, 113, 53)]);
        // An empty port is no WAN.
        let (_, c) = plan(|s| {
            s.wan = Some(WanSettings {
                interface: Some(String::new()),
                ..WanSettings::default()
            })
        });
        assert_eq!(c.wan.interface, None);
    }

    #[test]
    fn menu_changes_rebuild_the_catalogue_only() {
        let (p, c) = plan(|s| {
            s.menu_default = Some("local".into());
            s.menu_timeout_secs = 30;
        });
        assert_eq!(
            p,
            Plan {
                rebuild_catalogue: true,
                ..Plan::default()
            }
        );
        assert_eq!(c.menu.default.as_deref(), Some("local"));
        assert_eq!(c.menu.timeout, Duration::from_secs(30));
    }

    #[test]
    fn substituters_and_builders_become_the_next_builds_options() {
        let (p, c) = plan(|s| {
            s.substituters = vec!["https://cache.example".into(), "file:///srv/cache".into()];
            s.builders = vec!["ssh://b1 aarch64-linux".into()];
        });
        assert_eq!(
            p,
            Plan {
                nix: true,
                ..Plan::default()
            }
        );
        let current = NixSettings {
            nix_bin: "/opt/nix/bin/nix".into(),
            ..NixSettings::default()
        };
        let nix = nix_settings(&c, &current);
        assert_eq!(nix.nix_bin, current.nix_bin);
        let args: Vec<String> = flakeboot_nix::command::nix_command(&nix, &["build".into()])
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join("|");
        assert!(
            joined.contains("--option|substituters|https://cache.example file:///srv/cache"),
            "{joined}"
        );
        assert!(
            joined.contains("--option|builders|ssh://b1 aarch64-linux"),
            "{joined}"
        );
        // The file's other options stay.
        assert!(joined.contains("--option|build-users-group|"), "{joined}");
        // A list cleared in the UI means the default: cache.nixos.org.
        let mut file = file();
        file.nix.substituters = Some(vec!["https://a".into()]);
        let mut cleared = settings_from_config(&file);
        cleared.substituters.clear();
        let back = effective_config(&file, &cleared);
        assert_eq!(back.nix.substituters, None);
        assert!(
            nix_settings(&back, &current)
                .options
                .contains(&("substituters".into(), "https://cache.nixos.org".into()))
        );
    }
}
