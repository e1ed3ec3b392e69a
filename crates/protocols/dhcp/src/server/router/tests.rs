//! Router loop decisions: the pure [`decide`], [`destination`] and [`net_changes`]; and
//! [`commit`] of a batch to an in-memory [`LeaseStore`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::{BootStage, ClientFirmware, IpxeBinary, MacAddr, Outcome};

use super::committer::commit;
use super::{Counter, Decided, decide, net_changes};
use crate::boot::BootConfig;
use crate::lease::{Lease, LeaseState, LeaseStore, LeaseStoreError, Pool, PoolConfig, Verdict};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn pool() -> Pool {
    Pool::new(
        PoolConfig {
            server_ip: SERVER,
            ranges: vec![(Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 200))],
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            router: Some(SERVER),
            dns: Vec::new(),
            domain: None,
            lease_time: Duration::from_secs(600),
            decline_quarantine: Duration::from_secs(60),
            reservations: Vec::new(),
            ra: None,
        },
        Vec::new(),
    )
}

fn boot() -> BootConfig {
    BootConfig {
        server_ip: SERVER,
        http_base: "http://10.77.0.1".into(),
        uefi_binary: IpxeBinary::IpxeEfi,
        arm64_efi: false,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

const SRC: &str = "0.0.0.0:68";

/// A DHCPDISCOVER captured from ISC dhclient 4.4 (Debian 12) on a veth with MAC
/// 52:54:00:aa:bb:cc: xid f803871e, options 53, 12 ("vm"), 55 (1 28 2 3 15 6 119 12 44 47 26
/// 121 42). The 202 zero bytes of sname/file/padding are filled in by [`captured_discover`].
const DHCLIENT_DISCOVER_HEAD: [u8; 34] = [
    1, 1, 6, 0, 0xf8, 0x03, 0x87, 0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc,
];
const DHCLIENT_DISCOVER_OPTIONS: [u8; 27] = [
    0x63, 0x82, 0x53, 0x63, 0x35, 0x01, 0x01, 0x0c, 0x02, 0x76, 0x6d, 0x37, 0x0d, 0x01, 0x1c, 0x02,
    0x03, 0x0f, 0x06, 0x77, 0x0c, 0x2c, 0x2f, 0x1a, 0x79, 0x2a, 0xff,
];

fn captured_discover() -> Vec<u8> {
    let mut p = vec![0u8; 300];
    p[..34].copy_from_slice(&DHCLIENT_DISCOVER_HEAD);
    p[236..263].copy_from_slice(&DHCLIENT_DISCOVER_OPTIONS);
    p
}

fn reply_of(d: &Decided) -> Message {
    let (bytes, _) = d.reply.as_ref().expect("a reply");
    Message::decode(&mut Decoder::new(bytes)).expect("our reply decodes")
}

#[test]
fn captured_dhclient_discover_gets_a_broadcast_offer_and_no_boot_event() {
    let mut pool = pool();
    let d = decide(
        &mut pool,
        &boot(),
        &captured_discover(),
        SRC.parse().unwrap(),
        now(),
    );
    assert_eq!(d.counter, Counter::Replied);
    assert_eq!(
        d.verdict,
        Some(Verdict::Offered(Ipv4Addr::new(10, 77, 0, 100)))
    );
    assert!(d.event.is_none(), "plain clients get no boot event");
    assert!(d.persist.is_empty());
    let (_, dest) = d.reply.as_ref().unwrap();
    assert_eq!(*dest, "255.255.255.255:68".parse::<SocketAddr>().unwrap());
    let offer = reply_of(&d);
    assert_eq!(offer.xid(), 0xf803_871e);
    assert_eq!(offer.chaddr(), &[0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
    assert!(offer.fname().is_none(), "no boot file for a plain client");
    assert!(offer.opts().get(OptionCode::ClassIdentifier).is_none());
}

fn pxe_request(kind: MessageType, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(7)
        .set_chaddr(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    opts.insert(DhcpOption::ClientMachineIdentifier([0u8; 17].to_vec()));
    if let Some(ip) = requested {
        opts.insert(DhcpOption::RequestedIpAddress(ip));
        opts.insert(DhcpOption::ServerIdentifier(SERVER));
    }
    m.to_vec().unwrap()
}

#[test]
fn a_bios_pxe_client_gets_an_address_and_undionly_with_a_boot_event() {
    let mut pool = pool();
    let src: SocketAddr = SRC.parse().unwrap();
    let d = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Discover, None),
        src,
        now(),
    );
    let ip = Ipv4Addr::new(10, 77, 0, 100);
    assert_eq!(d.verdict, Some(Verdict::Offered(ip)));
    let offer = reply_of(&d);
    assert_eq!(offer.yiaddr(), ip);
    assert_eq!(offer.siaddr(), SERVER);
    assert_eq!(
        offer.fname_str().unwrap().unwrap().trim_end_matches('\0'),
        "undionly.kpxe"
    );
    assert!(
        offer
            .opts()
            .get(OptionCode::ClientMachineIdentifier)
            .is_some(),
        "option 97 echoed"
    );
    let ev = d.event.unwrap();
    assert_eq!((ev.stage, ev.outcome), (BootStage::Dhcp, Outcome::Ok));
    assert_eq!(ev.firmware, Some(ClientFirmware::BiosPxe));
    assert_eq!(ev.mac, Some(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56])));
    assert!(ev.detail.contains("undionly.kpxe"), "{}", ev.detail);

    let d = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Request, Some(ip)),
        src,
        now(),
    );
    assert_eq!(d.verdict, Some(Verdict::Acked(ip)));
    assert_eq!(d.persist.len(), 1);
    assert_eq!(
        reply_of(&d)
            .fname_str()
            .unwrap()
            .unwrap()
            .trim_end_matches('\0'),
        "undionly.kpxe"
    );
    assert!(d.event.unwrap().detail.starts_with("router ack"));
}

