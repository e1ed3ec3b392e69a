//! Router mode as a router, through the real daemon in namespaces this test makes: the
//! appliance (`lan0` to a LAN client, `wan0` to an "internet" namespace with an HTTP server).
//! The daemon adds its static WAN address and route; udhcpc on the LAN gets an address, the
//! appliance as gateway and the WAN's DNS server; the client fetches a page from the internet
//! through NAT (the server sees the appliance's WAN address); from the internet, TCP 22/53/80/443
//! and UDP 53/67/69 on the WAN address (and the LAN address routed through it) get nothing (no
//! RST, no ICMP: the firewall's drop counter counts them); at stop the table, the forwarding
//! and the static address are gone, and the same probes are refused again (the control).
//! The table follows changes live: the WireGuard server enabled through the API opens its port
//! (a wireguard-go peer in the internet shakes hands through the WAN) and closes it when turned
//! off; proxy mode in the settings takes NAT and forwarding away, router mode brings them back;
//! the static WAN set through the settings API moves the address, goes (no table, forwarding
//! or address left) and comes back, all in the same daemon; a saved WAN whose port is gone at
//! the next start falls back to the config file's.
//! A DHCP WAN (dnsmasq upstream, udhcpc on the WAN standing in for systemd-networkd): the
//! dashboard shows the leased address and gateway read from the kernel, the LAN goes out.
//! DNS: the LAN client is handed the appliance as its DNS server; `dig` from it resolves a
//! name the internet's dnsmasq serves through the forwarder (the second time from its cache,
//! with dnsmasq asked once, then gone), its own `<hostname>.<domain>` from its lease, and an
//! unknown LAN name as NXDOMAIN; port 53 answers nothing from the WAN; another upstream saved
//! through the settings API answers from then on, without a daemon restart.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::vpn_net::wg_quick_up_userspace;
use common::*;
use flakeboot_testbed::{Netns, require_tool, veth};
use serde_json::{Value, json};

const WAN_IP: &str = "203.0.113.2";
/// The WAN address the settings move it to.
const WAN_IP2: &str = "203.0.113.4";
const INET_IP: &str = "203.0.113.1";
/// A second address of the internet namespace (a second name server).
const INET_IP2: &str = "203.0.113.3";

/// What a probe from the internet got.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Nothing within the timeout (dropped).
    Nothing,
    /// A TCP RST or an ICMP port unreachable.
    Refused,
    /// A TCP connection or a UDP answer.
    Answered,
}

fn tcp_probe(ns: &Netns, to: &str, port: u16) -> Probe {
    let addr: SocketAddr = format!("{to}:{port}").parse().unwrap();
    ns.thread(
        move || match TcpStream::connect_timeout(&addr, Duration::from_millis(700)) {
            Ok(_) => Probe::Answered,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Probe::Refused,
            Err(e) if e.kind() == ErrorKind::TimedOut => Probe::Nothing,
            Err(e) => panic!("TCP {addr}: {e}"),
        },
    )
    .unwrap()
    .join()
    .unwrap()
}

fn udp_probe(ns: &Netns, to: &str, port: u16) -> Probe {
    let addr: SocketAddr = format!("{to}:{port}").parse().unwrap();
    ns.thread(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        // Something each service would answer or choke on; the kernel answers a closed port
        // with ICMP port unreachable, seen here as a refused receive.
        socket.send(&[0u8; 48]).unwrap();
        let mut buf = [0u8; 1500];
        match socket.recv(&mut buf) {
            Ok(_) => Probe::Answered,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Probe::Refused,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Probe::Nothing
            }
            Err(e) => panic!("UDP {addr}: {e}"),
        }
    })
    .unwrap()
    .join()
    .unwrap()
}

/// Every probe of the scan, as (what, result).
fn scan(inet: &Netns) -> Vec<(String, Probe)> {
    let mut results = Vec::new();
    for to in [WAN_IP, SERVER_IP] {
        for port in [22, 53, 80, 443] {
            results.push((format!("tcp {to}:{port}"), tcp_probe(inet, to, port)));
        }
        for port in [53, 67, 69] {
            results.push((format!("udp {to}:{port}"), udp_probe(inet, to, port)));
        }
    }
    results
}

