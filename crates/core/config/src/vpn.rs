//! `[vpn]`: names of the WireGuard interfaces flakeboot manages for remote management. Everything
//! else about the VPN (ports, addresses, peers, the hub) is set in the web UI and kept in the
//! store; the names are here because an interface name is taken for the whole network
//! namespace: two daemons in one need different ones, and the names must not clash with other
//! interfaces of the appliance.

use serde::Deserialize;

use crate::problem::{Field, Problem};

/// `[vpn]` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VpnConfig {
    /// The interface of server mode (admins' devices connect to it).
    pub server_interface: String,
    /// The interface of hub mode (the appliance dials out to a hub).
    pub hub_interface: String,
}

impl Default for VpnConfig {
    fn default() -> Self {
        VpnConfig {
            server_interface: "fb-wg".into(),
            hub_interface: "fb-hub".into(),
        }
    }
}

/// Linux allows at most 15 bytes in an interface name.
const MAX_IFNAME: usize = 15;

pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

/// Problems in `[vpn]`, each a sentence that says what to do.
pub(crate) fn problems(vpn: &VpnConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, name) in [
        ("server_interface", &vpn.server_interface),
        ("hub_interface", &vpn.hub_interface),
    ] {
        if !valid_ifname(name) {
            problems.push(Problem::new(
                Field::key("vpn").then(key),
                format!(
                    "{name:?} is not a usable interface name: use 1 to 15 letters, digits, '-', '_' or '.'"
                ),
            ));
        }
    }
    if vpn.server_interface == vpn.hub_interface {
        problems.push(Problem::new(
            Field::key("vpn").then("hub_interface"),
            format!(
                "server_interface and hub_interface are both {:?}: give them different names",
                vpn.server_interface
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_distinct() {
        assert!(problems(&VpnConfig::default()).is_empty());
    }

    #[test]
    fn bad_and_equal_names_are_problems() {
        let vpn = VpnConfig {
            server_interface: "a-very-long-interface".into(),
            hub_interface: "wg 0".into(),
        };
        let p = problems(&vpn);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].field.to_string(), "vpn.server_interface", "{p:?}");
        let same = VpnConfig {
            server_interface: "wg0".into(),
            hub_interface: "wg0".into(),
        };
        assert!(problems(&same)[0].message.contains("different names"));
    }
}
