//! The boot port's own HTTP/1.1 loop (`h1::serve_connection`) against real clients on loopback:
//! curl fetching several files over one kept-alive connection, and raw TCP clients for what
//! curl does not do on its own: pipelined requests, HTTP/1.0, `Expect: 100-continue`, refused
//! framing (chunked bodies, oversized heads and bodies, garbage), and a client that stops
//! reading its download (closed at the idle timeout, recorded as cut off).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootStage, Outcome};
use flakeboot_httpboot::{h1, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use common::{ASSIGNED, Fixture, curl};

const TIMEOUTS: h1::Timeouts = h1::Timeouts {
    header_read: Duration::from_secs(2),
    idle: Duration::from_secs(1),
};

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    ended: tokio::sync::mpsc::UnboundedReceiver<h1::Ended>,
}

async fn serve(fx: &Fixture) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(fx.state(&format!("http://{addr}")));
    let shutdown = CancellationToken::new();
    let (tx, ended) = tokio::sync::mpsc::unbounded_channel();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => accepted.unwrap(),
            };
            let (app, stop, tx) = (app.clone(), stop.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(h1::serve_connection(stream, peer, app, TIMEOUTS, stop).await);
            });
        }
    });
    Server {
        addr,
        shutdown,
        ended,
    }
}

/// Reads until the server closes (at most 10 s).
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
        .await
        .expect("the server kept the connection open")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads while `more` says what came so far is not enough (at most 10 s).
async fn read_while(conn: &mut TcpStream, more: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while more(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("waiting: {}", String::from_utf8_lossy(&got)))
            .unwrap();
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..read]);
    }
    got
}

/// Reads until what came ends with `end`.
async fn read_bytes_until(conn: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    read_while(conn, |got| !got.ends_with(end)).await
}

/// A response's head (through the blank line) as text, and the bytes after it.
fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {}", String::from_utf8_lossy(bytes)))
        + 4;
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end..],
    )
}

