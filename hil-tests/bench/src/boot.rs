//! Whole boots in QEMU (TCG): time from power-on to the marker initramfs's line on the serial
//! console, flakeboot against dnsmasq + nginx serving the same kernel and initrd in the same run.
//! Two of the hil-tests scenarios: 1, a BIOS client (iPXE ROM) with the server in router mode;
//! 3, UEFI's own PXE client (OVMF, no ROM) with the server in proxy mode beside the LAN's
//! router (dnsmasq handing out addresses only).

use std::path::Path;
use std::time::Duration;

use flakeboot_testbed::{
    ClientKind, QemuClient, TestLan, kernel, marker_initramfs, marker_line, require_tool,
    unique_token,
};

use crate::clients::{percentile, settle};
use crate::error::{BenchError, Result};
use crate::lan::{SERVER_IP, bridged_lan, subdir};
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup, Server};

// Set FLAKEBOOT_BENCH_CONSOLE=1 to print every console line with its time (where did a boot
// spend its time?).

/// The longest a boot may take under TCG before it counts as failed.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The kernel command line of the marker host.
const CMDLINE: &str = "console=ttyS0 panic=-1";
/// flakeboot, then the reference servers.
const SIDES: [&str; 2] = ["flakeboot", "dnsmasq+nginx"];
/// The client's MAC.
const MAC: &str = "52:54:00:fb:00:01";

/// One whole-boot scenario.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    label: &'static str,
    kind: ClientKind,
    proxy: bool,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        label: "BIOS iPXE ROM, router mode: time to marker",
        kind: ClientKind::Bios,
        proxy: false,
    },
    Scenario {
        label: "UEFI native PXE, proxy mode: time to marker",
        kind: ClientKind::UefiPxe,
        proxy: true,
    },
];

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
    let mut c = Collector::new("boot");
    let scenarios = if k.boot_uefi {
        &SCENARIOS[..]
    } else {
        &SCENARIOS[..1]
    };
    for scenario in scenarios {
        // Sides alternate, so both see the same share of the machine's noise.
        let mut times: [Result<Vec<f64>>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
        for _ in 0..k.boot_repeats.max(1) {
            for (side, name) in SIDES.iter().enumerate() {
                let Some(Ok(list)) = times.get_mut(side) else {
                    continue;
                };
                match boot_once(scenario, name, &k.flakeboot_bin, &kernel, &initrd, &token) {
                    Ok(t) => list.push(t),
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

fn boot_once(
    scenario: &Scenario,
    name: &str,
    flakeboot_bin: &Path,
    kernel: &Path,
    initrd: &Path,
    token: &str,
) -> Result<f64> {
    let lan = bridged_lan("boot", 1)?;
    let client_name = if name == "flakeboot" { "fb" } else { "ref" };
    let cmdline = format!("{CMDLINE} fbt.marker={client_name}");
    let _servers = start(
        &lan,
        scenario,
        name,
        flakeboot_bin,
        kernel,
        initrd,
        &cmdline,
    )?;
    let qemu =
        QemuClient::start(&lan.server, client_name, scenario.kind, "tap0", MAC).map_err(|e| {
            BenchError::Incomplete {
                what: format!("QEMU {}", scenario.kind.as_str()),
                detail: e.to_string(),
            }
        })?;
    let line = qemu
        .wait_for_serial(&marker_line(token, client_name), BOOT_TIMEOUT)
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
        "   {name} {}: marker after {:.1} s",
        scenario.kind.as_str(),
        line.at.as_secs_f64()
    );
    Ok(line.at.as_secs_f64())
}

fn start(
    lan: &TestLan,
    scenario: &Scenario,
    name: &str,
    flakeboot_bin: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
) -> Result<Vec<Server>> {
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
                cmdline: CMDLINE.to_owned(),
                machines: vec![(MAC.to_owned(), cmdline_extra(cmdline))],
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

/// The machine's extra parameters: the command line past the host's own.
fn cmdline_extra(cmdline: &str) -> String {
    cmdline
        .strip_prefix(CMDLINE)
        .unwrap_or(cmdline)
        .trim()
        .to_owned()
}
