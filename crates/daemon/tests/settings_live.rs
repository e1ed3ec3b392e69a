//! Settings saved through the real HTTPS API take effect in the running daemon (same PID, no
//! restart) and persist in the store: a new DHCP range, router -> proxy, the boot menu, a new
//! LAN port (boot services and the management UI move to it; a saved port gone at the next
//! start falls back to the file's). Settings that would break a boot (a LAN port that does not
//! exist, a range outside its subnet, a menu default naming no host, kernel parameters iPXE
//! cannot carry) are refused with field errors by the API and the forms, and change nothing.
//! Real clients: busybox udhcpc, a PXE DISCOVER, curl (HTTP, HTTPS, TFTP).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::dhcp_clients::{OFFER, pxe_discover, pxe_discover_on, set_mac, udhcpc};
use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::{Proc, veth};
use serde_json::json;

const RANGE_A: [&str; 2] = ["10.77.0.100", "10.77.0.120"];
const RANGE_B: [&str; 2] = ["10.77.0.200", "10.77.0.220"];

/// The daemon in router mode (range A), started from the config file it returns.
fn start_router(lan: &Lan) -> (std::path::PathBuf, Proc) {
    let config = lan.write_config(&format!(
        "[dhcp]\nmode = \"router\"\nrange = [\"{}\", \"{}\"]\nlease_time = \"10m\"",
        RANGE_A[0], RANGE_A[1]
    ));
    let daemon = lan.start(&config);
    (config, daemon)
}

fn in_range(ip: Ipv4Addr, [first, last]: [&str; 2]) -> bool {
    let (first, last): (Ipv4Addr, Ipv4Addr) = (first.parse().unwrap(), last.parse().unwrap());
    (u32::from(first)..=u32::from(last)).contains(&u32::from(ip))
}

/// The admin's laptop on the LAN (10.77.0.50) sets the appliance up (DHCP `dhcp_mode`) and takes
/// an API token; curl does not check the certificate (the LAN address moves in one test).
fn admin<'a>(lan: &'a Lan, daemon: &Proc, dhcp_mode: &str) -> Admin<'a> {
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let curl = Curl::new(lan.client(), None, lan.path("cookies.txt"));
    Admin::set_up(
        curl,
        &format!("https://{SERVER_IP}"),
        &|| daemon.output(),
        "lan0",
        dhcp_mode,
    )
}

/// Waits until `needle` appears `count` times in the daemon's log (a restart announced).
fn wait_count(daemon: &Proc, needle: &str, count: usize) {
    let start = Instant::now();
    while daemon.output().matches(needle).count() < count {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{needle:?} did not appear {count} times:\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon is the one started at first: still running, started once.
fn assert_same_daemon(daemon: &mut Proc, pid: u32) {
    assert_eq!(daemon.pid(), pid);
    assert!(
        daemon.wait_exit(Duration::ZERO).is_err(),
        "the daemon exited:\n{}",
        daemon.tail(30)
    );
    assert_eq!(daemon.output().matches("starting flakeboot").count(), 1);
}

#[test]
fn a_new_range_applies_without_a_restart_and_survives_one() {
    let lan = Lan::new();
    let (config, mut daemon) = start_router(&lan);
    let pid = daemon.pid();
    let admin = admin(&lan, &daemon, "router");

    let first = udhcpc(lan.client()).expect("no lease in range A");
    assert!(in_range(first, RANGE_A), "{first}");

    let started = Instant::now();
    let saved = admin.change_settings(|s| s["dhcp_ranges"] = json!([RANGE_B]));
    assert_eq!(saved["dhcp_ranges"], json!([RANGE_B]));
    wait_count(&daemon, "DHCP listening", 2);
    eprintln!("DHCP restarted {:?} after the PUT", started.elapsed());

    // A new machine gets an address in the new range from the same daemon.
    set_mac(lan.client(), "52:54:00:00:0b:01");
    let second = udhcpc(lan.client()).expect("no lease in range B");
    assert!(in_range(second, RANGE_B), "{second}");
    assert_same_daemon(&mut daemon, pid);
    let (name, state, _) = admin.service("DHCP");
    assert_eq!(
        (name.as_str(), state.as_str()),
        ("DHCP (router)", "running")
    );

    // The settings are in the store: a restarted daemon (same config file, which still says
    // range A) hands out range B.
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));
    let mut daemon = lan.start(&config);
    set_mac(lan.client(), "52:54:00:00:0b:02");
    let third = udhcpc(lan.client()).expect("no lease after the restart");
    assert!(in_range(third, RANGE_B), "{third}");
    daemon.stop();
}

