//! What the daemon learns about its LAN port from the kernel.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use flakeboot_catalogue::MacAddr;

/// The LAN interface as the boot services need it.
#[derive(Debug, Clone)]
pub struct LanInfo {
    pub interface: String,
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub mac: MacAddr,
    pub mtu: u32,
}

impl LanInfo {
    /// Look the interface up; `address` pins one of its IPv4 addresses (default: the first).
    pub fn resolve(interface: &str, address: Option<Ipv4Addr>) -> anyhow::Result<LanInfo> {
        // This network namespace's kernel, not /sys: after a plain `unshare --net`, /sys still
        // shows the host's interfaces.
        let Some(port) = flakeboot_netif::interface(interface)
            .with_context(|| format!("looking up the LAN interface {interface}"))?
        else {
            bail!(
                "LAN interface {interface:?} does not exist: set [lan] interface to one of: {}",
                list_interfaces().join(", ")
            );
        };
        let mac = port.mac.map(MacAddr).unwrap_or_default();
        let mtu = port.mtu;
        let found: Vec<(Ipv4Addr, Ipv4Addr)> = port.ipv4().collect();
        let (address, netmask) = match address {
            Some(want) => found.into_iter().find(|(a, _)| *a == want).with_context(|| {
                format!("[lan] address {want} is not an address of {interface}: add it or remove the setting")
            })?,
            None => found.into_iter().next().with_context(|| {
                format!("LAN interface {interface} has no IPv4 address: give it one (ip addr add ...) or set [lan] address")
            })?,
        };
        Ok(LanInfo {
            interface: interface.to_owned(),
            address,
            netmask,
            mac,
            mtu,
        })
    }
}

/// Every network interface's name in this network namespace, sorted.
pub fn list_interfaces() -> Vec<String> {
    let mut names: Vec<String> = match flakeboot_netif::interfaces() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.name).collect(),
        Err(e) => {
            tracing::warn!("cannot list network interfaces: {e}");
            Vec::new()
        }
    };
    names.sort();
    names
}
