//! Machines' console and logs, as UDP datagrams on the LAN: syslog (RFC 5424 and RFC 3164,
//! port 514) and the kernel's netconsole (port 6666, plain or extended).
//!
//! Sans-IO at the bottom: [`line`] one received line, cleaned (control characters escaped, at
//! most [`line::MAX_TEXT`] bytes, marked when cut); [`syslog`] and [`netconsole`] the parsers
//! (netconsole messages may span datagrams: [`netconsole::Assembler`]); [`failure`] the lines
//! that say a boot failed (a kernel panic, NixOS stage 1's error); [`limit`] the per-source and
//! total rate limits. [`server`] is the tokio receiver: it never blocks, it counts and drops.

pub mod failure;
pub mod limit;
pub mod line;
pub mod netconsole;
pub mod server;
pub mod syslog;

pub use line::{LogLine, Proto};
