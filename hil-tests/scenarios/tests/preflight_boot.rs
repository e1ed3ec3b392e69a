//! Issue #16, pre-flight: the daemon builds the NixOS-shaped fixture (real nix) and boots each
//! new generation in its own QEMU VM (TCG here) on a private network it makes and serves (its
//! tap, a one-lease DHCP scope, HTTP boot), through iPXE from the NIC's option ROM, the script,
//! kernel, initrd and stage 2. `node` reports up: its generation passes and is current.
//! `silent` never reports (its stage 2 powers off): it fails, keeps its console log, and is
//! not current. The tap is gone afterwards. `[preflight] accel` is the default, "auto": where
//! `/dev/kvm` opens but KVM stalls guests (as on this project's CI machines: the testbed's own
//! probe says TCG), the first VM stops printing under KVM, the daemon tries TCG after 30 s and,
//! once that passes, keeps TCG, which the test checks in its log.
//!
//! Then the daemon restarts with `[preflight] firmware = "uefi"` and a commit breaks `node`'s
//! stage 2 (it stops reporting): `flakeboot flake update` builds generation 2, its pre-flight
//! (OVMF and iPXE's EFI build; the kernel's EFI stub on its console) fails, generation 1 stays
//! current, and a BIOS machine assigned to `lab#node` boots generation 1 (its command line and
//! its report say so). The update's entry in the flake's history says it was not promoted
//! because the pre-flight failed.

// A test helper outside #[test] fails loudly; JSON indexing yields Null, never panics.
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use flakeboot_hil_tests::{ApplianceConfig, BOOT_TIMEOUT, FlakeCli, MAC, Mode, Scenario};
use flakeboot_testbed::{ClientKind, require_tool};
use serde_json::Value;

/// `[preflight] timeout` here: the passing boot needs about a minute under TCG (plus 30 s of
/// KVM's silence where KVM opens but runs nothing).
const TIMEOUT: Duration = Duration::from_secs(150);

/// A line only a UEFI boot prints on the console (the kernel's EFI stub, which BIOS never runs).
const UEFI_MARK: &str = "EFI stub:";

/// `flakeboot flake generations HOST --json`, the host's view.
fn view(cli: &FlakeCli, host: &str) -> Value {
    let out = cli
        .run(&["generations", host, "--json"])
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v.get(host).cloned().unwrap_or(Value::Null)
}

fn preflight_state(v: &Value) -> String {
    generation_state(v, 1)
}

