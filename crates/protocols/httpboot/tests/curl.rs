//! Black-box: the router on a real TCP socket (127.0.0.1, an ephemeral port), driven by the real
//! `curl` binary: byte ranges of an 8 MiB initrd, a full download, HEAD, conditional GET. Each
//! test runs twice: under hyper (`axum::serve`, bodies read in chunks) and under the boot port's
//! own HTTP/1.1 loop (`h1::serve_connection`, bodies sent with `sendfile`).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootStage, Outcome};
use flakeboot_httpboot::{h1, router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use common::{ASSIGNED, Fixture, curl};

const INITRD_LEN: usize = 8 * 1024 * 1024;

/// Which HTTP server runs the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `axum::serve`: hyper, bodies streamed in chunks.
    Hyper,
    /// The boot port's loop: `h1::serve_connection`, bodies with `sendfile`.
    Own,
}

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(fx: &Fixture, kind: Kind) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(fx.state(&base));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = match kind {
        Kind::Hyper => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }),
        Kind::Own => tokio::spawn(async move {
            let shutdown = CancellationToken::new();
            let timeouts = h1::Timeouts {
                header_read: Duration::from_secs(10),
                idle: Duration::from_secs(10),
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let (stream, peer) = accepted.unwrap();
                        let (app, shutdown) = (app.clone(), shutdown.clone());
                        tokio::spawn(h1::serve_connection(stream, peer, app, timeouts, shutdown));
                    }
                }
            }
            shutdown.cancel();
        }),
    };
    Server {
        base,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task)
            .await
            .expect("server did not shut down")
            .unwrap();
    }
}

