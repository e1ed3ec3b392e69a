//! What the daemon learns about its LAN port from the kernel.

use std::net::Ipv4Addr;

use flakeboot_catalogue::MacAddr;

/// Why the LAN port cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// No interface of that name.
    #[error("LAN interface {interface:?} does not exist: set [lan] interface to one of: {}", existing.join(", "))]
    NoSuchInterface {
        /// The name asked for.
        interface: String,
        /// The interfaces there are.
        existing: Vec<String>,
    },
    /// The kernel could not be asked.
    #[error("{what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The pinned address is not on the interface.
    #[error(
        "[lan] address {address} is not an address of {interface}: add it or remove the setting"
    )]
    AddressNotOnInterface {
        /// The interface.
        interface: String,
        /// The `[lan] address` setting.
        address: Ipv4Addr,
    },
    /// The interface has no IPv4 address.
    #[error(
        "LAN interface {interface} has no IPv4 address: give it one (ip addr add ...) or set [lan] address"
    )]
    NoAddress {
        /// The interface.
        interface: String,
    },
}

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
    pub fn resolve(interface: &str, address: Option<Ipv4Addr>) -> Result<LanInfo, LanError> {
        let sys = std::path::Path::new("/sys/class/net").join(interface);
        if !sys.exists() {
            return Err(LanError::NoSuchInterface {
                interface: interface.to_owned(),
                existing: list_interfaces(),
            });
        }
        let mac_text =
            std::fs::read_to_string(sys.join("address")).map_err(|source| LanError::Read {
                what: format!("reading the MAC address of {interface}"),
                source,
            })?;
        let mac: MacAddr = mac_text.trim().parse().unwrap_or_default();
        let mtu = std::fs::read_to_string(sys.join("mtu"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1500);

        let mut found = Vec::new();
        let addrs = nix::ifaddrs::getifaddrs().map_err(|e| LanError::Read {
            what: "listing interface addresses".into(),
            source: e.into(),
        })?;
        for ifa in addrs {
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
            Some(want) => found.into_iter().find(|(a, _)| *a == want).ok_or_else(|| {
                LanError::AddressNotOnInterface {
                    interface: interface.to_owned(),
                    address: want,
                }
            })?,
            None => found
                .into_iter()
                .next()
                .ok_or_else(|| LanError::NoAddress {
                    interface: interface.to_owned(),
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
