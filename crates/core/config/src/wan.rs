//! `[wan]`: the appliance's upstream port. In router mode the LAN is forwarded to it with NAT
//! and it is firewalled (nothing answers there but WireGuard). Its address comes by DHCP
//! (`mode = "dhcp"`: systemd-networkd on the image, or whatever manages the port elsewhere) or
//! is static (`mode = "static"`: the daemon adds `address` and the default route through
//! `gateway` at start and takes them away at stop). A board's `wan` port (`board/*.toml`) is
//! what the image's generated config names here.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::problem::{Field, Problem};

/// How the WAN port gets its address.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WanMode {
    /// From the upstream's DHCP server (systemd-networkd on the image); the daemon reads the
    /// address the port has.
    #[default]
    Dhcp,
    /// `address`, `gateway` and `dns` as written; the daemon applies the address and route.
    Static,
}

/// An IPv4 address with its prefix length, written `"203.0.113.2/24"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Ipv4Cidr {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// Whether `other` lies in this address's subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::from(crate::system::netmask(self.prefix_len));
        u32::from(self.address) & mask == u32::from(other) & mask
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Ipv4Cidr, String> {
        let bad = || format!("{text:?} is not an address with its prefix, like \"203.0.113.2/24\"");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix_len: u8 = prefix.parse().map_err(|_| bad())?;
        if !(1..=32).contains(&prefix_len) {
            return Err(bad());
        }
        Ok(Ipv4Cidr {
            address,
            prefix_len,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// `[wan]` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WanConfig {
    /// The upstream port; none: no WAN (router mode then hands out addresses but forwards
    /// nothing).
    pub interface: Option<String>,
    pub mode: WanMode,
    /// `mode = "static"`: the port's address with its prefix.
    pub address: Option<Ipv4Cidr>,
    /// `mode = "static"`: the default gateway, in `address`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    /// `mode = "static"`: the upstream DNS servers.
    pub dns: Vec<Ipv4Addr>,
}

/// Problems in `[wan]` from the file alone, each a sentence that says what to do.
pub(crate) fn problems(wan: &WanConfig, lan_interface: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let field = |key: &str| Field::key("wan").then(key);
    let mut add = |f: Field, m: String| problems.push(Problem::new(f, m));
    let Some(name) = &wan.interface else {
        if wan.mode == WanMode::Static || wan.address.is_some() || wan.gateway.is_some() {
            add(
                field("interface"),
                "is missing: name the WAN port the address belongs to, e.g. \"eth1\"".into(),
            );
        }
        return problems;
    };
    if !crate::vpn::valid_ifname(name) {
        add(
            field("interface"),
            format!(
                "{name:?} is not an interface name: use 1 to 15 letters, digits, '-', '_' or '.'"
            ),
        );
    } else if name == lan_interface {
        add(
            field("interface"),
            format!("{name:?} is the LAN port too: the WAN is another port (or leave [wan] out)"),
        );
    }
    match wan.mode {
        WanMode::Dhcp => {
            for (key, set) in [
                ("address", wan.address.is_some()),
                ("gateway", wan.gateway.is_some()),
                ("dns", !wan.dns.is_empty()),
            ] {
                if set {
                    add(
                        field(key),
                        "is only used with mode = \"static\": remove it, or set mode = \"static\""
                            .into(),
                    );
                }
            }
        }
        WanMode::Static => match wan.address {
            None => add(
                field("address"),
                "mode = \"static\" needs the port's address: add address = \"203.0.113.2/24\""
                    .into(),
            ),
            Some(address) => {
                if let Some(gateway) = wan.gateway
                    && (!address.contains(gateway) || gateway == address.address)
                {
                    add(
                        field("gateway"),
                        format!(
                            "{gateway} is not another address in {address}'s subnet: the gateway must be reachable on the WAN port"
                        ),
                    );
                }
            }
        },
    }
    problems
}

/// Problems of `[wan]` on this machine: the port exists, and a static WAN subnet does not hold
/// the LAN address.
pub(crate) fn system_problems(
    wan: &WanConfig,
    lan_address: Option<Ipv4Addr>,
    system: &dyn crate::System,
) -> Vec<Problem> {
    let Some(name) = &wan.interface else {
        return Vec::new();
    };
    if !crate::vpn::valid_ifname(name) {
        return Vec::new(); // said by `problems`
    }
    let field = Field::key("wan").then("interface");
    match system.interface(name) {
        Ok(Some(_)) => {}
        Ok(None) => {
            let mut names = system.interface_names();
            names.retain(|n| n != "lo");
            return vec![Problem::new(
                field,
                format!(
                    "{name:?} does not exist on this machine: use one of: {}",
                    names.join(", ")
                ),
            )];
        }
        Err(e) => return vec![Problem::new(field, format!("cannot look up {name:?}: {e}"))],
    }
    match (wan.mode, wan.address, lan_address) {
        (WanMode::Static, Some(address), Some(lan)) if address.contains(lan) => {
            vec![Problem::new(
                Field::key("wan").then("address"),
                format!(
                    "{address} holds the LAN address {lan}: the WAN and the LAN need different subnets"
                ),
            )]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> WanConfig {
        toml::from_str(text).unwrap()
    }

    fn messages(text: &str, lan: &str) -> Vec<String> {
        problems(&parse(text), lan)
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn no_wan_and_a_dhcp_wan_are_fine() {
        assert!(messages("", "eth0").is_empty());
        assert!(messages("interface = \"eth1\"", "eth0").is_empty());
        let w = parse("interface = \"eth1\"\nmode = \"dhcp\"");
        assert_eq!(w.mode, WanMode::Dhcp);
    }

    #[test]
    fn a_static_wan_parses() {
        let w = parse(
            "interface = \"eth1\"\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ngateway = \"203.0.113.1\"\ndns = [\"203.0.113.53\"]",
        );
        assert_eq!(w.address.unwrap().to_string(), "203.0.113.2/24");
        assert!(problems(&w, "eth0").is_empty());
    }

    #[test]
    fn bad_cidrs_are_syntax_errors() {
        for bad in ["203.0.113.2", "203.0.113.2/33", "203.0.113.2/0", "x/24"] {
            let text = format!("interface = \"eth1\"\nmode = \"static\"\naddress = \"{bad}\"");
            assert!(toml::from_str::<WanConfig>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn wrong_wans_are_problems() {
        assert_eq!(
            messages("interface = \"eth0\"", "eth0"),
            [
                "wan.interface: \"eth0\" is the LAN port too: the WAN is another port (or leave [wan] out)"
            ]
        );
        assert_eq!(
            messages("interface = \"eth1\"\nmode = \"static\"", "eth0"),
            [
                "wan.address: mode = \"static\" needs the port's address: add address = \"203.0.113.2/24\""
            ]
        );
        let p = messages(
            "interface = \"eth1\"\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ngateway = \"198.51.100.1\"",
            "eth0",
        );
        assert!(
            p[0].starts_with("wan.gateway: 198.51.100.1 is not another address"),
            "{p:?}"
        );
        let p = messages("interface = \"eth1\"\ngateway = \"198.51.100.1\"", "eth0");
        assert!(
            p[0].starts_with("wan.gateway: is only used with mode = \"static\""),
            "{p:?}"
        );
        let p = messages("mode = \"static\"\naddress = \"203.0.113.2/24\"", "eth0");
        assert!(p[0].starts_with("wan.interface: is missing"), "{p:?}");
        let p = messages("interface = \"e th1\"", "eth0");
        assert!(
            p[0].starts_with("wan.interface: \"e th1\" is not an interface name"),
            "{p:?}"
        );
    }
}
