//! A booted system reports to the real daemon: curl in the client namespace plays the machine.
//! Its boot script names the boot server (`flakeboot.server=`); having fetched it, the address
//! may report for that MAC (204) but not for another (403); the `system` event is then what
//! `flakeboot events --mac M --json` shows over the API socket.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flakeboot_testbed::require_tool;

const CLIENT_IP: &str = "10.77.0.50";
const OTHER_MAC: &str = "52:54:00:12:34:99";

/// `curl -d body http://SERVER/boot/report` from the client namespace: the status code.
fn report(lan: &Lan, body: &str) -> String {
    lan.client()
        .run(&[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-raw",
            body,
            &format!("http://{SERVER_IP}/boot/report"),
        ])
        .unwrap()
        .trim()
        .to_owned()
}

/// `flakeboot events --mac MAC --json --state-dir S` over the daemon's API socket.
fn events_json(lan: &Lan, mac: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["events", "--mac", mac, "--json", "--state-dir"])
        .arg(lan.state_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flakeboot events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn system_events(events: &serde_json::Value) -> Vec<serde_json::Value> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == "system")
        .cloned()
        .collect()
}

#[test]
fn a_booted_system_reports_up_from_the_address_it_booted_from() {
    require_tool("curl");
    let lan = Lan::new();
    lan.client()
        .addr("eth0", &format!("{CLIENT_IP}/24"))
        .unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"off\"");
    let mut daemon = lan.start(&config);

    // The machine boots: its script's command line tells it where to report.
    let script = lan
        .client()
        .run(&[
            "curl",
            "-sSf",
            &format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}"),
        ])
        .unwrap();
    assert!(
        script.contains(
            "console=ttyS0 panic=-1 flakeboot.host=demo flakeboot.server=http://10.77.0.1"
        ),
        "{script}"
    );

    // Its system comes up and says so; from that address it may not speak for another MAC.
    assert_eq!(report(&lan, &format!("mac={CLIENT_MAC}&stage=up")), "204");
    assert_eq!(report(&lan, &format!("mac={OTHER_MAC}&stage=up")), "403");
    assert_eq!(report(&lan, "mac=nonsense&stage=up"), "400");
    assert_eq!(
        report(&lan, &format!("mac={CLIENT_MAC}&stage=sideways")),
        "400"
    );

    // The report is a `system` boot event of that machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    let system = loop {
        let found = system_events(&events_json(&lan, CLIENT_MAC));
        if !found.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no system event:\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(system.len(), 1, "{system:?}");
    assert_eq!(system[0]["outcome"], "ok", "{system:?}");
    assert_eq!(system[0]["detail"], "up", "{system:?}");
    assert_eq!(system[0]["peer"], CLIENT_IP, "{system:?}");
    // The refused report left no event for the other MAC.
    assert!(system_events(&events_json(&lan, OTHER_MAC)).is_empty());

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
    let log = daemon.output();
    assert!(
        log.contains("boot report refused") && log.contains(OTHER_MAC),
        "the refused report is not logged:\n{log}"
    );
}
