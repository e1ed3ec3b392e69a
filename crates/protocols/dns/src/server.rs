//! The listeners: UDP and TCP on one address, bound to the LAN port (SO_BINDTODEVICE). Each
//! packet is parsed, decided by [`answer::decide`], answered at once (local names, refusals)
//! or forwarded in a task that holds a place in the query budget. A packet that is no DNS
//! message is counted, logged at debug with its sender and dropped; no listener dies of one.
//!
//! Budgets (the LAN is untrusted): forwarded queries waiting for upstream, per client address
//! and in all (beyond: REFUSED); TCP connections per client address and in all (beyond: closed
//! at once); a TCP connection idle for `tcp_idle_timeout` between queries, or that takes that
//! long to send one, is closed; one query at a time per TCP connection; a forward that takes
//! longer than [`FORWARD_TIMEOUT`] is SERVFAIL.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::answer::{self, Decision, Outcome};
use crate::budget::{Budget, Permit};
use crate::forward::Upstream;
use crate::local::LocalNames;
use crate::stats::{Count, DnsStats};

/// The longest a forwarded query waits for upstream (hickory's tries included).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    #[error("binding {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where and with which bounds the server runs.
#[derive(Debug, Clone)]
pub struct DnsServerConfig {
    /// The LAN address and port (53).
    pub bind: SocketAddr,
    /// The LAN port the sockets are bound to.
    pub interface: Option<String>,
    /// The TTL of local answers.
    pub local_ttl: Duration,
    pub max_queries: usize,
    pub max_queries_per_client: usize,
    pub max_tcp_connections: usize,
    pub max_tcp_per_client: usize,
    pub tcp_idle_timeout: Duration,
}

/// What the appliance changes while the server runs: the local names and the upstream.
#[derive(Debug, Default)]
pub struct DnsState {
    names: RwLock<Arc<LocalNames>>,
    upstream: RwLock<Option<Upstream>>,
}

impl DnsState {
    /// Replaces the local names.
    pub fn set_names(&self, names: LocalNames) {
        match self.names.write() {
            Ok(mut guard) => *guard = Arc::new(names),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(names),
        }
    }

