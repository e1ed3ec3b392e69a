//! Proxy mode with real firmware: QEMU guests netboot on a LAN where dnsmasq hands out the
//! addresses and flakeboot (proxy mode, same interface) the boot information.
//!
//! - iPXE (QEMU's virtio-net option ROM under SeaBIOS) must take flakeboot's ProxyDHCP offer
//!   and fetch the script URL it is given over HTTP (never a binary: it is iPXE already).
//! - OVMF's own PXE client (UEFI, `romfile=`) must take the proxy offer (PXE option 43) and ask
//!   for `ipxe.efi` over TFTP.
//!
//! The HTTP and TFTP ends are minimal listeners in this file (the real servers are other
//! crates): they record what the firmware asked for. QEMU runs under TCG (see
//! /work/shared/recipes/netboot-in-qemu.md), started by `qemu/client.sh` and ended by its PID.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod dhcp_server;
mod proxy_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootStage, ClientFirmware, Outcome};
use flakeboot_testbed::{Proc, require_tool, workspace_root};
use proxy_common::*;

/// Generous: TCG on a loaded 2-core machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Stops the listener threads when the test ends.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An HTTP listener on 10.77.0.1:80 in the server namespace: sends each request line, answers
/// with a tiny iPXE script.
fn http_requests(lan: &Lan) -> (mpsc::Receiver<String>, Stop) {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    lan.net.server
        .thread(move || {
            let listener = TcpListener::bind("10.77.0.1:80").unwrap();
            listener.set_nonblocking(true).unwrap();
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
                let body = "#!ipxe\necho flakeboot proxy test script\nshell\n";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tx.send(line);
            }
        })
        .unwrap();
    (rx, Stop(stop))
}

/// A TFTP listener on 10.77.0.1:69: sends each read request's (client, file name) and answers
/// ERROR 1 (file not found), so the firmware stops there.
fn tftp_requests(lan: &Lan) -> (mpsc::Receiver<(SocketAddr, String)>, Stop) {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    lan.net
        .server
        .thread(move || {
            let socket = UdpSocket::bind("10.77.0.1:69").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 4 || buf[..2] != [0, 1] {
                    continue;
                }
                let name = buf[2..n].split(|&b| b == 0).next().unwrap_or_default();
                let _ = tx.send((from, String::from_utf8_lossy(name).into_owned()));
                let _ = socket.send_to(b"\x00\x05\x00\x01not found in this test\x00", from);
            }
        })
        .unwrap();
    (rx, Stop(stop))
}

fn start_qemu(lan: &Lan, kind: &str, mac: &str, dir: &std::path::Path) -> Proc {
    require_tool("qemu-system-x86_64");
    let script = workspace_root().join("qemu/client.sh");
    assert!(script.is_file(), "{} is missing", script.display());
    let serial = dir.join("serial.log");
    let vars = dir.join("vars.fd");
    let mut cmd = lan.net.server.command("env");
    cmd.arg("QEMU_ACCEL=tcg")
        .arg(format!("QEMU_VARS={}", vars.display()))
        .arg("sh")
        .arg(&script)
        .args([kind, lan.interface, mac])
        .arg(&serial);
    Proc::spawn("qemu", cmd).unwrap()
}

fn serial(dir: &std::path::Path) -> String {
    let s = std::fs::read_to_string(dir.join("serial.log")).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn ipxe_bios_rom_takes_the_proxy_offer_and_fetches_the_script() {
    ipxe_rom_takes_the_proxy_offer_and_fetches_the_script("bios", ClientFirmware::IpxeBios);
}

#[test]
fn ipxe_efi_rom_takes_the_proxy_offer_and_fetches_the_script() {
    ipxe_rom_takes_the_proxy_offer_and_fetches_the_script("uefi", ClientFirmware::IpxeEfi);
}

fn ipxe_rom_takes_the_proxy_offer_and_fetches_the_script(kind: &str, firmware: ClientFirmware) {
    let lan = Lan::start_with(LanKind::Tap);
    let (requests, _stop) = http_requests(&lan);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let _qemu = start_qemu(&lan, kind, "52:54:00:12:34:56", dir.path());

    let line = requests.recv_timeout(BOOT_TIMEOUT).unwrap_or_else(|_| {
        panic!(
            "iPXE fetched nothing over HTTP within {BOOT_TIMEOUT:?}\nserial:\n{}\ndnsmasq:\n{}\nevents: {:#?}",
            serial(dir.path()),
            lan.dnsmasq_tail(),
            lan.events()
        )
    });
    eprintln!(
        "iPXE ({kind}) asked for the script after {:?}: {line}",
        started.elapsed()
    );
    // iPXE percent-encodes the colons of the URL it was given (Debian's 2019 build does):
    // the HTTP side must decode the query, as any URL parser does.
    assert_eq!(
        line,
        "GET /boot.ipxe?mac=52%3A54%3A00%3A12%3A34%3A56 HTTP/1.1"
    );
    assert_eq!(
        line.replace("%3A", ":"),
        "GET /boot.ipxe?mac=52:54:00:12:34:56 HTTP/1.1"
    );

    let events = lan.events();
    let url = "http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56";
    assert!(
        events.iter().any(|e| e.stage == BootStage::Dhcp
            && e.outcome == Outcome::Ok
            && e.firmware == Some(firmware)
            && e.detail == format!("proxy offer: {url}")),
        "{events:#?}"
    );
    // This iPXE takes the boot file straight from the ProxyDHCP offer (it has PXE options, so
    // iPXE skips its ProxyDHCP REQUEST to 4011; the 4011 exchange is covered with a scripted
    // iPXE request in proxy_dnsmasq.rs). Should it ask there, it must get the script too.
    for e in events
        .iter()
        .filter(|e| e.stage == BootStage::PxeBootServer)
    {
        assert_eq!(e.detail, format!("boot server ack: {url}"), "{e:?}");
    }
    // Never a binary for iPXE.
    assert!(
        events.iter().all(|e| !e.detail.contains("kpxe")),
        "{events:#?}"
    );
    // And it got its address from dnsmasq.
    assert!(
        lan.dnsmasq_log().contains("DHCPACK(tap0)"),
        "{}",
        lan.dnsmasq_tail()
    );
    assert_eq!(lan.stats().malformed, 0);
}

#[test]
fn ovmf_native_pxe_takes_the_proxy_offer_and_asks_for_ipxe_efi() {
    let lan = Lan::start_with(LanKind::Tap);
    let (requests, _stop) = tftp_requests(&lan);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let _qemu = start_qemu(&lan, "uefi-pxe", "52:54:00:65:43:21", dir.path());

    let (from, file) = requests.recv_timeout(BOOT_TIMEOUT).unwrap_or_else(|_| {
        panic!(
            "OVMF sent no TFTP request within {BOOT_TIMEOUT:?}\nserial:\n{}\ndnsmasq:\n{}\nevents: {:#?}",
            serial(dir.path()),
            lan.dnsmasq_tail(),
            lan.events()
        )
    });
    eprintln!(
        "OVMF asked for {file:?} from {from} after {:?}",
        started.elapsed()
    );
    eprintln!("events: {:#?}", lan.events());
    assert_eq!(file, "ipxe.efi");
    let events = lan.events();
    assert!(
        events.iter().any(|e| e.stage == BootStage::Dhcp
            && e.outcome == Outcome::Ok
            && e.firmware == Some(ClientFirmware::UefiX64Pxe)
            && e.detail == "proxy offer: ipxe.efi"),
        "{events:#?}"
    );
}
