//! flakeboot's TFTP server: read-only, serving only the iPXE binaries of the boot catalogue.
//!
//! RFC 1350 with option extension (RFC 2347): blksize (RFC 2348, capped to the interface MTU),
//! tsize and timeout (RFC 2349) and windowsize (RFC 7440).
//!
//! Layers, bottom up:
//! - [`packet`]: parse and emit datagrams, no I/O;
//! - [`options`]: option negotiation, pure;
//! - [`names`]: what a requested name may mean (an [`flakeboot_catalogue::IpxeBinary`] or a
//!   refusal), pure;
//! - [`request`]: serve, refuse or drop a datagram on the request port, pure;
//! - [`admission`]: which requests get a transfer slot (per-client caps, fair eviction), pure;
//! - [`refusal_log`]: at most one report line a second about refusals, driven with explicit
//!   time;
//! - [`session`]: one transfer as a state machine driven with explicit time;
//! - [`server`]: the tokio loop: receives requests, decides through the above, starts one thread
//!   and one socket per transfer (a lock-step block is one receive and one send on that
//!   thread), records a boot event at each transfer's end.

pub mod admission;
pub mod names;
pub mod options;
pub mod packet;
pub mod refusal_log;
pub mod request;
pub mod server;
pub mod session;
mod stats;
mod transfer;

pub use server::{TftpError, TftpServer, TftpServerConfig, bind};
pub use stats::{TftpStats, TftpStatsSnapshot};

#[cfg(test)]
mod mutation_tests;