    /// The local names now.
    pub fn names(&self) -> Arc<LocalNames> {
        match self.names.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the upstream (`None`: nothing is forwarded, SERVFAIL).
    pub fn set_upstream(&self, upstream: Option<Upstream>) {
        match self.upstream.write() {
            Ok(mut guard) => *guard = upstream,
            Err(poisoned) => *poisoned.into_inner() = upstream,
        }
    }

    /// The upstream now.
    pub fn upstream(&self) -> Option<Upstream> {
        match self.upstream.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The bound server.
#[derive(Debug)]
pub struct DnsServer {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    shared: Arc<Shared>,
    limits: TcpLimits,
}

/// What every query's handling reads.
#[derive(Debug)]
struct Shared {
    state: Arc<DnsState>,
    stats: Arc<DnsStats>,
    queries: Budget,
    local_ttl: u32,
}

fn socket(config: &DnsServerConfig, kind: socket2::Type) -> std::io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(config.bind);
    let s = socket2::Socket::new(domain, kind, None)?;
    s.set_reuse_address(true)?;
    if let Some(interface) = &config.interface {
        s.bind_device(Some(interface.as_bytes()))?;
    }
    s.bind(&config.bind.into())?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl DnsServer {
    /// Binds UDP and TCP on `config.bind`, answering from `state`, counting into `stats`.
    pub fn bind(
        config: &DnsServerConfig,
        state: Arc<DnsState>,
        stats: Arc<DnsStats>,
    ) -> Result<DnsServer, DnsServerError> {
        let bind_error = |what| {
            let addr = config.bind;
            move |source| DnsServerError::Bind { what, addr, source }
        };
        let udp = socket(config, socket2::Type::DGRAM)
            .and_then(|s| UdpSocket::from_std(s.into()))
            .map_err(bind_error("DNS on UDP"))?;
        let tcp = socket(config, socket2::Type::STREAM)
            .and_then(|s| {
                s.listen(128)?;
                TcpListener::from_std(s.into())
            })
            .map_err(bind_error("DNS on TCP"))?;
        let shared = Arc::new(Shared {
            state,
            stats,
            queries: Budget::new(config.max_queries, config.max_queries_per_client),
            local_ttl: u32::try_from(config.local_ttl.as_secs()).unwrap_or(u32::MAX),
        });
        let limits = TcpLimits {
            connections: Budget::new(config.max_tcp_connections, config.max_tcp_per_client),
            idle: config.tcp_idle_timeout,
        };
        Ok(DnsServer {
            udp: Arc::new(udp),
            tcp,
            shared,
            limits,
        })
    }

    /// The UDP address it answers on (port 0 in the config: the one the kernel chose).
    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TCP address it answers on.
    pub fn tcp_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until `stop`; every task it started ends with it.
    pub async fn run(self, stop: CancellationToken) {
        let DnsServer {
            udp,
            tcp,
            shared,
            limits,
        } = self;
        tokio::join!(
            serve_udp(udp, shared.clone(), stop.clone()),
            serve_tcp(tcp, shared, limits, stop),
        );
    }
}

/// The TCP side's bounds.
#[derive(Debug, Clone)]
struct TcpLimits {
    connections: Budget,
    idle: Duration,
}

/// The reply to one parsed request: at once, or after forwarding (holding a query permit).
enum Step {
    Reply(Message),
    Forward(Permit, hickory_proto::op::Query),
    Nothing,
}

fn step(shared: &Shared, request: &Message, peer: SocketAddr) -> Step {
    let (decision, outcome) = answer::decide(request, &shared.state.names(), shared.local_ttl);
    match outcome {
        Some(Outcome::Local) => shared.stats.count(Count::Local),
        Some(Outcome::Refused) => shared.stats.count(Count::Refused),
        None => {}
    }
    match decision {
        Decision::Reply(reply) => Step::Reply(reply),
        Decision::Drop => Step::Nothing,
        Decision::Forward(query) => match shared.queries.take(peer.ip()) {
            Some(permit) => Step::Forward(permit, query),
            None => {
                tracing::debug!(%peer, "DNS: over the forwarded-query budget: REFUSED");
                shared.stats.count(Count::Refused);
                Step::Reply(answer::refused(request))
            }
        },
    }
}

async fn forward(shared: &Shared, request: &Message, query: &hickory_proto::op::Query) -> Message {
    let Some(upstream) = shared.state.upstream() else {
        shared.stats.count(Count::Failed);
        return answer::server_failure(request);
    };
    let result = match tokio::time::timeout(FORWARD_TIMEOUT, upstream.lookup(query)).await {
        Ok(result) => result,
        Err(_) => Err(hickory_resolver::net::NetError::Timeout),
    };
    let reply = answer::forwarded(request, &result, Instant::now());
    if reply.metadata.response_code == hickory_proto::op::ResponseCode::ServFail {
        if let Err(e) = &result {
            tracing::debug!(name = %query.name(), error = %e, "DNS: upstream failed");
        }
        shared.stats.count(Count::Failed);
    } else {
        shared.stats.count(Count::Forwarded);
    }
    reply
}

fn parse(shared: &Shared, bytes: &[u8], peer: SocketAddr) -> Option<Message> {
    match Message::from_vec(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::debug!(%peer, len = bytes.len(), error = %e, "DNS: not a DNS message: dropped");
            shared.stats.count(Count::Malformed);
            None
        }
    }
}

async fn send_udp(udp: &UdpSocket, reply: &Message, request: &Message, peer: SocketAddr) {
    let Some(bytes) = answer::udp_bytes(reply, request) else {
        tracing::debug!(%peer, "DNS: the reply could not be encoded");
        return;
    };
    if let Err(e) = udp.send_to(&bytes, peer).await {
        tracing::debug!(%peer, error = %e, "DNS: the UDP reply could not be sent");
    }
}

async fn serve_udp(udp: Arc<UdpSocket>, shared: Arc<Shared>, stop: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (len, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = udp.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // An ICMP error for an earlier reply, or a transient failure.
                    tracing::debug!(error = %e, "DNS: UDP receive failed");
                    continue;
                }
            },
        };
        let Some(request) = parse(&shared, buf.get(..len).unwrap_or_default(), peer) else {
            continue;
        };
        match step(&shared, &request, peer) {
            Step::Nothing => {}
            Step::Reply(reply) => send_udp(&udp, &reply, &request, peer).await,
            Step::Forward(permit, query) => {
                let (udp, shared) = (udp.clone(), shared.clone());
                tasks.spawn(async move {
                    let reply = forward(&shared, &request, &query).await;
                    send_udp(&udp, &reply, &request, peer).await;
                    drop(permit);
                });
            }
        }
    }
    tasks.shutdown().await;
}

async fn serve_tcp(
    tcp: TcpListener,
    shared: Arc<Shared>,
    limits: TcpLimits,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = tcp.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS: TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = limits.connections.take(peer.ip()) else {
            tracing::debug!(%peer, "DNS: over the TCP connection caps: closed");
            shared.stats.count(Count::TcpRefused);
            drop(stream);
            continue;
        };
        let (shared, idle, stop) = (shared.clone(), limits.idle, stop.clone());
        connections.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, peer, &shared, idle) => {}
            }
            drop(permit);
        });
    }
    connections.shutdown().await;
}

/// One TCP connection: length-prefixed queries, one at a time, until the client closes, is
/// idle for `idle`, or sends something that is no DNS message.
async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared, idle: Duration) {
    loop {
        let read = async {
            let len = stream.read_u16().await?;
            let mut bytes = vec![0u8; usize::from(len)];
            stream.read_exact(&mut bytes).await?;
            Ok::<_, std::io::Error>(bytes)
        };
        let bytes = match tokio::time::timeout(idle, read).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) | Err(_) => return,
        };
        let Some(request) = parse(shared, &bytes, peer) else {
            return;
        };
        let reply = match step(shared, &request, peer) {
            Step::Nothing => continue,
            Step::Reply(reply) => reply,
            Step::Forward(permit, query) => {
                let reply = forward(shared, &request, &query).await;
                drop(permit);
                reply
            }
        };
        let Ok(bytes) = reply.to_vec() else {
            return;
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        let write = async {
            stream.write_u16(len).await?;
            stream.write_all(&bytes).await?;
            stream.flush().await
        };
        if !matches!(tokio::time::timeout(idle, write).await, Ok(Ok(()))) {
            return;
        }
    }
}
