//! The `offline` state against the real daemon in router mode: a machine takes a lease from
//! flakeboot (dhclient in the client namespace), its system reports up from that address
//! (curl), and `flakeboot machines --json` says `up`; once its lease is gone (released here:
//! the same as one that ran out) the same machine is `offline`, with the detail saying why.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flakeboot_testbed::require_tool;

/// `flakeboot <args> --state-dir S` on the appliance (over its API socket): stdout.
fn ok(lan: &Lan, args: &[&str]) -> String {
    let out = lan
        .server
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .arg("--state-dir")
        .arg(lan.state_dir())
        .env_remove("FLAKEBOOT_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flakeboot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The machine's `last_boot` in `flakeboot machines --json`.
fn last_boot(lan: &Lan) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(lan, &["machines", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == CLIENT_MAC)
        .unwrap_or_else(|| panic!("{CLIENT_MAC} not listed: {v}"))["last_boot"]
        .clone()
}

#[test]
fn an_up_machine_whose_lease_is_gone_is_offline() {
    require_tool("dhclient");
    require_tool("curl");
    let lan = Lan::new();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\nlease_time = \"10m\"",
    );
    let mut daemon = lan.start(&config);
    // The machine's network-boot ROM: a DHCP client that says it is a PXE client (what makes
    // flakeboot keep a machine record).
    let leases = lan.path("dhclient.leases");
    let conf = lan.path("dhclient.conf");
    std::fs::write(
        &conf,
        "send vendor-class-identifier \"PXEClient:Arch:00007:UNDI:003016\";\n",
    )
    .unwrap();
    lan.client()
        .run(&[
            "dhclient",
            "-1",
            "-cf",
            conf.to_str().unwrap(),
            "-lf",
            leases.to_str().unwrap(),
            "-pf",
            lan.path("dhclient.pid").to_str().unwrap(),
            "eth0",
        ])
        .unwrap();
    let code = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-raw",
            &format!("mac={CLIENT_MAC}&stage=up"),
            &format!("http://{SERVER_IP}/boot/report"),
        ])
        .unwrap();
    assert_eq!(code.trim(), "204", "{}", daemon.tail(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    let up = loop {
        let b = last_boot(&lan);
        if b["state"] == "up" || Instant::now() > deadline {
            break b;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(up["state"], "up", "{up}\n{}", daemon.tail(20));
    let table = ok(&lan, &["machines"]);
    assert!(table.contains("state=up"), "{table}");

    ok(&lan, &["lease", "release", CLIENT_MAC]);
    let gone = last_boot(&lan);
    assert_eq!(gone["state"], "offline", "{gone}");
    assert!(
        gone["detail"]
            .as_str()
            .unwrap()
            .starts_with("offline: it holds no DHCP lease (last up"),
        "{gone}"
    );
    let table = ok(&lan, &["machines"]);
    assert!(table.contains("state=offline"), "{table}");
    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
