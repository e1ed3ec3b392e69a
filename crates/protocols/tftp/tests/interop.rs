//! Black-box tests: the server runs in-process on 127.0.0.1 (ephemeral port) and real clients
//! fetch from it: curl, tftp-hpa, the `tftpd` crate's client (windowsize), and raw-UDP clients
//! scripted to misbehave. Loopback only: nothing leaves the host.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flakeboot_catalogue::{
    BootEvent, BootFile, BootSpec, BootStage, Catalogue, IpxeBinary, MacAddr, Menu, Outcome,
};
use flakeboot_testbed::require_tool;
use flakeboot_tftp::packet::{ErrorCode, Packet};
use flakeboot_tftp::{TftpServer, TftpServerConfig, TftpStats};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const UNDIONLY: &str = "/usr/lib/ipxe/undionly.kpxe";
/// 65536 blocks of 512: block numbers wrap from 65535 to 0, and the file ends with an empty
/// block.
const BIG_SIZE: usize = 32 * 1024 * 1024;

/// A catalogue with a fixed set of files that remembers every event.
#[derive(Debug, Default)]
struct FakeCatalogue {
    files: HashMap<IpxeBinary, PathBuf>,
    events: Mutex<Vec<BootEvent>>,
}

impl Catalogue for FakeCatalogue {
    fn boot_spec(&self, _mac: Option<MacAddr>) -> BootSpec {
        BootSpec::Menu(Menu {
            entries: vec![],
            default: None,
            timeout: Duration::from_secs(5),
        })
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        match file {
            BootFile::Ipxe(b) => self.files.get(b).cloned(),
            BootFile::Host { .. } => None,
        }
    }

    fn record(&self, event: BootEvent) {
        self.events.lock().unwrap().push(event);
    }

    fn accept_report(&self, _mac: MacAddr, _from: std::net::IpAddr) -> bool {
        false
    }
}

struct Server {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    catalogue: Arc<FakeCatalogue>,
    stats: Arc<TftpStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), flakeboot_tftp::TftpError>>,
}

fn config() -> TftpServerConfig {
    TftpServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        interface: None,
        max_transfers: 16,
        max_per_client: 4,
        first_ack_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        retries: 5,
        max_blksize: 1468,
        max_windowsize: 64,
        mtu: None,
    }
}

/// Deterministic, incompressible-looking bytes (offset bugs show up as mismatches).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Starts a server whose catalogue has undionly.kpxe (a copy of Debian's), ipxe.efi (a
/// generated 32 MiB file, only when `big`) and snponly.efi (exactly 2 blocks of 512).
async fn start(cfg: TftpServerConfig, big: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut files = HashMap::new();
    let undionly = dir.path().join("undionly.kpxe");
    std::fs::copy(UNDIONLY, &undionly).expect("Debian's ipxe package provides undionly.kpxe");
    files.insert(IpxeBinary::Undionly, undionly);
    if big {
        let path = dir.path().join("big.efi");
        std::fs::write(&path, pattern(BIG_SIZE)).unwrap();
        files.insert(IpxeBinary::IpxeEfi, path);
    }
    let exact = dir.path().join("snponly.efi");
    std::fs::write(&exact, pattern(1024)).unwrap();
    files.insert(IpxeBinary::SnponlyEfi, exact);
    let catalogue = Arc::new(FakeCatalogue {
        files,
        events: Mutex::default(),
    });
    let server = TftpServer::bind(cfg).await.unwrap();
    let addr = server.local_addr();
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(catalogue.clone(), shutdown.clone()));
    Server {
        addr,
        dir,
        catalogue,
        stats,
        shutdown,
        task,
    }
}

impl Server {
    fn file(&self, b: IpxeBinary) -> Vec<u8> {
        std::fs::read(&self.catalogue.files[&b]).unwrap()
    }

    fn events(&self) -> Vec<BootEvent> {
        self.catalogue.events.lock().unwrap().clone()
    }

