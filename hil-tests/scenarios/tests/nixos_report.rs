//! Issue "Real NixOS hosts": a NixOS-shaped flake host (hil-tests/fixtures/nixos-shaped, no
//! nixpkgs) built by the daemon with real nix and netbooted by a BIOS client: stage 1 execs
//! `init=` from the ramdisk's /nix/store, stage 2 loads virtio_net, applies
//! `flakeboot.hostname=` and reports up with the NixOS module's own `nixos/flakeboot-report.sh`.
//! One boot checks: the console shows stage 2 and the host name, the appliance records the
//! `system` event with outcome ok, and a line stage 2 wrote to the kernel log is among the
//! machine's logs, sent by the real kernel's netconsole. A second machine, UEFI, boots the flake's host that never
//! reports (`silent`): its stage 2 runs under OVMF too, and `[boot] report_timeout` (1 minute
//! here) after its initrd its last boot is "no report" while the first machine's is "up".

#![allow(clippy::panic)] // a test helper outside #[test] fails loudly

use std::process::Command;
use std::time::{Duration, Instant};

use flakeboot_catalogue::BootStage;
use flakeboot_hil_tests::{ApplianceConfig, BOOT_TIMEOUT, FlakeCli, MAC, Mode, Scenario};
use flakeboot_testbed::{ClientKind, flakeboot_bin, require_tool};
use serde_json::Value;

/// `[boot] report_timeout` in this scenario.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `last_boot` of `mac` in `flakeboot machines --json` (over the daemon's API socket).
fn last_boot(state_dir: &std::path::Path, mac: &str) -> Value {
    let out = Command::new(flakeboot_bin())
        .args(["machines", "--json", "--state-dir"])
        .arg(state_dir)
        .output()
        .unwrap_or_else(|e| panic!("flakeboot machines: {e}"));
    let machines: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "flakeboot machines --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    machines
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["mac"] == mac))
        .map(|m| m["last_boot"].clone())
        .unwrap_or(Value::Null)
}

/// The line stage 2 wrote to the kernel log reached the appliance through the real kernel's
/// netconsole (UDP 6666, configured by the NixOS module's `flakeboot-logs.sh`) and is among the
/// machine's lines (`flakeboot machine logs MAC --json`, over the API socket), proto `netconsole`.
fn expect_netconsole_line(s: &Scenario, mac: &str, host: &str) {
    let want = format!("FLAKEBOOT-NIXOS kernel log of host {host} over netconsole");
    let mut logs = Value::Null;
    for _ in 0..50 {
        let out = Command::new(flakeboot_bin())
            .args(["machine", "logs", mac, "--json", "--state-dir"])
            .arg(s.appliance().state_dir())
            .output()
            .unwrap_or_else(|e| panic!("flakeboot machine logs: {e}"));
        logs = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let found = logs.as_array().and_then(|lines| {
            lines.iter().find(|l| {
                l["proto"] == "netconsole" && l["text"].as_str().is_some_and(|t| t.contains(&want))
            })
        });
        if let Some(line) = found {
            println!("netconsole line of {mac}: {line}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    s.fail(&format!("no netconsole line `{want}` for {mac}: {logs}"));
}

#[test]
fn nixos_shaped_host_sets_its_hostname_and_reports_up() {
    let start = Instant::now();
    require_tool("nix");
    require_tool("git");
    let mut s = Scenario::new("nixos_report", 2);
    let (_dir, flake) = s.nixos_shaped_flake();
    let config = ApplianceConfig::new(Mode::Router)
        .flake(&format!("git+file://{}", flake.display()), "lab")
        .machine(MAC[0], "node", "flakeboot.hostname=hil-node")
        .machine(MAC[1], "silent", "flakeboot.hostname=hil-silent")
        .report_timeout(REPORT_TIMEOUT);
    s.start_appliance(&config);
    let cli = FlakeCli::new(s.appliance().state_dir());
    // `flake generations` answers an object keyed by the qualified host here (two hosts in the
    // flake), which FlakeCli::generations does not parse: wait for a built init in its output.
    let deadline = Instant::now() + Duration::from_secs(180);
    for host in ["node", "silent"] {
        loop {
            let out = cli
                .run(&["generations", &format!("lab#{host}"), "--json"])
                .unwrap_or_default();
            if out.contains(&format!("-{host}-toplevel/init")) {
                break;
            }
            if Instant::now() > deadline {
                s.fail(&format!("host {host} was not built: {out}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let built = start.elapsed();

    // The silent host under UEFI: stage 2 runs, nothing reports.
    let quiet = s.power_on("silent1", ClientKind::Uefi, 1, MAC[1]);
    for needle in [
        "FLAKEBOOT-NIXOS stage 2: /nix/store/",
        "FLAKEBOOT-NIXOS hostname=hil-silent",
        "FLAKEBOOT-NIXOS not reporting (host silent)",
    ] {
        quiet
            .wait_for_serial(needle, BOOT_TIMEOUT)
            .unwrap_or_else(|e| s.fail(&format!("no `{needle}` on the UEFI console: {e}")));
    }
    let quiet_up = Instant::now();
    let waiting = last_boot(s.appliance().state_dir(), MAC[1]);
    if waiting["state"] != "booting" {
        s.fail(&format!(
            "the silent machine's last boot before the report timeout: {waiting}"
        ));
    }

    let client = s.power_on("node1", ClientKind::Bios, 0, MAC[0]);
    for needle in [
        "FLAKEBOOT-NIXOS stage 2: /nix/store/",
        "FLAKEBOOT-NIXOS hostname=hil-node",
        "FLAKEBOOT-NIXOS reported up",
    ] {
        client
            .wait_for_serial(needle, BOOT_TIMEOUT)
            .unwrap_or_else(|e| s.fail(&format!("no `{needle}` on the console: {e}")));
    }
    let booted = start.elapsed();
    let mut system = None;
    for _ in 0..50 {
        system = s
            .client_events(&client, false)
            .into_iter()
            .find(|e| e.is_stage(BootStage::System));
        if system.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match system {
        Some(e) if e.is_ok() => {}
        other => s.fail(&format!(
            "expected a `system` event with outcome ok: {other:?}"
        )),
    }
    expect_netconsole_line(&s, MAC[0], "node");
    let up = last_boot(s.appliance().state_dir(), MAC[0]);
    let host_is = |v: &Value, name: &str| v["host"].as_str().is_some_and(|h| h.ends_with(name));
    if up["state"] != "up" || up["generation"] != 1 || !host_is(&up, "node") {
        s.fail(&format!("the reporting machine's last boot: {up}"));
    }

    // The report timeout after the silent machine's initrd: "no report".
    let no_report = loop {
        let last = last_boot(s.appliance().state_dir(), MAC[1]);
        if last["state"] == "no_report" {
            break last;
        }
        if quiet_up.elapsed() > REPORT_TIMEOUT + Duration::from_secs(60) {
            s.fail(&format!(
                "no \"no report\" {}s after the silent machine's stage 2: {last}",
                quiet_up.elapsed().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if !host_is(&no_report, "silent") {
        s.fail(&format!("the silent machine's last boot: {no_report}"));
    }
    if s.client_events(&quiet, false)
        .iter()
        .any(|e| e.is_stage(BootStage::System))
    {
        s.fail("a `system` event for the machine that never reported");
    }
    println!(
        "HIL-TIMING scenario=nixos_report built={:.1} reported={:.1}",
        built.as_secs_f64(),
        booted.as_secs_f64()
    );
}
