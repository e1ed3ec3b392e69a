//! Remote management over WireGuard through the real daemon: an admin's device created through
//! the API connects with the real `wireguard-go` + `wg`, signs in to the UI and calls the API
//! over the tunnel; the WAN answers nothing but the WireGuard port; boot services never answer on
//! the tunnel; a revoked device is cut off; the appliance dials a hub and is managed through it;
//! a restart keeps every peer. The appliance's WireGuard is userspace here (no kernel module on
//! this machine or in CI).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::dhcp_clients::{OFFER, pxe_discover, pxe_discover_on};
use common::vpn_net::{ADMIN_IP, HUB_IP, VpnNet, WAN_IP, WgGo, wg_quick_up_userspace};
use common::{Lan, SERVER_IP};
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::{Proc, require_tool};
use serde_json::json;

const TUNNEL_IP: &str = "10.78.0.1";
const HUB_TUNNEL_IP: &str = "10.99.0.5";
const WG_PORT: u16 = 51820;
const HUB_PORT: &str = "51900";

fn config(lan: &Lan, server_if: &str, hub_if: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[lan]
interface = "lan0"

[dhcp]
mode = "proxy"

[web]
names = ["{TUNNEL_IP}", "{HUB_TUNNEL_IP}"]

[vpn]
server_interface = "{server_if}"
hub_interface = "{hub_if}"
"#
    );
    let path = lan.path("flakeboot.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon with debug logs from flakeboot and trace logs from the WireGuard crates, so the
/// "no private key in the log" check sees everything they could print.
fn start_daemon(lan: &Lan, config: &Path, label: &str) -> Proc {
    lan.serve(config)
        .label(label)
        .env(
            "RUST_LOG",
            "info,flakeboot=debug,flakeboot_vpn=trace,defguard_wireguard_rs=trace,defguard_boringtun=trace",
        )
        .start(&lan.server)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn private_key_of(config: &str) -> String {
    config
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap_or_else(|| panic!("no PrivateKey in\n{config}"))
        .to_owned()
}

/// A duration as "12 ms".
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[test]
fn remote_management_over_wireguard_server_and_hub_never_the_wan() {
    let started = Instant::now();
    require_tool("curl");
    require_tool("wg");
    require_tool("wireguard-go");
    require_tool("wg-quick");
    let net = VpnNet::new();
    let lan = &net.lan;
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    // The admin's side knows a route to the appliance's LAN through its WAN address (a
    // neighbour on the same upstream network could send exactly that).
    net.admin
        .run(&["ip", "route", "add", "10.77.0.0/24", "via", WAN_IP])
        .unwrap();
    let id = std::process::id() % 100_000;
    let (server_if, hub_if) = (format!("fbs{id}"), format!("fbh{id}"));
    let config = config(lan, &server_if, &hub_if);
    let mut daemon = start_daemon(lan, &config, "flakeboot");
    let cacert = lan.state_dir().join("tls/cert.pem");
    let mut private_keys = Vec::new();

    // --- Set up on the LAN, then server mode and a device, through the API.
    let on_lan = Curl::new(lan.client(), Some(&cacert), lan.path("lan-cookies.txt"));
    let admin = Admin::set_up(
        on_lan,
        &format!("https://{SERVER_IP}"),
        &|| daemon.output(),
        "lan0",
        "proxy",
    );
    let token = &admin.token;
    let (code, status) = admin.api("GET", "/api/v1/vpn", None);
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["server_tunnel"]["state"], "off", "{status}");
    let mut server = status["server"].clone();
    server["enabled"] = json!(true);
    server["listen_port"] = json!(WG_PORT);
    server["endpoint"] = json!(WAN_IP);
    // The default tunnel prefix would overlap this LAN: refused, saying which field and why.
    server["address"] = json!("10.77.0.200/24");
    let (code, refused) = admin.api("PUT", "/api/v1/vpn/server", Some(&server));
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["field"], "address", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("LAN"),
        "{refused}"
    );
    server["address"] = json!(format!("{TUNNEL_IP}/24"));
    let (code, status) = admin.api("PUT", "/api/v1/vpn/server", Some(&server));
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["server_tunnel"]["state"], "up", "{status}");
    assert_eq!(status["server_tunnel"]["interface"], server_if.as_str());
    let implementation = status["server_tunnel"]["implementation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, added) = admin.api(
        "POST",
        "/api/v1/vpn/peers",
        Some(&json!({"name": "laptop"})),
    );
    assert_eq!(code, 201, "{added}");
    let laptop_id = added["peer"]["id"].as_u64().unwrap();
    assert_eq!(added["peer"]["address"], "10.78.0.2");
    let laptop_config = added["config"].as_str().unwrap().to_owned();
    assert!(
        laptop_config.contains(&format!("Endpoint = {WAN_IP}:{WG_PORT}")),
        "{laptop_config}"
    );
    private_keys.push(private_key_of(&laptop_config));
    // The status never carries a private key.
    let (_, status) = admin.api("GET", "/api/v1/vpn", None);
    assert!(!status.to_string().contains(&private_keys[0]));

    // --- The admin brings the tunnel up with the real tools and the config as given.
    let conf_path = lan.path(format!("fbadm{id}.conf").as_str());
    std::fs::write(&conf_path, &laptop_config).unwrap();
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let admin_wg = wg_quick_up_userspace(&net.admin, &format!("fbadm{id}"), &conf_path);
    let over_tunnel = Curl::new(&net.admin, Some(&cacert), lan.path("admin-cookies.txt"));
    let tunnel_base = format!("https://{TUNNEL_IP}");
    let t = Instant::now();
    let first = over_tunnel.ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{tunnel_base}/login"),
    ]);
    let first_request = t.elapsed();
    assert_eq!(first, "200");
    let handshake_at = admin_wg.latest_handshake(&net.admin);
    assert!(
        handshake_at > 0,
        "no handshake after a request over the tunnel"
    );
    // Sign in to the UI with its login form, and call the API with the token, over the tunnel.
    let dashboard = over_tunnel.log_in(&tunnel_base);
    assert!(dashboard.contains("Sign out"), "{dashboard}");
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (code, status) = over_tunnel.api(&tunnel_base, token, "GET", "/api/v1/vpn", None);
        latencies.push(t.elapsed());
        assert_eq!(code, 200, "{status}");
    }
    latencies.sort();
    // The same without curl's start-up and TLS: TCP connect time over the tunnel.
    let connect = over_tunnel.ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{time_connect} %{time_appconnect} %{time_total}",
        &format!("{tunnel_base}/login"),
    ]);
    let (_, status) = over_tunnel.api(&tunnel_base, token, "GET", "/api/v1/vpn", None);
    let laptop = &status["peers"][0];
    assert_eq!(laptop["name"], "laptop", "{status}");
    assert!(!laptop["last_handshake"].is_null(), "{status}");
    assert!(laptop["rx_bytes"].as_u64().unwrap() > 0, "{status}");
    assert!(
        laptop["endpoint"].as_str().unwrap().starts_with(ADMIN_IP),
        "{status}"
    );

    // --- The WAN: nothing answers but the WireGuard port (which just carried all of the above).
    let wan_started = Instant::now();
    for url in [
        format!("https://{WAN_IP}/"),
        format!("https://{WAN_IP}/api/v1/vpn"),
        format!("http://{WAN_IP}/boot.ipxe"),
        format!("tftp://{WAN_IP}/undionly.kpxe"),
        // The LAN address, routed to the appliance through its WAN port.
        format!("https://{SERVER_IP}/"),
        format!("http://{SERVER_IP}/boot.ipxe"),
    ] {
        assert!(!over_tunnel.answers(&url, 2), "{url} answered from the WAN");
    }
    // Proxy DHCP answers a PXE client on the LAN, and nobody on the WAN.
    let mac = [0x52, 0x54, 0, 0x77, 0, 1];
    let offer = pxe_discover(lan.client(), mac).expect("no proxy DHCP offer on the LAN");
    assert_eq!(offer.message_type, OFFER);
    assert!(
        pxe_discover_on(&net.admin, "eth0", mac).is_none(),
        "DHCP answered on the WAN"
    );
    // Boot services answer on the LAN and never on the tunnel.
    assert!(
        admin
            .curl
            .answers(&format!("http://{SERVER_IP}/boot.ipxe"), 5)
    );
    assert!(
        admin
            .curl
            .answers(&format!("tftp://{SERVER_IP}/undionly.kpxe"), 5)
    );
    for url in [
        format!("http://{TUNNEL_IP}/boot.ipxe"),
        format!("tftp://{TUNNEL_IP}/undionly.kpxe"),
    ] {
        assert!(
            !over_tunnel.answers(&url, 2),
            "{url} answered over the tunnel"
        );
    }
    let wan_checks = wan_started.elapsed();

    // --- Hub mode: the hub runs wireguard-go with the appliance's hub key from the API.
    let hub_wg = WgGo::start(&net.hub, &format!("fbhub{id}"));
    let hub_key_path = lan.path("hub.key");
    let hub_private = net.hub.run(&["wg", "genkey"]).unwrap().trim().to_owned();
    std::fs::write(&hub_key_path, format!("{hub_private}\n")).unwrap();
    private_keys.push(hub_private);
    net.hub
        .run(&[
            "wg",
            "set",
            &hub_wg.ifname,
            "listen-port",
            HUB_PORT,
            "private-key",
            hub_key_path.to_str().unwrap(),
        ])
        .unwrap();
    net.hub.addr(&hub_wg.ifname, "10.99.0.1/24").unwrap();
    let hub_public = hub_wg.show(&net.hub, "public-key").trim().to_owned();
    let (_, status) = admin.api("GET", "/api/v1/vpn", None);
    let appliance_hub_key = status["hub"]["public_key"].as_str().unwrap().to_owned();
    assert_ne!(
        appliance_hub_key,
        status["server_public_key"].as_str().unwrap()
    );
    net.hub
        .run(&[
            "wg",
            "set",
            &hub_wg.ifname,
            "peer",
            &appliance_hub_key,
            "allowed-ips",
            &format!("{HUB_TUNNEL_IP}/32"),
        ])
        .unwrap();
    let hub_settings = json!({
        "enabled": true,
        "endpoint": format!("{HUB_IP}:{HUB_PORT}"),
        "public_key": hub_public,
        "allowed_ips": ["10.99.0.0/24"],
        "keepalive": 25,
        "address": format!("{HUB_TUNNEL_IP}/24"),
    });
    let (code, status) = admin.api("PUT", "/api/v1/vpn/hub", Some(&hub_settings));
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["hub"]["tunnel"]["state"], "up", "{status}");
    let from_hub = Curl::new(&net.hub, Some(&cacert), lan.path("hub-cookies.txt"));
    let hub_base = format!("https://{HUB_TUNNEL_IP}");
    let t = Instant::now();
    // The appliance dials the hub; the hub reaches it once the first handshake is done.
    while hub_wg.latest_handshake(&net.hub) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the appliance never reached the hub"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hub_handshake = t.elapsed();
    let (code, status) = from_hub.api(&hub_base, token, "GET", "/api/v1/vpn", None);
    assert_eq!(code, 200, "{status}");
    assert!(!status["hub"]["last_handshake"].is_null(), "{status}");
    from_hub.log_in(&hub_base);
    // The hub is not the LAN either: boot services stay off its tunnel too.
    assert!(!from_hub.answers(&format!("http://{HUB_TUNNEL_IP}/boot.ipxe"), 2));

    // --- A second device, then revoke the first: a fresh handshake fails, requests time out.
    let (code, added) = admin.api("POST", "/api/v1/vpn/peers", Some(&json!({"name": "phone"})));
    assert_eq!(code, 201, "{added}");
    assert_eq!(added["peer"]["address"], "10.78.0.3");
    private_keys.push(private_key_of(added["config"].as_str().unwrap()));
    let (code, _) = admin.api("DELETE", &format!("/api/v1/vpn/peers/{laptop_id}"), None);
    assert_eq!(code, 204);
    // Forget the session on the admin's side, so only a fresh handshake could help.
    net.admin
        .run(&["wg", "set", &admin_wg.ifname, "private-key", "/dev/null"])
        .unwrap();
    let admin_key_path = lan.path("admin.key");
    std::fs::write(&admin_key_path, format!("{}\n", private_keys[0])).unwrap();
    net.admin
        .run(&[
            "wg",
            "set",
            &admin_wg.ifname,
            "private-key",
            admin_key_path.to_str().unwrap(),
        ])
        .unwrap();
    let before = admin_wg.latest_handshake(&net.admin);
    assert!(
        !over_tunnel.answers(&format!("{tunnel_base}/login"), 4),
        "a revoked device still reached the appliance"
    );
    assert_eq!(
        admin_wg.latest_handshake(&net.admin),
        before,
        "a revoked device completed a handshake"
    );
    let (_, status) = admin.api("GET", "/api/v1/vpn", None);
    let names: Vec<&str> = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["phone"], "{status}");
    drop(admin_wg);

    // --- Restart on the same state: every peer is back, and a device's tunnel works again.
    let stopped = daemon.stop().unwrap();
    assert!(stopped.success(), "{}", daemon.tail(30));
    let mut log = daemon.output();
    let restart = Instant::now();
    let mut daemon = start_daemon(lan, &config, "flakeboot-again");
    let restarted = restart.elapsed();
    let phone_conf = lan.path(format!("fbph{id}.conf").as_str());
    std::fs::write(&phone_conf, added["config"].as_str().unwrap()).unwrap();
    let phone_wg = wg_quick_up_userspace(&net.admin, &format!("fbph{id}"), &phone_conf);
    let (code, status) = over_tunnel.api(&tunnel_base, token, "GET", "/api/v1/vpn", None);
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["peers"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["peers"][0]["name"], "phone");
    assert_eq!(status["server_tunnel"]["state"], "up", "{status}");
    assert_eq!(status["hub"]["tunnel"]["state"], "up", "{status}");
    assert!(phone_wg.latest_handshake(&net.admin) > 0);
    // The hub reaches the restarted appliance too.
    let (code, _) = from_hub.api(&hub_base, token, "GET", "/api/v1/vpn", None);
    assert_eq!(code, 200);

    // --- Keys: owner-only files; no private key (the appliance's, a device's, the hub's) in
    // any log line.
    let key_dir = lan.state_dir().join("wireguard");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_dir), 0o700);
    for name in ["server.key", "hub.key"] {
        let path = key_dir.join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        private_keys.push(std::fs::read_to_string(&path).unwrap().trim().to_owned());
    }
    daemon.stop();
    log.push_str(&daemon.output());
    assert!(log.contains("WireGuard interface up"), "{log}");
    // Both runs stopped on SIGTERM and took their interfaces down (userspace WireGuard must not
    // take the signal for itself).
    assert_eq!(log.matches("stopping").count(), 2, "{log}");
    assert!(
        log.matches("WireGuard interface down").count() >= 4,
        "{log}"
    );
    for line in log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
    {
        println!("daemon: {line}");
    }
    for key in &private_keys {
        assert_eq!(key.len(), 44, "{key}");
        assert!(
            !log.contains(key.as_str()),
            "a private key is in the daemon's log"
        );
        // defguard prints keys as hex in its debug output: that form must not appear either.
        let hex = base64_to_hex(key);
        assert!(
            !log.contains(&hex),
            "a private key (hex) is in the daemon's log"
        );
    }
    drop(phone_wg);
    drop(hub_wg);

    println!(
        "vpn_remote: appliance WireGuard {implementation}; first request over a new tunnel \
         (handshake + TLS + HTTP) {}; API round trip over the tunnel median {} (min {}, max {}); \
         curl's connect/TLS done/total over the tunnel {connect} s; hub handshake after enabling {}; \
         WAN/boot checks {}; restart to serving {}; total {}",
        ms(first_request),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1]),
        ms(hub_handshake),
        ms(wan_checks),
        ms(restarted),
        ms(started.elapsed()),
    );
}

/// Base64 (standard) to lower-case hex, for the log check.
fn base64_to_hex(b64: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for c in b64.bytes().take_while(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push_str(&format!("{:02x}", (bits >> n) & 0xff));
        }
    }
    out
}
