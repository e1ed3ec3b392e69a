//! Issue "Real NixOS hosts": a NixOS-shaped flake host (hil-tests/fixtures/nixos-shaped, no
//! nixpkgs) built by the daemon with real nix and netbooted by a BIOS client: stage 1 execs
//! `init=` from the ramdisk's /nix/store, stage 2 loads virtio_net, applies
//! `flakeboot.hostname=` and reports up with the NixOS module's own `nixos/flakeboot-report.sh`.
//! One boot checks: the console shows stage 2 and the host name, and the appliance records the
//! `system` event with outcome ok.

use std::process::Command;
use std::time::{Duration, Instant};

use flakeboot_catalogue::BootStage;
use flakeboot_hil_tests::{ApplianceConfig, BOOT_TIMEOUT, FlakeCli, MAC, Mode, Scenario};
use flakeboot_testbed::{ClientKind, require_tool, workspace_root};

#[test]
fn nixos_shaped_host_sets_its_hostname_and_reports_up() {
    let start = Instant::now();
    require_tool("nix");
    require_tool("git");
    let mut s = Scenario::new("nixos_report", 1);
    let dir = tempfile::Builder::new()
        .prefix("fbt-nixos-")
        .tempdir()
        .unwrap_or_else(|e| s.fail(&format!("temp dir: {e}")));
    let flake = dir.path().join("flake");
    let prepare = workspace_root().join("hil-tests/fixtures/nixos-shaped/prepare.sh");
    let out = Command::new(&prepare)
        .arg(&flake)
        .arg(s.kernel())
        .output()
        .unwrap_or_else(|e| s.fail(&format!("{}: {e}", prepare.display())));
    if !out.status.success() {
        s.fail(&format!(
            "prepare.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let config = ApplianceConfig::new(Mode::Router)
        .flake(&format!("git+file://{}", flake.display()), "lab")
        .machine(MAC[0], "node", "flakeboot.hostname=hil-node");
    s.start_appliance(&config);
    let cli = FlakeCli::new(s.appliance().state_dir());
    // `flake generations` answers an object keyed by the qualified host here (two hosts in the
    // flake), which FlakeCli::generations does not parse: wait for a built init in its output.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = cli
            .run(&["generations", "lab#node", "--json"])
            .unwrap_or_default();
        if out.contains("-node-toplevel/init") {
            break;
        }
        if Instant::now() > deadline {
            s.fail(&format!("host node was not built: {out}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let built = start.elapsed();

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
            .client_events(&client, true)
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
    println!(
        "HIL-TIMING scenario=nixos_report built={:.1} reported={:.1}",
        built.as_secs_f64(),
        booted.as_secs_f64()
    );
}
