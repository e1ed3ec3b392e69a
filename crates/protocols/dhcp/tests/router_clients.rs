//! Router mode against real DHCP clients, each in network namespaces this test creates:
//! ISC dhclient, busybox udhcpc, smoltcp's DHCP client (over a TAP device), Kea's perfdhcp,
//! and the Linux kernel's IPv6 autoconfiguration for router advertisements.
//! The server keeps its leases in the real redb store (flakeboot-store's `LeaseStore`), and the
//! tests read them back through the same trait.
//!
//! Layout of every test ([`router_common::router_lan`]): namespace `lan.server` runs the
//! flakeboot DHCP server in-process, bound to `lan0` (10.77.0.1/24); namespace `lan.client()`
//! holds the client on `eth0`, the other end of a veth pair. Nothing leaves these namespaces. Needs root.

// Test harness code outside #[test] functions: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod dhcp_server;
mod router_common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flakeboot_catalogue::MacAddr;
use flakeboot_dhcp::ra::RaConfig;
use flakeboot_dhcp::{LeaseState, LeaseStore};
use flakeboot_store::Store;
use flakeboot_testbed::{Netns, Proc, TestLan, require_tool};
use router_common::{FIRST, client_script, pool, router_lan, serve, wait_output};

fn dhclient(lan: &TestLan, label: &str, lease_file: &Path, script: &str) -> Proc {
    let bin = require_tool("dhclient");
    let pid = lan.path(&format!("{label}.pid"));
    let (lease_file, pid) = (lease_file.to_str().unwrap(), pid.to_str().unwrap());
    lan.client()
        .spawn(
            label,
            &[
                bin.to_str().unwrap(),
                "-d",
                "-1",
                "-v",
                "-sf",
                script,
                "-lf",
                lease_file,
                "-pf",
                pid,
                "eth0",
            ],
        )
        .unwrap()
}

#[test]
fn dhclient_gets_a_lease_and_renews_it() {
    let lan = router_lan("dhcl");
    let server = serve(&lan, pool(None));
    let script = client_script(&lan);
    let mut client = dhclient(&lan, "dhclient", &lan.path("dhclient.leases"), &script);
    let out = wait_output(&mut client, "bound", Duration::from_secs(30), |o| {
        o.contains("bound to")
    });
    assert!(
        out.contains("DHCPOFFER of 10.77.0.100 from 10.77.0.1"),
        "{out}"
    );
    assert!(
        out.contains("DHCPACK of 10.77.0.100 from 10.77.0.1"),
        "{out}"
    );
    assert!(out.contains("script: BOUND 10.77.0.100"), "{out}");
    let addrs = lan
        .client()
        .run(&["ip", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(addrs.contains("10.77.0.100/24"), "{addrs}");

    // T1 = 10 s: dhclient renews by unicast to the server (RENEWING: ciaddr set).
    let out = wait_output(&mut client, "a renewal", Duration::from_secs(25), |o| {
        o.contains("script: RENEW 10.77.0.100")
    });
    assert!(
        out.contains("DHCPREQUEST for 10.77.0.100 on eth0 to 10.77.0.1 port 67"),
        "the renewal is unicast to the server:\n{out}"
    );
    assert_eq!(out.matches("DHCPACK of 10.77.0.100").count(), 2, "{out}");
    drop(client);
    assert!(
        server.events.events().is_empty(),
        "dhclient is no boot client"
    );
    server.stop();
    let leases = Store::open(&lan.state_dir()).unwrap().load().unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].ip, FIRST);
    assert_eq!(leases[0].state, LeaseState::Bound);
}

