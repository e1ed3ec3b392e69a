//! Checking what the admin typed: each function returns the parsed value or an [`Invalid`]
//! naming the form field and saying what to enter instead.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::keys::PublicKey;
use crate::net::Ipv4Net;

/// A value the admin entered is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The form field (`listen_port`, `address`, `endpoint`, `public_key`, `allowed_ips`,
    /// `keepalive`, `name`).
    pub field: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// The longest peer name accepted.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest keepalive accepted, in seconds.
pub const MAX_KEEPALIVE: u16 = 3600;

/// A UDP port to listen on (not 0).
pub fn listen_port(port: u16) -> Result<u16, Invalid> {
    if port == 0 {
        return Err(invalid(
            "listen_port",
            "the port must be between 1 and 65535: 51820 is WireGuard's usual port",
        ));
    }
    Ok(port)
}

/// The appliance's own address in a tunnel, with the tunnel's prefix (`10.77.0.1/24`). It must
/// leave room for at least one other address (prefix at most /30) and be neither the network's
/// nor its broadcast address.
pub fn interface_address(field: &'static str, text: &str) -> Result<Ipv4Net, Invalid> {
    let Some(net) = Ipv4Net::parse(text) else {
        return Err(invalid(
            field,
            format!(
                "{:?} is not an IPv4 address with a prefix length: write it like 10.77.0.1/24",
                text.trim()
            ),
        ));
    };
    if net.prefix < 8 || net.prefix > 30 {
        return Err(invalid(
            field,
            format!(
                "/{} does not fit a tunnel: use a prefix length from /8 to /30, e.g. {}/24",
                net.prefix, net.addr
            ),
        ));
    }
    if net.addr == net.network() || net.addr == net.broadcast() {
        return Err(invalid(
            field,
            format!(
                "{} is the network's own {} address: give the appliance a host address such as {}/{}",
                net.addr,
                if net.addr == net.network() {
                    "network"
                } else {
                    "broadcast"
                },
                Ipv4Addr::from(u32::from(net.network()).saturating_add(1)),
                net.prefix
            ),
        ));
    }
    if net.addr.is_loopback() || net.addr.is_multicast() || net.addr.is_unspecified() {
        return Err(invalid(
            field,
            format!(
                "{} cannot be a tunnel address: use a private range such as 10.77.0.1/24",
                net.addr
            ),
        ));
    }
    Ok(net)
}

/// A host (name, IPv4 address or `[IPv6]`) and an optional port, as in a `wg-quick` `Endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host as written (brackets kept for IPv6).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

