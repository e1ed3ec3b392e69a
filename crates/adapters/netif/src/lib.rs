//! The network interfaces of the current network namespace, as its kernel reports them over
//! rtnetlink: name, index, MAC, MTU, link state and addresses.
//!
//! Not from `/sys/class/net`: sysfs shows the interfaces of the namespace that mounted it, which
//! after a plain `unshare --net` is the host's, not the caller's. A netlink socket always talks
//! to the network namespace of the thread that opens it.
//!
//! The API is synchronous (one socket, two dumps): callers ask at start-up and when settings
//! change, from a blocking context.

mod change;
mod dump;
mod tap;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

pub use change::{add_default_route, add_ipv4, default_gateway, del_default_route, del_ipv4};
pub use dump::NetifError;
pub use tap::{Tap, TapError, open_tap};

/// One network interface of the current namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// The hardware address when it is an Ethernet-sized one (Ethernet, veth, tap, dummy, and
    /// the all-zero one of `lo`); `None` for e.g. tun and WireGuard interfaces.
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (`IFF_RUNNING`): up, with carrier.
    pub running: bool,
    /// IPv4 and IPv6 addresses in the kernel's order (an interface's primary IPv4 address first).
    pub addresses: Vec<IfAddr>,
}

/// An address of an interface with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl Interface {
    /// The IPv4 addresses with their netmasks, primary first.
    pub fn ipv4(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.addresses.iter().filter_map(|a| match a.address {
            IpAddr::V4(v4) => Some((v4, netmask_v4(a.prefix_len))),
            IpAddr::V6(_) => None,
        })
    }
}

/// The IPv4 netmask of a prefix length (`24` is 255.255.255.0; beyond 32 counts as 32).
pub fn netmask_v4(prefix_len: u8) -> Ipv4Addr {
    let zeros = 32u32.saturating_sub(u32::from(prefix_len));
    Ipv4Addr::from(u32::MAX.checked_shl(zeros).unwrap_or(0))
}

/// Every interface of the current network namespace, in the kernel's order (by index).
pub fn interfaces() -> Result<Vec<Interface>, NetifError> {
    let mut rtnl = dump::Rtnl::open()?;
    let links = rtnl.links()?;
    let addresses = rtnl.addresses()?;
    Ok(assemble(links, addresses))
}

/// The interface called `name` in the current network namespace, if there is one.
pub fn interface(name: &str) -> Result<Option<Interface>, NetifError> {
    Ok(interfaces()?.into_iter().find(|i| i.name == name))
}

/// Interfaces from the kernel's link and address messages (pure: no I/O).
fn assemble(links: Vec<LinkMessage>, addresses: Vec<AddressMessage>) -> Vec<Interface> {
    let mut by_index: BTreeMap<u32, Vec<IfAddr>> = BTreeMap::new();
    for message in addresses {
        if let Some(address) = address_of(&message) {
            by_index
                .entry(message.header.index)
                .or_default()
                .push(IfAddr {
                    address,
                    prefix_len: message.header.prefix_len,
                });
        }
    }
    links
        .into_iter()
        .filter_map(|link| {
            let index = link.header.index;
            let flags = link.header.flags;
            let mut name = None;
            let mut mac = None;
            let mut mtu = 0;
            for attribute in link.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = Some(n),
                    LinkAttribute::Address(bytes) => {
                        mac = <[u8; 6]>::try_from(bytes.as_slice()).ok()
                    }
                    LinkAttribute::Mtu(m) => mtu = m,
                    _ => {}
                }
            }
            Some(Interface {
                name: name?,
                index,
                mac,
                mtu,
                up: flags.contains(LinkFlags::Up),
                running: flags.contains(LinkFlags::Running),
                addresses: by_index.remove(&index).unwrap_or_default(),
            })
        })
        .collect()
}