/// udhcpc on the client's `eth0` with `extra` arguments: the variables its script saw at
/// `bound` (ip, subnet, router, dns, domain).
fn udhcpc_bound(lan: &Lan, extra: &[&str]) -> String {
    let udhcpc = require_tool("udhcpc");
    let out = lan.path("udhcpc.env");
    let script = lan.path("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain\" > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let status = lan
        .client()
        .command(&udhcpc)
        .args(["-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1"])
        .args(extra)
        .arg("-s")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "udhcpc got no lease");
    std::fs::read_to_string(&out).unwrap().trim().to_owned()
}

fn field<'a>(env: &'a str, key: &str) -> &'a str {
    env.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {env}"))
}

fn nft_table(ns: &Netns) -> String {
    ns.run(&["nft", "list", "tables"]).unwrap()
}

/// The packets the WAN input chain's drop rule counted.
fn dropped_on_wan(ns: &Netns) -> u64 {
    let table = ns
        .run(&["nft", "list", "chain", "inet", "flakeboot", "input"])
        .unwrap();
    table
        .lines()
        .find(|l| l.contains("nothing else answers on the WAN"))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in\n{table}"))
}

/// The appliance's namespace with its LAN (a client namespace) and a WAN port `wan0` to an
/// "internet" namespace at [`INET_IP`].
fn lan_and_internet(tag: &str) -> (Lan, Netns) {
    require_tool("nft");
    require_tool("curl");
    let lan = Lan::new();
    let inet = Netns::new(tag).unwrap();
    veth(&lan.server, "wan0", &inet, "eth0").unwrap();
    inet.addr("eth0", &format!("{INET_IP}/24")).unwrap();
    (lan, inet)
}

