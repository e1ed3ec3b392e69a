//! A static WAN through netlink in a namespace this test creates: the address and the default
//! route are added (once: the second add reports it was there), `ip` sees them, and they go.

// Test code: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::Ipv4Addr;

use flakeboot_netif::{
    add_default_route, add_ipv4, default_gateway, del_default_route, del_ipv4, interface,
};
use flakeboot_testbed::{Netns, require_root};

#[test]
fn address_and_default_route_are_added_and_removed() {
    require_root();
    let ns = Netns::new("netifwan").unwrap();
    ns.run(&[
        "ip", "link", "add", "w0", "type", "veth", "peer", "name", "w1",
    ])
    .unwrap();
    ns.run(&["ip", "link", "set", "w0", "up"]).unwrap();
    ns.run(&["ip", "link", "set", "w1", "up"]).unwrap();
    let address = Ipv4Addr::new(203, 0, 113, 2);
    let gateway = Ipv4Addr::new(203, 0, 113, 1);
    let (first, second, route, route_again) = ns
        .thread(move || {
            let index = interface("w0").unwrap().unwrap().index;
            let first = add_ipv4(index, address, 24).unwrap();
            let second = add_ipv4(index, address, 24).unwrap();
            let route = add_default_route(index, gateway).unwrap();
            let route_again = add_default_route(index, gateway).unwrap();
            assert_eq!(default_gateway(index).unwrap(), Some(gateway));
            (first, second, route, route_again)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(first && !second && route && !route_again);
    let addrs = ns.run(&["ip", "-4", "addr", "show", "dev", "w0"]).unwrap();
    assert!(addrs.contains("203.0.113.2/24"), "{addrs}");
    let routes = ns.run(&["ip", "-4", "route", "show", "default"]).unwrap();
    assert!(
        routes.contains("default via 203.0.113.1 dev w0"),
        "{routes}"
    );

    ns.thread(move || {
        let index = interface("w0").unwrap().unwrap().index;
        del_default_route(index, gateway).unwrap();
        assert_eq!(default_gateway(index).unwrap(), None);
        del_ipv4(index, address, 24).unwrap();
        // Gone: removing again is the kernel's error, said with what was asked.
        let err = del_ipv4(index, address, 24).unwrap_err().to_string();
        assert!(err.contains("remove 203.0.113.2/24"), "{err}");
    })
    .unwrap()
    .join()
    .unwrap();
    let routes = ns.run(&["ip", "-4", "route", "show", "default"]).unwrap();
    assert!(routes.trim().is_empty(), "{routes}");
    let addrs = ns.run(&["ip", "-4", "addr", "show", "dev", "w0"]).unwrap();
    assert!(!addrs.contains("203.0.113.2"), "{addrs}");
}
