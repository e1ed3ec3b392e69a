//! Housekeeping and power against the real daemon, through the CLI on the appliance (the
//! owner-only API socket): a router-mode lease released while the daemon runs (the address is
//! free at once: the next client gets it), a machine forgotten, a config-pinned one refused
//! with its file and line; and Wake-on-LAN: `flakeboot machine wake` sends both magic packets
//! on the LAN, captured by tcpdump on the other end of the veth.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use flakeboot_testbed::{Proc, require_tool};

const OTHER_MAC: &str = "52:54:00:aa:bb:02";
const SLEEPER: &str = "52:54:00:de:ad:01";

/// `flakeboot <args> --state-dir S` on the appliance (over its API socket).
fn cli(lan: &Lan, args: &[&str]) -> Output {
    lan.server
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .arg("--state-dir")
        .arg(lan.state_dir())
        .env_remove("FLAKEBOOT_SERVER")
        .output()
        .unwrap()
}

fn ok(lan: &Lan, args: &[&str]) -> String {
    let out = cli(lan, args);
    assert!(
        out.status.success(),
        "flakeboot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(lan: &Lan, args: &[&str]) -> String {
    let out = cli(lan, args);
    assert_eq!(out.status.code(), Some(1), "flakeboot {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// One dhclient exchange on the client's eth0: the address it got.
fn dhclient(lan: &Lan) -> String {
    let leases = lan.path("dhclient.leases");
    let _ = std::fs::remove_file(&leases);
    lan.client()
        .run(&[
            "dhclient",
            "-1",
            "-sf",
            "/bin/true",
            "-lf",
            leases.to_str().unwrap(),
            "-pf",
            lan.path("dhclient.pid").to_str().unwrap(),
            "eth0",
        ])
        .unwrap();
    let text = std::fs::read_to_string(&leases).unwrap();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("fixed-address "))
        .unwrap_or_else(|| panic!("no lease in {text}"))
        .trim_end_matches(';')
        .to_owned()
}

fn lease_ips(lan: &Lan) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&ok(lan, &["leases", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ip"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn leases_are_released_and_machines_forgotten_over_the_socket() {
    require_tool("dhclient");
    let lan = Lan::new();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\nlease_time = \"10m\"",
    );
    let mut daemon = lan.start(&config);

    // A lease, released while the daemon runs: gone from the store and from the live pool.
    let first = dhclient(&lan);
    assert_eq!(lease_ips(&lan), std::slice::from_ref(&first));
    let out = ok(&lan, &["lease", "release", CLIENT_MAC]);
    assert_eq!(out.trim(), format!("Released {first} ({CLIENT_MAC})."));
    assert!(lease_ips(&lan).is_empty());
    let err = fails(&lan, &["lease", "release", CLIENT_MAC]);
    assert!(err.contains("not found"), "{err}");
    // The pool forgot it too: another client (new MAC, no old lease) now gets that address.
    lan.client()
        .run(&["ip", "link", "set", "eth0", "address", OTHER_MAC])
        .unwrap();
    let second = dhclient(&lan);
    assert_eq!(second, first, "the released address is free at once");
    let leases: serde_json::Value = serde_json::from_str(&ok(&lan, &["leases", "--json"])).unwrap();
    assert_eq!(leases[0]["mac"], OTHER_MAC, "{leases}");

    // Forget: a machine the user made (dhclient is no network-boot client, so its exchange
    // made none) is forgotten.
    ok(&lan, &["machine", "assign", OTHER_MAC, "--menu"]);
    let listed = ok(&lan, &["machines"]);
    assert!(listed.contains(OTHER_MAC), "{listed}");
    let out = ok(&lan, &["machine", "forget", OTHER_MAC]);
    assert!(out.starts_with(&format!("Forgot {OTHER_MAC}")), "{out}");
    assert!(!ok(&lan, &["machines"]).contains(OTHER_MAC));
    // The config file pins CLIENT_MAC ([[machines]]): refused with the file and line.
    let err = fails(&lan, &["machine", "forget", CLIENT_MAC]);
    let place = format!("{}, line ", config.display());
    assert!(err.contains(&place) && err.contains("mac: Set in"), "{err}");

    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));
}

