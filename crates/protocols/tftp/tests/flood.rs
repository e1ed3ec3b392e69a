//! The LAN attacker of the security issue: a flood of read requests from one address (one
//! socket, then many sockets) while a real client downloads. The real downloads must complete,
//! and the refusals must cost a few log lines, not two per packet. Loopback only: the flood
//! comes from 127.0.0.2, the real client (curl) from 127.0.0.1. Its own test binary, so the
//! log it captures is the server's alone.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flakeboot_catalogue::{
    BootEvent, BootFile, BootSpec, Catalogue, IpxeBinary, MacAddr, Menu, Outcome,
};
use flakeboot_testbed::require_tool;
use flakeboot_tftp::{TftpServer, TftpServerConfig};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const UNDIONLY: &str = "/usr/lib/ipxe/undionly.kpxe";

#[derive(Debug)]
struct OneFile {
    path: PathBuf,
    events: Mutex<Vec<BootEvent>>,
}

impl Catalogue for OneFile {
    fn boot_spec(&self, _mac: Option<MacAddr>) -> BootSpec {
        BootSpec::Menu(Menu {
            entries: vec![],
            default: None,
            timeout: Duration::from_secs(5),
        })
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        matches!(file, BootFile::Ipxe(IpxeBinary::Undionly)).then(|| self.path.clone())
    }

    fn record(&self, event: BootEvent) {
        self.events.lock().unwrap().push(event);
    }

    fn accept_report(&self, _mac: MacAddr, _from: std::net::IpAddr) -> bool {
        false
    }
}

/// The server's log, as the daemon would print it (INFO and above).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().map(str::to_owned).collect()
    }
}

/// The shipped defaults, on loopback.
fn flood_config() -> TftpServerConfig {
    TftpServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        interface: None,
        max_transfers: 256,
        max_per_client: 4,
        first_ack_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        retries: 5,
        max_blksize: 1468,
        max_windowsize: 64,
        mtu: None,
    }
}

fn rrq() -> Vec<u8> {
    b"\x00\x01undionly.kpxe\x00octet\x00".to_vec()
}

/// 300 RRQs as fast as one socket sends them, then about 100 a second for `steady` from 16
/// sockets of the same address (the 3 KB/s). Never reads an answer; stops by itself.
async fn flood(server: SocketAddr, steady: Duration) -> u64 {
    let one = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let mut sent = 0;
    for _ in 0..300 {
        one.send_to(&rrq(), server).await.unwrap();
        sent += 1;
    }
    let mut many = Vec::new();
    for _ in 0..16 {
        many.push(UdpSocket::bind("127.0.0.2:0").await.unwrap());
    }
    let end = Instant::now() + steady;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        many[i % many.len()].send_to(&rrq(), server).await.unwrap();
        i += 1;
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_neither_starves_downloads_nor_floods_the_log() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("undionly.kpxe");
    std::fs::copy(UNDIONLY, &path).expect("Debian's ipxe package provides undionly.kpxe");
    let want = std::fs::read(&path).unwrap();
    let catalogue = Arc::new(OneFile {
        path,
        events: Mutex::default(),
    });
    let server = TftpServer::bind(flood_config()).await.unwrap();
    let addr = server.local_addr();
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(catalogue.clone(), shutdown.clone()));

    let flooder = tokio::spawn(flood(addr, Duration::from_secs(4)));
    // Let the burst land first: the real client asks while the flood holds what it can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let curl = require_tool("curl");
    let url = format!("tftp://{addr}/undionly.kpxe");
    for i in 0..3 {
        let out = dir.path().join(format!("got-{i}"));
        let result = tokio::process::Command::new(&curl)
            .args(["-sS", "--fail", "--max-time", "10", "-o"])
            .arg(&out)
            .arg(&url)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(
            result.status.success(),
            "download {i} during the flood failed: {}\n{}",
            result.status,
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(
            std::fs::read(&out).unwrap() == want,
            "download {i}: bytes differ"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sent = flooder.await.unwrap();
    // The last refusals' summary line comes within a second of the flood's end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops within 5 s")
        .unwrap()
        .unwrap();

    let stats = stats.snapshot();
    println!("flood of {sent} requests: {stats:?}");
    assert_eq!(stats.transfers_ok, 3, "{stats:?}");
    assert!(stats.duplicate_requests >= 299, "{stats:?}");
    assert!(stats.refused_client_busy > 100, "{stats:?}");
    // Every flood request that arrived is accounted for: refused, dropped as a duplicate, or
    // started and ended unacknowledged (at most 4 at a time, each within the 2 s first-ACK
    // timeout). A busy kernel may drop some of a UDP flood before the server reads it.
    let accounted = stats.requests_refused + stats.duplicate_requests + stats.transfers_failed;
    assert!(accounted <= sent, "{accounted} of {sent}: {stats:?}");
    assert!(stats.transfers_failed <= 4 * 4, "{stats:?}");
    let log = log.lines();
    // Lines about the flood: refusals, and the flood's own transfers that nobody answered.
    let refusal_lines: Vec<_> = log
        .iter()
        .filter(|l| l.contains("refused") || l.contains("failed") || l.contains("unanswered"))
        .collect();
    let refusal_events = catalogue
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.outcome == Outcome::Failed)
        .count();
    println!(
        "{} refusal log lines, {refusal_events} refusal boot events:",
        refusal_lines.len()
    );
    for l in &refusal_lines {
        println!("  {l}");
    }
    // The daemon logs each boot event too: about 5 s of flood, one report a second.
    assert!(
        refusal_lines.len() + refusal_events <= 8,
        "{} lines and {refusal_events} events for {} refusals",
        refusal_lines.len(),
        stats.requests_refused
    );
}