    /// Waits until `n` events were recorded (a transfer's event follows its last ACK).
    async fn wait_events(&self, n: usize) -> Vec<BootEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops within 5 s of shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Runs a client to completion; panics with its output when it fails.
async fn run(program: &str, args: &[&str], cwd: &Path) -> Duration {
    let tool = require_tool(program);
    let started = Instant::now();
    let out = tokio::process::Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn assert_one_ok_event(events: &[BootEvent], name: &str, bytes: usize) {
    let ok: Vec<_> = events
        .iter()
        .filter(|e| {
            e.outcome == Outcome::Ok && e.detail.contains(&format!("{name}: {bytes} bytes"))
        })
        .collect();
    assert_eq!(ok.len(), 1, "{events:#?}");
    assert_eq!(ok[0].stage, BootStage::Tftp);
    assert_eq!(ok[0].peer, Some("127.0.0.1".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_default_and_blksize_1468_are_byte_identical() {
    let s = start(config(), false).await;
    let want = s.file(IpxeBinary::Undionly);
    for (i, extra) in [&[][..], &["--tftp-blksize", "1468"][..]]
        .iter()
        .enumerate()
    {
        let out = s.dir.path().join(format!("curl-{i}.kpxe"));
        let url = format!("tftp://{}/undionly.kpxe", s.addr);
        let mut args = vec!["-sS", "--fail", "-o", out.to_str().unwrap(), url.as_str()];
        args.extend_from_slice(extra);
        run("curl", &args, s.dir.path()).await;
        assert_eq!(std::fs::read(&out).unwrap(), want, "curl {extra:?}");
    }
    let events = s.wait_events(2).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e.outcome == Outcome::Ok),
        "{events:#?}"
    );
    assert!(events[0].detail.contains("blksize 512"), "{events:#?}");
    assert!(events[1].detail.contains("blksize 1468"), "{events:#?}");
    assert_eq!(s.stats.snapshot().transfers_ok, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_leading_slash_and_exact_block_multiple() {
    let s = start(config(), false).await;
    let out = s.dir.path().join("exact.efi");
    // `//` in the URL path sends "/snponly.efi": one leading slash is accepted.
    let url = format!("tftp://{}//snponly.efi", s.addr);
    run(
        "curl",
        &["-sS", "--fail", "-o", out.to_str().unwrap(), &url],
        s.dir.path(),
    )
    .await;
    assert_eq!(std::fs::read(&out).unwrap(), s.file(IpxeBinary::SnponlyEfi));
    assert_one_ok_event(&s.wait_events(1).await, "snponly.efi", 1024);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_downloads_byte_identical() {
    let s = start(config(), false).await;
    let port = s.addr.port().to_string();
    let args = [
        "127.0.0.1",
        &port,
        "-m",
        "binary",
        "-c",
        "get",
        "undionly.kpxe",
        "got.kpxe",
    ];
    run("tftp", &args, s.dir.path()).await;
    let got = std::fs::read(s.dir.path().join("got.kpxe")).unwrap();
    assert_eq!(got, s.file(IpxeBinary::Undionly));
    assert_one_ok_event(&s.wait_events(1).await, "undionly.kpxe", got.len());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_rolls_over_with_curl_and_tftp_hpa() {
    let s = start(config(), true).await;
    let want = s.file(IpxeBinary::IpxeEfi);
    let url = format!("tftp://{}/ipxe.efi", s.addr);
    for (label, blksize) in [("curl blksize 512", "512"), ("curl blksize 1468", "1468")] {
        let out = s.dir.path().join(format!("big-{blksize}"));
        let args = [
            "-sS",
            "--fail",
            "--tftp-blksize",
            blksize,
            "-o",
            out.to_str().unwrap(),
            &url,
        ];
        let took = run("curl", &args, s.dir.path()).await;
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{label}: bytes differ"
        );
        std::fs::remove_file(&out).unwrap();
        println!(
            "throughput {label}: {:.1} MB/s ({took:?} for 32 MiB)",
            mb_per_s(BIG_SIZE, took)
        );
    }
    let port = s.addr.port().to_string();
    let args = [
        "127.0.0.1",
        &port,
        "-m",
        "binary",
        "-c",
        "get",
        "ipxe.efi",
        "big-hpa",
    ];
    let took = run("tftp", &args, s.dir.path()).await;
    assert!(
        std::fs::read(s.dir.path().join("big-hpa")).unwrap() == want,
        "tftp-hpa: bytes differ"
    );
    println!(
        "throughput tftp-hpa (512, no options): {:.1} MB/s",
        mb_per_s(BIG_SIZE, took)
    );
    let events = s.wait_events(3).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    for e in &events {
        assert_eq!(e.outcome, Outcome::Ok, "{e:?}");
        assert!(
            e.detail.contains(&format!("ipxe.efi: {BIG_SIZE} bytes")),
            "{e:?}"
        );
    }
    s.stop().await;
}

/// The `tftpd` crate's client (blocking), with RFC 7440 windowsize.
fn tftpd_get(server: SocketAddr, name: &str, dir: &Path, blksize: u16, window: u16) -> bool {
    let args = [
        "-i",
        "127.0.0.1",
        "-p",
        &server.port().to_string(),
        "-b",
        &blksize.to_string(),
        "-w",
        &window.to_string(),
        "-rd",
        dir.to_str().unwrap(),
        "-q",
        name,
    ]
    .map(String::from);
    let cfg = tftpd::ClientConfig::new(args.into_iter()).unwrap();
    tftpd::Client::new(&cfg).unwrap().run().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftpd_client_with_windowsize() {
    let s = start(config(), true).await;
    let addr = s.addr;
    for (name, binary, size) in [
        ("undionly.kpxe", IpxeBinary::Undionly, 0),
        ("ipxe.efi", IpxeBinary::IpxeEfi, BIG_SIZE),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let started = Instant::now();
        let ok = tokio::task::spawn_blocking(move || tftpd_get(addr, name, &path, 1468, 16))
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(ok, "tftpd client reports failure for {name}");
        assert!(
            std::fs::read(dir.path().join(name)).unwrap() == s.file(binary),
            "{name}: bytes differ"
        );
        if size > 0 {
            println!(
                "throughput tftpd client blksize 1468 windowsize 16: {:.1} MB/s ({took:?} for 32 MiB)",
                mb_per_s(size, took)
            );
        }
    }
    let events = s.wait_events(2).await;
    assert!(
        events.iter().all(|e| e.outcome == Outcome::Ok),
        "{events:#?}"
    );
    assert!(events[1].detail.contains("windowsize 16"), "{events:#?}");
    s.stop().await;
}

/// A raw UDP client for scripted misbehaviour.
struct Raw(UdpSocket);

impl Raw {
    async fn new() -> Raw {
        Raw(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    async fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.0.send_to(bytes, to).await.unwrap();
    }

    async fn recv(&self, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 70000];
        let (n, from) = tokio::time::timeout(within, self.0.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        buf.truncate(n);
        Some((buf, from))
    }
}

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut p = b"\x00\x01".to_vec();
    p.extend_from_slice(name);
    p.extend_from_slice(b"\x00octet\x00");
    for (k, v) in options {
        p.extend_from_slice(format!("{k}\0{v}\0").as_bytes());
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_after_oack_ends_transfer_at_once() {
    let s = start(config(), false).await;
    let size = s.file(IpxeBinary::Undionly).len();
    let c = Raw::new().await;
    c.send(s.addr, &rrq(b"undionly.kpxe", &[("tsize", "0")]))
        .await;
    let (oack, tid) = c.recv(Duration::from_secs(2)).await.expect("an OACK");
    assert_ne!(tid, s.addr, "transfers use their own port");
    let size_text = size.to_string();
    assert_eq!(
        Packet::parse(&oack).unwrap(),
        Packet::Oack {
            options: vec![("tsize", size_text.as_str())]
        }
    );
    c.send(
        tid,
        &Packet::error(ErrorCode::OPTION_REJECTED, "tsize probe").emit(),
    )
    .await;
    let events = s.wait_events(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Ok);
    assert!(
        events[0].detail.contains("aborted by client after OACK"),
        "{events:?}"
    );
    // Nothing more: no retransmitted OACK after the server timeout (1 s).
    assert_eq!(c.recv(Duration::from_millis(1500)).await, None);
    let stats = s.stats.snapshot();
    assert_eq!((stats.transfers_aborted, stats.transfers_failed), (1, 0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_bounded_retransmissions() {
    let cfg = TftpServerConfig {
        timeout: Duration::from_millis(200),
        retries: 3,
        ..config()
    };
    let s = start(cfg, false).await;
    let c = Raw::new().await;
    c.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    let mut data1 = 0;
    let mut errors = 0;
    while let Some((bytes, _)) = c.recv(Duration::from_secs(1)).await {
        match Packet::parse(&bytes).unwrap() {
            Packet::Data { block: 1, data } => {
                assert_eq!(data.len(), 512);
                data1 += 1;
            }
            Packet::Error { .. } => errors += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(data1, 4, "the first DATA plus 3 retransmissions");
    assert_eq!(
        errors, 1,
        "a final ERROR tells the client the server gave up"
    );
    let events = s.wait_events(1).await;
    assert_eq!(events[0].outcome, Outcome::Failed);
    assert!(
        events[0].detail.contains("after 3 retransmissions"),
        "{events:?}"
    );
    let stats = s.stats.snapshot();
    assert_eq!((stats.transfers_failed, stats.retransmissions), (1, 3));
    s.stop().await;
}

/// Sends one request and returns the ERROR code it gets.
async fn error_code_for(server: SocketAddr, request: &[u8]) -> u16 {
    let c = Raw::new().await;
    c.send(server, request).await;
    let (bytes, _) = c.recv(Duration::from_secs(2)).await.expect("an answer");
    match Packet::parse(&bytes).unwrap() {
        Packet::Error { code, .. } => code.0,
        other => panic!("{request:?} was answered with {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_and_unknown_names_get_errors() {
    let s = start(config(), false).await;
    let cases: &[(&[u8], u16)] = &[
        (b"../undionly.kpxe", 2),
        (b"../../../../etc/passwd", 2),
        (b"/etc/passwd", 2),
        (b"ipxe/../undionly.kpxe", 2),
        (b"..\\undionly.kpxe", 2),
        (b"/usr/lib/ipxe/undionly.kpxe", 2),
        (b"pxelinux.0", 1),
        (b"UNDIONLY.KPXE", 1),
        // In the catalogue's vocabulary but not configured here.
        (b"ipxe-arm64.efi", 1),
        (b"", 1),
    ];
    for (name, code) in cases {
        let got = error_code_for(s.addr, &rrq(name, &[])).await;
        assert_eq!(got, *code, "{}", String::from_utf8_lossy(name));
    }
    // A NUL inside the name ends the name on the wire; what follows becomes an unknown mode,
    // and the request is refused as malformed (ERROR 4) instead of served.
    assert_eq!(
        error_code_for(s.addr, &rrq(b"undionly.kpxe\0../x", &[])).await,
        4
    );
    // Write requests: read-only server.
    assert_eq!(
        error_code_for(s.addr, b"\x00\x02undionly.kpxe\x00octet\x00").await,
        2
    );
    let stats = s.stats.snapshot();
    assert_eq!(stats.requests_refused, cases.len() as u64 + 1);
    assert_eq!(stats.bad_packets, 1);
    assert_eq!(stats.transfers_ok + stats.transfers_failed, 0);
    // Refusals are reported at most once a second: the first as a boot event, the rest in a
    // summary line (each is counted above).
    assert_eq!(s.events().len(), 1, "{:#?}", s.events());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_is_busy_and_strangers_get_error_5() {
    let cfg = TftpServerConfig {
        max_transfers: 1,
        ..config()
    };
    let s = start(cfg, false).await;
    let first = Raw::new().await;
    first.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    let (_, tid) = first.recv(Duration::from_secs(2)).await.expect("DATA 1");
    // The one slot is taken: ERROR 0 "server busy, retry".
    let second = Raw::new().await;
    second.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    let (bytes, _) = second.recv(Duration::from_secs(2)).await.unwrap();
    let Packet::Error { code, message } = Packet::parse(&bytes).unwrap() else {
        panic!("{bytes:?}")
    };
    assert_eq!(
        (code, message),
        (ErrorCode::NOT_DEFINED, &b"server busy, retry"[..])
    );
    // A packet to the transfer's port from another port: ERROR 5, the transfer goes on.
    second.send(tid, &Packet::Ack { block: 1 }.emit()).await;
    let (bytes, _) = second.recv(Duration::from_secs(2)).await.unwrap();
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::UNKNOWN_TID,
            ..
        }
    ));
    first.send(tid, &Packet::Ack { block: 1 }.emit()).await;
    let (bytes, _) = first.recv(Duration::from_secs(2)).await.unwrap();
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Data { block: 2, .. }
    ));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netascii_is_served_as_octet() {
    let s = start(config(), false).await;
    let c = Raw::new().await;
    c.send(s.addr, b"\x00\x01snponly.efi\x00netascii\x00").await;
    let want = s.file(IpxeBinary::SnponlyEfi);
    let mut got = Vec::new();
    for block in 1..=3u16 {
        let (bytes, tid) = c.recv(Duration::from_secs(2)).await.unwrap();
        let Packet::Data { block: b, data } = Packet::parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(b, block);
        got.extend_from_slice(data);
        c.send(tid, &Packet::Ack { block }.emit()).await;
    }
    assert_eq!(got, want, "exact bytes, and an empty third block");
    assert_one_ok_event(&s.wait_events(1).await, "snponly.efi", 1024);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_running_transfers() {
    let s = start(config(), false).await;
    let c = Raw::new().await;
    c.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    c.recv(Duration::from_secs(2)).await.expect("DATA 1");
    let catalogue = s.catalogue.clone();
    s.stop().await;
    let events = catalogue.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].detail.contains("server shutting down"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_server_ends_its_transfers_too() {
    // Transfers run on threads of their own: dropping the server's future (an abort after a
    // stop that took too long) must still end them, not leave them serving.
    let s = start(config(), false).await;
    let c = Raw::new().await;
    c.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    c.recv(Duration::from_secs(2)).await.expect("DATA 1");
    s.task.abort();
    let (bytes, _) = c.recv(Duration::from_secs(2)).await.expect("an ERROR");
    assert_eq!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            message: b"server shutting down"
        }
    );
    let events = s.wait_events(1).await;
    assert!(
        events[0].detail.contains("server shutting down"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_full_a_client_with_nothing_evicts_the_heaviest_clients_newest_transfer() {
    let cfg = TftpServerConfig {
        max_transfers: 2,
        max_per_client: 2,
        ..config()
    };
    let s = start(cfg, false).await;
    // 127.0.0.1 takes both slots.
    let heavy = [Raw::new().await, Raw::new().await];
    for c in &heavy {
        c.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
        let (bytes, _) = c.recv(Duration::from_secs(2)).await.expect("DATA 1");
        assert!(matches!(
            Packet::parse(&bytes).unwrap(),
            Packet::Data { block: 1, .. }
        ));
    }
    // 127.0.0.2 has none: it is served, and 127.0.0.1's newest transfer ends "busy".
    let light = Raw(UdpSocket::bind("127.0.0.2:0").await.unwrap());
    light.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    let (bytes, _) = light.recv(Duration::from_secs(2)).await.expect("DATA 1");
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Data { block: 1, .. }
    ));
    let (bytes, _) = heavy[1]
        .recv(Duration::from_secs(2))
        .await
        .expect("an ERROR");
    assert_eq!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            message: b"server busy, retry"
        }
    );
    // A third client with nothing: 1 + 1 + 1, nobody is heavier than 0 + 1: refused.
    let third = Raw(UdpSocket::bind("127.0.0.3:0").await.unwrap());
    third.send(s.addr, &rrq(b"undionly.kpxe", &[])).await;
    let (bytes, _) = third.recv(Duration::from_secs(2)).await.unwrap();
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            ..
        }
    ));
    let stats = s.stats.snapshot();
    assert_eq!(
        (stats.transfers_evicted, stats.refused_server_busy),
        (1, 1),
        "{stats:?}"
    );
    s.stop().await;
}
