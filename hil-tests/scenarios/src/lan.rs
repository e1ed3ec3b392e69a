//! The scenarios' LAN (a [`TestLan`]): the appliance's namespace with its LAN port (a bridge,
//! `br0`, 10.77.0.1/24 and fd77::1/64) and one tap per QEMU client, and optionally another
//! machine on the LAN (the existing router in proxy mode) plugged into the bridge. Nothing here
//! touches the host's own interfaces.

use std::io;

use flakeboot_testbed::{Netns, TestLan};

/// The appliance's LAN interface.
pub const LAN_IF: &str = "br0";
/// The appliance's LAN address.
pub const APPLIANCE_V4: &str = "10.77.0.1";
/// The LAN's ULA prefix (router advertisements announce it).
pub const LAN_V6_PREFIX: &str = "fd77::";
/// The other machine on the LAN (the existing router in proxy mode).
pub const ROUTER_V4: &str = "10.77.0.2";
/// Addresses handed to clients (router mode by flakeboot, proxy mode by dnsmasq).
pub const POOL: [&str; 2] = ["10.77.0.100", "10.77.0.199"];

/// An isolated LAN for one scenario with `clients` taps (`tap0`..) on the bridge. Dropping it
/// deletes its namespace.
pub fn scenario_lan(tag: &str, clients: usize) -> io::Result<TestLan> {
    TestLan::bridge(tag, LAN_IF)
        .server_addr(&format!("{APPLIANCE_V4}/24"))
        .server_addr(&format!("{LAN_V6_PREFIX}1/64"))
        .taps(clients)
        .no_client()
        .build()
}

/// A second machine on the LAN (its `eth0` has 10.77.0.2/24 and fd77::2/64).
pub fn add_router(lan: &TestLan) -> io::Result<Netns> {
    let router = Netns::new("lanrtr")?;
    lan.plug("to-router", &router)?;
    router.addr("eth0", &format!("{ROUTER_V4}/24"))?;
    router.addr("eth0", &format!("{LAN_V6_PREFIX}2/64"))?;
    Ok(router)
}