#[test]
fn udhcpc_gets_a_lease_and_renews_on_sigusr1() {
    let lan = router_lan("udhc");
    let server = serve(&lan, pool(None));
    let script = client_script(&lan);
    let bin = require_tool("udhcpc");
    let mut client = lan
        .client()
        .spawn(
            "udhcpc",
            &[
                bin.to_str().unwrap(),
                "-f",
                "-i",
                "eth0",
                "-s",
                &script,
                "-t",
                "5",
                "-T",
                "1",
                "-A",
                "1",
            ],
        )
        .unwrap();
    wait_output(&mut client, "bound", Duration::from_secs(20), |o| {
        o.contains("script: bound 10.77.0.100")
    });
    let replied = server.stats.replied.load(Ordering::Relaxed);
    client.signal(nix::sys::signal::Signal::SIGUSR1 as i32);
    let out = wait_output(&mut client, "renew", Duration::from_secs(20), |o| {
        o.contains("script: renew 10.77.0.100")
    });
    // busybox: "sending renew to server 10.77.0.1" is the unicast RENEWING request.
    assert!(out.contains("sending renew to server 10.77.0.1"), "{out}");
    assert_eq!(
        out.matches("lease of 10.77.0.100 obtained from 10.77.0.1")
            .count(),
        2,
        "{out}"
    );
    assert!(
        server.stats.replied.load(Ordering::Relaxed) > replied,
        "the renewal was answered"
    );
    drop(client);
    server.stop();
}

#[test]
fn smoltcp_client_gets_a_lease_over_a_tap_device() {
    let lan = router_lan("smol");
    // In the client namespace: a bridge joining the veth and a TAP device for smoltcp.
    for argv in [
        &["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"][..],
        &["ip", "link", "add", "br0", "type", "bridge"],
        &["ip", "link", "set", "eth0", "master", "br0"],
        &["ip", "link", "set", "tap0", "master", "br0"],
        &["ip", "link", "set", "br0", "up"],
        &["ip", "link", "set", "tap0", "up"],
    ] {
        lan.client().run(argv).unwrap();
    }
    let server = serve(&lan, pool(None));
    let bin = example("smoltcp_dhcp_client");
    let mut client = lan
        .client()
        .spawn(
            "smoltcp",
            &[bin.to_str().unwrap(), "tap0", "02:00:00:00:00:42", "30"],
        )
        .unwrap();
    let status = client.wait_exit(Duration::from_secs(40)).unwrap();
    let out = client.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("address 10.77.0.100/24"), "{out}");
    assert!(out.contains("router 10.77.0.1"), "{out}");
    assert!(out.contains("server 10.77.0.1"), "{out}");
    server.stop();
    let leases = Store::open(&lan.state_dir()).unwrap().load().unwrap();
    assert!(
        leases
            .iter()
            .any(|l| l.ip == FIRST && l.mac == MacAddr([2, 0, 0, 0, 0, 0x42])),
        "{leases:?}"
    );
}

/// An example binary of this crate (`cargo test` builds them next to the test binaries).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples").join(name));
    match path {
        Some(p) if p.is_file() => p,
        other => panic!(
            "{other:?} missing: run `cargo build -p flakeboot-dhcp --examples` (cargo test does)"
        ),
    }
}

#[test]
fn a_restarted_server_keeps_every_clients_lease() {
    let lan = router_lan("rest");
    let server = serve(&lan, pool(None));
    let (one, two) = ("52:54:00:00:01:01", "52:54:00:00:01:02");
    let get = |mac: &str, lease_file: &str, label: &str| {
        lan.client()
            .run(&["ip", "link", "set", "eth0", "address", mac])
            .unwrap();
        let mut c = dhclient(&lan, label, &lan.path(lease_file), "/bin/true");
        let out = wait_output(&mut c, "bound", Duration::from_secs(30), |o| {
            o.contains("bound to")
        });
        drop(c);
        out
    };
    let out = get(one, "one.leases", "one");
    assert!(out.contains("bound to 10.77.0.100"), "{out}");
    let out = get(two, "two.leases", "two");
    assert!(out.contains("bound to 10.77.0.101"), "{out}");
    server.stop();

    let leases = Store::open(&lan.state_dir()).unwrap().load().unwrap();
    let mut seen: Vec<(Ipv4Addr, String)> =
        leases.iter().map(|l| (l.ip, l.mac.to_string())).collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (FIRST, one.to_owned()),
            (Ipv4Addr::new(10, 77, 0, 101), two.to_owned())
        ]
    );

    // After the restart: client two reboots (INIT-REBOOT, asking for .101 with no server id).
    // A server that forgot would stay silent, and a fresh DISCOVER would get .100.
    let server = serve(&lan, pool(None));
    let out = get(two, "two.leases", "two-again");
    assert!(out.contains("DHCPREQUEST for 10.77.0.101"), "{out}");
    assert!(
        !out.contains("DHCPDISCOVER"),
        "init-reboot was answered at once:\n{out}"
    );
    assert!(out.contains("bound to 10.77.0.101"), "{out}");
    // Client one starts from scratch (no lease file): its DISCOVER still gets its address.
    let out = get(one, "one-fresh.leases", "one-again");
    assert!(out.contains("DHCPDISCOVER"), "{out}");
    assert!(out.contains("bound to 10.77.0.100"), "{out}");
    server.stop();
}

