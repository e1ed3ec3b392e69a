//! IPv4 addresses with a prefix length (`10.77.0.1/24`) and handing out tunnel addresses.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 address with its prefix length: an interface address (`10.77.0.1/24`) or a network
/// (`10.99.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address as written.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/n`; `None` when it is not that.
    pub fn parse(text: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = text.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address (host bits set).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` is inside this network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(self, other: Ipv4Net) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        shorter.contains(self.addr) && shorter.contains(other.addr)
    }

    /// The same prefix with host bits cleared (`10.99.0.7/24` -> `10.99.0.0/24`).
    pub fn normalized(self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The lowest address of `server`'s network that is neither the appliance's own
/// (`server.addr`), nor the network or broadcast address, nor in `used`. Addresses of revoked
/// peers are free again (they are no longer in `used`). `None` when the network is full.
pub fn next_free_address(server: Ipv4Net, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let first = u32::from(server.network());
    let last = u32::from(server.broadcast());
    let (first, last) = if server.prefix >= 31 {
        // Point-to-point networks have no network or broadcast address (RFC 3021).
        (first, last)
    } else {
        (first.checked_add(1)?, last.checked_sub(1)?)
    };
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != server.addr && !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        Ipv4Net::parse(s).unwrap()
    }

    #[test]
    fn parses_only_address_slash_prefix() {
        assert_eq!(
            net("10.77.0.1/24"),
            Ipv4Net {
                addr: Ipv4Addr::new(10, 77, 0, 1),
                prefix: 24
            }
        );
        for bad in [
            "10.77.0.1",
            "10.77.0.1/33",
            "10.77.0.1/",
            "10.77.0/24",
            "10.77.0.1/+4",
            "fd00::1/64",
            "",
        ] {
            assert_eq!(Ipv4Net::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn network_broadcast_contains_overlaps() {
        let n = net("10.77.0.9/24");
        assert_eq!(n.network(), Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
        assert!(n.contains(Ipv4Addr::new(10, 77, 0, 200)));
        assert!(!n.contains(Ipv4Addr::new(10, 77, 1, 1)));
        assert!(n.overlaps(net("10.77.0.128/25")));
        assert!(n.overlaps(net("10.0.0.0/8")));
        assert!(!n.overlaps(net("10.78.0.1/24")));
        assert_eq!(net("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(n.normalized().to_string(), "10.77.0.0/24");
    }

    #[test]
    fn next_free_skips_own_network_broadcast_and_used_and_reuses_freed() {
        let server = net("10.77.0.1/29"); // .0 network, .1 us, .2-.6 peers, .7 broadcast
        let mut used = Vec::new();
        for expected in 2..=6 {
            let ip = next_free_address(server, &used).unwrap();
            assert_eq!(ip, Ipv4Addr::new(10, 77, 0, expected));
            used.push(ip);
        }
        assert_eq!(next_free_address(server, &used), None);
        // Revoking .3 frees it.
        used.retain(|ip| *ip != Ipv4Addr::new(10, 77, 0, 3));
        assert_eq!(
            next_free_address(server, &used),
            Some(Ipv4Addr::new(10, 77, 0, 3))
        );
        // The appliance need not be the first address.
        let server = net("10.77.0.5/29");
        assert_eq!(
            next_free_address(server, &[]),
            Some(Ipv4Addr::new(10, 77, 0, 1))
        );
        assert_eq!(next_free_address(net("10.0.0.1/32"), &[]), None);
        assert_eq!(
            next_free_address(net("10.0.0.0/31"), &[]),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
    }
}
