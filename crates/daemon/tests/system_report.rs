//! A booted system reports to the real daemon: curl in the client namespace plays the machine.
//! Its PXE ROM asks the LAN's DHCP server for its address (flakeboot, in proxy mode, learns it);
//! its boot script names the boot server (`flakeboot.server=`); from that address it may report
//! for its MAC (204) but not for another (403); the `system` event is then what
//! `flakeboot events --mac M --json` shows over the API socket. A second address of the
//! namespace plays a LAN stranger that names the machine's MAC: its script fetch is not in the
//! machine's timeline and its report for the machine is refused.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::dhcp_clients::{OFFER, pxe_discover, pxe_request};
use common::*;
use flakeboot_testbed::require_tool;

const CLIENT_IP: &str = "10.77.0.50";
const OTHER_MAC: &str = "52:54:00:12:34:99";
/// A second address in the client namespace that no DHCP exchange gave anyone.
const STRANGER_IP: &str = "10.77.0.66";
/// The LAN's own DHCP server (the router; not running: flakeboot only sees the REQUEST).
const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);

/// `curl -d body http://SERVER/boot/report` from the client namespace: the status code.
fn report(lan: &Lan, body: &str) -> String {
    report_from(lan, CLIENT_IP, body)
}

/// [`report`] from the client namespace's address `from`.
fn report_from(lan: &Lan, from: &str, body: &str) -> String {
    lan.client()
        .run(&[
            "curl",
            "-sS",
            "--interface",
            from,
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
    for ip in [CLIENT_IP, STRANGER_IP] {
        lan.client().addr("eth0", &format!("{ip}/24")).unwrap();
    }
    let config = lan.write_config("[dhcp]\nmode = \"proxy\"");
    let mut daemon = lan.start(&config);
    let mac: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    assert_eq!(CLIENT_MAC, "52:54:00:12:34:56");

    // A stranger names the machine's MAC before it ever booted: the script is served (the
    // menu's answer for that MAC is no secret), but nothing makes its address that MAC's.
    let fetch = |from: &str| {
        lan.client()
            .run(&[
                "curl",
                "-sSf",
                "--interface",
                from,
                &format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}"),
            ])
            .unwrap()
    };
    fetch(STRANGER_IP);
    assert_eq!(
        report_from(&lan, STRANGER_IP, &format!("mac={CLIENT_MAC}&stage=up")),
        "403"
    );

    // The machine's PXE ROM takes CLIENT_IP from the LAN's DHCP server; flakeboot handles its
    // packets in order, so once its offer to the DISCOVER after it arrives, it has learnt that.
    pxe_request(lan.client(), mac, CLIENT_IP.parse().unwrap(), ROUTER_IP);
    let offer = pxe_discover(lan.client(), mac).expect("no proxy offer");
    assert_eq!(offer.message_type, OFFER);

    // The machine boots: its script's command line tells it where to report.
    let script = fetch(CLIENT_IP);
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
    // The stranger's script fetch and refused report are nowhere in the machine's timeline.
    let timeline = events_json(&lan, CLIENT_MAC);
    let strangers: Vec<_> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["peer"] == STRANGER_IP)
        .collect();
    assert!(strangers.is_empty(), "{strangers:?}");
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["stage"] == "script" && e["peer"] == CLIENT_IP),
        "{timeline}"
    );

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
