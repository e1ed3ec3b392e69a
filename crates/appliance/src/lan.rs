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
    #[error("{what}: {message}")]
    Read {
        /// What was asked.
        what: String,
        /// Why it failed.
        message: String,
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
        // This network namespace's kernel, not /sys: after a plain `unshare --net`, /sys still
        // shows the host's interfaces.
        let port = flakeboot_netif::interface(interface)
            .map_err(|e| LanError::Read {
                what: format!("looking up the LAN interface {interface}"),
                message: e.to_string(),
            })?
            .ok_or_else(|| LanError::NoSuchInterface {
                interface: interface.to_owned(),
                existing: list_interfaces(),
            })?;
        let mac = port.mac.map(MacAddr).unwrap_or_default();
        let mtu = port.mtu;
        let found: Vec<(Ipv4Addr, Ipv4Addr)> = port.ipv4().collect();
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