#[test]
fn garbage_is_counted_as_malformed_and_replies_are_ignored() {
    let mut pool = pool();
    let src: SocketAddr = "10.77.0.9:68".parse().unwrap();
    for bytes in [&b""[..], &[0u8; 100][..], &[0xffu8; 400][..]] {
        let d = decide(&mut pool, &boot(), bytes, src, now());
        assert_eq!(d.counter, Counter::Malformed);
        assert!(d.reply.is_none());
    }
    let mut reply = captured_discover();
    reply[0] = 2;
    assert_eq!(
        decide(&mut pool, &boot(), &reply, src, now()).counter,
        Counter::Ignored
    );
}

#[test]
fn every_truncation_and_byte_flip_of_a_real_request_is_survived() {
    let base = captured_discover();
    let mut pool = pool();
    let src: SocketAddr = SRC.parse().unwrap();
    for len in 0..base.len() {
        let _ = decide(&mut pool, &boot(), &base[..len], src, now());
    }
    for i in 0..base.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut m = base.clone();
            m[i] = v;
            let _ = decide(&mut pool, &boot(), &m, src, now());
        }
    }
}

#[test]
fn a_nak_to_a_renewing_client_is_broadcast() {
    let mut pool = pool();
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(9)
        .set_chaddr(&[2, 0, 0, 0, 0, 1])
        .set_ciaddr(Ipv4Addr::new(192, 168, 9, 9));
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    let src: SocketAddr = "192.168.9.9:68".parse().unwrap();
    let d = decide(&mut pool, &boot(), &m.to_vec().unwrap(), src, now());
    assert!(matches!(d.verdict, Some(Verdict::Nacked(_))));
    assert_eq!(
        d.reply.unwrap().1,
        "255.255.255.255:68".parse::<SocketAddr>().unwrap()
    );
}

fn record(ip: Ipv4Addr, last: u8) -> Lease {
    Lease {
        ip,
        mac: MacAddr([2, 0, 0, 0, 0, last]),
        client_id: None,
        hostname: None,
        expires: now(),
        state: LeaseState::Bound,
    }
}

fn with_changes(persist: Vec<Lease>, forget: Vec<Ipv4Addr>) -> Decided {
    Decided {
        persist,
        forget,
        ..Decided::dropped(Counter::Ignored, String::new())
    }
}

#[test]
fn a_batchs_lease_changes_are_netted_in_order() {
    let a = Ipv4Addr::new(10, 77, 0, 100);
    let b = Ipv4Addr::new(10, 77, 0, 101);
    let c = Ipv4Addr::new(10, 77, 0, 102);
    let batch = [
        with_changes(vec![record(a, 1)], vec![]),
        // a released after its ACK: deleted.
        with_changes(vec![], vec![a]),
        // b released, then given to another client: written.
        with_changes(vec![], vec![b]),
        with_changes(vec![record(b, 2)], vec![]),
        // c renewed twice: the last record wins.
        with_changes(vec![record(c, 3)], vec![]),
        with_changes(vec![record(c, 4)], vec![]),
    ];
    let (put, delete) = net_changes(&batch);
    assert_eq!(put, vec![record(b, 2), record(c, 4)]);
    assert_eq!(delete, vec![a]);
}

