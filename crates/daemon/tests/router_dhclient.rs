//! Router mode through the real daemon: ISC dhclient gets a lease, the lease is on disk, and a
//! restarted daemon gives the same client the same address.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use flakeboot_testbed::require_tool;

fn dhclient(lan: &Lan) -> String {
    let leases = lan.path("dhclient.leases");
    let pid = lan.path("dhclient.pid");
    lan.client()
        .run(&[
            "dhclient",
            "-1",
            "-v",
            "-sf",
            "/bin/true",
            "-lf",
            leases.to_str().unwrap(),
            "-pf",
            pid.to_str().unwrap(),
            "eth0",
        ])
        .unwrap();
    let text = std::fs::read_to_string(&leases).unwrap();
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("fixed-address "))
        .unwrap_or_else(|| panic!("no lease in {text}"));
    last.trim_end_matches(';').to_owned()
}

#[test]
fn dhclient_gets_a_lease_that_survives_a_restart() {
    require_tool("dhclient");
    let lan = Lan::new();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\nlease_time = \"10m\"",
    );
    let mut daemon = lan.start(&config);
    let first = dhclient(&lan);
    assert!(first.starts_with("10.77.0.1"), "{first}");
    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(20));

    // The lease is durable in the store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["leases", "--state-dir"])
        .arg(lan.state_dir())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&first) && listing.contains(CLIENT_MAC),
        "{listing}"
    );

    // A new daemon on the same state: dhclient's INIT-REBOOT request for the old address is ACKed.
    let mut daemon = lan.start(&config);
    let second = dhclient(&lan);
    assert_eq!(first, second);
    daemon.stop();
}
