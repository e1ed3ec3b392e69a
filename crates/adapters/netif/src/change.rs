//! Changes to the current namespace's addresses and routes (a static WAN): an IPv4 address on
//! an interface, and the default route through a gateway. Each says whether it changed
//! anything, so a caller undoes only what it did.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::NetifError;
use crate::dump::Rtnl;

fn change(what: String, source: io::Error) -> NetifError {
    NetifError::Change { what, source }
}

fn address_message(index: u32, address: Ipv4Addr, prefix_len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix_len;
    m.header.index = index;
    m.attributes
        .push(AddressAttribute::Local(IpAddr::V4(address)));
    m.attributes
        .push(AddressAttribute::Address(IpAddr::V4(address)));
    m
}

fn default_route(index: u32, gateway: Ipv4Addr) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Static;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    m.attributes.push(RouteAttribute::Oif(index));
    m
}

/// Adds `address/prefix_len` to the interface with index `index`; `Ok(false)` when it had it.
pub fn add_ipv4(index: u32, address: Ipv4Addr, prefix_len: u8) -> Result<bool, NetifError> {
    let mut rtnl = Rtnl::open()?;
    let request = RouteNetlinkMessage::NewAddress(address_message(index, address, prefix_len));
    match rtnl.change(request, NLM_F_CREATE | NLM_F_EXCL) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc_eexist()) => Ok(false),
        Err(e) => Err(change(format!("add {address}/{prefix_len}"), e)),
    }
}

/// Removes `address/prefix_len` from the interface with index `index`.
pub fn del_ipv4(index: u32, address: Ipv4Addr, prefix_len: u8) -> Result<(), NetifError> {
    let mut rtnl = Rtnl::open()?;
    let request = RouteNetlinkMessage::DelAddress(address_message(index, address, prefix_len));
    rtnl.change(request, 0)
        .map_err(|e| change(format!("remove {address}/{prefix_len}"), e))
}

/// Adds the default route through `gateway` on the interface with index `index`; `Ok(false)`
/// when there is a default route already (it is left as it is).
pub fn add_default_route(index: u32, gateway: Ipv4Addr) -> Result<bool, NetifError> {
    let mut rtnl = Rtnl::open()?;
    let request = RouteNetlinkMessage::NewRoute(default_route(index, gateway));
    match rtnl.change(request, NLM_F_CREATE | NLM_F_EXCL) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc_eexist()) => Ok(false),
        Err(e) => Err(change(format!("add a default route via {gateway}"), e)),
    }
}

/// Removes the default route through `gateway` on the interface with index `index`.
pub fn del_default_route(index: u32, gateway: Ipv4Addr) -> Result<(), NetifError> {
    let mut rtnl = Rtnl::open()?;
    let request = RouteNetlinkMessage::DelRoute(default_route(index, gateway));
    rtnl.change(request, 0)
        .map_err(|e| change(format!("remove the default route via {gateway}"), e))
}

/// The gateway of the main table's IPv4 default route through the interface with index
/// `index` (a static WAN's, or the one a DHCP client set), if there is one.
pub fn default_gateway(index: u32) -> Result<Option<Ipv4Addr>, NetifError> {
    let mut rtnl = Rtnl::open()?;
    Ok(rtnl.routes()?.into_iter().find_map(|route| {
        let default = route.header.destination_prefix_length == 0
            && route.header.table == RouteHeader::RT_TABLE_MAIN;
        let through = route
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
        let gateway = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
            _ => None,
        });
        if default && through { gateway } else { None }
    }))
}

/// `EEXIST` (17 on every Linux architecture).
const fn libc_eexist() -> i32 {
    17
}
