//! A transfer thread against a scripted client on real loopback sockets: retransmission
//! timing, a window with a lost block (sent with `sendmmsg`), shutdown and eviction mid-way,
//! the unanswered transfer, and the read-ahead.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::thread::JoinHandle;

use flakeboot_catalogue::RecordingCatalogue;

use super::*;
use crate::packet::MAX_PACKET_LEN;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A transfer of the file at `path` to `client`, with the tests' limits and no options.
fn transfer(
    client: &UdpSocket,
    path: PathBuf,
    events: Arc<RecordingCatalogue>,
    stats: Arc<TftpStats>,
    timeout: Duration,
) -> Transfer {
    Transfer {
        peer: client.local_addr().unwrap(),
        name: "ipxe.efi",
        path,
        options: Vec::new(),
        local: "127.0.0.1:0".parse().unwrap(),
        interface: None,
        limits: Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            mtu: None,
        },
        timeout,
        retries: 5,
        first_ack_timeout: Duration::from_secs(10),
        catalogue: events,
        stats,
        shutdown: CancellationToken::new(),
        evicted: CancellationToken::new(),
        started: Instant::now(),
    }
}

/// A transfer of a `len`-byte file to a client socket on loopback, and its thread.
struct Scripted {
    client: UdpSocket,
    file: Vec<u8>,
    events: Arc<RecordingCatalogue>,
    stats: Arc<TftpStats>,
    shutdown: CancellationToken,
    evicted: CancellationToken,
    thread: JoinHandle<Option<Unanswered>>,
    _dir: tempfile::TempDir,
}

fn scripted(len: usize, options: &[(&str, &str)], timeout: Duration) -> Scripted {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipxe.efi");
    let file = pattern(len);
    std::fs::write(&path, &file).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let events = Arc::new(RecordingCatalogue::default());
    let stats = Arc::new(TftpStats::default());
    let shutdown = CancellationToken::new();
    let evicted = CancellationToken::new();
    let mut t = transfer(&client, path, events.clone(), stats.clone(), timeout);
    t.options = options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    t.shutdown = shutdown.clone();
    t.evicted = evicted.clone();
    Scripted {
        client,
        file,
        events,
        stats,
        shutdown,
        evicted,
        thread: thread::spawn(move || run(&t)),
        _dir: dir,
    }
}

impl Scripted {
    /// The next datagram within `within`, and where it came from.
    fn recv(&self, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.client.set_read_timeout(Some(within)).unwrap();
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let (n, from) = self.client.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some((buf, from))
    }

    /// The next DATA block: its number and bytes.
    fn data(&self) -> (u16, Vec<u8>, SocketAddr) {
        let (bytes, from) = self.recv(Duration::from_secs(3)).expect("a DATA block");
        match Packet::parse(&bytes).unwrap() {
            Packet::Data { block, data } => (block, data.to_vec(), from),
            other => panic!("expected DATA, got {other:?}"),
        }
    }

    fn ack(&self, to: SocketAddr, block: u16) {
        self.client
            .send_to(&Packet::Ack { block }.emit(), to)
            .unwrap();
    }

    /// Waits for the thread and returns what it handed back, with the recorded events.
    fn join(self) -> (Option<Unanswered>, Vec<BootEvent>, Arc<TftpStats>) {
        let handed_back = self.thread.join().unwrap();
        let events = self.events.events();
        (handed_back, events, self.stats)
    }
}

