//! The accept loop of the HTTP listeners against raw TCP clients on loopback, with short
//! limits so the timeouts show in seconds: a half-sent request is cut off at the header-read
//! timeout, a kept-alive connection that goes quiet is closed, the per-address cap closes the
//! extra connection at once while another address is served, and `ConnectInfo` reaches the
//! handler. Clients come from 127.0.0.1 and 127.0.0.2 (all of 127/8 is loopback). Each test
//! runs against both loops: `serve` (hyper, the management port's) and `serve_boot` (the boot
//! port's own HTTP/1.1, its connections on event loops of their own).

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use flakeboot_appliance::http_serve::{self, ConnLimits, ConnStats, Plain};
use socket2::{Domain, Socket, Type};
use tokio_util::sync::CancellationToken;

const LIMITS: ConnLimits = ConnLimits {
    header_read_timeout: Duration::from_millis(800),
    idle_timeout: Duration::from_millis(1500),
    max_per_client: 4,
    drain_timeout: Duration::from_secs(2),
};

struct Server {
    addr: SocketAddr,
    stats: Arc<ConnStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Which accept loop serves.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Hyper,
    Boot,
}

async fn start(kind: Kind) -> Server {
    let app = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/thread",
            get(|| async { std::thread::current().name().unwrap_or("").to_owned() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ConnStats::default());
    let shutdown = CancellationToken::new();
    let task = match kind {
        Kind::Hyper => tokio::spawn(http_serve::serve(
            listener,
            app,
            LIMITS,
            stats.clone(),
            Plain,
            shutdown.clone(),
        )),
        Kind::Boot => tokio::spawn(http_serve::serve_boot(
            listener,
            app,
            LIMITS,
            stats.clone(),
            shutdown.clone(),
        )),
    };
    Server {
        addr,
        stats,
        shutdown,
        task,
    }
}

/// A blocking client from `source` (port chosen by the kernel).
fn connect(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    s.connect(&server.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes; returns what came and how long it took. A read timeout
/// (10 s) is a failure: the server kept the connection open.
fn until_closed(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// Runs a blocking client off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn half_sent_request_is_cut_off_at_the_header_timeout(kind: Kind) {
    let s = start(kind).await;
    let addr = s.addr;
    let (got, took, _still_open) = blocking(move || {
        let mut c = connect([127, 0, 0, 1], addr);
        c.write_all(b"GET /pe").unwrap();
        let (got, took) = until_closed(&mut c);
        (got, took, c)
    })
    .await;
    assert!(
        took < LIMITS.header_read_timeout + Duration::from_millis(700),
        "{took:?}"
    );
    // Both answer 408 before closing.
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got:?}");
    // The slow client has not closed its end, yet its address's slot is free: a full set of
    // connections from that address right away is accepted, none refused.
    let _full = blocking(move || {
        let held: Vec<TcpStream> = (0..LIMITS.max_per_client)
            .map(|_| connect([127, 0, 0, 1], addr))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        held
    })
    .await;
    let stats = s.stats.snapshot();
    assert_eq!(stats.refused_per_client, 0, "{stats:?}");
    s.shutdown.cancel();
    s.task.await.unwrap();
}

async fn silent_and_kept_alive_connections_are_closed(kind: Kind) {
    let s = start(kind).await;
    let addr = s.addr;
    let (silent, kept) = blocking(move || {
        let mut silent = connect([127, 0, 0, 1], addr);
        let mut kept = connect([127, 0, 0, 1], addr);
        kept.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 512];
        let n = kept.read(&mut first).unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).contains("127.0.0.1"));
        (until_closed(&mut silent).1, until_closed(&mut kept).1)
    })
    .await;
    let bound = LIMITS.header_read_timeout + Duration::from_millis(700);
    assert!(silent < bound, "silent connection open for {silent:?}");
    assert!(kept < bound, "kept-alive connection open for {kept:?}");
    s.shutdown.cancel();
    s.task.await.unwrap();
}