/// Router mode with a static WAN at [`WAN_IP`].
fn router_config(lan: &Lan, extra: &str) -> std::path::PathBuf {
    lan.write_config(&format!(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\n\n\
         [wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"{WAN_IP}/24\"\n\
         gateway = \"{INET_IP}\"\ndns = [\"{INET_IP}\"]\n{extra}"
    ))
}

/// `METHOD path` with a JSON body over the owner-only API socket: status code and body.
fn api(lan: &Lan, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let socket = lan.state_dir().join("api.sock");
    let mut curl = std::process::Command::new("curl");
    curl.args(["-s", "-w", "\n%{http_code}", "-X", method]);
    if !body.is_null() {
        curl.args(["-H", "content-type: application/json", "--data"])
            .arg(body.to_string());
    }
    let out = curl
        .arg("--unix-socket")
        .arg(&socket)
        .arg(format!("http://appliance{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The dashboard's "WAN" line (`GET /api/v1/status`).
fn wan_line(lan: &Lan) -> String {
    let (code, status) = api(lan, "GET", "/api/v1/status", &Value::Null);
    assert_eq!(code, 200, "{status}");
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "WAN")
        .unwrap_or_else(|| panic!("no WAN line in {status}"))["detail"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A DHCP WAN: dnsmasq upstream in the internet, udhcpc on `wan0` standing in for
/// systemd-networkd (it sets the address and the default route); the daemon reads them from
/// the kernel for the dashboard, and the LAN is masqueraded behind the leased address.
#[test]
fn a_dhcp_wan_is_read_from_the_kernel() {
    let started = Instant::now();
    require_tool("dnsmasq");
    let udhcpc = require_tool("udhcpc");
    let (lan, inet) = lan_and_internet("rdhcp");
    let leases = lan.path("upstream.leases");
    let mut upstream = inet
        .spawn(
            "upstream-dhcp",
            &[
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--interface=eth0",
                "--bind-interfaces",
                "--no-ping",
                &format!("--dhcp-leasefile={}", leases.display()),
                "--dhcp-range=203.0.113.50,203.0.113.60,255.255.255.0,10m",
                &format!("--dhcp-option=3,{INET_IP}"),
            ],
        )
        .unwrap();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\n\n\
         [wan]\ninterface = \"wan0\"\nmode = \"dhcp\"\n",
    );
    let mut daemon = lan.start(&config);
    assert_eq!(
        wan_line(&lan),
        "wan0 no address yet: firewall on, lan0 forwarded with NAT"
    );
    // The WAN's DHCP client (networkd on the image) configures the port.
    let script = lan.path("wan-udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
         ip addr add \"$ip/$subnet\" dev \"$interface\"\n\
         ip route add default via \"$router\" dev \"$interface\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let status = lan
        .server
        .command(&udhcpc)
        .args(["-i", "wan0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s"])
        .arg(&script)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "no lease on the WAN:\n{}",
        upstream.tail(20)
    );
    let addrs = lan
        .server
        .run(&["ip", "-4", "-o", "addr", "show", "dev", "wan0"])
        .unwrap();
    let leased = addrs
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("{addrs}"))
        .to_owned();
    assert!(
        leased.starts_with("203.0.113.5") || leased.starts_with("203.0.113.60"),
        "{leased}"
    );
    // The dashboard reads it from the kernel (every few seconds).
    let want = format!("wan0 {leased} via {INET_IP}: firewall on, lan0 forwarded with NAT");
    let t = Instant::now();
    while wan_line(&lan) != want {
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "{} != {want}",
            wan_line(&lan)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = t.elapsed();
    // The LAN goes out behind the leased address: a TCP connection from the LAN reaches the
    // internet (nothing listens there: refused, which only a forwarded packet can be).
    let client = lan.client();
    client.addr("eth0", "10.77.0.50/24").unwrap();
    client
        .run(&["ip", "route", "add", "default", "via", SERVER_IP])
        .unwrap();
    assert_eq!(tcp_probe(client, INET_IP, 9), Probe::Refused);
    // And the internet still gets nothing from the WAN address.
    let wan_ip = leased.split('/').next().unwrap().to_owned();
    assert_eq!(tcp_probe(&inet, &wan_ip, 443), Probe::Nothing);
    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(30));
    upstream.stop();
    assert!(!nft_table(&lan.server).contains("flakeboot"));
    // A DHCP WAN's address is the DHCP client's: the daemon leaves it.
    let addrs = lan
        .server
        .run(&["ip", "-4", "addr", "show", "dev", "wan0"])
        .unwrap();
    assert!(addrs.contains(&leased), "{addrs}");
    eprintln!(
        "router_nat dhcp wan: the dashboard saw the lease {} ms after it was set; total {} ms",
        seen.as_millis(),
        started.elapsed().as_millis()
    );
}

#[test]
fn wireguard_and_the_dhcp_mode_change_the_wan_table_live() {
    let started = Instant::now();
    let (lan, inet) = lan_and_internet("rwg");
    let id = std::process::id() % 100_000;
    let config = router_config(
        &lan,
        &format!("\n[vpn]\nserver_interface = \"fbrs{id}\"\nhub_interface = \"fbrh{id}\"\n"),
    );
    let mut daemon = lan.start(&config);
    // No server yet: its port is as closed as any other.
    assert_eq!(udp_probe(&inet, WAN_IP, 51820), Probe::Nothing);

    let server = json!({
        "enabled": true, "listen_port": 51820, "address": "10.78.0.1/24", "endpoint": WAN_IP,
    });
    let (code, status) = api(&lan, "PUT", "/api/v1/vpn/server", &server);
    assert_eq!(code, 200, "{status}\n{}", daemon.tail(20));
    assert_eq!(status["server_tunnel"]["state"], "up", "{status}");
    assert!(
        wan_line(&lan).ends_with(", WireGuard UDP 51820 open"),
        "{}",
        wan_line(&lan)
    );
    let (code, added) = api(
        &lan,
        "POST",
        "/api/v1/vpn/peers",
        &json!({"name": "laptop"}),
    );
    assert_eq!(code, 201, "{added}");
    let conf = lan.path(&format!("fbrl{id}.conf"));
    std::fs::write(&conf, added["config"].as_str().unwrap()).unwrap();
    let laptop = wg_quick_up_userspace(&inet, &format!("fbrl{id}"), &conf);
    // Traffic into the tunnel makes wireguard-go shake hands with the appliance's WAN port.
    let handshake = Instant::now();
    while laptop.latest_handshake(&inet) == 0 {
        let _ = tcp_probe(&inet, "10.78.0.1", 443);
        assert!(
            handshake.elapsed() < Duration::from_secs(15),
            "no WireGuard handshake through the WAN firewall:\n{}\n{}",
            lan.server
                .run(&["nft", "list", "table", "inet", "flakeboot"])
                .unwrap(),
            daemon.tail(20)
        );
    }
    let handshake = handshake.elapsed();
    // Management answers through the tunnel, and still nothing on the WAN address.
    assert_eq!(tcp_probe(&inet, "10.78.0.1", 443), Probe::Answered);
    assert_eq!(tcp_probe(&inet, WAN_IP, 443), Probe::Nothing);

    // The server turned off: its port is closed again.
    let off = json!({
        "enabled": false, "listen_port": 51820, "address": "10.78.0.1/24", "endpoint": WAN_IP,
    });
    let (code, status) = api(&lan, "PUT", "/api/v1/vpn/server", &off);
    assert_eq!(code, 200, "{status}");
    let table = lan
        .server
        .run(&["nft", "list", "table", "inet", "flakeboot"])
        .unwrap();
    assert!(!table.contains("51820"), "{table}");
    drop(laptop);

    // Proxy mode in Settings: no forwarding and no NAT any more, the WAN still firewalled;
    // router mode again brings them back.
    let forwarding = || {
        lan.server
            .run(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .trim()
            .to_owned()
    };
    let table = || {
        lan.server
            .run(&["nft", "list", "table", "inet", "flakeboot"])
            .unwrap()
    };
    let (code, mut settings) = api(&lan, "GET", "/api/v1/settings", &Value::Null);
    assert_eq!(code, 200, "{settings}");
    assert!(table().contains("masquerade") && forwarding() == "1");
    for (mode, nat) in [("proxy", false), ("router", true)] {
        settings["dhcp_mode"] = json!(mode);
        let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &settings);
        assert_eq!(code, 200, "{saved}");
        // The daemon loads the firewall first, then turns forwarding on or off: wait for both.
        let want = if nat { "1" } else { "0" };
        let t = Instant::now();
        while table().contains("masquerade") != nat || forwarding() != want {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{mode}: forwarding {}, {}",
                forwarding(),
                table()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            table().contains("nothing else answers on the WAN"),
            "{mode}"
        );
    }

    // The static WAN through `PUT /api/v1/settings` (`wan`): another address moves the
    // address and the default route; no WAN port takes the table, forwarding and the address
    // away; the WAN set again brings them back. The same daemon all along.
    let pid = daemon.pid();
    let addrs = || {
        lan.server
            .run(&["ip", "-4", "-o", "addr", "show", "dev", "wan0"])
            .unwrap()
    };
    let default_route = || {
        lan.server
            .run(&["ip", "-4", "route", "show", "default"])
            .unwrap()
    };
    let (code, mut settings) = api(&lan, "GET", "/api/v1/settings", &Value::Null);
    assert_eq!(code, 200, "{settings}");
    assert_eq!(
        settings["wan"],
        json!({"interface": "wan0", "mode": "static", "address": format!("{WAN_IP}/24"),
               "gateway": INET_IP, "dns": [INET_IP]})
    );
    settings["wan"]["address"] = json!(format!("{WAN_IP2}/24"));
    let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &settings);
    assert_eq!(code, 200, "{saved}");
    let t = Instant::now();
    while !wan_line(&lan).starts_with(&format!("wan0 {WAN_IP2}/24 via {INET_IP}:")) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{}\n{}\n{}",
            wan_line(&lan),
            addrs(),
            daemon.tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!addrs().contains(&format!("{WAN_IP}/")), "{}", addrs());
    assert!(
        default_route().contains(&format!("via {INET_IP} dev wan0")),
        "{}",
        default_route()
    );
    // The new address is firewalled like the old one: nothing answers there.
    assert_eq!(tcp_probe(&inet, WAN_IP2, 443), Probe::Nothing);
    // A static address without its prefix is refused on its field.
    let mut bad = settings.clone();
    bad["wan"]["address"] = json!(WAN_IP2);
    let (code, refused) = api(&lan, "PUT", "/api/v1/settings", &bad);
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "wan.address", "{refused}");

    // No WAN port: nothing of it stays.
    let mut none = settings.clone();
    none["wan"] = json!({"interface": null, "mode": "dhcp"});
    let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &none);
    assert_eq!(code, 200, "{saved}");
    let t = Instant::now();
    while nft_table(&lan.server).contains("flakeboot") {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", table());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(forwarding(), "0");
    assert!(!addrs().contains(WAN_IP2), "{}", addrs());
    assert!(default_route().trim().is_empty(), "{}", default_route());
    let (_, status) = api(&lan, "GET", "/api/v1/status", &Value::Null);
    assert!(
        !status["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "WAN"),
        "{status}"
    );
    // And back: the table, NAT, forwarding, the address and the route.
    let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &settings);
    assert_eq!(code, 200, "{saved}");
    let t = Instant::now();
    while !(nft_table(&lan.server).contains("flakeboot") && addrs().contains(WAN_IP2)) {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", daemon.tail(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(table().contains("masquerade"));
    assert_eq!(forwarding(), "1");
    assert!(
        default_route().contains(&format!("via {INET_IP} dev wan0")),
        "{}",
        default_route()
    );
    assert_eq!(daemon.pid(), pid);
    assert_eq!(daemon.output().matches("starting flakeboot").count(), 1);

    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(30));
    assert!(!nft_table(&lan.server).contains("flakeboot"));
    assert!(!addrs().contains(WAN_IP2), "{}", addrs());

    // A WAN saved in Settings that cannot be set up at the next start (its port is gone): the
    // daemon starts with the config file's [wan], says why, and keeps the saved settings.
    veth(&lan.server, "wan1", &inet, "eth1").unwrap();
    let mut daemon = lan.start(&config);
    let (_, mut settings) = api(&lan, "GET", "/api/v1/settings", &Value::Null);
    settings["wan"] = json!({"interface": "wan1", "mode": "static",
                             "address": "198.51.100.2/24", "gateway": "198.51.100.1"});
    let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &settings);
    assert_eq!(code, 200, "{saved}");
    let wan1 = || {
        lan.server
            .run(&["ip", "-4", "-o", "addr", "show", "dev", "wan1"])
            .unwrap()
    };
    let t = Instant::now();
    while !wan1().contains("198.51.100.2/24") {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", daemon.tail(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!addrs().contains(WAN_IP2), "{}", addrs());
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(30));
    lan.server.run(&["ip", "link", "del", "wan1"]).unwrap();
    let fallback = Instant::now();
    let mut daemon = lan.start(&config);
    let fallback = fallback.elapsed();
    assert!(
        daemon
            .output()
            .contains("the WAN settings saved in Settings cannot be used"),
        "{}",
        daemon.tail(30)
    );
    assert!(
        wan_line(&lan).starts_with(&format!("wan0 {WAN_IP}/24 via {INET_IP}:")),
        "{}",
        wan_line(&lan)
    );
    let (_, now) = api(&lan, "GET", "/api/v1/settings", &Value::Null);
    assert_eq!(now["wan"]["interface"], "wan1", "{now}");
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(30));
    assert!(!nft_table(&lan.server).contains("flakeboot"));
    assert!(!addrs().contains(WAN_IP), "{}", addrs());
    eprintln!(
        "router_nat wireguard: handshake {} ms after the tunnel was up; a start with an unusable \
         saved WAN served in {} ms; total {} ms",
        handshake.as_millis(),
        fallback.as_millis(),
        started.elapsed().as_millis()
    );
}

