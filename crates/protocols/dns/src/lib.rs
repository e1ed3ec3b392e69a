//! The LAN's caching DNS forwarder.
//!
//! - [`local`]: the LAN's own names (`<hostname>.<domain>`, bare host names, reverse names of
//!   the LAN subnet), answered authoritatively; an unknown name under the LAN domain is
//!   NXDOMAIN here and never forwarded. Pure.
//! - [`answer`]: what to do with a query and the reply made of a local name or an upstream
//!   answer, UDP truncation (TC) included. Pure.
//! - [`forward`]: the upstream, hickory-resolver with its cache; resolv.conf's servers.
//! - [`budget`]: per-client and global caps on forwarded queries and TCP connections.
//! - [`server`]: the UDP and TCP listeners on the LAN address.
//!
//! Messages are parsed and written by hickory-proto; nothing here resolves names itself.

pub mod answer;
pub mod budget;
pub mod forward;
pub mod local;
pub mod server;
pub mod stats;

/// hickory-proto, whose messages and names this crate speaks.
pub use hickory_proto as proto;

pub use forward::{TxtError, Upstream, UpstreamError, resolv_conf_servers};
pub use local::{LocalEntry, LocalNames, MAX_LOCAL_NAMES};
pub use server::{DnsServer, DnsServerConfig, DnsServerError, DnsState};
pub use stats::{DnsStats, DnsStatsSnapshot};