#[test]
fn router_to_proxy_and_the_menu_apply_live() {
    let lan = Lan::new();
    let (_, mut daemon) = start_router(&lan);
    let pid = daemon.pid();
    let admin = admin(&lan, &daemon, "router");
    let pxe_mac = [0x52, 0x54, 0, 0, 0x0c, 1];

    // Router mode: a PXE client gets an address with its boot offer.
    let offer = pxe_discover(lan.client(), pxe_mac).expect("no offer in router mode");
    assert_eq!(offer.message_type, OFFER);
    assert!(in_range(offer.yiaddr, RANGE_A), "{offer:?}");

    // Router -> proxy through the API.
    admin.change_settings(|s| s["dhcp_mode"] = json!("proxy"));
    wait_count(&daemon, "DHCP listening", 2);
    // A plain client gets nothing (the LAN's own DHCP server would answer it)...
    set_mac(lan.client(), "52:54:00:00:0c:02");
    assert_eq!(
        udhcpc(lan.client()),
        None,
        "a plain client got a lease in proxy mode"
    );
    // ...a PXE client gets a proxy offer: boot information, no address.
    let offer = pxe_discover(lan.client(), pxe_mac).expect("no proxy offer");
    assert_eq!(offer.message_type, OFFER);
    assert_eq!(offer.yiaddr, Ipv4Addr::UNSPECIFIED, "{offer:?}");
    assert_eq!(
        offer.vendor_class.as_deref(),
        Some("PXEClient"),
        "{offer:?}"
    );
    assert_eq!(offer.siaddr, SERVER_IP.parse::<Ipv4Addr>().unwrap());
    let status = admin.status();
    assert_eq!(status["dhcp_mode"], "proxy", "{status}");
    // The nix store's disk, measured by the daemon ([nix] gc is off outside the image).
    let disk = &status["storage"];
    let (free, total) = (disk["free_bytes"].as_u64(), disk["total_bytes"].as_u64());
    assert!(
        matches!((free, total), (Some(f), Some(t)) if t > 0 && f <= t),
        "{status}"
    );
    assert_eq!(disk["gc"], false, "{status}");
    let (name, state, detail) = admin.service("DHCP");
    assert_eq!(
        (name.as_str(), state.as_str(), detail.as_str()),
        ("DHCP (proxy)", "running", "lan0")
    );

    // The menu's timeout and default: the next fetch of the menu has them.
    let menu = || {
        lan.client()
            .run(&["curl", "-sSf", &format!("http://{SERVER_IP}/boot.ipxe")])
            .unwrap()
    };
    let before = menu();
    assert!(
        before.contains("choose --timeout 10000 --default boot-demo"),
        "{before}"
    );
    admin.change_settings(|s| {
        s["menu_timeout_secs"] = json!(3);
        s["menu_default"] = json!("local");
    });
    let start = Instant::now();
    let mut after = menu();
    while after == before && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        after = menu();
    }
    assert!(
        after.contains("choose --timeout 3000 --default local"),
        "{after}"
    );
    assert_same_daemon(&mut daemon, pid);
    daemon.stop();
}

