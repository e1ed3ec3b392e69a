//! The forwarder on loopback sockets, against a scripted upstream (hickory-proto on a UDP
//! socket, counting what it is asked): local names, forwarding and the cache, garbage, the
//! per-client query budget, TCP with its connection cap and idle timeout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flakeboot_dns::{
    DnsServer, DnsServerConfig, DnsState, DnsStats, LocalEntry, LocalNames, Upstream,
};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// The internet's name server: `*.example.test` -> 198.51.100.7 (TTL 300), else NXDOMAIN,
/// after `delay_ms`.
struct FakeUpstream {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

async fn fake_upstream() -> FakeUpstream {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (a, d) = (asked.clone(), delay_ms.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, peer) = socket.recv_from(&mut buf).await.unwrap();
            let request = Message::from_vec(&buf[..len]).unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let (socket, delay) = (socket.clone(), d.load(Ordering::SeqCst));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
                reply.metadata.recursion_available = true;
                reply.add_queries(request.queries.iter().cloned());
                let q = &request.queries[0];
                if q.name().to_ascii().ends_with("example.test.") && q.query_type() == RecordType::A
                {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        300,
                        RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
                    ));
                } else {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                socket
                    .send_to(&reply.to_vec().unwrap(), peer)
                    .await
                    .unwrap();
            });
        }
    });
    FakeUpstream {
        addr,
        asked,
        delay_ms,
    }
}

struct Running {
    addr: SocketAddr,
    tcp: SocketAddr,
    stats: Arc<DnsStats>,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(upstream: &FakeUpstream) -> Running {
    let state = Arc::new(DnsState::default());
    state.set_names(LocalNames::new(
        Some("lan"),
        Some((Ipv4Addr::new(10, 0, 0, 0), 24)),
        [LocalEntry {
            hostname: "pc1".into(),
            address: Ipv4Addr::new(10, 0, 0, 11),
            configured: false,
        }],
    ));
    state.set_upstream(Some(Upstream::new(vec![upstream.addr], 128).unwrap()));
    let stats = Arc::new(DnsStats::default());
    let server = DnsServer::bind(
        &DnsServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            interface: None,
            local_ttl: Duration::from_secs(60),
            max_queries: 4,
            max_queries_per_client: 2,
            max_tcp_connections: 4,
            max_tcp_per_client: 1,
            tcp_idle_timeout: Duration::from_secs(1),
        },
        state,
        stats.clone(),
    )
    .unwrap();
    let addr = server.udp_addr().unwrap();
    // TCP on the same port number is not promised with port 0: ask for it.
    let tcp = server.tcp_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));
    Running {
        addr,
        tcp,
        stats,
        stop,
    }
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

async fn ask(socket: &UdpSocket, to: SocketAddr, m: &Message) -> Message {
    socket.send_to(&m.to_vec().unwrap(), to).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(8), socket.recv_from(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

fn address(m: &Message) -> Ipv4Addr {
    match &m.answers[0].data {
        RData::A(A(ip)) => *ip,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn local_names_forwarding_and_the_cache() {
    let up = fake_upstream().await;
    let dns = start(&up).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let r = ask(&client, dns.addr, &query("pc1.lan.", RecordType::A)).await;
    assert_eq!(
        (r.metadata.response_code, address(&r)),
        (ResponseCode::NoError, Ipv4Addr::new(10, 0, 0, 11))
    );
    assert!(r.metadata.authoritative);
    let r = ask(&client, dns.addr, &query("nobody.lan.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        up.asked.load(Ordering::SeqCst),
        0,
        "a LAN name went upstream"
    );

    let r = ask(
        &client,
        dns.addr,
        &query("www.example.test.", RecordType::A),
    )
    .await;
    assert_eq!(address(&r), Ipv4Addr::new(198, 51, 100, 7));
    assert!(!r.metadata.authoritative && r.metadata.recursion_available);
    let r = ask(
        &client,
        dns.addr,
        &query("WWW.example.test.", RecordType::A),
    )
    .await;
    assert_eq!(address(&r), Ipv4Addr::new(198, 51, 100, 7));
    assert!(r.answers[0].ttl <= 300);
    assert_eq!(
        up.asked.load(Ordering::SeqCst),
        1,
        "the second answer was not the cache's"
    );
    let r = ask(&client, dns.addr, &query("missing.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);

    // Garbage is dropped, and the listener goes on.
    for junk in [
        &b""[..],
        &[0xff; 3],
        &[0u8; 12][..4],
        &[0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 7, b'x'],
    ] {
        client.send_to(junk, dns.addr).await.unwrap();
    }
    let r = ask(&client, dns.addr, &query("pc1.", RecordType::A)).await;
    assert_eq!(address(&r), Ipv4Addr::new(10, 0, 0, 11));
    let s = dns.stats.snapshot();
    assert_eq!((s.local, s.forwarded), (3, 3), "{s:?}");
    assert!(s.malformed >= 3, "{s:?}");
}

#[tokio::test]
async fn one_client_gets_refused_beyond_its_budget_and_others_are_served() {
    let up = fake_upstream().await;
    up.delay_ms.store(1500, Ordering::SeqCst);
    let dns = start(&up).await;
    let greedy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2 {
        let q = query(&format!("slow{i}.example.test."), RecordType::A);
        greedy
            .send_to(&q.to_vec().unwrap(), dns.addr)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let r = ask(
        &greedy,
        dns.addr,
        &query("third.example.test.", RecordType::A),
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "refused late"
    );
    assert_eq!(dns.stats.snapshot().refused, 1);
    // Local names need no budget.
    let r = ask(&greedy, dns.addr, &query("pc1.lan.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

async fn tcp_ask(stream: &mut TcpStream, m: &Message) -> Message {
    let bytes = m.to_vec().unwrap();
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// Whether the server closes `stream` within `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn tcp_answers_and_is_capped_and_idle_connections_close() {
    let up = fake_upstream().await;
    let dns = start(&up).await;
    let mut first = TcpStream::connect(dns.tcp).await.unwrap();
    let r = tcp_ask(&mut first, &query("pc1.lan.", RecordType::A)).await;
    assert_eq!(address(&r), Ipv4Addr::new(10, 0, 0, 11));
    let r = tcp_ask(&mut first, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(address(&r), Ipv4Addr::new(198, 51, 100, 7));
    // One connection per client address here: the second is closed at once.
    let mut second = TcpStream::connect(dns.tcp).await.unwrap();
    assert!(
        closed(&mut second, Duration::from_secs(2)).await,
        "a second connection stayed open"
    );
    assert_eq!(dns.stats.snapshot().tcp_refused, 1);
    // The first, idle, is closed after the idle timeout (1 s); then a new one is taken.
    let t = Instant::now();
    assert!(
        closed(&mut first, Duration::from_secs(3)).await,
        "an idle connection stayed open"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    let mut third = TcpStream::connect(dns.tcp).await.unwrap();
    let r = tcp_ask(&mut third, &query("pc1.", RecordType::A)).await;
    assert_eq!(address(&r), Ipv4Addr::new(10, 0, 0, 11));
    // A length prefix with garbage behind it ends the connection, not the listener.
    third.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    assert!(closed(&mut third, Duration::from_secs(2)).await);
    let mut fourth = TcpStream::connect(dns.tcp).await.unwrap();
    let r = tcp_ask(&mut fourth, &query("pc1.lan.", RecordType::A)).await;
    assert_eq!(address(&r), Ipv4Addr::new(10, 0, 0, 11));
}
