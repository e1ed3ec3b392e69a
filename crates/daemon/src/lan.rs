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
        let sys = std::path::Path::new("/sys/class/net").join(interface);
        if !sys.exists() {
            bail!(
                "LAN interface {interface:?} does not exist: set [lan] interface to one of: {}",
                list_interfaces().join(", ")
            );
        }
        let mac_text = std::fs::read_to_string(sys.join("address"))
            .with_context(|| format!("reading the MAC address of {interface}"))?;
        let mac: MacAddr = mac_text.trim().parse().unwrap_or_default();
        let mtu = std::fs::read_to_string(sys.join("mtu"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1500);

        let mut found = Vec::new();
        for ifa in nix::ifaddrs::getifaddrs().context("listing interface addresses")? {
            if ifa.interface_name != interface {
                continue;
            }
            let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                found.push((a.ip(), m.ip()));
            }
        }
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

/// Every network interface's name, sorted.
pub fn list_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