/// The pre-flight state of generation `number` in a host's view ("" while it does not exist).
fn generation_state(v: &Value, number: u64) -> String {
    generation(v, number)["preflight"]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn generation(v: &Value, number: u64) -> Value {
    v["generations"]
        .as_array()
        .and_then(|gens| gens.iter().find(|g| g["number"] == number))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The update that built the broken generation ends in the flake's history as not promoted,
/// because its pre-flight failed (`flakeboot flake history lab --json`).
fn expect_not_promoted(s: &Scenario, cli: &FlakeCli) {
    // `silent` is in the same update: its pre-flight may come after `node`'s.
    let deadline = Instant::now() + TIMEOUT + Duration::from_secs(60);
    let update = loop {
        let out = cli.run(&["history", "lab", "--json"]).unwrap_or_default();
        let history: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let newest = history["updates"]
            .as_array()
            .and_then(|u| u.iter().max_by_key(|u| u["seq"].as_u64()))
            .cloned()
            .unwrap_or(Value::Null);
        if !newest.is_null() && newest["state"] != "building" {
            break newest;
        }
        if Instant::now() > deadline {
            s.fail(&format!("the update did not end in the history: {history}"));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let reason = update["reason"].as_str().unwrap_or("");
    let build = update["builds"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["host"] == "node"))
        .cloned()
        .unwrap_or(Value::Null);
    if update["trigger"] != "manual"
        || update["state"] != "not_promoted"
        || update["promoted"] != false
        || !reason.contains("pre-flight")
        || !reason.contains("failed")
        || build["generation"] != 2
        || build["promoted"] != false
    {
        s.fail(&format!("the broken generation's update: {update}"));
    }
}

/// Commit a change to the fixture that makes `node`'s stage 2 power off without reporting.
fn break_node(s: &Scenario, flake: &std::path::Path) {
    let file = flake.join("flake.nix");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let broken = text.replace(
        r#"node = host "node" true "";"#,
        r#"node = host "node" false "";"#,
    );
    if broken == text {
        s.fail("the fixture's flake.nix no longer defines `node = host \"node\" true \"\";`");
    }
    std::fs::write(&file, broken).unwrap_or_else(|e| s.fail(&format!("flake.nix: {e}")));
    let git = std::process::Command::new("git")
        .current_dir(flake)
        .args(["-c", "user.name=t", "-c", "user.email=t@flakeboot.invalid"])
        .args(["commit", "-q", "-am", "node: stage 2 no longer reports"])
        .output()
        .unwrap_or_else(|e| s.fail(&format!("git commit: {e}")));
    if !git.status.success() {
        s.fail(&format!(
            "git commit: {}",
            String::from_utf8_lossy(&git.stderr)
        ));
    }
}

#[test]
fn a_generation_that_reports_passes_and_a_silent_one_fails_preflight() {
    let start = Instant::now();
    require_tool("nix");
    require_tool("git");
    let mut s = Scenario::new("preflight_boot", 1);
    let (_dir, flake) = s.nixos_shaped_flake();
    let config = ApplianceConfig::new(Mode::Router)
        .flake(&format!("git+file://{}", flake.display()), "lab")
        .machine(MAC[0], "node", "flakeboot.hostname=pf-node")
        .preflight(TIMEOUT);
    s.start_appliance(&config);
    let state_dir = s.appliance().state_dir().to_owned();
    let cli = FlakeCli::new(&state_dir);
    let deadline =
        Instant::now() + Duration::from_secs(180) + 2 * TIMEOUT + Duration::from_secs(60);
    let (node, silent) = loop {
        let (node, silent) = (view(&cli, "lab#node"), view(&cli, "lab#silent"));
        let done = |v: &Value| matches!(preflight_state(v).as_str(), "passed" | "failed");
        if done(&node) && done(&silent) {
            break (node, silent);
        }
        if Instant::now() > deadline {
            s.fail(&format!(
                "pre-flights did not end: node {node}, silent {silent}"
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let ended = start.elapsed();
    if preflight_state(&node) != "passed" || node["current"] != 1 {
        s.fail(&format!("node: {node}"));
    }
    let failed = &silent["generations"][0]["preflight"];
    // The fixture's silent host powers off after stage 2 without reporting (QEMU runs with
    // -no-reboot, so that ends the VM); had it stayed up, the timeout would say "no report".
    let reason = failed["reason"].as_str().unwrap_or("");
    if preflight_state(&silent) != "failed"
        || !matches!(reason, "the VM powered off before a report" | "no report")
        || !silent["current"].is_null()
    {
        s.fail(&format!("silent: {silent}"));
    }
    // The failed one's console log shows its stage 2 ran and did not report.
    let log = std::fs::read_dir(state_dir.join("preflight"))
        .unwrap_or_else(|e| s.fail(&format!("preflight dir: {e}")))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("lab-silent-1.log"))
        .unwrap_or_else(|| s.fail("no console log of lab#silent"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !text.contains("FLAKEBOOT-NIXOS not reporting (host silent)") {
        s.fail(&format!("the silent host's console log: {text}"));
    }
    // Its stage 2 ran (the VM is stopped once the report is in: the console line after the
    // report may not have made it into the log).
    let node_log =
        std::fs::read_to_string(state_dir.join("preflight/lab-node-1.log")).unwrap_or_default();
    if !node_log.contains("FLAKEBOOT-NIXOS hostname=") {
        s.fail(&format!("the node's console log: {node_log}"));
    }
    // Where /dev/kvm opens but KVM stalls guests, "auto" gave KVM up for TCG (once).
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let kvm_runs = flakeboot_testbed::accel(s.kernel()) == flakeboot_testbed::Accel::Kvm;
    let log = std::fs::read_to_string(s.appliance().log_path()).unwrap_or_default();
    let gave_up = log.matches("pre-flights use TCG from now on").count();
    let forced = std::env::var_os("FLAKEBOOT_QEMU_ACCEL").is_some();
    if kvm_opens && !kvm_runs && !forced && gave_up != 1 {
        s.fail(&format!("KVM opens but stalls guests here: the daemon should have said once that it goes on with TCG (said {gave_up} times)"));
    }
    if kvm_runs && !forced && gave_up != 0 {
        s.fail("KVM runs guests here, but the daemon gave it up");
    }
    // The tap went with the VM.
    let links = s
        .lan()
        .server
        .run(&["ip", "-o", "link", "show"])
        .unwrap_or_else(|e| s.fail(&format!("ip link: {e}")));
    if links.contains("fbpreflight0") {
        s.fail(&format!("the pre-flight tap is still there: {links}"));
    }

    let node_secs = node["generations"][0]["preflight"]["duration_secs"].clone();
    // The next pre-flight boots under UEFI (OVMF, iPXE's EFI build): the daemon restarted
    // with `firmware = "uefi"` on the same state directory.
    s.restart_appliance(&config.clone().preflight_uefi());
    // A commit that breaks stage 2: generation 2 is built, fails its pre-flight, and is not
    // current; a machine assigned to the host still boots generation 1.
    break_node(&s, &flake);
    cli.update("lab")
        .unwrap_or_else(|e| s.fail(&format!("flake update: {e}")));
    let deadline = Instant::now() + TIMEOUT + Duration::from_secs(120);
    let node = loop {
        let node = view(&cli, "lab#node");
        if matches!(generation_state(&node, 2).as_str(), "passed" | "failed") {
            break node;
        }
        if Instant::now() > deadline {
            s.fail(&format!("generation 2's pre-flight did not end: {node}"));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let second = generation(&node, 2);
    if generation_state(&node, 2) != "failed" || node["current"] != 1 {
        s.fail(&format!("the broken generation: {node}"));
    }
    let broken_log =
        std::fs::read_to_string(state_dir.join("preflight/lab-node-2.log")).unwrap_or_default();
    if !broken_log.contains("FLAKEBOOT-NIXOS not reporting (host node)")
        || !broken_log.contains(UEFI_MARK)
    {
        s.fail(&format!("generation 2's console log: {broken_log}"));
    }
    expect_not_promoted(&s, &cli);
    let client = s.power_on("node1", ClientKind::Bios, 0, MAC[0]);
    for needle in [
        "flakeboot.generation=1",
        "FLAKEBOOT-NIXOS hostname=pf-node",
        "FLAKEBOOT-NIXOS reported up",
    ] {
        client
            .wait_for_serial(needle, BOOT_TIMEOUT)
            .unwrap_or_else(|e| s.fail(&format!("no `{needle}` on the machine's console: {e}")));
    }
    let console = std::fs::read_to_string(client.console().log_path()).unwrap_or_default();
    if console.contains("flakeboot.generation=2") {
        s.fail("the machine booted the generation whose pre-flight failed");
    }
    println!(
        "HIL-TIMING scenario=preflight_boot ended={:.1} node={}s silent={}s broken={}s all={:.1}",
        ended.as_secs_f64(),
        node_secs,
        failed["duration_secs"],
        second["preflight"]["duration_secs"],
        start.elapsed().as_secs_f64()
    );
}