/// An in-memory [`LeaseStore`] that records every commit, or refuses every one (a full disk).
#[derive(Debug, Default)]
struct FakeLeases {
    commits: Mutex<Vec<(Vec<Lease>, Vec<Ipv4Addr>)>>,
    failing: bool,
}

impl LeaseStore for FakeLeases {
    fn load(&self) -> Result<Vec<Lease>, LeaseStoreError> {
        Ok(Vec::new())
    }

    fn commit(&self, write: &[Lease], delete: &[Ipv4Addr]) -> Result<(), LeaseStoreError> {
        if self.failing {
            return Err(LeaseStoreError::Commit {
                written: write.len(),
                deleted: delete.len(),
                source: "no space left on device".into(),
            });
        }
        self.commits
            .lock()
            .unwrap()
            .push((write.to_vec(), delete.to_vec()));
        Ok(())
    }
}

#[test]
fn a_batch_is_one_commit_of_its_net_changes() {
    let fake = FakeLeases::default();
    let (a, b) = (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 101));
    let batch = [
        with_changes(vec![record(a, 1)], vec![]),
        with_changes(vec![], vec![a]),
        with_changes(vec![record(b, 2)], vec![]),
    ];
    assert!(commit(&fake, &batch));
    assert_eq!(
        *fake.commits.lock().unwrap(),
        vec![(vec![record(b, 2)], vec![a])]
    );
    // A batch without lease changes (offers, NAKs) needs no commit.
    assert!(commit(&fake, &[with_changes(vec![], vec![])]));
    assert_eq!(fake.commits.lock().unwrap().len(), 1);
}

#[test]
fn a_failed_commit_holds_back_the_ack_but_not_the_offer() {
    let leases = FakeLeases {
        failing: true,
        ..FakeLeases::default()
    };
    let mut pool = pool();
    let src: SocketAddr = SRC.parse().unwrap();
    let ip = Ipv4Addr::new(10, 77, 0, 100);
    let offer = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Discover, None),
        src,
        now(),
    );
    let ack = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Request, Some(ip)),
        src,
        now(),
    );
    assert_eq!(ack.verdict, Some(Verdict::Acked(ip)));
    let durable = commit(&leases, [&offer, &ack]);
    assert!(!durable);
    assert!(offer.sendable(durable).is_some());
    assert!(ack.sendable(durable).is_none());
}

/// A store that panics (a bug in it) fails its batch like a full disk: no ACK, and the
/// committer, a thread of its own, is still there for the next batch.
#[test]
fn a_panicking_store_is_a_failed_commit() {
    #[derive(Debug)]
    struct Panicking;
    impl LeaseStore for Panicking {
        fn load(&self) -> Result<Vec<Lease>, LeaseStoreError> {
            Ok(Vec::new())
        }
        fn commit(&self, _: &[Lease], _: &[Ipv4Addr]) -> Result<(), LeaseStoreError> {
            panic!("a bug in the store")
        }
    }
    let ack = with_changes(vec![record(Ipv4Addr::new(10, 77, 0, 100), 1)], vec![]);
    assert!(!commit(&Panicking, [&ack]));
    assert!(!commit(&Panicking, [&ack]));
}

#[test]
fn an_ack_is_sendable_only_once_its_lease_is_durable() {
    let mut pool = pool();
    let src: SocketAddr = SRC.parse().unwrap();
    let ip = Ipv4Addr::new(10, 77, 0, 100);
    let offer = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Discover, None),
        src,
        now(),
    );
    let ack = decide(
        &mut pool,
        &boot(),
        &pxe_request(MessageType::Request, Some(ip)),
        src,
        now(),
    );
    assert_eq!(ack.verdict, Some(Verdict::Acked(ip)));
    // An OFFER needs nothing on disk: it goes either way.
    assert!(offer.sendable(true).is_some() && offer.sendable(false).is_some());
    // An ACK goes only after a successful commit.
    assert!(ack.sendable(true).is_some());
    assert!(ack.sendable(false).is_none());
}