#[test]
fn lan_reaches_the_internet_through_nat_and_the_wan_answers_nothing() {
    let started = Instant::now();
    require_tool("python3");
    let (lan, inet) = lan_and_internet("rinet");
    // The internet knows the way to the LAN only to probe it (a neighbour could send that).
    inet.run(&["ip", "route", "add", "10.77.0.0/24", "via", WAN_IP])
        .unwrap();
    let www = lan.path("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "hello from the internet\n").unwrap();
    let mut http = inet
        .spawn(
            "http",
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                "8080",
                "--bind",
                INET_IP,
                "--directory",
                www.to_str().unwrap(),
            ],
        )
        .unwrap();
    http.wait_for("Serving HTTP", Duration::from_secs(10))
        .unwrap();

    let config = router_config(&lan, "");
    let mut daemon = lan.start(&config);
    let serving = started.elapsed();

    // The daemon applied the static WAN: address, default route, forwarding, the table.
    let addrs = lan
        .server
        .run(&["ip", "-4", "addr", "show", "dev", "wan0"])
        .unwrap();
    assert!(addrs.contains(&format!("{WAN_IP}/24")), "{addrs}");
    let routes = lan
        .server
        .run(&["ip", "-4", "route", "show", "default"])
        .unwrap();
    assert!(
        routes.contains(&format!("via {INET_IP} dev wan0")),
        "{routes}"
    );
    assert_eq!(
        lan.server
            .run(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .trim(),
        "1"
    );
    assert!(nft_table(&lan.server).contains("table inet flakeboot"));
    assert_eq!(
        wan_line(&lan),
        format!("wan0 {WAN_IP}/24 via {INET_IP}: firewall on, lan0 forwarded with NAT")
    );

    // A LAN client: address, the appliance as gateway and as DNS server (its forwarder).
    let env = udhcpc_bound(&lan, &[]);
    assert!(field(&env, "ip").starts_with("10.77.0.1"), "{env}");
    assert_eq!(field(&env, "router"), SERVER_IP, "{env}");
    assert_eq!(field(&env, "dns"), SERVER_IP, "{env}");
    let client = lan.client();
    client
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", field(&env, "ip")),
            "dev",
            "eth0",
        ])
        .unwrap();
    client
        .run(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            field(&env, "router"),
        ])
        .unwrap();

    // Through NAT: the page comes back and the server saw the appliance's WAN address.
    let fetch = Instant::now();
    let page = client
        .run(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{INET_IP}:8080/hello.txt"),
        ])
        .unwrap();
    let fetch = fetch.elapsed();
    assert_eq!(page, "hello from the internet\n");
    let log = http
        .wait_for("GET /hello.txt", Duration::from_secs(5))
        .unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("GET /hello.txt"))
        .unwrap()
        .to_owned();
    assert!(
        line.starts_with(&format!("{WAN_IP} ")),
        "the server saw: {line}"
    );

    // From the internet: nothing answers, nothing refuses.
    let counted = dropped_on_wan(&lan.server);
    let scan_started = Instant::now();
    let during = scan(&inet);
    let scan_time = scan_started.elapsed();
    for (what, result) in &during {
        assert_eq!(*result, Probe::Nothing, "{what} on the WAN: {during:?}");
    }
    let dropped = dropped_on_wan(&lan.server) - counted;
    assert!(
        dropped >= 14,
        "the drop rule counted {dropped} packets of 14 probes"
    );

    // Stop: the table, forwarding and the static address and route go with the daemon.
    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(30));
    assert!(
        !nft_table(&lan.server).contains("flakeboot"),
        "{}",
        nft_table(&lan.server)
    );
    assert_eq!(
        lan.server
            .run(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .trim(),
        "0"
    );
    let addrs = lan
        .server
        .run(&["ip", "-4", "addr", "show", "dev", "wan0"])
        .unwrap();
    assert!(!addrs.contains(WAN_IP), "{addrs}");
    let routes = lan
        .server
        .run(&["ip", "-4", "route", "show", "default"])
        .unwrap();
    assert!(routes.trim().is_empty(), "{routes}");

    // The control: without flakeboot's table the same probes to the appliance are refused
    // (RST, ICMP unreachable), so "nothing" above was the firewall. The WAN address went with
    // the daemon: put it back by hand to ask.
    lan.server.addr("wan0", &format!("{WAN_IP}/24")).unwrap();
    let after = scan(&inet);
    for (what, result) in &after {
        assert_eq!(
            *result,
            Probe::Refused,
            "{what} without the firewall: {after:?}"
        );
    }
    http.stop();
    eprintln!(
        "router_nat: serving {} ms; NAT fetch {} ms; scan of 14 probes {} ms; total {} ms",
        serving.as_millis(),
        fetch.as_millis(),
        scan_time.as_millis(),
        started.elapsed().as_millis()
    );
}

