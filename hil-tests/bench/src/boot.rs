//! Whole boots in QEMU (TCG): time from power-on to the booted system's first line on the serial
//! console, flakeboot against dnsmasq + nginx serving the same kernel and initrd in the same run.
//! Two of the hil-tests scenarios with the marker initramfs (1 MB): 1, a BIOS client (iPXE ROM)
//! with the server in router mode; 3, UEFI's own PXE client (OVMF, no ROM) with the server in
//! proxy mode beside the LAN's router (dnsmasq handing out addresses only). And scenario 3 with
//! a real NixOS netboot ramdisk's size: the NixOS-shaped fixture's `large` host (a 400 MiB
//! closure, hil-tests/fixtures/nixos-shaped), built by nix first, timed to its stage 2, with the
//! servers' peak RSS while serving it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flakeboot_testbed::{
    ClientKind, QemuClient, TestLan, kernel, marker_initramfs, marker_line, require_tool,
    unique_token, workspace_root,
};

use crate::clients::{percentile, settle};
use crate::error::{BenchError, Result};
use crate::lan::{SERVER_IP, bridged_lan, subdir};
use crate::memory::mib_of;
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup, Server};

// Set FLAKEBOOT_BENCH_CONSOLE=1 to print every console line with its time (where did a boot
// spend its time?).

/// The longest a boot may take under TCG before it counts as failed (the 400 MiB ramdisk's
/// boot gets four times this).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The large boot's guest memory: the ramdisk is in RAM twice while the kernel unpacks it.
const LARGE_MEMORY_MIB: u32 = 3072;
/// The NixOS-shaped stage 2's first line.
const STAGE2: &str = "FLAKEBOOT-NIXOS stage 2";
/// The kernel command line of the marker host.
const CMDLINE: &str = "console=ttyS0 panic=-1";
/// flakeboot, then the reference servers.
const SIDES: [&str; 2] = ["flakeboot", "dnsmasq+nginx"];
/// The client's MAC.
const MAC: &str = "52:54:00:fb:00:01";

/// What the client boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// The pinned kernel and the marker initramfs: timed to the marker's line.
    Marker,
    /// The NixOS-shaped `large` host: timed to its stage 2's first line.
    Large,
}

/// One whole-boot scenario.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    label: &'static str,
    kind: ClientKind,
    proxy: bool,
    payload: Payload,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        label: "BIOS iPXE ROM, router mode: time to marker",
        kind: ClientKind::Bios,
        proxy: false,
        payload: Payload::Marker,
    },
    Scenario {
        label: "UEFI native PXE, proxy mode: time to marker",
        kind: ClientKind::UefiPxe,
        proxy: true,
        payload: Payload::Marker,
    },
    Scenario {
        label: "UEFI native PXE, proxy mode, 400 MiB NixOS-shaped ramdisk: time to stage 2",
        kind: ClientKind::UefiPxe,
        proxy: true,
        payload: Payload::Large,
    },
];

/// The files a scenario serves and the line that ends its boot.
struct Boot {
    kernel: PathBuf,
    initrd: PathBuf,
    /// The host's command line (flakeboot's host; dnsmasq+nginx's script).
    cmdline: String,
    /// The console line that ends the boot, for a client's marker name.
    line: Box<dyn Fn(&str) -> String>,
    memory_mib: Option<u32>,
    timeout: Duration,
}

