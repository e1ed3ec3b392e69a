//! The size and duration knobs every comparison reads, with full-size and `--smoke` defaults.

use std::path::PathBuf;

/// Sizes, durations and counts of one harness run.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Tiny sizes: prove the harness works in a minute or two.
    pub smoke: bool,
    /// The `flakeboot` binary under test (a release build for real figures).
    pub flakeboot_bin: PathBuf,
    /// TFTP: the big file, in MiB.
    pub tftp_mib: u64,
    /// TFTP: concurrent transfers of ipxe.efi.
    pub tftp_concurrent: usize,
    /// HTTP: the initrd, in MiB.
    pub http_mib: u64,
    /// HTTP: concurrent clients.
    pub http_clients: usize,
    /// HTTP: seconds of wrk load.
    pub http_seconds: u64,
    /// DHCP: seconds per perfdhcp run.
    pub dhcp_seconds: u64,
    /// DHCP: the rates (exchanges/s) tried when searching for the highest clean rate.
    pub dhcp_rates: Vec<u32>,
    /// Proxy: the rates (DISCOVERs/s) tried when searching for the highest clean rate.
    pub proxy_rates: Vec<u32>,
    /// DHCP: the fixed rate for latency percentiles.
    pub dhcp_latency_rate: u32,
    /// Proxy: the fixed rate (DISCOVERs/s) at which each server's CPU per DISCOVER is measured.
    pub proxy_cpu_rate: u32,
    /// DHCP: distinct simulated clients (perfdhcp -R).
    pub dhcp_clients: u32,
    /// Storm: simulated clients.
    pub storm_clients: usize,
    /// Storm: initrd size, in MiB.
    pub storm_initrd_mib: u64,
    /// Whole QEMU boots (slow under TCG).
    pub boots: bool,
    /// Boots per side and scenario (the median counts).
    pub boot_repeats: usize,
    /// The UEFI native PXE boot too (about 20 s per boot under TCG), not only the BIOS one.
    pub boot_uefi: bool,
    /// The NixOS-shaped host with a 400 MiB closure too (nix builds it once; minutes per boot
    /// under TCG).
    pub boot_large: bool,
    /// Only peers whose name contains one of these (empty: every peer).
    pub peers: Vec<String>,
}

impl Knobs {
    /// Whether the server called `name` runs: flakeboot always, a peer unless `--peers` leaves
    /// it out.
    pub fn runs(&self, name: &str) -> bool {
        name == "flakeboot" || self.peers.is_empty() || self.peers.iter().any(|p| name.contains(p))
    }

    /// The full-size benchmark, as the issue describes it.
    pub fn full(flakeboot_bin: PathBuf) -> Knobs {
        Knobs {
            smoke: false,
            flakeboot_bin,
            tftp_mib: 32,
            tftp_concurrent: 64,
            http_mib: 100,
            http_clients: 64,
            http_seconds: 10,
            dhcp_seconds: 10,
            dhcp_rates: vec![100, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000],
            proxy_rates: vec![
                1000, 2000, 4000, 8000, 12000, 16000, 24000, 32000, 40000, 48000,
            ],
            dhcp_latency_rate: 1000,
            proxy_cpu_rate: 12_000,
            dhcp_clients: 50_000,
            storm_clients: 200,
            storm_initrd_mib: 50,
            boots: true,
            boot_repeats: 3,
            boot_uefi: true,
            boot_large: true,
            peers: Vec::new(),
        }
    }

    /// Tiny sizes for CI: every comparison runs, none for long.
    pub fn smoke(flakeboot_bin: PathBuf) -> Knobs {
        Knobs {
            smoke: true,
            flakeboot_bin,
            tftp_mib: 1,
            tftp_concurrent: 8,
            http_mib: 4,
            http_clients: 8,
            http_seconds: 2,
            dhcp_seconds: 2,
            dhcp_rates: vec![100],
            proxy_rates: vec![100],
            dhcp_latency_rate: 100,
            proxy_cpu_rate: 100,
            dhcp_clients: 1000,
            storm_clients: 10,
            storm_initrd_mib: 1,
            boots: true,
            boot_repeats: 1,
            boot_uefi: false,
            boot_large: false,
            peers: Vec::new(),
        }
    }
}

/// Bytes in `mib` MiB.
pub fn mib(mib: u64) -> u64 {
    mib * 1024 * 1024
}
