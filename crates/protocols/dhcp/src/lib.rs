//! DHCPv4 for network boot.
//!
//! Pure, sans-IO protocol logic at the top of this crate (no sockets, no clocks: time is a
//! parameter), and the tokio server that drives it in [`server`]:
//! - [`boot`]: the boot decision table (options 93/60/77/175 -> what to hand the client);
//! - [`options`]: reading client options and encoding PXE option 43;
//! - [`proxy`]: proxyDHCP and PXE boot server (port 4011) replies;
//! - [`lease`]: router-mode address pool and lease state machine, and [`LeaseStore`], the seam
//!   through which the server keeps leases on disk;
//! - [`ra`]: IPv6 router advertisement packets;
//! - [`seen`]: the LAN's other DHCP servers, from their OFFERs and ACKs, and the probe DISCOVER.

pub mod boot;
pub mod lease;
pub mod options;
pub mod proxy;
pub mod ra;
pub mod seen;
pub mod server;

pub use lease::{Lease, LeaseState, LeaseStore, LeaseStoreError};
