//! The UI's starting point from the config file: the hosts it offers, the machines the file
//! pins, and the settings it shows until the UI saves its own.

use std::collections::BTreeMap;

use std::path::Path;
use std::sync::Arc;

use flakeboot_appliance::system::LiveSystem;
use flakeboot_appliance::{SettingsCheck, settings_from_config};
use flakeboot_catalogue::MacAddr;
use flakeboot_config::{Config, Field, Lines};

use crate::state::{ConfigFlake, WebConfig};

impl WebConfig {
    /// A UI configuration from the config file: its hosts, its pinned machines and its
    /// settings, checked with the file's rules on this machine before they are saved;
    /// `interfaces` are the ports the setup page offers (the daemon lists them from the kernel
    /// through flakeboot-netif).
    pub fn from_config(config: &Config, interfaces: Vec<String>) -> WebConfig {
        WebConfig {
            static_hosts: config.hosts.iter().map(|h| h.name.clone()).collect(),
            pinned_machines: config
                .machines
                .iter()
                .map(|m| (m.mac, m.host.clone()))
                .collect::<BTreeMap<_, _>>(),
            config_flakes: config
                .flakes
                .iter()
                .map(|f| ConfigFlake {
                    url: f.url.clone(),
                    name: f.name.clone(),
                    line: None,
                })
                .collect(),
            interfaces,
            default_settings: settings_from_config(config),
            report_timeout: config.boot.report_timeout,
            check: SettingsCheck::new(config.clone(), Some(Arc::new(LiveSystem))),
            ..WebConfig::default()
        }
    }
}

impl WebConfig {
    /// The same, knowing the file it came from (`text` is its contents): pinned machines are
    /// shown with the file and the line of their `mac = ...`.
    pub fn with_config_file(mut self, path: &Path, text: &str) -> WebConfig {
        self.pin_lines = pin_lines(self.pinned_machines.keys().copied(), text);
        let lines = Lines::new(text);
        for (i, flake) in self.config_flakes.iter_mut().enumerate() {
            flake.line = lines.line(&Field::key("flakes").at(i));
        }
        self.config_file = Some(path.to_path_buf());
        self
    }
}

/// The line (from 1) where each MAC appears in `text` as a `mac = "..."` value.
fn pin_lines(macs: impl Iterator<Item = MacAddr>, text: &str) -> BTreeMap<MacAddr, usize> {
    let mut out = BTreeMap::new();
    for mac in macs {
        let wanted = mac.to_string().to_lowercase();
        if let Some((n, _)) = text.lines().enumerate().find(|(_, line)| {
            let line = line.to_lowercase();
            line.trim_start().starts_with("mac") && line.contains(&wanted)
        }) {
            out.insert(mac, n + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flakeboot_store::DhcpModeSetting;

    use std::net::Ipv4Addr;

    #[test]
    fn a_config_file_becomes_the_uis_starting_point() {
        let text = r#"
            [lan]
            interface = "lan0"
            [dhcp]
            mode = "router"
            range = ["10.0.0.100", "10.0.0.200"]
            [[dhcp.reservations]]
            mac = "52:54:00:00:00:05"
            address = "10.0.0.5"
            [menu]
            default = "demo"
            timeout = "3s"
            [nix]
            builders = ["ssh://b x86_64-linux"]
            [[hosts]]
            name = "demo"
            kernel = "/srv/k"
            initrd = "/srv/i"
            [[machines]]
            mac = "52:54:00:00:00:01"
            host = "demo"
        "#;
        let config = Config::parse(text, Path::new("test.toml")).unwrap();
        let web = WebConfig::from_config(&config, vec!["lan0".into()]);
        assert_eq!(web.static_hosts, ["demo"]);
        assert_eq!(
            web.pinned_machines
                .get(&"52:54:00:00:00:01".parse().unwrap()),
            Some(&Some("demo".to_owned()))
        );
        let s = web.default_settings;
        assert_eq!(
            (s.lan_interface.as_str(), s.dhcp_mode),
            ("lan0", DhcpModeSetting::Router)
        );
        assert_eq!(
            s.dhcp_ranges,
            [[Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 200)]]
        );
        assert_eq!(s.reservations.len(), 1);
        assert_eq!(
            (s.menu_default.as_deref(), s.menu_timeout_secs),
            (Some("demo"), 3)
        );
        assert_eq!(s.builders, ["ssh://b x86_64-linux"]);
        let web = WebConfig::from_config(&config, Vec::new())
            .with_config_file(Path::new("/etc/flakeboot.toml"), text);
        let mac = "52:54:00:00:00:01".parse().unwrap();
        assert_eq!(web.pin_lines.get(&mac), Some(&20));
    }

    #[test]
    fn config_flakes_are_known_with_their_lines() {
        let text = "[lan]\ninterface = \"lan0\"\n\n[[flakes]]\nurl = \"github:acme/fleet\"\n\n[[flakes]]\nurl = \"github:acme/lab\"\nname = \"lab\"\n";
        let config = Config::parse(text, Path::new("test.toml")).unwrap();
        let web = WebConfig::from_config(&config, Vec::new())
            .with_config_file(Path::new("/etc/flakeboot.toml"), text);
        let lines: Vec<_> = web
            .config_flakes
            .iter()
            .map(|f| (f.name.as_deref(), f.line))
            .collect();
        // The line of each entry's `[[flakes]]` header.
        assert_eq!(lines, [(None, Some(4)), (Some("lab"), Some(7))]);
    }
}