/// Download `url` with extra curl args into `dest`; returns the HTTP status.
async fn fetch(url: &str, dest: &Path, extra: &[&str]) -> u16 {
    let dest = dest.to_str().unwrap();
    let mut args = vec!["-o", dest, "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args).await.trim().parse().unwrap()
}

async fn curl_ranges_full_download_head_and_conditional_get(kind: Kind) {
    let fx = Fixture::new(64 * 1024, INITRD_LEN);
    let server = serve(&fx, kind).await;
    let url = format!(
        "{}/boot/demo/static/initrd?mac=52:54:00:12:34:56",
        server.base
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("body");

    // A closed range: exactly bytes 100..=199.
    assert_eq!(fetch(&url, &dest, &["-r", "100-199"]).await, 206);
    assert_eq!(std::fs::read(&dest).unwrap(), fx.initrd[100..=199]);
    // The last 500 bytes.
    assert_eq!(fetch(&url, &dest, &["-r", "-500"]).await, 206);
    assert_eq!(std::fs::read(&dest).unwrap(), fx.initrd[INITRD_LEN - 500..]);
    // From byte 1000 to the end.
    assert_eq!(fetch(&url, &dest, &["-r", "1000-"]).await, 206);
    assert_eq!(std::fs::read(&dest).unwrap(), fx.initrd[1000..]);
    // Past the end: 416.
    assert_eq!(fetch(&url, &dest, &["-r", "9000000-"]).await, 416);

    // The whole file, byte-identical.
    let started = Instant::now();
    assert_eq!(fetch(&url, &dest, &[]).await, 200);
    let took = started.elapsed();
    assert!(
        std::fs::read(&dest).unwrap() == fx.initrd,
        "full download differs"
    );
    eprintln!(
        "8 MiB initrd over loopback in {:.1} ms ({:.0} MiB/s, debug build)",
        took.as_secs_f64() * 1000.0,
        8.0 / took.as_secs_f64()
    );

    // HEAD shows the validators and the length.
    let head = curl(&["-I", &url]).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {INITRD_LEN}\r\n")),
        "{head}"
    );
    assert!(head.contains("accept-ranges: bytes\r\n"), "{head}");
    assert!(head.contains("last-modified: "), "{head}");
    let etag_line = head
        .lines()
        .find(|l| l.starts_with("etag: "))
        .unwrap_or_else(|| panic!("no ETag in {head}"));
    let etag = etag_line.trim_start_matches("etag: ").trim();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // A conditional GET with that ETag: 304, no body.
    let inm = format!("If-None-Match: {etag}");
    std::fs::remove_file(&dest).unwrap();
    assert_eq!(fetch(&url, &dest, &["-H", &inm]).await, 304);
    assert!(!dest.exists(), "a 304 has no body for curl to write");

    // curl sends `..` as is with --path-as-is: still nothing outside the catalogue.
    let traversal = format!("{}/boot/../../../../etc/passwd", server.base);
    assert_eq!(fetch(&traversal, &dest, &["--path-as-is"]).await, 404);

    // Every fetch above is a boot event of the initrd stage, with the MAC and the peer.
    let events = fx.catalogue.events();
    let initrd: Vec<_> = events
        .iter()
        .filter(|e| e.stage == BootStage::Initrd)
        .collect();
    assert_eq!(initrd.len(), 7, "{events:#?}");
    for e in &initrd {
        assert_eq!(e.mac, Some(ASSIGNED));
        assert_eq!(e.peer, Some("127.0.0.1".parse().unwrap()));
        assert!(
            e.detail.contains("/boot/demo/static/initrd"),
            "{}",
            e.detail
        );
    }
    assert_eq!(
        initrd[0].detail,
        "GET /boot/demo/static/initrd 206 bytes 100-199/8388608"
    );
    assert_eq!(initrd[3].outcome, Outcome::Failed, "the 416");
    assert_eq!(
        initrd[4].detail,
        "GET /boot/demo/static/initrd 200 bytes 0-8388607/8388608"
    );

    server.shutdown().await;
}

async fn curl_gets_the_script_with_the_servers_base_url(kind: Kind) {
    let fx = Fixture::new(1024, 1024);
    let server = serve(&fx, kind).await;
    let script = curl(&[&format!("{}/boot.ipxe?mac=52-54-00-12-34-56", server.base)]).await;
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    let kernel_url = format!(
        "{}/boot/demo/static/kernel?mac=52:54:00:12:34:56",
        server.base
    );
    assert!(
        script.contains(&format!("kernel {kernel_url} initrd=initrd ")),
        "{script}"
    );
    // The URLs in the script work as they are.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("kernel");
    assert_eq!(fetch(&kernel_url, &dest, &[]).await, 200);
    assert_eq!(std::fs::read(&dest).unwrap(), fx.kernel);
    let stages: Vec<_> = fx.catalogue.events().iter().map(|e| e.stage).collect();
    assert_eq!(stages, [BootStage::Script, BootStage::Kernel]);
    server.shutdown().await;
}

/// A client that hangs up part way through the initrd (a cut-off download) is recorded as a
/// failed initrd with how far it got, never as delivered; a whole download is `ok`.
async fn a_cut_off_initrd_is_recorded_as_failed_with_how_far_it_got(kind: Kind) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = Fixture::new(1024, 8 * 1024 * 1024);
    let server = serve(&fx, kind).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request =
        format!("GET /boot/demo/static/initrd?mac={ASSIGNED} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 1024 * 1024 {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server ended the body early");
        got += n;
    }
    drop(conn);

    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let event = loop {
        let events = fx.catalogue.events();
        if let Some(e) = events.iter().find(|e| e.stage == BootStage::Initrd) {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no initrd event: {events:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(event.outcome, Outcome::Failed, "{}", event.detail);
    assert!(
        event.detail.contains("cut off after") && event.detail.contains("of 8388608 bytes"),
        "{}",
        event.detail
    );
    assert_eq!(event.mac, Some(ASSIGNED));

    // The whole file: one `ok` event, recorded when the last byte went out.
    let dest = tempfile::NamedTempFile::new().unwrap();
    let url = format!("{}/boot/demo/static/initrd?mac={ASSIGNED}", server.base);
    let out = curl(&[
        "-sS",
        "-o",
        dest.path().to_str().unwrap(),
        "-w",
        "%{http_code}",
        &url,
    ])
    .await;
    assert_eq!(out, "200");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = fx.catalogue.events();
        let initrd: Vec<_> = events
            .iter()
            .filter(|e| e.stage == BootStage::Initrd)
            .collect();
        if initrd.len() == 2 {
            assert_eq!(initrd[1].outcome, Outcome::Ok, "{}", initrd[1].detail);
            break;
        }
        assert!(Instant::now() < deadline, "{events:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ranges_full_download_head_and_conditional_get_hyper() {
    curl_ranges_full_download_head_and_conditional_get(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ranges_full_download_head_and_conditional_get_own_loop() {
    curl_ranges_full_download_head_and_conditional_get(Kind::Own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_script_with_the_servers_base_url_hyper() {
    curl_gets_the_script_with_the_servers_base_url(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_script_with_the_servers_base_url_own_loop() {
    curl_gets_the_script_with_the_servers_base_url(Kind::Own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_initrd_is_recorded_as_failed_with_how_far_it_got_hyper() {
    a_cut_off_initrd_is_recorded_as_failed_with_how_far_it_got(Kind::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_initrd_is_recorded_as_failed_with_how_far_it_got_own_loop() {
    a_cut_off_initrd_is_recorded_as_failed_with_how_far_it_got(Kind::Own).await;
}
