//! `flakeboot-bench`: run one comparison (or all) against the peers, print the table of ratios
//! and write the figures as JSON. Run as root (it creates network namespaces): `sudo ./bench.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use flakeboot_bench::report::{Machine, load_average};
use flakeboot_bench::{Knobs, Report, boot, dhcp, http, memory, proxy, storm, tftp};

/// Benchmarks of flakeboot against dnsmasq, Kea, tftp-hpa and nginx.
#[derive(Debug, Parser)]
#[command(name = "flakeboot-bench")]
struct Cli {
    /// Which comparison to run.
    #[arg(value_enum, default_value = "all")]
    comparison: Comparison,
    /// Tiny sizes: proves the harness works in a minute or two (CI).
    #[arg(long)]
    smoke: bool,
    /// The flakeboot binary under test (default: target/release/flakeboot, else target/debug).
    #[arg(long)]
    flakeboot: Option<PathBuf>,
    /// Where to write the JSON results (default: target/bench-results.json in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the table as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// TFTP: size of the big file in MiB.
    #[arg(long)]
    tftp_mib: Option<u64>,
    /// HTTP: size of the initrd in MiB.
    #[arg(long)]
    http_mib: Option<u64>,
    /// HTTP: concurrent clients.
    #[arg(long)]
    http_clients: Option<usize>,
    /// DHCP: seconds per perfdhcp run.
    #[arg(long)]
    dhcp_seconds: Option<u64>,
    /// Storm: simulated clients.
    #[arg(long)]
    storm_clients: Option<usize>,
    /// Storm: initrd size in MiB.
    #[arg(long)]
    storm_initrd_mib: Option<u64>,
    /// Skip the whole-boot QEMU comparisons (slow under TCG).
    #[arg(long)]
    no_boots: bool,
    /// Run the UEFI native PXE boot even with --smoke (smoke boots only the BIOS client).
    #[arg(long)]
    uefi: bool,
    /// Run the 400 MiB NixOS-shaped boot even with --smoke.
    #[arg(long)]
    large: bool,
    /// Skip the 400 MiB NixOS-shaped boot (nix builds it first; minutes per boot under TCG).
    #[arg(long)]
    no_large: bool,
    /// Only the peers whose name contains one of these (comma-separated, e.g. `kea`); flakeboot
    /// always runs. For quick comparisons while changing one thing; figures for the record
    /// run every peer.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// DHCP (router mode): the rates to step through for the highest clean rate (comma-separated,
    /// e.g. `1000` to skip the grid while looking at the fixed run's latency).
    #[arg(long, value_delimiter = ',')]
    dhcp_rates: Vec<u32>,
}

/// One comparison (subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Comparison {
    Dhcp,
    Proxy,
    Tftp,
    Http,
    Boot,
    Storm,
    Memory,
    All,
}

impl Comparison {
    const EACH: [Comparison; 7] = [
        Comparison::Tftp,
        Comparison::Http,
        Comparison::Dhcp,
        Comparison::Proxy,
        Comparison::Memory,
        Comparison::Storm,
        Comparison::Boot,
    ];

    fn name(self) -> &'static str {
        match self {
            Comparison::Dhcp => "dhcp",
            Comparison::Proxy => "proxy",
            Comparison::Tftp => "tftp",
            Comparison::Http => "http",
            Comparison::Boot => "boot",
            Comparison::Storm => "storm",
            Comparison::Memory => "memory",
            Comparison::All => "all",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !flakeboot_testbed::is_root() {
        eprintln!("flakeboot-bench creates network namespaces: run it as root (sudo ./bench.sh)");
        return ExitCode::from(2);
    }
    let knobs = knobs(&cli);
    let mut report = Report {
        machine: Machine::probe(),
        smoke: knobs.smoke,
        ..Report::default()
    };
    let todo: Vec<Comparison> = if cli.comparison == Comparison::All {
        Comparison::EACH.to_vec()
    } else {
        vec![cli.comparison]
    };
    for comparison in todo {
        if comparison == Comparison::Boot && !knobs.boots {
            eprintln!("== boot: skipped (--no-boots)");
            continue;
        }
        eprintln!("== {} (load {})", comparison.name(), load_average());
        match run(comparison, &knobs) {
            Ok(rows) => report.rows.extend(rows),
            Err(e) => {
                eprintln!("== {} failed: {e}", comparison.name());
                report
                    .failures
                    .push((comparison.name().to_owned(), e.to_string()));
            }
        }
    }
    report.machine.loadavg_end = load_average();
    print!("{}", report.table());
    println!(
        "machine: {} cores, {} MiB, kernel {}, {} (load {} -> {})",
        report.machine.nproc,
        report.machine.mem_total_kib / 1024,
        report.machine.kernel,
        report.machine.date_utc,
        report.machine.loadavg_start,
        report.machine.loadavg_end
    );
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| flakeboot_testbed::workspace_root().join("target/bench-results.json"));
    if let Err(e) = report.write_json(&out) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!("results: {}", out.display());
    if let Some(md) = &cli.markdown
        && let Err(e) = std::fs::write(md, report.markdown())
    {
        eprintln!("writing {}: {e}", md.display());
        return ExitCode::FAILURE;
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(comparison: Comparison, k: &Knobs) -> flakeboot_bench::Result<Vec<flakeboot_bench::Row>> {
    match comparison {
        Comparison::Tftp => tftp::run(k),
        Comparison::Http => http::run(k),
        Comparison::Boot => boot::run(k),
        Comparison::Dhcp => dhcp::run(k),
        Comparison::Proxy => proxy::run(k),
        Comparison::Memory => memory::run(k),
        Comparison::Storm => storm::run(k),
        // `all` is expanded into each comparison by `main`.
        Comparison::All => Ok(Vec::new()),
    }
}

fn knobs(cli: &Cli) -> Knobs {
    let bin = cli.flakeboot.clone().unwrap_or_else(default_flakeboot);
    let mut k = if cli.smoke {
        Knobs::smoke(bin)
    } else {
        Knobs::full(bin)
    };
    if let Some(v) = cli.tftp_mib {
        k.tftp_mib = v;
    }
    if let Some(v) = cli.http_mib {
        k.http_mib = v;
    }
    if let Some(v) = cli.http_clients {
        k.http_clients = v;
    }
    if let Some(v) = cli.dhcp_seconds {
        k.dhcp_seconds = v;
    }
    if let Some(v) = cli.storm_clients {
        k.storm_clients = v;
    }
    if let Some(v) = cli.storm_initrd_mib {
        k.storm_initrd_mib = v;
    }
    k.boots &= !cli.no_boots;
    k.boot_uefi |= cli.uefi;
    k.boot_large = (k.boot_large || cli.large) && !cli.no_large;
    k.peers.clone_from(&cli.peers);
    if !cli.dhcp_rates.is_empty() {
        k.dhcp_rates.clone_from(&cli.dhcp_rates);
    }
    k
}

/// `$FLAKEBOOT_BIN`, else the release build if there is one, else the debug build.
fn default_flakeboot() -> PathBuf {
    if std::env::var_os("FLAKEBOOT_BIN").is_some() {
        return flakeboot_testbed::flakeboot_bin();
    }
    let release = flakeboot_testbed::workspace_root().join("target/release/flakeboot");
    if release.is_file() {
        release
    } else {
        flakeboot_testbed::flakeboot_bin()
    }
}
