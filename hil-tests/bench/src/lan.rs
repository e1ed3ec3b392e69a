//! The bench LAN (a [`TestLan`]): a server namespace and a client namespace joined by one veth
//! pair, and a scratch directory for files, configs and lease databases. Every server of a comparison binds
//! the same interface (`lan0`) in turn, so all of them see the same link.

use std::path::{Path, PathBuf};

use flakeboot_testbed::TestLan;

use crate::error::{BenchError, Result};

/// The server's address on `lan0`.
pub const SERVER_IP: &str = "10.77.0.1";
/// The client namespace's own address on `eth0` (for TFTP/HTTP load).
pub const CLIENT_IP: &str = "10.77.0.2";
/// The prefix length of the bench LAN: a /16 leaves room for 60,000 leases.
pub const PREFIX: u8 = 16;
/// The dynamic pool every DHCP server hands out from.
pub const POOL: (&str, &str) = ("10.77.1.0", "10.77.250.250");
/// The server side's interface.
pub const SERVER_IF: &str = "lan0";
/// The client side's interface.
pub const CLIENT_IF: &str = flakeboot_testbed::CLIENT_IF;

/// Two namespaces over a veth (server `lan0` = [`SERVER_IP`], client `eth0` = [`CLIENT_IP`])
/// and a scratch directory.
pub fn veth_lan(tag: &str) -> Result<TestLan> {
    TestLan::veth(&format!("b{tag}"), SERVER_IF)
        .server_addr(&format!("{SERVER_IP}/{PREFIX}"))
        .client_addr(&format!("{CLIENT_IP}/{PREFIX}"))
        .build()
        .map_err(BenchError::io("bench LAN"))
}

/// A LAN for QEMU clients: the server side's `lan0` is a bridge (with [`SERVER_IP`] and
/// `fd77::1/64`) holding `taps` tap devices (`tap0`..), and the client namespace is another
/// machine on that LAN (`eth0`, [`CLIENT_IP`] and `fd77::2/64`: the LAN's router when the
/// server runs in proxy mode).
pub fn bridged_lan(tag: &str, taps: usize) -> Result<TestLan> {
    TestLan::bridge(&format!("b{tag}"), SERVER_IF)
        .server_addr(&format!("{SERVER_IP}/{PREFIX}"))
        .server_addr("fd77::1/64")
        .client_addr(&format!("{CLIENT_IP}/{PREFIX}"))
        .client_addr("fd77::2/64")
        .taps(taps)
        .build()
        .map_err(BenchError::io("bridged bench LAN"))
}

/// A fresh sub-directory `name` of the LAN's scratch directory.
pub fn subdir(lan: &TestLan, name: &str) -> Result<PathBuf> {
    let p = lan.path(name);
    std::fs::create_dir_all(&p).map_err(BenchError::io(format!("creating {}", p.display())))?;
    Ok(p)
}

/// Write `len` bytes of deterministic, incompressible-looking content to `path`.
pub fn write_pattern(path: &Path, len: usize) -> Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).map_err(BenchError::io(format!("writing {}", path.display())))
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / secs / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_has_the_length_asked_and_is_not_constant() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_pattern(&p, 1001).unwrap();
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len(), 1001);
        assert!(data.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn throughput_in_megabytes() {
        assert_eq!(mb_per_s(10_000_000, 2.0), 5.0);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
    }
}
