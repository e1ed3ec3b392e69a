//! The listing in a namespace this test creates: a veth pair with a known MAC, MTU and
//! addresses, read from a thread inside the namespace (whose `/sys` is still the host's).

// Test code: a failed step panics with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use flakeboot_netif::{IfAddr, Interface, interface, interfaces};
use flakeboot_testbed::{Netns, require_root};

fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    ns.thread(f).unwrap().join().unwrap()
}

fn get(ns: &Netns, name: &'static str) -> Interface {
    in_ns(ns, move || interface(name))
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not listed"))
}

#[test]
fn veth_pair_in_a_fresh_namespace() {
    require_root();
    let ns = Netns::new("netif").unwrap();
    ns.run(&[
        "ip", "link", "add", "nv0", "type", "veth", "peer", "name", "nv1",
    ])
    .unwrap();
    ns.run(&[
        "ip",
        "link",
        "set",
        "nv0",
        "address",
        "02:fb:00:00:00:01",
        "mtu",
        "1400",
    ])
    .unwrap();
    ns.run(&["ip", "addr", "add", "10.80.0.1/24", "dev", "nv0"])
        .unwrap();
    ns.run(&["ip", "addr", "add", "10.80.1.1/16", "dev", "nv0"])
        .unwrap();
    ns.run(&["ip", "addr", "add", "fd00:80::1/64", "dev", "nv0", "nodad"])
        .unwrap();
    ns.run(&["ip", "link", "set", "nv0", "up"]).unwrap();

    // Only the namespace's interfaces, none of the host's.
    let all = in_ns(&ns, interfaces).unwrap();
    let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["lo", "nv0", "nv1"], "{all:#?}");

    let nv0 = get(&ns, "nv0");
    // `ip netns exec` mounts a /sys of the namespace: the reference for the index.
    let index: u32 = ns
        .run(&["cat", "/sys/class/net/nv0/ifindex"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(nv0.index, index);
    assert_eq!(nv0.mac, Some([0x02, 0xfb, 0, 0, 0, 1]));
    assert_eq!(nv0.mtu, 1400);
    // Up, but its peer is down: no carrier.
    assert!(nv0.up);
    assert!(!nv0.running);
    assert_eq!(
        nv0.ipv4().collect::<Vec<_>>(),
        [
            (Ipv4Addr::new(10, 80, 0, 1), Ipv4Addr::new(255, 255, 255, 0)),
            (Ipv4Addr::new(10, 80, 1, 1), Ipv4Addr::new(255, 255, 0, 0)),
        ]
    );
    assert!(
        nv0.addresses.contains(&IfAddr {
            address: IpAddr::V6("fd00:80::1".parse().unwrap()),
            prefix_len: 64,
        }),
        "{nv0:#?}"
    );

    let nv1 = get(&ns, "nv1");
    assert!(!nv1.up && !nv1.running);
    assert_eq!(nv1.mtu, 1500);
    assert!(nv1.mac.is_some());
    assert!(nv1.ipv4().next().is_none());

    let lo = get(&ns, "lo");
    assert!(lo.up);
    assert_eq!(lo.mac, Some([0; 6]));
    assert_eq!(
        lo.ipv4().collect::<Vec<_>>(),
        [(Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0))]
    );

    // Both ends up: carrier. The kernel reports it asynchronously (its link watch runs up to a
    // second later, longer on a busy machine), so wait for it.
    ns.run(&["ip", "link", "set", "nv1", "up"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&ns, "nv0").running {
        assert!(
            Instant::now() < deadline,
            "nv0 has no carrier 10 s after nv1 came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(in_ns(&ns, || interface("eth-none")).unwrap(), None);
}

#[test]
fn many_interfaces_span_several_datagrams() {
    require_root();
    let ns = Netns::new("netifmany").unwrap();
    // Enough links and addresses that a dump needs more than one datagram (veth: this
    // kernel may have no dummy module).
    for n in 0..32 {
        let (a, b) = (format!("a{n}"), format!("b{n}"));
        ns.run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])
            .unwrap();
        ns.run(&["ip", "addr", "add", &format!("10.81.{n}.1/24"), "dev", &a])
            .unwrap();
    }
    let all = in_ns(&ns, interfaces).unwrap();
    assert_eq!(all.len(), 65, "lo and 32 veth pairs");
    for n in 0..32 {
        let name = format!("a{n}");
        let a = all.iter().find(|i| i.name == name).unwrap();
        assert_eq!(
            a.ipv4().collect::<Vec<_>>(),
            [(Ipv4Addr::new(10, 81, n, 1), Ipv4Addr::new(255, 255, 255, 0))]
        );
    }
}

/// The pre-flight tap: made in a namespace this test creates, listed with its address and up,
/// and gone once dropped; a bad name is refused before anything is made.
#[test]
fn a_tap_is_made_addressed_brought_up_and_removed() {
    require_root();
    let ns = Netns::new("netif-tap").unwrap();
    let listed = in_ns(&ns, || {
        let tap =
            flakeboot_netif::Tap::create("fbpf0", Ipv4Addr::new(198, 18, 227, 1), 30).unwrap();
        let seen = interface("fbpf0").unwrap().unwrap();
        assert_eq!(seen.index, tap.index());
        drop(tap);
        (seen, interface("fbpf0").unwrap())
    });
    let (seen, after) = listed;
    assert!(seen.up, "{seen:?}");
    assert!(
        seen.addresses
            .iter()
            .any(|a| a.address == IpAddr::V4(Ipv4Addr::new(198, 18, 227, 1)) && a.prefix_len == 30),
        "{seen:?}"
    );
    assert_eq!(after, None, "the tap is still there after drop");
    let err = in_ns(&ns, || {
        flakeboot_netif::Tap::create("bad name; rm", Ipv4Addr::new(198, 18, 227, 1), 30)
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("is not a tap name"), "{err}");
}