#[test]
fn a_lost_ack_is_answered_by_one_retransmission_after_the_timeout_not_before() {
    // A timeout longer than the thread's receive slice: a retransmission at the end of a
    // slice instead of at the timeout would come too early.
    let timeout = Duration::from_millis(350);
    let s = scripted(1100, &[], timeout);
    let (block, first, tid) = s.data();
    let received = Instant::now();
    assert_eq!((block, first.len()), (1, 512));
    // The ACK is "lost": the same block comes again, after the timeout.
    let (again, bytes, _) = s.data();
    let waited = received.elapsed();
    assert_eq!((again, &bytes), (1, &first));
    assert!(
        waited >= timeout - Duration::from_millis(30),
        "retransmitted after {waited:?}"
    );
    assert!(waited < timeout * 4, "retransmitted after {waited:?}");
    let mut got = first;
    s.ack(tid, 1);
    for want in 2..=3u16 {
        let (block, data, _) = s.data();
        assert_eq!(block, want);
        got.extend_from_slice(&data);
        s.ack(tid, block);
    }
    assert_eq!(got, s.file);
    let (handed_back, events, stats) = s.join();
    assert!(handed_back.is_none());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, Outcome::Ok);
    assert_eq!(events[0].bytes, Some(1100));
    assert!(events[0].detail.contains("1 retransmissions"), "{events:?}");
    let stats = stats.snapshot();
    assert_eq!((stats.transfers_ok, stats.retransmissions), (1, 1));
}

#[test]
fn a_window_with_a_lost_block_is_resent_from_that_block() {
    let s = scripted(
        10 * 512 + 7,
        &[("blksize", "512"), ("windowsize", "4")],
        Duration::from_secs(5),
    );
    let (oack, tid) = s.recv(Duration::from_secs(3)).expect("an OACK");
    assert!(matches!(Packet::parse(&oack).unwrap(), Packet::Oack { .. }));
    s.ack(tid, 0);
    // The first window arrives whole (one sendmmsg); block 3 is "lost": ACK 2.
    let window: Vec<u16> = (0..4).map(|_| s.data().0).collect();
    assert_eq!(window, [1, 2, 3, 4]);
    s.ack(tid, 2);
    let mut blocks: Vec<Option<Vec<u8>>> = vec![None; 11];
    let mut expected = 3u16;
    loop {
        let (block, data, _) = s.data();
        assert_eq!(block, expected, "blocks in order from the lost one");
        blocks[usize::from(block) - 1] = Some(data);
        // Acknowledge the end of each window (3-6, 7-10, 11).
        if block % 4 == 2 || block == 11 {
            s.ack(tid, block);
        }
        if block == 11 {
            break;
        }
        expected += 1;
    }
    // Blocks 1 and 2 were read before the loss.
    let (first_two, _) = s.file.split_at(1024);
    let mut got = first_two.to_vec();
    for b in blocks.into_iter().skip(2) {
        got.extend(b.expect("every block from 3 on"));
    }
    assert_eq!(got, s.file);
    let (_, events, stats) = s.join();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Ok);
    assert!(events[0].detail.contains("windowsize 4"), "{events:?}");
    assert_eq!(stats.snapshot().transfers_ok, 1);
}

/// A transfer waiting for an ACK ends when `token` is cancelled, well before its
/// retransmission timeout, with an ERROR to the client and a failed boot event.
fn ended_midway(token: impl Fn(&Scripted) -> &CancellationToken, message: &str, detail: &str) {
    let s = scripted(100_000, &[], Duration::from_secs(5));
    let (block, _, tid) = s.data();
    assert_eq!(block, 1);
    s.ack(tid, 1);
    assert_eq!(s.data().0, 2);
    let cancelled = Instant::now();
    token(&s).cancel();
    let (bytes, _) = s.recv(Duration::from_secs(2)).expect("an ERROR");
    assert_eq!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            message: message.as_bytes()
        }
    );
    assert!(
        cancelled.elapsed() < SLICE * 5,
        "ended after {:?}",
        cancelled.elapsed()
    );
    let (handed_back, events, stats) = s.join();
    assert!(handed_back.is_none());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, Outcome::Failed);
    assert!(events[0].detail.contains(detail), "{events:?}");
    assert_eq!(stats.snapshot().transfers_failed, 1);
}

#[test]
fn shutdown_ends_a_transfer_midway_within_a_slice() {
    ended_midway(
        |s| &s.shutdown,
        "server shutting down",
        "server shutting down",
    );
}

#[test]
fn eviction_ends_a_transfer_midway_within_a_slice() {
    ended_midway(|s| &s.evicted, "server busy, retry", "evicted");
}

