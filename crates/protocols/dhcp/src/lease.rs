//! Router mode: the address pool and the lease state machine (pure, sans-IO).
//!
//! [`Pool::handle`] takes the time and one request and returns the reply, the lease records to
//! make durable before the reply is sent, and the addresses to forget. Offers live only in memory;
//! bound and declined leases are [`Lease`]s, persisted by the caller through a [`LeaseStore`].

mod client;
mod index;
mod outcome;
mod pool;
mod records;
mod reply;
mod store;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

use flakeboot_catalogue::MacAddr;

pub use outcome::{Handled, Ignored, NakReason, Verdict};
pub use pool::{OFFER_HOLD, Pool};
pub use store::{Lease, LeaseState, LeaseStore, LeaseStoreError, StorageFailure};

use crate::ra::RaConfig;

/// Everything router mode needs to hand out addresses, resolved from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The appliance's address on the LAN (option 54, the server identifier).
    pub server_ip: Ipv4Addr,
    /// Address ranges, first and last inclusive.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Subnet mask (option 1).
    pub netmask: Ipv4Addr,
    /// Default gateway (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Lease time (option 51).
    pub lease_time: Duration,
    /// How long a DECLINEd address stays out of the pool.
    pub decline_quarantine: Duration,
    /// Static reservations: MAC -> address, with an optional host name (option 12).
    pub reservations: Vec<(MacAddr, Ipv4Addr, Option<String>)>,
    /// IPv6 router advertisements, when enabled.
    pub ra: Option<RaConfig>,
}

impl PoolConfig {
    /// Whether `a` and `b` are in the same subnet under the configured netmask.
    pub fn same_subnet(&self, a: Ipv4Addr, b: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(a) & mask == u32::from(b) & mask
    }

    /// Whether `ip` is the network or broadcast address of its subnet (never handed out).
    fn is_subnet_edge(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        let host = u32::from(ip) & !mask;
        mask != u32::MAX && (host == 0 || host == !mask)
    }

    /// Whether `ip` is in one of the ranges.
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.ranges
            .iter()
            .any(|&(first, last)| first <= ip && ip <= last)
    }

    /// Whether `ip` is in a subnet this server serves: its own, or one of a range's.
    pub fn serves_subnet_of(&self, ip: Ipv4Addr) -> bool {
        self.same_subnet(ip, self.server_ip)
            || self
                .ranges
                .iter()
                .any(|&(first, _)| self.same_subnet(ip, first))
    }

    /// The default gateway to hand a client whose subnet contains `link`: the configured router
    /// when it is in that subnet, else the relay (`giaddr`) for relayed clients.
    fn router_for(&self, link: Ipv4Addr, giaddr: Ipv4Addr) -> Option<Ipv4Addr> {
        match self.router {
            Some(router) if self.same_subnet(router, link) => Some(router),
            _ if !giaddr.is_unspecified() => Some(giaddr),
            configured => configured,
        }
    }

    /// The reserved address of a MAC.
    fn reservation_of(&self, mac: MacAddr) -> Option<(Ipv4Addr, Option<&str>)> {
        self.reservations
            .iter()
            .find(|(m, _, _)| *m == mac)
            .map(|(_, ip, name)| (*ip, name.as_deref()))
    }

    /// The MAC an address is reserved for.
    fn reserved_for(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.reservations
            .iter()
            .find(|(_, r, _)| *r == ip)
            .map(|(mac, _, _)| *mac)
    }
}
