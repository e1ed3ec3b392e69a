//! Shared set-up for the daemon's black-box tests: a server namespace and a client namespace
//! joined by a veth pair, and a `flakeboot serve` running in the server namespace.

// Test support: a failed set-up step should panic with its message, as in a test body.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub mod dhcp_clients;
pub mod https_admin;
pub mod vpn_net;

use std::path::{Path, PathBuf};
use std::time::Duration;

use flakeboot_testbed::{Netns, Proc, require_root, veth};

pub const SERVER_IP: &str = "10.77.0.1";
pub const CLIENT_MAC: &str = "52:54:00:12:34:56";

pub struct Lan {
    pub server: Netns,
    pub client: Netns,
    pub dir: tempfile::TempDir,
}

impl Lan {
    /// Server side `lan0` (10.77.0.1/24), client side `eth0` with a fixed MAC.
    pub fn new() -> Lan {
        require_root();
        let server = Netns::new("srv").unwrap();
        let client = Netns::new("cli").unwrap();
        veth(&server, "lan0", &client, "eth0").unwrap();
        server.addr("lan0", &format!("{SERVER_IP}/24")).unwrap();
        client
            .run(&["ip", "link", "set", "eth0", "address", CLIENT_MAC])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        Lan {
            server,
            client,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Write files for a host `demo` (a fake kernel and initrd with known bytes) and a config.
    pub fn write_config(&self, dhcp: &str) -> PathBuf {
        std::fs::write(self.path("vmlinuz"), pattern(3 * 1024 * 1024 + 17)).unwrap();
        std::fs::write(self.path("initrd"), pattern(5 * 1024 * 1024 + 3)).unwrap();
        let config = format!(
            r#"
[lan]
interface = "lan0"

{dhcp}

[[hosts]]
name = "demo"
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 panic=-1"

[[machines]]
mac = "{CLIENT_MAC}"
host = "demo"
"#,
            kernel = self.path("vmlinuz").display(),
            initrd = self.path("initrd").display(),
        );
        let path = self.path("flakeboot.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Start the real daemon in the server namespace on this LAN's state dir (not waiting).
    pub fn spawn(&self, label: &str, config: &Path) -> Proc {
        let state = self.state_dir();
        self.server
            .spawn(
                label,
                &[
                    env!("CARGO_BIN_EXE_flakeboot"),
                    "serve",
                    "--config",
                    config.to_str().unwrap(),
                    "--state-dir",
                    state.to_str().unwrap(),
                ],
            )
            .unwrap()
    }

    /// Start the real daemon and wait until it serves.
    pub fn start(&self, config: &Path) -> Proc {
        let mut p = self.spawn("flakeboot", config);
        p.wait_for("serving", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
        p
    }
}

/// Deterministic, non-repeating-looking file content.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}
