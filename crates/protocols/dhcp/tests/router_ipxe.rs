//! Router mode with a real iPXE: Debian's iPXE option ROM (virtio-net, BIOS) in QEMU (TCG) on
//! a TAP device in the server's namespace. iPXE gets its address from flakeboot, the HTTP
//! script URL as its boot file, and, thanks to the router advertisement, fetches the script
//! without its ~13 s wait for IPv6 autoconfiguration (measured here: the script is fetched
//! about 5.4 s after QEMU starts with the RA, about 18.3 s without).
//!
//! The assertion measures from iPXE's first DHCP request (as flakeboot recorded it) to its
//! HTTP request, which leaves out the firmware start-up that TCG makes slow and variable.

// Test harness code outside #[test] functions: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod dhcp_server;
mod router_common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

use flakeboot_catalogue::{BootStage, ClientFirmware, MacAddr};
use flakeboot_dhcp::ra::RaConfig;
use flakeboot_dhcp::server::ServerMode;
use flakeboot_store::Store;
use flakeboot_testbed::{Netns, require_root, require_tool};
use router_common::{FIRST, Server, pool};

/// From its DHCP offer to its script request, iPXE needs about 1-2 s with an RA and more
/// than 13 s without one (it waits for IPv6 autoconfiguration first).
const WITH_RA_WITHIN: Duration = Duration::from_secs(8);

/// Accept one HTTP request on `listener` (until `deadline`), answer 404, and return its
/// request line with the time it arrived.
fn one_http_request(listener: &TcpListener, deadline: Instant) -> Option<(SystemTime, String)> {
    listener.set_nonblocking(true).ok()?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let at = SystemTime::now();
                stream.set_nonblocking(false).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).ok()?;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let _ = stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                return Some((at, text.lines().next().unwrap_or_default().to_owned()));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn ipxe_gets_a_lease_and_its_script_url_without_waiting_for_ipv6() {
    require_root();
    let qemu = require_tool("qemu-system-x86_64");
    let srv = Netns::new("ipxe").unwrap();
    srv.add_tap("tap0", "10.77.0.1/24").unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A stand-in for flakeboot's HTTP boot service: it only notes when iPXE asks.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let http = srv
        .thread(move || {
            let listener = TcpListener::bind("10.77.0.1:80").unwrap();
            bound_tx.send(()).unwrap();
            one_http_request(&listener, deadline)
        })
        .unwrap();
    bound_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let mut cfg = pool(Some(RaConfig {
        prefix: "fd77::".parse().unwrap(),
        interval: Duration::from_secs(30),
    }));
    cfg.lease_time = Duration::from_secs(600);
    let server = Server::start(
        &srv,
        "tap0",
        ServerMode::Router(cfg),
        &dir.path().join("state"),
    );

    let started = SystemTime::now();
    let vm = srv
        .spawn(
            "qemu",
            &[
                qemu.to_str().unwrap(),
                "-accel",
                "tcg",
                "-machine",
                "pc",
                "-m",
                "256",
                "-display",
                "none",
                "-nodefaults",
                "-serial",
                "null",
                "-boot",
                "n",
                "-no-reboot",
                "-netdev",
                "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device",
                "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
            ],
        )
        .unwrap();
    let request = http.join().unwrap();
    let log = vm.tail(20);
    drop(vm);
    let (at, line) = request.unwrap_or_else(|| panic!("iPXE never fetched its script\n{log}"));
    let events = server.events.events();
    server.stop();
    assert!(
        line.starts_with("GET /boot.ipxe?mac=52%3A54%3A00%3A12%3A34%3A56 "),
        "{line}"
    );
    let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    let dhcp: Vec<_> = events
        .iter()
        .filter(|e| e.stage == BootStage::Dhcp && e.mac == Some(mac))
        .collect();
    assert!(
        dhcp.iter()
            .any(|e| e.firmware == Some(ClientFirmware::IpxeBios)
                && e.detail
                    .starts_with("router ack 10.77.0.100: http://10.77.0.1/boot.ipxe")),
        "{events:#?}"
    );
    let first_dhcp = dhcp.iter().map(|e| e.at).min().unwrap();
    let gap = at.duration_since(first_dhcp).unwrap_or_default();
    eprintln!(
        "iPXE: script fetched {:?} after QEMU started, {gap:?} after its first DHCP request: {line}",
        at.duration_since(started).unwrap_or_default()
    );
    assert!(
        gap < WITH_RA_WITHIN,
        "iPXE took {gap:?} from DHCP to its script: did it wait for IPv6 autoconfiguration?"
    );
    let leases = Store::open(&dir.path().join("state"))
        .unwrap()
        .leases()
        .unwrap();
    assert!(
        leases.iter().any(|l| l.ip == FIRST && l.mac == mac),
        "{leases:?}"
    );
}