/// Reads until what came holds `n` occurrences of `needle`, as text.
async fn read_until(conn: &mut TcpStream, needle: &str, n: usize) -> String {
    let got = read_while(conn, |got| {
        String::from_utf8_lossy(got).matches(needle).count() < n
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_script_kernel_initrd_and_ipxe_over_one_connection() {
    let fx = Fixture::new(300 * 1024, 5 * 1024 * 1024 + 7);
    let server = serve(&fx).await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}", server.addr);
    let names = ["script", "kernel", "initrd", "ipxe"];
    let urls = [
        format!("{base}/boot.ipxe?mac={ASSIGNED}"),
        format!("{base}/boot/demo/static/kernel?mac={ASSIGNED}"),
        format!("{base}/boot/demo/static/initrd?mac={ASSIGNED}"),
        format!("{base}/ipxe/ipxe.efi"),
    ];
    let dests: Vec<String> = names
        .iter()
        .map(|name| dir.path().join(name).to_str().unwrap().to_owned())
        .collect();
    let mut args = vec!["-w", "%{http_code} %{num_connects}\\n"];
    for (dest, url) in dests.iter().zip(&urls) {
        args.extend(["-o", dest, url]);
    }
    let printed = curl(&args).await;
    // One connection made for the first URL, none for the others: all kept alive.
    assert_eq!(printed, "200 1\n200 0\n200 0\n200 0\n");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert!(
        String::from_utf8(read("script"))
            .unwrap()
            .starts_with("#!ipxe\n")
    );
    assert!(read("kernel") == fx.kernel, "kernel differs");
    assert!(read("initrd") == fx.initrd, "initrd differs");
    assert!(read("ipxe") == fx.ipxe, "ipxe.efi differs");
    let events = fx.catalogue.events();
    let stages: Vec<_> = events.iter().map(|e| (e.stage, e.outcome)).collect();
    assert_eq!(
        stages,
        [
            (BootStage::Script, Outcome::Ok),
            (BootStage::Kernel, Outcome::Ok),
            (BootStage::Initrd, Outcome::Ok),
            (BootStage::HttpIpxe, Outcome::Ok),
        ],
        "{events:#?}"
    );
    assert_eq!(events[2].bytes, Some(fx.initrd.len() as u64));
    server.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_http_1_0_closes() {
    let fx = Fixture::new(1000, 4096);
    let server = serve(&fx).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    // Three requests in one write: a Range GET, a HEAD, a GET of the index page.
    conn.write_all(
        format!(
            "GET /boot/demo/static/kernel?mac={ASSIGNED} HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n\
             HEAD /boot/demo/static/initrd HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let got = read_bytes_until(&mut conn, b"not found\n").await;
    // The 206: its head, then exactly the ten bytes.
    let (head, rest) = split_head(&got);
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    assert!(
        head.contains("content-range: bytes 10-19/1000\r\n"),
        "{head}"
    );
    assert!(head.contains("content-length: 10\r\n"), "{head}");
    assert_eq!(&rest[..10], &fx.kernel[10..20]);
    // The HEAD: the initrd's length, no body.
    let (head, rest) = split_head(&rest[10..]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-length: 4096\r\n"), "{head}");
    // The 404, right after the HEAD's head.
    let (head, rest) = split_head(rest);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert_eq!(rest, b"not found\n");
    // Still open (HTTP/1.1 keeps alive): one more request on it.
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let last = read_to_close(&mut conn).await;
    assert!(last.starts_with("HTTP/1.1 200 OK\r\n"), "{last}");
    assert!(last.contains("connection: close\r\n"), "{last}");

    // HTTP/1.0 without keep-alive: answered, then closed by the server.
    let mut old = TcpStream::connect(server.addr).await.unwrap();
    old.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let got = read_to_close(&mut old).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("flakeboot boot server"), "{got}");
    // HTTP/1.0 asking for keep-alive: told so, and the connection stays.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut kept, "separately.\n", 1).await;
    assert!(got.contains("connection: keep-alive\r\n"), "{got}");
    kept.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let got = read_to_close(&mut kept).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    server.shutdown.cancel();
}

/// Sends `request` on a new connection; returns everything until the server closes.
async fn exchange(server: &Server, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    read_to_close(&mut conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_heads_it_does_not_take_are_refused_and_closed() {
    let fx = Fixture::new(1000, 1000);
    let server = serve(&fx).await;
    // A head over 16 KiB.
    let mut big = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let refused: [(&[u8], &str); 6] = [
        // A chunked body.
        (
            b"POST /boot/report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "501 Not Implemented",
        ),
        // A body longer than the loop takes: refused before any of it is read.
        (
            b"POST /boot/report HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
            "413 Payload Too Large",
        ),
        // Two different lengths.
        (
            b"POST /boot/report HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "400 Bad Request",
        ),
        (&big, "431 Request Header Fields Too Large"),
        // Garbage (a TLS hello's first bytes).
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "400 Bad Request"),
        // HTTP/2's preface on this port: refused, not misread.
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "400 Bad Request"),
    ];
    for (request, status) in refused {
        let got = exchange(&server, request).await;
        assert!(got.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{got}");
        assert!(got.contains("connection: close\r\n"), "{got}");
    }
    // A half-sent head: 408 at the header-read timeout.
    let started = Instant::now();
    let got = exchange(&server, b"GET /boot.ipxe HTTP/1.1\r\nHost").await;
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
    let took = started.elapsed();
    assert!(
        took >= TIMEOUTS.header_read && took < TIMEOUTS.header_read + Duration::from_secs(2),
        "{took:?}"
    );
    server.shutdown.cancel();
}

/// A system's report with `Expect: 100-continue` (as curl sends for large bodies): the loop
/// says continue, reads the body, and the route answers (403 here: the fake catalogue accepts
/// no report). The connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_expect_continue_gets_100_then_the_answer() {
    let fx = Fixture::new(1000, 1000);
    let server = serve(&fx).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    let body = format!("mac={ASSIGNED}&stage=up");
    conn.write_all(
        format!(
            "POST /boot/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let got = read_until(&mut conn, "\r\n\r\n", 1).await;
    assert_eq!(got, "HTTP/1.1 100 Continue\r\n\r\n");
    conn.write_all(body.as_bytes()).await.unwrap();
    let got = read_until(&mut conn, "\r\n\r\n", 1).await;
    assert!(got.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{got}");
    conn.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut conn).await;
    assert!(got.contains("HTTP/1.1 200 OK\r\n"), "{got}");
    server.shutdown.cancel();
}

/// A client that stops reading its initrd: the write makes no progress, the idle timeout
/// closes the connection, and the boot event says the initrd was cut off and how far it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_at_the_idle_timeout_and_recorded_cut_off() {
    const LEN: usize = 48 * 1024 * 1024;
    let fx = Fixture::new(1000, LEN);
    let mut server = serve(&fx).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(
        format!("GET /boot/demo/static/initrd?mac={ASSIGNED} HTTP/1.1\r\nHost: x\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 4096];
    let n = conn.read(&mut first).await.unwrap();
    assert!(n > 0);
    // Read nothing more: the socket buffers fill and sendfile stops moving bytes.
    let ended = tokio::time::timeout(Duration::from_secs(20), server.ended.recv())
        .await
        .expect("the connection was not closed")
        .unwrap();
    assert_eq!(ended, h1::Ended::TimedOut);
    let events = fx.catalogue.events();
    let initrd = events
        .iter()
        .find(|e| e.stage == BootStage::Initrd)
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(initrd.outcome, Outcome::Failed, "{}", initrd.detail);
    assert!(
        initrd.detail.contains("cut off after")
            && initrd.detail.contains(&format!("of {LEN} bytes")),
        "{}",
        initrd.detail
    );
    let sent = initrd.bytes.unwrap();
    assert!(sent > 0 && sent < LEN as u64, "{sent}");
    drop(conn);
    server.shutdown.cancel();
}

/// A cached file replaced on disk (a new generation renamed over the path) is served new at
/// the next request: the cache hit's inline `stat` sees the new inode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_between_requests_is_served_new() {
    let fx = Fixture::new(1000, 4096);
    let server = serve(&fx).await;
    let url = format!("http://{}/boot/demo/static/initrd", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    let fetch = |dest: std::path::PathBuf, url: String| async move {
        curl(&["-o", dest.to_str().unwrap(), &url]).await;
        std::fs::read(&dest).unwrap()
    };
    assert!(fetch(dest.clone(), url.clone()).await == fx.initrd);
    assert!(
        fetch(dest.clone(), url.clone()).await == fx.initrd,
        "a cache hit"
    );
    let path = fx.dir.path().join("initrd.gz");
    let next = fx.dir.path().join("initrd.next");
    std::fs::write(&next, b"the next generation's initrd").unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert_eq!(
        fetch(dest.clone(), url.clone()).await,
        b"the next generation's initrd"
    );
    server.shutdown.cancel();
}