/// The interface's own address: `IFA_LOCAL` where present (on a point-to-point link
/// `IFA_ADDRESS` is the peer), else `IFA_ADDRESS` (IPv6 sends only that).
fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(local) => return Some(*local),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use netlink_packet_route::AddressFamily;

    fn link(index: u32, name: &str, flags: LinkFlags, extra: Vec<LinkAttribute>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = flags;
        message.attributes = vec![LinkAttribute::IfName(name.into())];
        message.attributes.extend(extra);
        message
    }

    fn address(index: u32, prefix_len: u8, attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = prefix_len;
        message.header.family = AddressFamily::Inet;
        message.attributes = attributes;
        message
    }

    #[test]
    fn links_and_addresses_join_by_index_in_kernel_order() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        let links = vec![
            link(
                1,
                "lo",
                LinkFlags::Up | LinkFlags::Running,
                vec![
                    LinkAttribute::Address(vec![0; 6]),
                    LinkAttribute::Mtu(65536),
                ],
            ),
            link(
                7,
                "tap0",
                LinkFlags::Up,
                vec![
                    LinkAttribute::Address(vec![0x52, 0x54, 0, 1, 2, 3]),
                    LinkAttribute::Mtu(1400),
                ],
            ),
            // A tun or WireGuard interface: no hardware address.
            link(9, "wg0", LinkFlags::empty(), vec![LinkAttribute::Mtu(1420)]),
        ];
        let addresses = vec![
            address(
                7,
                24,
                vec![
                    AddressAttribute::Address(v4("10.0.0.1")),
                    AddressAttribute::Local(v4("10.0.0.1")),
                ],
            ),
            address(1, 8, vec![AddressAttribute::Local(v4("127.0.0.1"))]),
            // Point to point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
            address(
                7,
                32,
                vec![
                    AddressAttribute::Address(v4("10.9.9.9")),
                    AddressAttribute::Local(v4("10.0.0.2")),
                ],
            ),
            address(
                7,
                64,
                vec![AddressAttribute::Address(IpAddr::V6(
                    "fd00::1".parse().unwrap(),
                ))],
            ),
            // No address attribute at all: ignored.
            address(7, 24, vec![]),
        ];
        let interfaces = assemble(links, addresses);
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "tap0", "wg0"]);

        let tap = &interfaces[1];
        assert_eq!(
            (tap.index, tap.mac, tap.mtu, tap.up, tap.running),
            (7, Some([0x52, 0x54, 0, 1, 2, 3]), 1400, true, false)
        );
        assert_eq!(
            tap.ipv4().collect::<Vec<_>>(),
            [
                (
                    "10.0.0.1".parse().unwrap(),
                    "255.255.255.0".parse().unwrap()
                ),
                (
                    "10.0.0.2".parse().unwrap(),
                    "255.255.255.255".parse().unwrap()
                ),
            ]
        );
        assert_eq!(tap.addresses.len(), 3);
        assert_eq!(tap.addresses[2].prefix_len, 64);

        assert_eq!(interfaces[0].mac, Some([0; 6]));
        assert_eq!(interfaces[2].mac, None);
        assert!(interfaces[2].addresses.is_empty());
    }

    #[test]
    fn a_link_without_a_name_is_skipped() {
        let mut nameless = LinkMessage::default();
        nameless.header.index = 3;
        assert!(assemble(vec![nameless], vec![]).is_empty());
    }

    #[test]
    fn netmasks_of_prefix_lengths() {
        let cases = [
            (0, "0.0.0.0"),
            (1, "128.0.0.0"),
            (8, "255.0.0.0"),
            (23, "255.255.254.0"),
            (24, "255.255.255.0"),
            (32, "255.255.255.255"),
            (33, "255.255.255.255"),
            (255, "255.255.255.255"),
        ];
        for (prefix_len, mask) in cases {
            assert_eq!(
                netmask_v4(prefix_len),
                mask.parse::<Ipv4Addr>().unwrap(),
                "/{prefix_len}"
            );
        }
    }
}