#[test]
fn perfdhcp_completes_every_dora_exchange() {
    let lan = router_lan("perf");
    lan.client()
        .run(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"])
        .unwrap();
    let server = serve(&lan, pool(None));
    let bin = require_tool("perfdhcp");
    // 200 DORA exchanges at 100/s from 50 simulated clients, relayed by perfdhcp itself
    // (giaddr 10.77.0.2, replies to its port 67).
    let mut perf = lan
        .client()
        .spawn(
            "perfdhcp",
            &[
                bin.to_str().unwrap(),
                "-4",
                "-l",
                "eth0",
                "-r",
                "100",
                "-R",
                "50",
                "-n",
                "200",
                "-W",
                "2000000",
            ],
        )
        .unwrap();
    let status = perf.wait_exit(Duration::from_secs(60)).unwrap();
    let out = perf.output();
    eprintln!("{out}");
    assert!(status.success(), "perfdhcp exit {status}:\n{out}");
    let drops: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("drops:"))
        .collect();
    assert_eq!(drops.len(), 2, "DO and RA sections:\n{out}");
    assert!(drops.iter().all(|l| l.trim() == "drops: 0"), "{out}");
    let received: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("received packets:"))
        .collect();
    assert!(
        received.iter().all(|l| l.trim() == "received packets: 200"),
        "{out}"
    );
    assert_eq!(server.stats.malformed.load(Ordering::Relaxed), 0);
    server.stop();
    let leases = Store::open(&lan.state_dir()).unwrap().load().unwrap();
    assert_eq!(leases.len(), 50, "one lease per simulated client");
}

/// The IPv6 link-local address of `dev` is usable (DAD done).
fn wait_link_local(ns: &Netns, dev: &str) {
    let start = Instant::now();
    loop {
        let out = ns
            .run(&["ip", "-6", "addr", "show", "dev", dev, "scope", "link"])
            .unwrap();
        if out.contains("fe80::") && !out.contains("tentative") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no link-local on {dev}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_slaac(ns: &Netns, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = ns
            .run(&["ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"])
            .unwrap();
        if out.contains("inet6 fd77::") {
            return out;
        }
        assert!(
            start.elapsed() < timeout,
            "no fd77:: address on eth0 after {timeout:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn router_advertisements_autoconfigure_the_clients_and_answer_solicitations() {
    let lan = router_lan("radv");
    wait_link_local(&lan.server, "lan0");
    wait_link_local(lan.client(), "eth0");
    // An hour between unsolicited RAs: anything after the first one is a solicited RA.
    let ra = RaConfig {
        prefix: "fd77::".parse::<Ipv6Addr>().unwrap(),
        interval: Duration::from_secs(3600),
    };
    let server = serve(&lan, pool(Some(ra)));
    let addr = wait_slaac(lan.client(), Duration::from_secs(10));
    assert!(addr.contains("/64"), "{addr}");
    // Router lifetime 0: the prefix is on-link, but flakeboot is no default router.
    let routes = lan
        .client()
        .run(&["ip", "-6", "route", "show", "default"])
        .unwrap();
    assert!(routes.trim().is_empty(), "{routes}");
    let onlink = lan
        .client()
        .run(&["ip", "-6", "route", "show", "fd77::/64"])
        .unwrap();
    assert!(onlink.contains("fd77::/64 dev eth0"), "{onlink}");

    // Link down drops the autoconfigured address; link up sends a Router Solicitation, and
    // only a solicited RA can bring the address back this soon.
    lan.client()
        .run(&["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let gone = lan
        .client()
        .run(&["ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"])
        .unwrap();
    assert!(!gone.contains("fd77::"), "{gone}");
    let start = Instant::now();
    lan.client()
        .run(&["ip", "link", "set", "eth0", "up"])
        .unwrap();
    wait_slaac(lan.client(), Duration::from_secs(10));
    eprintln!("address back {:?} after link up", start.elapsed());
    server.stop();
}