/// `dig` in `ns` asking `server` for `name` (`extra`: `+tcp`, a type): the status and the
/// answer section's data, e.g. ("NOERROR", ["198.51.100.7"]).
fn dig(ns: &Netns, server: &str, name: &str, extra: &[&str]) -> (String, Vec<String>) {
    let dig = require_tool("dig");
    let out = ns
        .command(&dig)
        .args(["+time=2", "+tries=1", "+noall", "+comments", "+answer"])
        .arg(format!("@{server}"))
        .arg(name)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_owned();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    (status, answers)
}

#[test]
fn the_lan_resolves_through_the_forwarder_and_the_wan_gets_no_dns() {
    let started = Instant::now();
    require_tool("dnsmasq");
    require_tool("dig");
    let (lan, inet) = lan_and_internet("rdns");
    inet.run(&["ip", "route", "add", "10.77.0.0/24", "via", WAN_IP])
        .unwrap();
    // The internet's name server: one name, every query logged.
    let mut upstream = inet
        .spawn(
            "upstream-dns",
            &[
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--bind-interfaces",
                &format!("--listen-address={INET_IP}"),
                "--address=/www.example.test/198.51.100.7",
                // Its own names' TTL (0 by default: nothing downstream could cache them).
                "--local-ttl=300",
                "--log-queries",
                "--log-facility=-",
            ],
        )
        .unwrap();
    upstream
        .wait_for("started", Duration::from_secs(10))
        .unwrap();
    let config = lan.write_config(&format!(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\ndomain = \"lan.test\"\n\n\
         [wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"{WAN_IP}/24\"\n\
         gateway = \"{INET_IP}\"\ndns = [\"{INET_IP}\"]\n"
    ));
    let mut daemon = lan.start(&config);

    // The client names itself (option 12) and is handed the appliance as its DNS server.
    let env = udhcpc_bound(&lan, &["-x", "hostname:labpc"]);
    let ip = field(&env, "ip").to_owned();
    assert_eq!(field(&env, "dns"), SERVER_IP, "{env}");
    assert_eq!(field(&env, "domain"), "lan.test", "{env}");
    let client = lan.client();
    client
        .run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])
        .unwrap();
    let dns = field(&env, "dns").to_owned();

    // A name on the internet, forwarded; the second answer from the cache.
    let asked =
        |p: &flakeboot_testbed::Proc| p.output().matches("query[A] www.example.test").count();
    let first = Instant::now();
    assert_eq!(
        dig(client, &dns, "www.example.test", &[]),
        ("NOERROR".to_owned(), vec!["198.51.100.7".to_owned()]),
        "{}\n{}",
        daemon.tail(20),
        upstream.tail(10)
    );
    let first = first.elapsed();
    let cached = Instant::now();
    assert_eq!(
        dig(client, &dns, "www.example.test", &[]).1,
        ["198.51.100.7"]
    );
    let cached = cached.elapsed();
    assert_eq!(asked(&upstream), 1, "{}", upstream.tail(10));
    upstream.stop();
    assert_eq!(
        dig(client, &dns, "www.example.test", &["+tcp"]).1,
        ["198.51.100.7"],
        "with the upstream gone, over TCP"
    );
    // A name not in the cache, with the upstream gone: SERVFAIL within the forward timeout
    // (5 s).
    let t = Instant::now();
    assert_eq!(
        dig(client, &dns, "other.example.test", &["+time=8"]).0,
        "SERVFAIL"
    );
    let servfail = t.elapsed();

    // The client's own name, from its lease (the table is read every 2 s).
    let t = Instant::now();
    loop {
        let (status, answers) = dig(client, &dns, "labpc.lan.test", &[]);
        if status == "NOERROR" && answers == [ip.clone()] {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "labpc.lan.test: {status} {answers:?}\n{}",
            daemon.tail(20)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(dig(client, &dns, "labpc", &[]).1, [ip.as_str()]);
    assert_eq!(
        dig(client, &dns, "labpc.lan.test", &["+tcp"]).1,
        [ip.as_str()]
    );
    let reverse: Vec<&str> = ip.split('.').rev().collect();
    assert_eq!(
        dig(
            client,
            &dns,
            &format!("{}.in-addr.arpa", reverse.join(".")),
            &["PTR"]
        )
        .1,
        ["labpc.lan.test."]
    );
    // An unknown LAN name: NXDOMAIN here, never forwarded.
    assert_eq!(
        dig(client, &dns, "nobody.lan.test", &[]),
        ("NXDOMAIN".to_owned(), vec![])
    );

    // From the internet, port 53 answers nothing: not on the WAN address, not on the LAN
    // address routed through it.
    for to in [WAN_IP, SERVER_IP] {
        assert_eq!(udp_probe(&inet, to, 53), Probe::Nothing, "udp {to}:53");
        assert_eq!(tcp_probe(&inet, to, 53), Probe::Nothing, "tcp {to}:53");
        assert_eq!(
            dig(&inet, to, "www.example.test", &[]).0,
            "no answer",
            "dig {to}"
        );
    }

    // The counters (`/metrics` over the owner-only API socket).
    let metrics = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(lan.state_dir().join("api.sock"))
        .arg("http://appliance/metrics")
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let counter = |answer: &str| -> u64 {
        let key = format!("flakeboot_dns_queries_total{{answer=\"{answer}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{metrics}"))
    };
    assert!(counter("local") >= 5, "{metrics}");
    assert_eq!(counter("forwarded"), 3, "{metrics}");
    assert!(counter("failed") >= 1, "{metrics}");

    // Another upstream set through `PUT /api/v1/settings` (`dns.upstream`): a second name
    // server on the internet with another answer for the same name. The forwarder asks it from
    // then on (its cache, which still holds the first answer, goes with the restart), with no
    // daemon restart.
    inet.addr("eth0", &format!("{INET_IP2}/24")).unwrap();
    let mut second = inet
        .spawn(
            "upstream-dns-2",
            &[
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--bind-interfaces",
                &format!("--listen-address={INET_IP2}"),
                "--address=/www.example.test/198.51.100.8",
                "--log-queries",
                "--log-facility=-",
            ],
        )
        .unwrap();
    second.wait_for("started", Duration::from_secs(10)).unwrap();
    let pid = daemon.pid();
    let (code, mut settings) = api(&lan, "GET", "/api/v1/settings", &Value::Null);
    assert_eq!(code, 200, "{settings}");
    assert_eq!(settings["dns"], json!({"enabled": null, "upstream": []}));
    settings["dns"]["upstream"] = json!([INET_IP2]);
    let switched = Instant::now();
    let (code, saved) = api(&lan, "PUT", "/api/v1/settings", &settings);
    assert_eq!(code, 200, "{saved}");
    loop {
        let (status, answers) = dig(client, &dns, "www.example.test", &[]);
        if status == "NOERROR" && answers == ["198.51.100.8"] {
            break;
        }
        assert!(
            switched.elapsed() < Duration::from_secs(8),
            "still {status} {answers:?} after the new upstream was saved\n{}\n{}",
            daemon.tail(20),
            second.tail(10)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let switched = switched.elapsed();
    assert!(
        second.output().contains("query[A] www.example.test"),
        "{}",
        second.tail(10)
    );
    // The LAN's own names still answer, and the same daemon serves.
    assert_eq!(dig(client, &dns, "labpc.lan.test", &[]).1, [ip.as_str()]);
    assert_eq!(daemon.pid(), pid);
    assert_eq!(daemon.output().matches("starting flakeboot").count(), 1);
    // A value the file's rules refuse is refused here too, on its field.
    settings["dns"]["upstream"] = json!([SERVER_IP]);
    let (code, refused) = api(&lan, "PUT", "/api/v1/settings", &settings);
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "dns.upstream", "{refused}");
    second.stop();

    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(30));
    eprintln!(
        "router_nat dns: first forwarded answer {} ms, cached {} ms, SERVFAIL without upstream {} ms; \
         answers from the upstream saved in settings {} ms after the PUT; total {} ms",
        first.as_millis(),
        cached.as_millis(),
        servfail.as_millis(),
        switched.as_millis(),
        started.elapsed().as_millis()
    );
}
