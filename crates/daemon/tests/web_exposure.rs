//! The management plane through the real daemon: HTTPS only, only on the LAN address, the
//! plain-HTTP port redirects, the first-run setup code is printed for whoever is at the box.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use flakeboot_testbed::require_tool;

#[test]
fn web_ui_is_https_only_and_only_on_the_lan_address() {
    require_tool("curl");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    // A second interface of the appliance that is not its LAN port (say, the WAN side).
    lan.server
        .run(&[
            "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1",
        ])
        .unwrap();
    lan.server.addr("wan0", "192.0.2.1/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"off\"");
    let mut daemon = lan.start(&config);

    // HTTPS on the LAN address answers (self-signed: -k), and leads to the first-run setup.
    let code = lan
        .client()
        .run(&[
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "https://10.77.0.1/",
        ])
        .unwrap();
    assert!(code.starts_with("303") || code.starts_with("302"), "{code}");
    assert!(code.contains("/setup"), "{code}");

    // Plain HTTP only redirects the UI to HTTPS; boot paths still work.
    let redirect = lan
        .client()
        .run(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "http://10.77.0.1/",
        ])
        .unwrap();
    assert!(redirect.starts_with("https://10.77.0.1"), "{redirect}");
    let script = lan
        .client()
        .run(&["curl", "-sf", "http://10.77.0.1/boot.ipxe"])
        .unwrap();
    assert!(script.starts_with("#!ipxe"), "{script}");

    // Nothing answers on the other interface's address or on loopback.
    for url in ["https://192.0.2.1/", "https://127.0.0.1/"] {
        let result = lan
            .server
            .run(&["curl", "-sk", "--max-time", "3", "-o", "/dev/null", url]);
        assert!(result.is_err(), "the management plane answered on {url}");
    }

    // The one-time setup code is printed (log and console) for whoever is at the appliance.
    let log = daemon.output();
    assert!(log.contains("setup code"), "{log}");
    daemon.stop();
}