/// The NixOS-shaped fixture's `large` host, built by nix in `dir`: its kernel, ramdisk and the
/// command line flakeboot would give it (`init=` its toplevel's stage 2).
fn large_host(dir: &Path, kernel: &Path) -> Result<Boot> {
    require_tool("nix");
    require_tool("git");
    let incomplete = |detail: String| BenchError::Incomplete {
        what: "the 400 MiB NixOS-shaped host".to_owned(),
        detail,
    };
    let flake = dir.join("nixos-shaped");
    let prepare = workspace_root().join("hil-tests/fixtures/nixos-shaped/prepare.sh");
    let out = Command::new(&prepare)
        .arg(&flake)
        .arg(kernel)
        .arg("large")
        .output()
        .map_err(|e| incomplete(format!("{}: {e}", prepare.display())))?;
    if !out.status.success() {
        return Err(incomplete(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let attr = |a: &str| {
        format!(
            "git+file://{}#nixosConfigurations.large.config.system.build.{a}",
            flake.display()
        )
    };
    eprintln!("   nix build of the 400 MiB NixOS-shaped host (once)");
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            "--no-link",
            "--json",
        ])
        .args([
            "--option",
            "substituters",
            "",
            "--option",
            "build-users-group",
            "",
        ])
        .args([attr("kernel"), attr("netbootRamdisk"), attr("toplevel")])
        .output()
        .map_err(|e| incomplete(format!("nix: {e}")))?;
    if !out.status.success() {
        return Err(incomplete(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    // nix answers in no set order: each result by its derivation's name.
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| incomplete(format!("nix build --json: {e}")))?;
    let output_of = |suffix: &str| -> Result<PathBuf> {
        results
            .iter()
            .find(|r| {
                r.get("drvPath")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| d.ends_with(suffix))
            })
            .and_then(|r| r.get("outputs")?.get("out")?.as_str())
            .map(PathBuf::from)
            .ok_or_else(|| incomplete(format!("no {suffix} in nix's answer")))
    };
    let toplevel = output_of("-large-toplevel.drv")?;
    Ok(Boot {
        kernel: output_of("-large-kernel.drv")?.join("bzImage"),
        initrd: output_of("-large-netboot-ramdisk.drv")?.join("initrd"),
        cmdline: format!("{CMDLINE} init={}/init", toplevel.display()),
        line: Box::new(|_| STAGE2.to_owned()),
        memory_mib: Some(LARGE_MEMORY_MIB),
        timeout: 4 * BOOT_TIMEOUT,
    })
}

/// Run the whole-boot comparison.
pub fn run(k: &crate::Knobs) -> Result<Vec<Row>> {
    require_tool("qemu-system-x86_64");
    let artifacts = tempfile::Builder::new()
        .prefix("flakeboot-bench-boot-")
        .tempdir()
        .map_err(BenchError::io("scratch directory"))?;
    let kernel = kernel().map_err(|e| BenchError::Incomplete {
        what: "the pinned kernel".to_owned(),
        detail: e.to_string(),
    })?;
    let token = unique_token();
    let initrd = artifacts.path().join("initrd");
    marker_initramfs(&initrd, &token).map_err(|e| BenchError::Incomplete {
        what: "the marker initramfs".to_owned(),
        detail: e.to_string(),
    })?;
    let marker = Boot {
        kernel: kernel.clone(),
        initrd,
        cmdline: CMDLINE.to_owned(),
        line: Box::new(move |client| marker_line(&token, client)),
        memory_mib: None,
        timeout: BOOT_TIMEOUT,
    };
    let mut large = None;
    let mut c = Collector::new("boot");
    let scenarios = SCENARIOS.iter().filter(|s| match s.payload {
        Payload::Large => k.boot_large,
        Payload::Marker => s.kind == ClientKind::Bios || k.boot_uefi,
    });
    for scenario in scenarios {
        let boot = match scenario.payload {
            Payload::Marker => &marker,
            Payload::Large => match &mut large {
                Some(b) => b,
                None => large.insert(large_host(artifacts.path(), &kernel)?),
            },
        };
        let mut peak_kib: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        // Sides alternate, so both see the same share of the machine's noise.
        let mut times: [Result<Vec<f64>>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
        for _ in 0..k.boot_repeats.max(1) {
            for (side, name) in SIDES.iter().enumerate() {
                let Some(Ok(list)) = times.get_mut(side) else {
                    continue;
                };
                match boot_once(scenario, name, &k.flakeboot_bin, boot) {
                    Ok((t, peak)) => {
                        list.push(t);
                        if let Some(p) = peak_kib.get_mut(side) {
                            p.push(peak);
                        }
                    }
                    Err(e) => {
                        if let Some(slot) = times.get_mut(side) {
                            *slot = Err(e);
                        }
                    }
                }
                settle();
            }
        }
        for (name, t) in SIDES.iter().zip(times) {
            c.add_result(
                scenario.label,
                "s",
                Better::Lower,
                name,
                t.map(|v| percentile(&v, 50.0)),
            );
        }
        if scenario.payload == Payload::Large {
            let label = "400 MiB NixOS-shaped boot: servers' peak RSS";
            for (name, peaks) in SIDES.iter().zip(&peak_kib) {
                if let Some(max) = peaks.iter().max() {
                    c.add(label, "MiB", Better::Lower, name, mib_of(*max));
                }
            }
            c.note(
                scenario.label,
                "the fixture's `large` host: its stage 1 and a 400 MiB random (incompressible) store path in a gzip ramdisk of 402 MiB; guest 3 GiB",
            );
        }
    }
    c.note(
        SCENARIOS[0].label,
        &format!(
            "median of {} boots per side; QEMU under TCG (no KVM here): most of the time is the emulated firmware and kernel",
            k.boot_repeats.max(1)
        ),
    );
    Ok(c.rows())
}

/// One boot: (seconds to its line, the servers' peak RSS in KiB).
fn boot_once(
    scenario: &Scenario,
    name: &str,
    flakeboot_bin: &Path,
    boot: &Boot,
) -> Result<(f64, u64)> {
    let lan = bridged_lan("boot", 1)?;
    let client_name = if name == "flakeboot" { "fb" } else { "ref" };
    let extra = format!("fbt.marker={client_name}");
    let servers = start(&lan, scenario, name, flakeboot_bin, boot, &extra)?;
    let qemu = QemuClient::start_with_memory(
        &lan.server,
        client_name,
        scenario.kind,
        "tap0",
        MAC,
        boot.memory_mib,
    )
    .map_err(|e| BenchError::Incomplete {
        what: format!("QEMU {}", scenario.kind.as_str()),
        detail: e.to_string(),
    })?;
    let line = qemu
        .wait_for_serial(&(boot.line)(client_name), boot.timeout)
        .map_err(|e| BenchError::Incomplete {
            what: format!("{name}: {}", scenario.label),
            detail: format!("{e}\n{}", qemu.console_tail(30)),
        })?;
    if std::env::var_os("FLAKEBOOT_BENCH_CONSOLE").is_some() {
        for l in qemu.console().lines() {
            eprintln!("   [{:7.3}] {}", l.at.as_secs_f64(), l.text);
        }
    }
    eprintln!(
        "   {name} {}: {} after {:.1} s",
        scenario.kind.as_str(),
        if scenario.payload == Payload::Large {
            "stage 2"
        } else {
            "marker"
        },
        line.at.as_secs_f64()
    );
    // The LAN's router (proxy mode) is not the server under test.
    let peak = servers
        .iter()
        .filter(|s| s.name != "lan-router")
        .map(|s| s.memory().hwm_kib)
        .sum();
    Ok((line.at.as_secs_f64(), peak))
}

/// The servers of one side; `extra` is the machine's own command line past the host's.
fn start(
    lan: &TestLan,
    scenario: &Scenario,
    name: &str,
    flakeboot_bin: &Path,
    boot: &Boot,
    extra: &str,
) -> Result<Vec<Server>> {
    let (kernel, initrd) = (boot.kernel.as_path(), boot.initrd.as_path());
    let cmdline = format!("{} {extra}", boot.cmdline);
    let www = subdir(lan, "www")?;
    crate::tftp::copy_ipxe(&www, "ipxe.efi")?;
    crate::tftp::copy_ipxe(&www, "undionly.kpxe")?;
    let mut servers = Vec::new();
    if scenario.proxy {
        // The LAN's own router: addresses and router advertisements, no boot options.
        servers.push(servers::dnsmasq(
            lan,
            "lan-router",
            &DnsmasqSetup {
                router: true,
                durable: true,
                ra: true,
                lan_router: true,
                ..DnsmasqSetup::default()
            },
        )?);
    }
    if name == "flakeboot" {
        servers.push(servers::flakeboot(
            lan,
            flakeboot_bin,
            &FlakebootSetup {
                dhcp: if scenario.proxy {
                    DhcpMode::Proxy
                } else {
                    DhcpMode::Router
                },
                ipxe_dir: www.clone(),
                kernel: kernel.to_owned(),
                initrd: initrd.to_owned(),
                cmdline: boot.cmdline.clone(),
                machines: vec![(MAC.to_owned(), extra.to_owned())],
                ra: !scenario.proxy,
            },
        )?);
        return Ok(servers);
    }
    std::fs::copy(kernel, www.join("kernel")).map_err(BenchError::io("copying the kernel"))?;
    std::fs::copy(initrd, www.join("initrd")).map_err(BenchError::io("copying the initrd"))?;
    std::fs::write(
        www.join("boot.ipxe"),
        format!(
            "#!ipxe\nkernel http://{SERVER_IP}/kernel {cmdline} initrd=initrd\n\
             initrd http://{SERVER_IP}/initrd\nboot\n"
        ),
    )
    .map_err(BenchError::io("writing boot.ipxe"))?;
    servers.push(servers::dnsmasq(
        lan,
        "dnsmasq",
        &DnsmasqSetup {
            router: !scenario.proxy,
            proxy: scenario.proxy,
            durable: true,
            tftp_root: Some(www.clone()),
            boot_options: !scenario.proxy,
            ra: !scenario.proxy,
            lan_router: false,
        },
    )?);
    servers.push(servers::nginx(lan, &www)?);
    Ok(servers)
}