async fn the_per_address_cap_closes_the_extra_connection_and_others_are_served(kind: Kind) {
    let s = start(kind).await;
    let addr = s.addr;
    blocking(move || {
        let held: Vec<TcpStream> = (0..LIMITS.max_per_client)
            .map(|_| connect([127, 0, 0, 1], addr))
            .collect();
        // Accepted in order: the extra one is closed at once, without an answer.
        std::thread::sleep(Duration::from_millis(100));
        let mut extra = connect([127, 0, 0, 1], addr);
        let (got, took) = until_closed(&mut extra);
        assert!(
            got.is_empty() && took < Duration::from_millis(500),
            "{got:?} {took:?}"
        );
        // Another address is served meanwhile, and sees its own address.
        let mut other = connect([127, 0, 0, 2], addr);
        other
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (got, _) = until_closed(&mut other);
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
        assert!(got.ends_with("127.0.0.2"), "{got:?}");
        // A held connection still works (the cap refused only the extra one).
        let mut first = held.into_iter().next().unwrap();
        first
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (got, _) = until_closed(&mut first);
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    })
    .await;
    let stats = s.stats.snapshot();
    assert_eq!(stats.refused_per_client, 1, "{stats:?}");
    s.shutdown.cancel();
    s.task.await.unwrap();
}

async fn shutdown_lets_the_loop_return_with_connections_open(kind: Kind) {
    let s = start(kind).await;
    let addr = s.addr;
    let _open = blocking(move || connect([127, 0, 0, 1], addr)).await;
    s.shutdown.cancel();
    tokio::time::timeout(LIMITS.drain_timeout + Duration::from_secs(1), s.task)
        .await
        .expect("serve returns after the drain time")
        .unwrap();
}

/// The thread that answers a request on a new connection.
fn answering_thread(addr: SocketAddr) -> String {
    let mut c = connect([127, 0, 0, 1], addr);
    c.write_all(b"GET /thread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = until_closed(&mut c);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    got.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

/// Boot connections run on the boot port's event loops, in turn (one per core, this
/// machine's count); management connections on the runtime that serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_connections_run_on_event_loops_of_their_own() {
    let loops = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let boot = start(Kind::Boot).await;
    let addr = boot.addr;
    let threads: Vec<String> =
        blocking(move || (0..loops + 1).map(|_| answering_thread(addr)).collect()).await;
    let expected: Vec<String> = (0..loops + 1)
        .map(|i| format!("http-boot-{}", i % loops))
        .collect();
    assert_eq!(threads, expected);
    boot.shutdown.cancel();
    boot.task.await.unwrap();

    let hyper = start(Kind::Hyper).await;
    let addr = hyper.addr;
    let thread = blocking(move || answering_thread(addr)).await;
    assert!(!thread.starts_with("http-boot"), "{thread:?}");
    hyper.shutdown.cancel();
    hyper.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_is_cut_off_at_the_header_timeout_hyper() {
    half_sent_request_is_cut_off_at_the_header_timeout(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_is_cut_off_at_the_header_timeout_boot() {
    half_sent_request_is_cut_off_at_the_header_timeout(Kind::Boot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_kept_alive_connections_are_closed_hyper() {
    silent_and_kept_alive_connections_are_closed(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_kept_alive_connections_are_closed_boot() {
    silent_and_kept_alive_connections_are_closed(Kind::Boot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_closes_the_extra_connection_and_others_are_served_hyper() {
    the_per_address_cap_closes_the_extra_connection_and_others_are_served(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_closes_the_extra_connection_and_others_are_served_boot() {
    the_per_address_cap_closes_the_extra_connection_and_others_are_served(Kind::Boot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_loop_return_with_connections_open_hyper() {
    shutdown_lets_the_loop_return_with_connections_open(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_loop_return_with_connections_open_boot() {
    shutdown_lets_the_loop_return_with_connections_open(Kind::Boot).await;
}
