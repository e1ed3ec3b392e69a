//! The test LAN: a namespace holding the appliance's LAN port (a bridge, `br0`, 10.77.0.1/24 and
//! fd77::1/64) with one tap per QEMU client, and optionally a second namespace for another
//! machine on the LAN (the existing router in proxy mode) joined to the bridge by a veth pair.
//! Nothing here touches the host's own interfaces.

use std::io;

use flakeboot_testbed::{Netns, veth};

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

/// An isolated LAN for one scenario. Dropping it deletes its namespaces.
#[derive(Debug)]
pub struct Lan {
    appliance: Netns,
    taps: Vec<String>,
    router: Option<Netns>,
}

impl Lan {
    /// A LAN with `clients` taps (`tap0`..) on the bridge.
    pub fn new(tag: &str, clients: usize) -> io::Result<Lan> {
        let ns = Netns::new(tag)?;
        // No STP, no forwarding delay, no multicast snooping: ports forward as soon as QEMU
        // opens its tap, and router advertisements reach every client.
        ns.run(&[
            "ip",
            "link",
            "add",
            LAN_IF,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ns.addr(LAN_IF, &format!("{APPLIANCE_V4}/24"))?;
        ns.addr(LAN_IF, &format!("{LAN_V6_PREFIX}1/64"))?;
        let mut taps = Vec::new();
        for i in 0..clients {
            let tap = format!("tap{i}");
            ns.run(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"])?;
            ns.run(&["ip", "link", "set", &tap, "master", LAN_IF])?;
            ns.run(&["ip", "link", "set", &tap, "up"])?;
            taps.push(tap);
        }
        Ok(Lan {
            appliance: ns,
            taps,
            router: None,
        })
    }

    /// The namespace the appliance and the QEMU clients run in.
    pub fn ns(&self) -> &Netns {
        &self.appliance
    }

    /// The tap for client `i`.
    pub fn tap(&self, i: usize) -> &str {
        self.taps.get(i).map_or("tap-missing", String::as_str)
    }

    /// Add a second machine on the LAN (its `eth0` has 10.77.0.2/24 and fd77::2/64) and return its
    /// namespace.
    pub fn add_router(&mut self) -> io::Result<&Netns> {
        let router = Netns::new("lanrtr")?;
        veth(&self.appliance, "to-router", &router, "eth0")?;
        self.appliance
            .run(&["ip", "link", "set", "to-router", "master", LAN_IF])?;
        router.addr("eth0", &format!("{ROUTER_V4}/24"))?;
        router.addr("eth0", &format!("{LAN_V6_PREFIX}2/64"))?;
        Ok(self.router.insert(router))
    }
}
