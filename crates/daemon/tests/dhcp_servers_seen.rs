//! The LAN's other DHCP servers through the real daemon: a rogue dnsmasq appears on the test
//! LAN, `flakeboot lan dhcp-servers --json` lists it with what it offers and the dashboard's
//! warnings follow; while it answers, switching to router mode needs a confirmation (first-run
//! setup's checkbox, the API's `409` and `?confirm=router`, the settings form's checkbox); after it stops it is gone once
//! the (short, configured) expiry has passed.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl, PASSWORD, input_value};
use flakeboot_hil_tests::wait_for_setup_code;
use flakeboot_testbed::{Proc, require_tool};
use serde_json::{Value, json};

const ROGUE_IP: &str = "10.77.0.2";

/// `flakeboot lan dhcp-servers --json` over the API socket.
fn servers(lan: &Lan) -> Vec<Value> {
    let out = lan
        .server
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["lan", "dhcp-servers", "--json", "--state-dir"])
        .arg(lan.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The dashboard's warnings (GET /api/v1/status over the API socket).
fn warnings(lan: &Lan) -> Vec<String> {
    let socket = lan.state_dir().join("api.sock");
    let out = std::process::Command::new("curl")
        .args(["-sf", "--unix-socket"])
        .arg(&socket)
        .arg("http://appliance/api/v1/status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// dnsmasq on the client side's `eth0` (10.77.0.2), DHCP only, with `dhcp` arguments.
fn dnsmasq(lan: &Lan, label: &str, dhcp: &[&str]) -> Proc {
    let leases = lan.path(&format!("{label}.leases"));
    let mut argv = vec![
        "dnsmasq".to_owned(),
        "--no-daemon".into(),
        "--conf-file=/dev/null".into(),
        "--port=0".into(),
        "--user=root".into(),
        "--interface=eth0".into(),
        "--bind-interfaces".into(),
        "--no-ping".into(),
        "--log-dhcp".into(),
        format!("--dhcp-leasefile={}", leases.display()),
    ];
    argv.extend(dhcp.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lan.client().spawn(label, &argv).unwrap()
}

fn config(lan: &Lan, mode: &str) -> std::path::PathBuf {
    lan.write_config(&format!(
        "[dhcp]\nmode = \"{mode}\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\n\
         probe_interval = \"2s\"\nserver_expiry = \"8s\""
    ))
}

/// A test LAN whose client side also holds the address the rogue servers answer from.
fn lan_with_the_rogue_address() -> Lan {
    let lan = Lan::new();
    lan.client()
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{ROGUE_IP}/24"),
            "dev",
            "eth0",
        ])
        .unwrap();
    lan
}

/// First-run setup choosing router mode while the rogue server answers: refused (422, setup not
/// done) with the server named and a box to tick; nothing is saved.
fn setup_asks_before_router_mode(curl: &Curl, daemon: &Proc) {
    let base = format!("https://{SERVER_IP}");
    wait_until("the web UI", Duration::from_secs(10), || {
        curl.answers(&format!("{base}/login"), 3).then_some(())
    });
    let page = curl.ok(&["--fail-with-body", &format!("{base}/setup")]);
    let form = input_value(&page, "form");
    let code = wait_for_setup_code(|| daemon.output(), Duration::from_secs(10)).unwrap();
    let mut argv = vec!["-w".to_owned(), "\n%{http_code}".to_owned()];
    for field in [
        format!("form={form}"),
        format!("code={code}"),
        format!("password={PASSWORD}"),
        format!("confirm={PASSWORD}"),
        "lan_interface=lan0".to_owned(),
        "dhcp_mode=router".to_owned(),
    ] {
        argv.extend(["--data-urlencode".to_owned(), field]);
    }
    argv.push(format!("{base}/setup"));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = curl.ok(&argv);
    assert!(out.ends_with("\n422"), "{out}");
    assert!(
        out.contains("Use router mode anyway") && out.contains(&format!("({ROGUE_IP})")),
        "{out}"
    );
}

/// While the rogue full server answers: router mode through the API is `409` naming it and
/// changes nothing, and is saved with `?confirm=router`; the settings form asks (its page keeps
/// router mode chosen and shows the checkbox) and saves with the box ticked. Ends in proxy mode.
fn router_switch_needs_a_confirmation(lan: &Lan, daemon: &Proc) {
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let curl = Curl::new(lan.client(), None, lan.path("cookies.txt"));
    setup_asks_before_router_mode(&curl, daemon);
    let admin = Admin::set_up(
        curl,
        &format!("https://{SERVER_IP}"),
        &|| daemon.output(),
        "lan0",
        "proxy",
    );
    let (code, mut settings) = admin.api("GET", "/api/v1/settings", None);
    assert_eq!(code, 200, "{settings}");
    settings["dhcp_mode"] = json!("router");
    let (code, refused) = admin.api("PUT", "/api/v1/settings", Some(&settings));
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["fields"]["dhcp_mode"]
            .as_str()
            .is_some_and(|m| m.contains(ROGUE_IP) && m.contains("confirm")),
        "{refused}"
    );
    assert_eq!(refused["dhcp_servers"][0]["address"], ROGUE_IP, "{refused}");
    let mode = || admin.api("GET", "/api/v1/settings", None).1["dhcp_mode"].clone();
    assert_eq!(mode(), "proxy");
    let (code, saved) = admin.api("PUT", "/api/v1/settings?confirm=router", Some(&settings));
    assert_eq!(code, 200, "{saved}");
    assert_eq!(mode(), "router");
    wait_until("the two-servers warning", Duration::from_secs(15), || {
        warnings(lan)
            .iter()
            .any(|w| w.starts_with("two DHCP servers"))
            .then_some(())
    });
    // Leaving router mode needs no confirmation.
    settings["dhcp_mode"] = json!("proxy");
    let (code, saved) = admin.api("PUT", "/api/v1/settings", Some(&settings));
    assert_eq!(code, 200, "{saved}");

    let form = |confirm: &str| {
        let mut fields = vec![
            ("lan_interface", "lan0"),
            ("dhcp_mode", "router"),
            ("dhcp_ranges", "10.77.0.100-10.77.0.120"),
            ("reservations", ""),
        ];
        if !confirm.is_empty() {
            fields.push(("confirm_router", confirm));
        }
        admin.post_settings_form("/settings/network", &fields)
    };
    let (code, page) = form("");
    assert_eq!(code, 422, "{page}");
    assert!(page.contains("Switch to router mode anyway"), "{page}");
    assert!(page.contains(&format!("({ROGUE_IP})")), "{page}");
    assert!(
        page.contains(r#"value="router" checked"#),
        "router mode stays chosen: {page}"
    );
    assert_eq!(mode(), "proxy");
    let (code, page) = form("yes");
    assert_eq!(code, 303, "{page}");
    assert_eq!(mode(), "router");
    settings["dhcp_mode"] = json!("proxy");
    let (code, saved) = admin.api("PUT", "/api/v1/settings", Some(&settings));
    assert_eq!(code, 200, "{saved}");
}

#[test]
fn a_rogue_full_server_is_listed_warned_of_and_forgotten() {
    require_tool("dnsmasq");
    let lan = lan_with_the_rogue_address();
    let mut daemon = lan.start(&config(&lan, "proxy"));

    // Proxy mode and no full server: machines get no address.
    wait_until("the no-address warning", Duration::from_secs(30), || {
        warnings(&lan)
            .iter()
            .any(|w| w.contains("machines get no address"))
            .then_some(())
    });
    assert!(servers(&lan).is_empty());

    let mut rogue = dnsmasq(
        &lan,
        "rogue-full",
        &[
            "--dhcp-range=10.77.0.150,10.77.0.160,255.255.255.0,2m",
            "--dhcp-option=3,10.77.0.254",
        ],
    );
    let seen = wait_until(
        "the rogue server in the list",
        Duration::from_secs(60),
        || {
            servers(&lan)
                .into_iter()
                .find(|s| s["address"] == ROGUE_IP && s["mac"].is_string())
        },
    );
    assert_eq!(seen["kind"], "full", "{seen}");
    assert_eq!(seen["router"], "10.77.0.254", "{seen}");
    assert_eq!(seen["mac"], CLIENT_MAC, "{seen}");
    let range = seen["range_seen"].as_array().unwrap();
    for ip in range {
        let last: u8 = ip
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((150..=160).contains(&last), "{seen}");
    }
    assert!(seen["first_seen"].is_string() && seen["last_seen"].is_string());
    wait_until(
        "the no-address warning to go",
        Duration::from_secs(10),
        || {
            (!warnings(&lan)
                .iter()
                .any(|w| w.contains("machines get no address")))
            .then_some(())
        },
    );
    // The appliance's own proxy replies are not listed, and its probe made no machine.
    assert_eq!(servers(&lan).len(), 1, "{:?}", servers(&lan));
    // The table as the CLI prints it.
    let out = lan
        .server
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["lan", "dhcp-servers", "--state-dir"])
        .arg(lan.state_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10.77.0.2 ") && text.contains("kind=full"),
        "{text}"
    );

    router_switch_needs_a_confirmation(&lan, &daemon);

    // It stops: gone after the expiry (8 s), the warning is back.
    rogue.stop();
    wait_until(
        "the rogue server to expire",
        Duration::from_secs(30),
        || servers(&lan).is_empty().then_some(()),
    );
    wait_until(
        "the no-address warning again",
        Duration::from_secs(15),
        || {
            warnings(&lan)
                .iter()
                .any(|w| w.contains("machines get no address"))
                .then_some(())
        },
    );
    daemon.stop();
}

#[test]
fn router_mode_warns_of_two_servers_and_a_proxy_server_is_proxy() {
    require_tool("dnsmasq");
    let lan = lan_with_the_rogue_address();
    let mut daemon = lan.start(&config(&lan, "router"));
    let mut rogue = dnsmasq(
        &lan,
        "rogue-full",
        &["--dhcp-range=10.77.0.150,10.77.0.160,255.255.255.0,2m"],
    );
    wait_until("the two-servers warning", Duration::from_secs(60), || {
        warnings(&lan)
            .iter()
            .any(|w| w.contains("machines get addresses from either"))
            .then_some(())
    });
    rogue.stop();
    wait_until(
        "the two-servers warning to go",
        Duration::from_secs(30),
        || {
            (!warnings(&lan)
                .iter()
                .any(|w| w.contains("machines get addresses from either")))
            .then_some(())
        },
    );

    let mut proxy = dnsmasq(
        &lan,
        "rogue-proxy",
        &[
            "--dhcp-range=10.77.0.0,proxy",
            "--pxe-service=x86PC,Rogue boot,pxelinux",
        ],
    );
    let seen = wait_until(
        "the proxy server in the list",
        Duration::from_secs(60),
        || servers(&lan).into_iter().find(|s| s["address"] == ROGUE_IP),
    );
    assert_eq!(seen["kind"], "proxy", "{seen}");
    assert_eq!(seen["pxe"], true, "{seen}");
    wait_until(
        "the other-PXE-server warning",
        Duration::from_secs(10),
        || {
            warnings(&lan)
                .iter()
                .any(|w| w.contains("Another PXE or proxyDHCP server"))
                .then_some(())
        },
    );
    proxy.stop();
    daemon.stop();
}
