//! A small framework that makes end-to-end tests read like scripts:
//!
//! ```no_run
//! # use flakeboot_testbed::*;
//! let lan = TestLan::veth("dhcp", "lan0").server_addr("10.77.0.1/24").build().unwrap();
//! let config = lan.path("flakeboot.toml");
//! let daemon = Serve::new(&config, &lan.path("state")).start(&lan.server).unwrap();
//! lan.client().run(&["ping", "-c1", "10.77.0.1"]).unwrap();
//! ```
//!
//! Every namespace is named `fbt-<pid>-<n>` and deleted on drop; every process is started by
//! this crate and ended by its PID on drop. Nothing here touches the host's own network.

// A test framework fails loudly: panics and slicing of its own outputs are its job.
#![allow(clippy::panic, clippy::indexing_slicing)]

mod artifacts;
mod boot_phase;
mod disk;
mod kvm;
mod lan;
mod monitor;
mod netns;
mod process;
mod qemu;
mod serial;
mod serve;

pub use artifacts::{
    ArtifactError, cache_dir, kernel, marker_initramfs, marker_line, qemu_dir, unique_token,
};
pub use boot_phase::{BootPhases, LINUX_KERNEL_START, LINUX_RESTART, Overdue, Phase, PhaseRules};
pub use disk::{marker_boot_sector, marker_disk, marker_efi_app, marker_efi_disk};
pub use kvm::{Accel, accel};
pub use lan::{CLIENT_IF, LanBuilder, LanPort, TestLan, add_bridge, plug};
pub use monitor::{cpu_pointers, hmp, monitor_args};
pub use netns::{Netns, veth};
pub use process::{Proc, WaitError};
pub use qemu::{ClientKind, QemuClient, QemuError};
pub use serial::{LineSplitter, SerialConsole, SerialError, SerialLine};
pub use serve::{SERVING_TIMEOUT, Serve, ServeError};

use std::path::PathBuf;

/// The `flakeboot` binary under test: `$FLAKEBOOT_BIN`, else the workspace's debug build.
pub fn flakeboot_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FLAKEBOOT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("flakeboot")
}

/// The repository's top directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// True when this process may create network namespaces (root). Tests that need them call
/// [`require_root`], which fails loudly instead of skipping.
pub fn is_root() -> bool {
    // SAFETY-free check: the effective uid via /proc, to keep this crate free of unsafe.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Panics with a clear message when not root: these tests must not silently pass.
pub fn require_root() {
    assert!(
        is_root(),
        "this test creates network namespaces and needs root: run it through ./test.sh (or sudo)"
    );
}

/// Panics with an install hint when a tool the test needs is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs `{name}`: ./test.sh installs it (see README.md)")
}
