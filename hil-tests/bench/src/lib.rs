//! flakeboot's benchmark harness: each comparison builds its own LAN (two namespaces over a
//! veth), starts flakeboot and the peers users would run instead on the same interface in the
//! same run, drives them with load generators this project did not write, and returns rows of
//! figures (flakeboot against each peer).

pub mod boot;
pub mod clients;
pub mod delay;
pub mod dhcp;
pub mod error;
pub mod http;
pub mod knobs;
pub mod lan;
pub mod memory;
pub mod perfdhcp;
pub mod procfs;
pub mod proxy;
pub mod report;
pub mod servers;
pub mod storm;
pub mod tftp;
pub mod udp_counters;

pub use error::{BenchError, Result};
pub use knobs::Knobs;
pub use report::{Report, Row};