/// Every packet of a pcap file, as bytes (from `tcpdump -r F -xx`).
fn packets(pcap: &std::path::Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new(require_tool("tcpdump"))
        .args(["-nn", "-xx", "-r"])
        .arg(pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut all: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        match trimmed.strip_prefix("0x").and_then(|l| l.split_once(':')) {
            Some((_, hex)) if line.starts_with(char::is_whitespace) => {
                let packet = all.last_mut().expect("hex before a packet line");
                for group in hex.split_whitespace() {
                    for i in (0..group.len()).step_by(2) {
                        packet.push(u8::from_str_radix(&group[i..i + 2], 16).unwrap());
                    }
                }
            }
            _ => all.push(Vec::new()),
        }
    }
    all
}

#[test]
fn machine_wake_sends_the_magic_packet_by_udp_and_as_an_0842_frame() {
    let tcpdump = require_tool("tcpdump");
    let lan = Lan::new();
    let config = lan.write_config("[dhcp]\nmode = \"off\"");
    let mut daemon = lan.start(&config);

    // The other end of the LAN listens for both kinds (two packets, then it exits).
    let pcap = lan.path("wake.pcap");
    let mut cmd = lan.client().command(&tcpdump);
    cmd.args(["-i", "eth0", "-nn", "-U", "-c", "2", "-w"])
        .arg(&pcap)
        .args(["udp port 9 or ether proto 0x0842"]);
    let mut capture = Proc::spawn("tcpdump", cmd).unwrap();
    capture
        .wait_for("listening on", Duration::from_secs(10))
        .unwrap();

    let out = ok(&lan, &["machine", "wake", SLEEPER]);
    assert_eq!(
        out.trim(),
        format!(
            "Magic packet for {SLEEPER} sent on lan0 (UDP broadcast to port 9 and EtherType 0x0842)."
        )
    );
    let status = capture.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{}", capture.output());

    let mac = [0x52, 0x54, 0x00, 0xde, 0xad, 0x01];
    let mut magic = vec![0xFF; 6];
    for _ in 0..16 {
        magic.extend_from_slice(&mac);
    }
    let captured = packets(&pcap);
    assert_eq!(captured.len(), 2, "{captured:02x?}");
    let udp = captured
        .iter()
        .find(|p| p[12..14] == [0x08, 0x00])
        .unwrap_or_else(|| panic!("no IPv4 packet in {captured:02x?}"));
    let ip_header = usize::from(udp[14] & 0x0f) * 4;
    let ip = &udp[14..];
    assert_eq!(udp[..6], [0xFF; 6], "an ethernet broadcast");
    assert_eq!(ip[9], 17, "UDP");
    assert_eq!(ip[16..20], [255, 255, 255, 255], "to the limited broadcast");
    let datagram = &ip[ip_header..];
    assert_eq!(u16::from_be_bytes([datagram[2], datagram[3]]), 9, "port 9");
    assert_eq!(&datagram[8..], magic.as_slice(), "6 x 0xFF + 16 x the MAC");

    let frame = captured
        .iter()
        .find(|p| p[12..14] == [0x08, 0x42])
        .unwrap_or_else(|| panic!("no 0x0842 frame in {captured:02x?}"));
    assert_eq!(frame[..6], [0xFF; 6], "an ethernet broadcast");
    assert_eq!(frame[6..12], udp[6..12], "from the LAN port's MAC");
    assert_eq!(&frame[14..], magic.as_slice(), "the same magic packet");

    // The API answers the same over the socket; a group MAC is no machine to wake.
    let err = fails(&lan, &["machine", "wake", "01:00:5e:00:00:01"]);
    assert!(err.contains("not found"), "{err}");
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));
}
