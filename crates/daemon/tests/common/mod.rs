//! Shared set-up for the daemon's black-box tests: a server namespace and a client namespace
//! joined by a veth pair, and a `flakeboot serve` running in the server namespace.

// Test support: a failed set-up step should panic with its message, as in a test body.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub mod dhcp_clients;
pub mod flake_updates;
pub mod vpn_net;

use std::path::{Path, PathBuf};

use flakeboot_testbed::{Proc, Serve, TestLan, require_root};

pub const SERVER_IP: &str = "10.77.0.1";
pub const CLIENT_MAC: &str = "52:54:00:12:34:56";

/// Server side `lan0` (10.77.0.1/24), client side `eth0` with a fixed MAC ([`TestLan`]'s
/// `server` and `client()`), and the daemon's config and state in its scratch directory.
pub struct Lan(TestLan);

impl std::ops::Deref for Lan {
    type Target = TestLan;
    fn deref(&self) -> &TestLan {
        &self.0
    }
}

impl Lan {
    pub fn new() -> Lan {
        require_root();
        Lan(TestLan::veth("daemon", "lan0")
            .server_addr(&format!("{SERVER_IP}/24"))
            .client_mac(CLIENT_MAC)
            .build()
            .unwrap())
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

# These tests' flakes are not bootable systems: no pre-flight VM.
[preflight]
enabled = false
"#,
            kernel = self.path("vmlinuz").display(),
            initrd = self.path("initrd").display(),
        );
        let path = self.path("flakeboot.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// The real daemon on this LAN's state dir (the test's own build of it).
    pub fn serve(&self, config: &Path) -> Serve {
        Serve::new(config, &self.state_dir()).bin(env!("CARGO_BIN_EXE_flakeboot"))
    }

    /// Start the real daemon in the server namespace (not waiting).
    pub fn spawn(&self, label: &str, config: &Path) -> Proc {
        self.serve(config)
            .label(label)
            .spawn(&self.server)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start the real daemon and wait until it serves.
    pub fn start(&self, config: &Path) -> Proc {
        self.serve(config)
            .start(&self.server)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Runs `cmd` (the CLI, mostly), which must succeed: its stdout.
pub fn stdout_of(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd` with `stdin` written to its standard input: its output (stdout and stderr
/// captured).
pub fn output_with_stdin(cmd: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
