//! CI smoke test: `flakeboot-bench all --smoke` runs every comparison at tiny sizes against the
//! real peers and produces, for every comparison, rows where flakeboot and every peer have a
//! figure. It proves the harness works; it asserts no performance goal (benchmarks are not
//! timed tests).

use std::process::Command;

use flakeboot_testbed::{flakeboot_bin, require_root, require_tool};

/// The comparisons `all --smoke` runs (of the QEMU boots, only the BIOS one: the UEFI native
/// PXE boot is left to `./bench.sh boot`).
const COMPARISONS: [&str; 7] = ["tftp", "http", "dhcp", "proxy", "memory", "storm", "boot"];

#[test]
fn every_comparison_produces_figures_for_both_sides() {
    require_root();
    for tool in [
        "perfdhcp",
        "dnsmasq",
        "kea-dhcp4",
        "in.tftpd",
        "nginx",
        "wrk",
        "curl",
        "udhcpc",
        "qemu-system-x86_64",
    ] {
        require_tool(tool);
    }
    let daemon = flakeboot_bin();
    assert!(
        daemon.is_file(),
        "{} is missing: build the daemon first (cargo build -p flakeboot)",
        daemon.display()
    );
    // perfdhcp runs with a raised net.core.rmem_default (hil-tests/bench/src/perfdhcp.rs):
    // the machine's value is put back after each run.
    let rmem_default = || std::fs::read_to_string("/proc/sys/net/core/rmem_default").unwrap();
    let rmem_before = rmem_default();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flakeboot-bench"))
        .args(["all", "--smoke", "--flakeboot"])
        .arg(&daemon)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "flakeboot-bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        rmem_default(),
        rmem_before,
        "net.core.rmem_default not put back"
    );
    // Each DHCP rate step says where its losses were, from both namespaces' UDP counters.
    assert!(
        stderr.contains("dropped in its socket;")
            && stderr.contains("dropped in perfdhcp's socket"),
        "no losses per namespace in the rate steps:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["smoke"], true);
    assert_eq!(report["failures"].as_array().unwrap().len(), 0, "{stdout}");
    let rows = report["rows"].as_array().unwrap();
    for comparison in COMPARISONS {
        let mine: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| r["comparison"] == comparison)
            .collect();
        assert!(!mine.is_empty(), "no rows for {comparison}:\n{stdout}");
        for row in mine {
            let metric = &row["metric"];
            // Drop percentages are legitimately zero, and so is CPU time below one clock tick
            // (10 ms; a smoke run is 200 exchanges, a storm of 10): those must be present, not
            // positive. Every other figure must be measured.
            let may_be_zero =
                row["unit"] == "%" || metric.as_str().is_some_and(|m| m.contains("CPU"));
            if may_be_zero {
                let values = std::iter::once(&row["flakeboot"])
                    .chain(row["peers"].as_array().unwrap().iter().map(|p| &p["value"]));
                for v in values {
                    assert!(
                        v.as_f64().is_some_and(|x| x >= 0.0),
                        "{comparison} {metric}: not a figure: {v}\n{stdout}"
                    );
                }
                continue;
            }
            assert!(
                row["flakeboot"].as_f64().unwrap() > 0.0,
                "{comparison} {metric}: no figure for flakeboot:\n{stdout}"
            );
            let peers = row["peers"].as_array().unwrap();
            assert!(
                !peers.is_empty(),
                "{comparison} {metric}: no peer\n{stdout}"
            );
            for peer in peers {
                assert!(
                    peer["value"].as_f64().unwrap() > 0.0,
                    "{comparison} {metric}: no figure for {}:\n{stdout}",
                    peer["peer"]
                );
            }
        }
    }
    // The table people read names every peer.
    for peer in ["dnsmasq", "kea", "tftp-hpa", "nginx"] {
        assert!(
            stdout.contains(peer),
            "{peer} missing from the table:\n{stdout}"
        );
    }
}