#[test]
fn a_new_lan_port_moves_the_boot_services() {
    let lan = Lan::new();
    // A second port of the appliance, with a machine behind it.
    veth(&lan.server, "lan1", lan.client(), "eth1").unwrap();
    lan.server.addr("lan1", "10.78.0.1/24").unwrap();
    lan.client().addr("eth1", "10.78.0.50/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"proxy\"");
    let mut daemon = lan.start(&config);
    let pid = daemon.pid();
    let mut admin = admin(&lan, &daemon, "proxy");
    let fetch = |ip: &str| {
        lan.client().run(&[
            "curl",
            "-sSf",
            "--max-time",
            "3",
            &format!("http://{ip}/boot.ipxe"),
        ])
    };
    let before = fetch(SERVER_IP).unwrap();
    assert!(before.starts_with("#!ipxe"));
    assert!(
        before.contains(" flakeboot.server=http://10.77.0.1 "),
        "{before}"
    );
    assert!(
        fetch("10.78.0.1").is_err(),
        "HTTP boot answered on lan1 already"
    );

    let started = Instant::now();
    admin.change_settings(|s| s["lan_interface"] = json!("lan1"));
    wait_count(&daemon, "DHCP listening", 2);
    eprintln!("boot services moved {:?} after the PUT", started.elapsed());

    // HTTP boot now serves on lan1's address, with URLs of that address, and no longer on lan0.
    let script = fetch("10.78.0.1").unwrap();
    assert!(script.contains("http://10.78.0.1/boot/demo/"), "{script}");
    // Command lines name the boot server at its new address (the catalogue is rebuilt just
    // after the services move: allow it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut script = script;
    while !script.contains(" flakeboot.server=http://10.78.0.1 ") {
        assert!(Instant::now() < deadline, "{script}");
        std::thread::sleep(Duration::from_millis(100));
        script = fetch("10.78.0.1").unwrap();
    }
    assert!(
        !script.contains("flakeboot.server=http://10.77.0.1"),
        "{script}"
    );
    assert!(fetch(SERVER_IP).is_err(), "HTTP boot still answers on lan0");
    // DHCP answers PXE clients on lan1 (pointing them at lan1's address), not on lan0.
    let mac = [0x52, 0x54, 0, 0, 0x0d, 1];
    let offer = pxe_discover_on(lan.client(), "eth1", mac).expect("no proxy offer on lan1");
    assert_eq!(offer.siaddr, Ipv4Addr::new(10, 78, 0, 1), "{offer:?}");
    assert_eq!(
        pxe_discover(lan.client(), mac),
        None,
        "DHCP still answers on lan0"
    );
    // TFTP too.
    let tftp = lan.client().run(&[
        "curl",
        "-sS",
        "--max-time",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "tftp://10.78.0.1/undionly.kpxe",
    ]);
    let size = std::fs::metadata("/usr/lib/ipxe/undionly.kpxe")
        .unwrap()
        .len();
    assert_eq!(tftp.unwrap(), size.to_string(), "TFTP on lan1");
    // The management UI and API follow the LAN port; the dashboard says where everything is.
    let start = Instant::now();
    while !admin.answers_at("10.78.0.1") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the web UI did not move to lan1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !admin.answers_at(SERVER_IP),
        "the web UI still answers on lan0"
    );
    admin.set_server("10.78.0.1");
    let (_, state, detail) = admin.service("Web UI");
    assert_eq!(
        (state.as_str(), detail.as_str()),
        ("running", "https://10.78.0.1")
    );
    let (_, state, detail) = admin.service("HTTP boot");
    assert_eq!(
        (state.as_str(), detail.as_str()),
        ("running", "http://10.78.0.1")
    );
    let (name, _, detail) = admin.service("DHCP");
    assert_eq!((name.as_str(), detail.as_str()), ("DHCP (proxy)", "lan1"));
    assert_same_daemon(&mut daemon, pid);
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));

    // The saved port is gone at the next start (an unplugged adapter): the daemon serves on
    // the config file's port and says why on the dashboard.
    lan.server.run(&["ip", "link", "del", "lan1"]).unwrap();
    let mut daemon = lan.start(&config);
    admin.set_server(SERVER_IP);
    let start = Instant::now();
    while !admin.answers_at(SERVER_IP) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            daemon.tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let warnings = admin.status()["warnings"].to_string();
    assert!(
        warnings.contains("lan1") && warnings.contains("lan0"),
        "{warnings}"
    );
    assert!(fetch(SERVER_IP).unwrap().starts_with("#!ipxe"));
    daemon.stop();
}

