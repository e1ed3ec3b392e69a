//! Machine records come from DHCP only, against the real daemon: anyone on the LAN can fetch
//! `/boot.ipxe?mac=<anything>` or report for any MAC, and none of that makes a machine. curl in
//! the client namespace floods the boot port with 500 made-up MACs (and group addresses);
//! each gets the menu, yet `flakeboot machines` lists nothing. A PXE DISCOVER, a MAC on the
//! wire, then makes exactly one machine; one from a broadcast `chaddr` makes none.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::dhcp_clients::{OFFER, pxe_discover};
use common::*;
use flakeboot_testbed::require_tool;

const FLOOD: usize = 500;

/// `flakeboot <args> --json --state-dir S` over the daemon's API socket.
fn cli_json(lan: &Lan, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .args(["--json", "--state-dir"])
        .arg(lan.state_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flakeboot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn machine_macs(lan: &Lan) -> Vec<String> {
    cli_json(lan, &["machines"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap().to_owned())
        .collect()
}

/// Made-up, locally administered unicast MACs (what an attacker would send), never the
/// client's own.
fn made_up_macs(n: usize) -> Vec<String> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_be_bytes();
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                (b[0] & 0xfc) | 0x02,
                b[1],
                b[2],
                b[3],
                b[4],
                b[5]
            )
        })
        .collect()
}

/// curl in the client namespace, one connection for all `urls`: each one's status code.
fn statuses(lan: &Lan, extra: &[&str], urls: &[String]) -> Vec<String> {
    let mut argv = vec!["curl", "-sS", "-w", "\\nstatus=%{http_code}\\n"];
    argv.extend_from_slice(extra);
    argv.extend(urls.iter().map(String::as_str));
    lan.client()
        .run(&argv)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("status="))
        .map(str::to_owned)
        .collect()
}

