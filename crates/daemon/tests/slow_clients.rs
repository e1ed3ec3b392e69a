//! The real daemon against clients that hold connections without finishing a request (the
//! security issue's slow and silent connections): on the HTTP boot port (80) and the
//! management port (443) a half-sent request is cut off at the 10 s header-read (or TLS
//! handshake) timeout, and the 33rd idle connection from one address is closed at once while
//! another address is still served.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use flakeboot_testbed::require_tool;
use socket2::{Domain, Socket, Type};

const SLOW: &str = "10.77.0.50";
const OTHER: &str = "10.77.0.51";
/// The shipped per-address cap and header-read timeout.
const CAP: usize = 32;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection from `source` to the server's `port`, with a read timeout that bounds every
/// wait in this test.
fn connect(source: &str, port: u16) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(source.parse().unwrap(), 0).into())
        .unwrap();
    s.connect(&SocketAddr::new(SERVER_IP.parse().unwrap(), port).into())
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Waits (at most 10 s) until the server accepts on `port`: "serving" in the log may be
/// TFTP's line, printed before the web UI listens.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::new(SERVER_IP.parse().unwrap(), port);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads until the server closes the connection; panics when it stays open 20 s.
fn wait_closed(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: the server kept the connection open ({e})"),
        }
    }
}

#[test]
fn slow_and_piled_up_connections_are_bounded_on_both_http_ports() {
    require_tool("curl");
    let lan = Lan::new();
    lan.client().addr("eth0", &format!("{SLOW}/24")).unwrap();
    lan.client().addr("eth0", &format!("{OTHER}/24")).unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"off\"");
    let mut daemon = lan.start(&config);

    // Half a request line on port 80, half a TLS ClientHello on 443, then nothing.
    let slow = lan
        .client()
        .thread(|| {
            wait_listening(80);
            wait_listening(443);
            let started = Instant::now();
            let mut http = connect(SLOW, 80);
            http.write_all(b"GET /boot.ip").unwrap();
            let mut https = connect(SLOW, 443);
            https
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .unwrap();
            let answer = wait_closed(&mut http, "half a request line on port 80");
            let http_took = started.elapsed();
            wait_closed(&mut https, "half a ClientHello on port 443");
            (answer, http_took, started.elapsed())
        })
        .unwrap();
    let (answer, http_took, https_took) = slow.join().unwrap();
    println!("half-sent request closed after {http_took:?} (80), {https_took:?} (443)");
    for took in [http_took, https_took] {
        assert!(
            took >= HEADER_TIMEOUT - Duration::from_secs(1)
                && took < HEADER_TIMEOUT + Duration::from_secs(3),
            "closed after {took:?}"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    for port in [80u16, 443] {
        // CAP silent connections from one address are accepted and held...
        let (held, extra) = lan
            .client()
            .thread(move || {
                let held: Vec<TcpStream> = (0..CAP).map(|_| connect(SLOW, port)).collect();
                std::thread::sleep(Duration::from_millis(300));
                // ...the next one is closed at once, without a byte.
                let started = Instant::now();
                let mut extra = connect(SLOW, port);
                let got = wait_closed(&mut extra, "the connection over the cap");
                assert!(got.is_empty(), "port {port}: {got:?}");
                (held, started.elapsed())
            })
            .unwrap()
            .join()
            .unwrap();
        println!("port {port}: connection {} closed after {extra:?}", CAP + 1);
        assert!(extra < Duration::from_secs(1), "port {port}: {extra:?}");
        // Meanwhile another address is served.
        let (scheme, path) = match port {
            80 => ("http", format!("/boot.ipxe?mac={CLIENT_MAC}")),
            _ => ("https", "/login".to_owned()),
        };
        let url = format!("{scheme}://{SERVER_IP}{path}");
        let code = lan
            .client()
            .run(&[
                "curl",
                "-sk",
                "--max-time",
                "5",
                "--interface",
                OTHER,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ])
            .unwrap();
        assert!(
            code.trim() != "000",
            "port {port}: {OTHER} was not served: {code}"
        );
        // And the held connections still count: the slow address gets nothing more.
        let code = lan.client().run(&[
            "curl",
            "-sk",
            "--max-time",
            "5",
            "--interface",
            SLOW,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ]);
        assert!(
            code.is_err(),
            "port {port}: {SLOW} was served over its cap: {code:?}"
        );
        drop(held);
    }

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