#[test]
fn datagrams_longer_than_the_receive_buffer_read_as_the_packets_they_start_with() {
    let s = scripted(1100, &[], Duration::from_secs(2));
    let (block, _, tid) = s.data();
    assert_eq!(block, 1);
    // An ACK padded far past the transfer's 2 KiB buffer is still the ACK of block 1.
    let mut padded = Packet::Ack { block: 1 }.emit();
    padded.resize(9000, 0xAA);
    s.client.send_to(&padded, tid).unwrap();
    let (block, _, _) = s.data();
    assert_eq!(block, 2, "the padded ACK moved the transfer on");
    // An ERROR with a 5,000-byte message (cut, so without its NUL) still ends it.
    let long = vec![b'x'; 5000];
    let error = Packet::Error {
        code: ErrorCode::NOT_DEFINED,
        message: &long,
    }
    .emit();
    s.client.send_to(&error, tid).unwrap();
    let (handed_back, events, _) = s.join();
    assert!(handed_back.is_none());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, Outcome::Failed);
    assert!(events[0].detail.contains("xxxx"), "{events:?}");
}

#[test]
fn a_silent_client_gets_each_retransmission_then_an_error() {
    // A timeout shorter than the receive slice.
    let s = scripted(600, &[("tsize", "0")], Duration::from_millis(100));
    // Retransmitted OACKs, then the final ERROR; the client never answers.
    let mut oacks = 0;
    loop {
        let (bytes, _) = s.recv(Duration::from_secs(3)).expect("OACK or ERROR");
        match Packet::parse(&bytes).unwrap() {
            Packet::Oack { .. } => oacks += 1,
            Packet::Error { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(oacks, 6, "the OACK and 5 retransmissions");
    let (handed_back, events, stats) = s.join();
    // Retransmissions ran out before the first-ACK timeout (10 s): an ordinary failure.
    assert!(handed_back.is_none());
    assert_eq!(events.len(), 1);
    assert!(events[0].detail.contains("no acknowledgement of block 0"));
    assert_eq!(stats.snapshot().retransmissions, 5);
}

#[test]
fn the_first_ack_timeout_hands_the_transfer_back_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, pattern(600)).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let events = Arc::new(RecordingCatalogue::default());
    let t = Transfer {
        first_ack_timeout: Duration::from_millis(250),
        ..transfer(
            &client,
            path,
            events.clone(),
            Arc::default(),
            Duration::from_secs(1),
        )
    };
    let began = Instant::now();
    let handed_back = run(&t).expect("handed back to the server");
    assert!(began.elapsed() >= Duration::from_millis(240));
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "not the retransmission budget"
    );
    assert_eq!(handed_back.peer, t.peer);
    assert!(
        handed_back
            .detail
            .contains("not acknowledged within 250 ms"),
        "{handed_back:?}"
    );
    assert!(events.events().is_empty());
}

#[test]
fn the_reader_reads_ahead_and_is_short_only_at_the_end_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let len = 3 * READ_AHEAD + 100;
    let want = pattern(len);
    std::fs::write(&path, &want).unwrap();
    let mut r = Reader::new(File::open(&path).unwrap());
    let cases: &[(usize, usize)] = &[
        (0, 512),
        (512, 512),
        // Across the end of the read-ahead.
        (READ_AHEAD - 100, 512),
        // Back (a window resent from an earlier block).
        (1024, 2048),
        // Longer than the read-ahead.
        (10, 2 * READ_AHEAD),
        (len - 512, 512),
    ];
    for &(offset, n) in cases {
        let got = r.read_at(offset as u64, n).unwrap();
        assert_eq!(got, &want[offset..offset + n], "{n} bytes at {offset}");
    }
    // At the end of the file: short, then empty.
    assert_eq!(r.read_at(len as u64 - 60, 512).unwrap(), &want[len - 60..]);
    assert!(r.read_at(len as u64, 512).unwrap().is_empty());
    assert!(r.read_at(len as u64 + 5000, 512).unwrap().is_empty());
}