impl Endpoint {
    /// `host:port`, using `default_port` when none was given.
    pub fn with_port(&self, default_port: u16) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(default_port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host` or `host:port` (`office.example.net`, `203.0.113.7:51820`, `[2001:db8::1]:51820`).
/// With `port_required`, the port must be there.
pub fn endpoint(text: &str, port_required: bool) -> Result<Endpoint, Invalid> {
    let text = text.trim();
    let example = "write it like office.example.net:51820 or 203.0.113.7:51820";
    if text.is_empty() {
        return Err(invalid(
            "endpoint",
            format!("the endpoint is empty: {example}"),
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(invalid(
                "endpoint",
                format!("{text:?} opens '[' without closing it: {example}"),
            ));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(
                "endpoint",
                format!("{v6:?} is not an IPv6 address: {example}"),
            ));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                invalid(
                    "endpoint",
                    format!("unexpected {p:?} after the IPv6 address: {example}"),
                )
            })?),
        };
        (format!("[{v6}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_owned(), Some(port)),
            Some(_) => {
                return Err(invalid(
                    "endpoint",
                    format!(
                        "put an IPv6 address in brackets, e.g. [2001:db8::1]:51820 (got {text:?})"
                    ),
                ));
            }
            None => (text.to_owned(), None),
        }
    };
    if !host.starts_with('[') && host.parse::<Ipv4Addr>().is_err() && !valid_hostname(&host) {
        return Err(invalid(
            "endpoint",
            format!("{host:?} is not a host name or IP address: {example}"),
        ));
    }
    let port = match port {
        None if port_required => {
            return Err(invalid(
                "endpoint",
                format!("the endpoint needs a port: write {host}:51820 (the hub's listen port)"),
            ));
        }
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => {
                return Err(invalid(
                    "endpoint",
                    format!("{p:?} is not a port between 1 and 65535: {example}"),
                ));
            }
        },
    };
    Ok(Endpoint { host, port })
}

/// A peer's public key: base64 of 32 bytes, as `wg pubkey` prints it.
pub fn public_key(text: &str) -> Result<PublicKey, Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid(
            "public_key",
            "the public key is empty: paste the hub's public key (`wg pubkey < hub.key` on the hub)",
        ));
    }
    PublicKey::from_base64(text).map_err(|_| {
        invalid(
            "public_key",
            format!(
                "{text:?} is not a WireGuard public key: paste the 44-character base64 key that `wg pubkey` prints"
            ),
        )
    })
}

/// The networks reached through a peer (`10.99.0.0/24`). At least one; not everything
/// (`0.0.0.0/0`): the appliance only needs the admins' network, not a default route.
pub fn allowed_ips(items: &[String]) -> Result<Vec<Ipv4Net>, Invalid> {
    let items: Vec<&str> = items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(invalid(
            "allowed_ips",
            "give the network the hub's admins come from, e.g. 10.99.0.0/24",
        ));
    }
    let mut nets = Vec::new();
    for item in items {
        let Some(net) = Ipv4Net::parse(item) else {
            return Err(invalid(
                "allowed_ips",
                format!("{item:?} is not an IPv4 network: write it like 10.99.0.0/24"),
            ));
        };
        if net.prefix == 0 {
            return Err(invalid(
                "allowed_ips",
                "0.0.0.0/0 would send all of the appliance's traffic to the hub: give only the hub's network, e.g. 10.99.0.0/24",
            ));
        }
        let net = net.normalized();
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// Persistent keepalive in seconds: 0 (off) to [`MAX_KEEPALIVE`].
pub fn keepalive(seconds: u16) -> Result<u16, Invalid> {
    if seconds > MAX_KEEPALIVE {
        return Err(invalid(
            "keepalive",
            format!(
                "{seconds} s is too long to keep a NAT mapping open: use 0 (off) to {MAX_KEEPALIVE}; 25 is usual"
            ),
        ));
    }
    Ok(seconds)
}

/// A peer's name: 1 to [`MAX_NAME_CHARS`] characters, no control characters; trimmed.
pub fn peer_name(text: &str) -> Result<String, Invalid> {
    let name = text.trim();
    if name.is_empty() {
        return Err(invalid(
            "name",
            "give the device a name, e.g. \"laptop\" or \"alice-phone\"",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("the name is too long: use at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "the name has control characters (tabs, line breaks): use plain text",
        ));
    }
    Ok(name.to_owned())
}

/// The address of an endpoint host written as an IP address (IPv4, or IPv6 in brackets);
/// `None` for a host name, which needs resolving.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(listen_port(51820), Ok(51820));
        let err = listen_port(0).unwrap_err();
        assert_eq!(err.field, "listen_port");
        assert!(err.message.contains("51820"), "{err}");
    }

    #[test]
    fn interface_addresses() {
        assert_eq!(
            interface_address("address", " 10.77.0.1/24 ")
                .unwrap()
                .to_string(),
            "10.77.0.1/24"
        );
        for (bad, says) in [
            ("10.77.0.1", "like 10.77.0.1/24"),
            ("10.77.0.0/24", "network"),
            ("10.77.0.255/24", "broadcast"),
            ("10.77.0.1/31", "/8 to /30"),
            ("10.77.0.1/32", "/8 to /30"),
            ("127.0.0.1/8", "cannot be a tunnel address"),
            ("example", "like 10.77.0.1/24"),
        ] {
            let err = interface_address("address", bad).unwrap_err();
            assert_eq!(err.field, "address");
            assert!(err.message.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn endpoints() {
        let e = endpoint("office.example.net", false).unwrap();
        assert_eq!(e.port, None);
        assert_eq!(e.with_port(51820), "office.example.net:51820");
        let e = endpoint("203.0.113.7:4500", true).unwrap();
        assert_eq!(e.to_string(), "203.0.113.7:4500");
        assert_eq!(literal_ip(&e.host), Some("203.0.113.7".parse().unwrap()));
        let e = endpoint("[2001:db8::1]:51820", true).unwrap();
        assert_eq!(e.host, "[2001:db8::1]");
        assert_eq!(literal_ip(&e.host), Some("2001:db8::1".parse().unwrap()));
        for (bad, required, says) in [
            ("", false, "empty"),
            ("office.example.net", true, "needs a port"),
            ("host:0", false, "between 1 and 65535"),
            ("host:99999", false, "between 1 and 65535"),
            ("host:+5", false, "between 1 and 65535"),
            ("2001:db8::1", false, "brackets"),
            ("[2001:db8::1", false, "without closing"),
            ("bad host:51820", false, "not a host name"),
            ("-x.example:1", false, "not a host name"),
        ] {
            let err = endpoint(bad, required).unwrap_err();
            assert_eq!(err.field, "endpoint");
            assert!(err.message.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn public_keys() {
        let key = public_key(" hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo= ").unwrap();
        assert_eq!(
            key.to_base64(),
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
        assert!(public_key("").unwrap_err().message.contains("empty"));
        let err = public_key("hSDwCYkwp1R0i33ctD73Wg2").unwrap_err();
        assert_eq!(err.field, "public_key");
        assert!(err.message.contains("wg pubkey"), "{err}");
    }

    #[test]
    fn allowed_ip_lists() {
        let nets =
            allowed_ips(&["10.99.0.7/24, 10.98.0.0/16".into(), "10.99.0.0/24".into()]).unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.99.0.0/24", "10.98.0.0/16"]);
        assert!(
            allowed_ips(&[])
                .unwrap_err()
                .message
                .contains("10.99.0.0/24")
        );
        assert!(
            allowed_ips(&["0.0.0.0/0".into()])
                .unwrap_err()
                .message
                .contains("all of the appliance's traffic")
        );
        assert_eq!(
            allowed_ips(&["10.99.0.0".into()]).unwrap_err().field,
            "allowed_ips"
        );
    }

    #[test]
    fn keepalives_and_names() {
        assert_eq!(keepalive(0), Ok(0));
        assert_eq!(keepalive(25), Ok(25));
        assert_eq!(keepalive(3601).unwrap_err().field, "keepalive");
        assert_eq!(peer_name("  laptop "), Ok("laptop".into()));
        assert_eq!(peer_name(" ").unwrap_err().field, "name");
        assert!(peer_name(&"x".repeat(65)).is_err());
        assert!(peer_name("a\nb").unwrap_err().message.contains("control"));
        assert_eq!(peer_name("Zoë's phone"), Ok("Zoë's phone".into()));
    }
}