#[test]
fn ipxe_clients_are_told_not_to_wait_for_proxydhcp_and_pxe_roms_are_not() {
    let ipxe_175 = |user_class: Option<&[u8]>| {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_xid(9)
            .set_chaddr(&[0x52, 0x54, 0, 0x12, 0x34, 0x57]);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(MessageType::Discover));
        opts.insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
        ));
        if let Some(uc) = user_class {
            opts.insert(DhcpOption::UserClass(uc.to_vec()));
        }
        let mut pool = pool();
        let d = decide(
            &mut pool,
            &boot(),
            &m.to_vec().unwrap(),
            SRC.parse().unwrap(),
            now(),
        );
        let offer = reply_of(&d);
        offer
            .opts()
            .get(OptionCode::from(175))
            .map(|o| o.to_vec().unwrap())
    };
    // The option as encoded: code 175, length 3, sub-option 176 of length 1 with value 1.
    assert_eq!(ipxe_175(Some(b"\x04iPXE")), Some(vec![175, 3, 176, 1, 1]));
    assert_eq!(ipxe_175(None), None, "a PXE ROM gets no iPXE options");
}

/// A store whose every commit waits for the test to let it through (a slow disk), recording
/// the commits in order.
#[derive(Debug)]
struct GatedLeases {
    commits: Mutex<Vec<(Vec<Lease>, Vec<Ipv4Addr>)>>,
    started: std::sync::atomic::AtomicUsize,
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl LeaseStore for GatedLeases {
    fn load(&self) -> Result<Vec<Lease>, LeaseStoreError> {
        Ok(Vec::new())
    }

    fn commit(&self, write: &[Lease], delete: &[Ipv4Addr]) -> Result<(), LeaseStoreError> {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let gate = self.gate.lock().unwrap();
        gate.recv_timeout(Duration::from_secs(10)).unwrap();
        self.commits
            .lock()
            .unwrap()
            .push((write.to_vec(), delete.to_vec()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_batches_behind_a_slow_commit_in_order_and_acks_only_when_durable() {
    use super::committer::{self, Outbox, Pending};
    use tokio::net::UdpSocket;

    let (open, gate) = std::sync::mpsc::channel();
    let store = Arc::new(GatedLeases {
        commits: Mutex::new(Vec::new()),
        started: Default::default(),
        gate: Mutex::new(gate),
    });
    let leases: Arc<dyn LeaseStore> = store.clone();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = client.local_addr().unwrap();
    let out = Outbox {
        socket: Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()),
        catalogue: Arc::new(flakeboot_catalogue::RecordingCatalogue::default()),
        stats: Arc::new(super::DhcpStats::default()),
    };
    let (queue, pending) = tokio::sync::mpsc::channel(committer::QUEUE);
    let task = committer::spawn(pending, leases, out);
    let (a, b, c) = (
        Ipv4Addr::new(10, 77, 0, 100),
        Ipv4Addr::new(10, 77, 0, 101),
        Ipv4Addr::new(10, 77, 0, 102),
    );
    let ack = |lease: Lease, text: &str| Pending::Reply {
        decided: Box::new(Decided {
            reply: Some((text.as_bytes().to_vec(), to)),
            counter: Counter::Replied,
            ..with_changes(vec![lease], vec![])
        }),
        src: to,
        arrived: std::time::Instant::now(),
    };
    let sent = |p| {
        let queue = queue.clone();
        async move { assert!(queue.send(p).await.is_ok()) }
    };

    sent(ack(record(a, 1), "ack a")).await;
    while store.started.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While the first commit is on disk, more arrive: a reply, a user's release, a reply.
    sent(ack(record(b, 2), "ack b")).await;
    let (reply, released) = tokio::sync::oneshot::channel();
    let request = super::ReleaseRequest {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        reply,
    };
    sent(Pending::Release {
        ips: vec![a],
        request,
    })
    .await;
    sent(ack(record(c, 3), "ack c")).await;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await;
    assert!(early.is_err(), "an ACK left before its lease was on disk");

    for _ in 0..4 {
        open.send(()).unwrap();
    }
    for expected in ["ack a", "ack b", "ack c"] {
        let n = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], expected.as_bytes());
    }
    assert_eq!(released.await.unwrap().unwrap(), vec![a]);
    drop(queue);
    task.await.unwrap();
    assert_eq!(
        *store.commits.lock().unwrap(),
        vec![
            (vec![record(a, 1)], vec![]),
            (vec![record(b, 2)], vec![]),
            (vec![], vec![a]),
            (vec![record(c, 3)], vec![]),
        ],
        "one commit per batch, the release between the replies decided before and after it"
    );
}