/// How many stored events are `stage` events.
fn stored(lan: &Lan, stage: &str) -> usize {
    cli_json(lan, &["events", "--limit", "5000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == stage)
        .count()
}

fn wait_until(daemon: &mut flakeboot_testbed::Proc, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_mac_flood_over_http_makes_no_machine_and_only_dhcp_does() {
    require_tool("curl");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"proxy\"");
    let mut daemon = lan.start(&config);
    let base = format!("http://{SERVER_IP}");

    // An unknown MAC still gets a sensible answer: the menu.
    let macs = made_up_macs(FLOOD);
    let script = lan
        .client()
        .run(&["curl", "-sSf", &format!("{base}/boot.ipxe?mac={}", macs[0])])
        .unwrap();
    assert!(
        script.starts_with("#!ipxe") && script.contains("menu"),
        "{script}"
    );

    // The flood: 500 made-up MACs fetching their scripts; the last one reports itself up
    // from the address it just fetched from: refused, a `?mac=` makes no address a MAC's.
    let scripts: Vec<String> = macs
        .iter()
        .map(|m| format!("{base}/boot.ipxe?mac={m}"))
        .collect();
    let codes = statuses(&lan, &[], &scripts);
    assert_eq!(codes.len(), FLOOD);
    assert!(codes.iter().all(|c| c == "200"), "{codes:?}");
    let last = macs.last().unwrap();
    let report = statuses(
        &lan,
        &["--data-raw", &format!("mac={last}&stage=up")],
        &[format!("{base}/boot/report")],
    );
    assert_eq!(
        report,
        ["403"],
        "a script fetch made the address that MAC's"
    );
    // Every request is recorded (the flood is in the event log) ...
    wait_until(&mut daemon, "the flood's events", || {
        stored(&lan, "script") > FLOOD
    });
    assert_eq!(stored(&lan, "system"), 0);
    // ... and none of it made a machine.
    let listed = machine_macs(&lan);
    assert!(
        listed.is_empty(),
        "{} machines from HTTP requests: {:?}",
        listed.len(),
        &listed[..listed.len().min(5)]
    );

    // Zero, broadcast and multicast MACs: the menu, but never a report, and no machine.
    let groups = [
        "ff:ff:ff:ff:ff:ff",
        "01:00:5e:00:00:01",
        "33:33:00:00:00:01",
        "00:00:00:00:00:00",
    ];
    let group_scripts: Vec<String> = groups
        .iter()
        .map(|m| format!("{base}/boot.ipxe?mac={m}"))
        .collect();
    let codes = statuses(&lan, &[], &group_scripts);
    assert!(
        codes.iter().all(|c| c == "200"),
        "menu for group MACs: {codes:?}"
    );
    for group in groups {
        let code = statuses(
            &lan,
            &["--data-raw", &format!("mac={group}&stage=up")],
            &[format!("{base}/boot/report")],
        );
        assert_eq!(code, ["400"], "a report for {group}");
    }

    wait_until(&mut daemon, "the group MACs' events", || {
        stored(&lan, "script") == 1 + FLOOD + groups.len()
    });
    assert!(machine_macs(&lan).is_empty());

    // A PXE DISCOVER from a broadcast chaddr gets nothing and makes nothing; one from a real
    // MAC gets the proxy offer and makes the one machine.
    assert_eq!(pxe_discover(lan.client(), [0xff; 6]), None);
    let on_the_wire = [0x52, 0x54, 0x00, 0xfb, 0x00, 0x42];
    let offer = pxe_discover(lan.client(), on_the_wire).expect("no proxy offer");
    assert_eq!(offer.message_type, OFFER);
    wait_until(&mut daemon, "the DHCP machine", || {
        !machine_macs(&lan).is_empty()
    });
    assert_eq!(machine_macs(&lan), ["52:54:00:fb:00:42"]);

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}

/// A DHCP flood of new MACs (perfdhcp: PXE DISCOVERs from 3,000 simulated clients at 2,000 a
/// second): every one is answered, but machine records are made within the boot event
/// writer's budget (1,000 at once, 100 a second after), the rest counted and warned about.
/// Then a real machine's DISCOVER, once the budget has room, makes its record.
#[test]
fn a_dhcp_flood_of_new_macs_makes_records_within_the_budget() {
    let perfdhcp = require_tool("perfdhcp");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"proxy\"");
    let mut daemon = lan.start(&config);

    const CLIENTS: u64 = 3_000;
    let hex: String = b"PXEClient:Arch:00000:UNDI:002001"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let started = Instant::now();
    let output = lan
        .client()
        .command(&perfdhcp)
        .args(["-4", "-l", "eth0", "-i", "-r", "2000", "-n"])
        .arg(CLIENTS.to_string())
        .args(["-R"])
        .arg(CLIENTS.to_string())
        .args(["-o", &format!("60,{hex}"), "-o", "93,0000"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let received = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("received packets:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no received count in perfdhcp's report:\n{report}"));
    // Answered, every one (perfdhcp may leave before the very last offer).
    assert!(received + 1 >= CLIENTS, "{report}");

    let log = daemon.log_path().to_owned();
    wait_until(&mut daemon, "the budget's warning", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("past the budget of 100 new machines a second")
    });
    let machines = machine_macs(&lan).len() as f64;
    let earned = 100.0 * started.elapsed().as_secs_f64();
    eprintln!("{received} offers to {CLIENTS} new MACs; {machines} machine records");
    assert!(
        (1_000.0..=1_000.0 + earned + 1.0).contains(&machines),
        "{machines} machine records from {CLIENTS} new MACs, {earned:.0} earned after the burst"
    );

    // The flood is over: a real machine's first DISCOVER makes its record.
    let on_the_wire = [0x52, 0x54, 0x00, 0xfb, 0x00, 0x43];
    std::thread::sleep(Duration::from_millis(50));
    let offer = pxe_discover(lan.client(), on_the_wire).expect("no proxy offer");
    assert_eq!(offer.message_type, OFFER);
    wait_until(&mut daemon, "the real machine's record", || {
        machine_macs(&lan).iter().any(|m| m == "52:54:00:fb:00:43")
    });

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
