//! A fake catalogue for the route and curl tests: hosts and files in memory, events collected.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flakeboot_catalogue::{
    BootEvent, BootFile, BootSpec, Catalogue, FileKind, HostBoot, IpxeBinary, MacAddr, Menu,
    MenuEntry,
};
use flakeboot_httpboot::HttpBootState;

pub const ASSIGNED: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

/// A catalogue with one host `demo` (generation `static`), assigned to [`ASSIGNED`]; every other
/// machine gets the menu of `demo`.
#[derive(Debug, Default)]
pub struct FakeCatalogue {
    pub files: HashMap<BootFile, PathBuf>,
    pub events: Mutex<Vec<BootEvent>>,
    pub asked: Mutex<Vec<BootFile>>,
}

pub fn demo() -> HostBoot {
    HostBoot {
        host: "demo".to_owned(),
        version: "static".to_owned(),
        cmdline: "console=ttyS0 panic=-1".to_owned(),
    }
}

impl Catalogue for FakeCatalogue {
    fn boot_spec(&self, mac: Option<MacAddr>) -> BootSpec {
        if mac == Some(ASSIGNED) {
            BootSpec::Host(demo())
        } else {
            BootSpec::Menu(Menu {
                entries: vec![MenuEntry {
                    boot: demo(),
                    description: "Demo host".to_owned(),
                }],
                default: Some("demo".to_owned()),
                timeout: Duration::from_secs(5),
            })
        }
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(file.clone());
        }
        self.files.get(file).cloned()
    }

    fn record(&self, event: BootEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    fn accept_report(&self, _mac: MacAddr, _from: std::net::IpAddr) -> bool {
        false
    }
}

impl FakeCatalogue {
    pub fn events(&self) -> Vec<BootEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn asked(&self) -> Vec<BootFile> {
        self.asked.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// A temporary directory with the demo host's kernel and initrd and `ipxe.efi`, deterministic
/// contents of the given sizes, and a catalogue serving them.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub catalogue: Arc<FakeCatalogue>,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub ipxe: Vec<u8>,
    /// A file in the same directory that is NOT in the catalogue.
    pub secret: PathBuf,
}

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    // A cheap xorshift so every offset has distinct-looking content.
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

impl Fixture {
    pub fn new(kernel_len: usize, initrd_len: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let kernel = pattern(kernel_len, 1);
        let initrd = pattern(initrd_len, 2);
        let ipxe = pattern(4096, 3);
        let write = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let secret = write("secret", b"not a boot file\n");
        let host = |kind| BootFile::Host {
            host: "demo".to_owned(),
            version: "static".to_owned(),
            kind,
        };
        let mut files = HashMap::new();
        files.insert(host(FileKind::Kernel), write("vmlinuz", &kernel));
        files.insert(host(FileKind::Initrd), write("initrd.gz", &initrd));
        files.insert(
            BootFile::Ipxe(IpxeBinary::IpxeEfi),
            write("ipxe.efi", &ipxe),
        );
        // In the catalogue, but missing on disk.
        files.insert(
            BootFile::Ipxe(IpxeBinary::SnponlyEfi),
            dir.path().join("missing.efi"),
        );
        // In the catalogue, but a directory.
        files.insert(BootFile::Ipxe(IpxeBinary::Undionly), dir.path().to_owned());
        let catalogue = Arc::new(FakeCatalogue {
            files,
            ..Default::default()
        });
        Fixture {
            dir,
            catalogue,
            kernel,
            initrd,
            ipxe,
            secret,
        }
    }

    pub fn state(&self, base_url: &str) -> HttpBootState {
        HttpBootState {
            catalogue: self.catalogue.clone(),
            base_url: base_url.to_owned(),
        }
    }
}

/// Runs curl (`--silent --show-error --max-time 30`) with `args`; returns what it printed on
/// stdout (its `-w` output, or the body). curl must exit 0.
pub async fn curl(args: &[&str]) -> String {
    let bin = flakeboot_testbed::require_tool("curl");
    let out = tokio::process::Command::new(bin)
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