#[test]
fn settings_that_would_break_a_boot_are_refused_with_field_errors() {
    let lan = Lan::new();
    let (_, mut daemon) = start_router(&lan);
    let pid = daemon.pid();
    let admin = admin(&lan, &daemon, "router");
    let (code, before) = admin.api("GET", "/api/v1/settings", None);
    assert_eq!(code, 200, "{before}");
    let script = || {
        lan.client()
            .run(&["curl", "-sSf", &format!("http://{SERVER_IP}/boot.ipxe")])
            .unwrap()
    };
    let script_before = script();

    // The JSON API: 422 with every problem as {field, message}.
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut s = before.clone();
        edit(&mut s);
        let (code, body) = admin.api("PUT", "/api/v1/settings", Some(&s));
        assert_eq!(code, 422, "{body}");
        body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no error list: {body}"))
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let e = refused(&|s| s["dhcp_ranges"] = json!([["10.78.0.100", "10.78.0.200"]]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "dhcp_ranges");
    assert!(
        e[0].1
            .contains("not inside the LAN's subnet 10.77.0.0/24 (lan0's address 10.77.0.1/24)"),
        "{e:?}"
    );
    let e = refused(&|s| s["dhcp_ranges"] = json!([["10.77.0.200", "10.77.0.100"]]));
    assert_eq!(e[0].0, "dhcp_ranges");
    assert!(e[0].1.contains("backwards"), "{e:?}");
    let e = refused(&|s| s["menu_default"] = json!("ghost"));
    assert_eq!(e[0].0, "menu_default");
    assert!(e[0].1.contains("\"ghost\" names no host"), "{e:?}");
    // A port this machine does not have (the kernel says so, over netlink).
    let e = refused(&|s| s["lan_interface"] = json!("nosuch0"));
    assert_eq!(e[0].0, "lan_interface");
    assert!(
        e[0].1.contains("\"nosuch0\" does not exist") && e[0].1.contains("lan0"),
        "{e:?}"
    );
    // A machine's kernel parameters that would end iPXE's `kernel` command.
    let (code, body) = admin.api(
        "POST",
        &format!("/api/v1/machines/{CLIENT_MAC}"),
        Some(&json!({"kernel_params": "quiet || shell", "hostname": "node_1"})),
    );
    assert_eq!(code, 422, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["hostname", "kernel_params"], "{body}");

    // The UI's form: the page again (422), the message next to the field.
    let (code, page) = admin.post_settings_form(
        "/settings/network",
        &[
            ("lan_interface", "lan0"),
            ("dhcp_mode", "router"),
            ("dhcp_ranges", "10.78.0.100-10.78.0.200"),
            ("reservations", ""),
        ],
    );
    assert_eq!(code, 422, "{page}");
    let near = page
        .split(r#"id="dhcp_ranges""#)
        .nth(1)
        .and_then(|rest| rest.split("<label").next())
        .unwrap_or_default();
    assert!(
        near.contains("field-error") && near.contains("not inside the LAN's subnet"),
        "{page}"
    );

    // Nothing changed: the settings, the running DHCP server (never restarted), the script.
    assert_eq!(admin.api("GET", "/api/v1/settings", None).1, before);
    assert_eq!(daemon.output().matches("DHCP listening").count(), 1);
    assert_eq!(script(), script_before);
    assert_same_daemon(&mut daemon, pid);
    daemon.stop();
}
