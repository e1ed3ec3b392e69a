//! The router-mode receive loop, with group commit.
//!
//! [`decide`] is the whole decision for one datagram, pure (bytes, sender, time and pool in;
//! reply, lease changes, boot event and counter out). [`run`] receives a datagram, decides it and
//! sends a reply that changes no lease (an OFFER, a NAK) at once; a decision that changes leases
//! goes to the [`committer`], which makes each batch's changes durable in ONE
//! [`LeaseStore::commit`] (up to [`BATCH_CAP`] decisions, gathered while the previous commit was
//! on disk) and only then sends their replies: an ACK never leaves before its lease is on disk,
//! a burst of clients costs one fsync, not one each, and no OFFER waits for an fsync.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode, UnknownOption};
use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, Outcome};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::socket::{CLIENT_PORT, reply_destination};
use super::{DhcpError, DhcpServerConfig, DhcpStats, ra_sender, receiver};
use crate::boot::{BootConfig, BootDecision, decide as decide_boot};
use crate::lease::{Lease, LeaseStore, Pool, PoolConfig, Verdict};
use crate::options::{ClientInfo, PacketError, parse_request};
use crate::proxy::{add_boot_options, echo_client_guid, encode_reply};
use committer::Pending;

/// iPXE option 175.176 (`no-pxedhcp`) = 1: this reply already has the boot file, so iPXE need
/// not wait (about 3 s) for ProxyDHCP offers. Only router mode says so: in proxy mode flakeboot
/// *is* the ProxyDHCP server.
fn skip_ipxe_proxydhcp_wait(reply: &mut Message) {
    const IPXE_ENCAPSULATED: u8 = 175;
    const NO_PXEDHCP: u8 = 176;
    reply
        .opts_mut()
        .insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(IPXE_ENCAPSULATED),
            vec![NO_PXEDHCP, 1, 1],
        )));
}

/// At most this many decisions go into one batch (one [`LeaseStore::commit`]).
pub const BATCH_CAP: usize = 256;

/// Which counter of [`DhcpStats`] a datagram ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Replied,
    Ignored,
    Malformed,
}

/// The decision for one datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// Bytes to send and where, once the lease changes are durable.
    pub reply: Option<(Vec<u8>, SocketAddr)>,
    /// Leases to write.
    pub persist: Vec<Lease>,
    /// Addresses whose leases to delete.
    pub forget: Vec<Ipv4Addr>,
    /// A boot event, for network-boot clients' OFFERs and ACKs.
    pub event: Option<BootEvent>,
    /// What the pool did (`None` when the datagram never reached it).
    pub verdict: Option<Verdict>,
    pub counter: Counter,
    /// Why nothing is sent, for the debug log.
    pub note: Option<String>,
}

impl Decided {
    /// The reply to send after a commit that did (`durable`) or did not succeed: a reply
    /// that depends on lease changes (an ACK) goes only when they are on disk.
    pub fn sendable(&self, durable: bool) -> Option<&(Vec<u8>, SocketAddr)> {
        self.reply
            .as_ref()
            .filter(|_| durable || !self.needs_commit())
    }

    /// Whether this decision changes leases, so that its reply waits for the commit.
    pub fn needs_commit(&self) -> bool {
        !self.persist.is_empty() || !self.forget.is_empty()
    }

    fn dropped(counter: Counter, note: String) -> Decided {
        Decided {
            reply: None,
            persist: Vec::new(),
            forget: Vec::new(),
            event: None,
            verdict: None,
            counter,
            note: Some(note),
        }
    }
}

/// Decide what to do with one datagram from `src` at `now`: the pool's answer, with the boot
/// information added for network-boot clients (the same decision table as proxy mode).
pub fn decide(
    pool: &mut Pool,
    boot: &BootConfig,
    bytes: &[u8],
    src: SocketAddr,
    now: SystemTime,
) -> Decided {
    let req = match parse_request(bytes) {
        Ok(req) => req,
        Err(e @ PacketError::NotRequest { .. }) => {
            return Decided::dropped(Counter::Ignored, e.to_string());
        }
        Err(e) => return Decided::dropped(Counter::Malformed, e.to_string()),
    };
    if crate::seen::is_probe(&req) {
        return Decided::dropped(Counter::Ignored, "the appliance's own probe".into());
    }
    let handled = pool.handle(now, &req);
    let verdict = handled.verdict;
    let Some(mut reply) = handled.reply else {
        return Decided {
            verdict: Some(verdict),
            persist: handled.persist,
            forget: handled.forget,
            ..Decided::dropped(Counter::Ignored, format!("{verdict:?}"))
        };
    };

    let mut event = None;
    if let Verdict::Offered(ip) | Verdict::Acked(ip) = verdict {
        let info = ClientInfo::from_message(&req);
        let decision = decide_boot(&info, boot);
        if decision != BootDecision::NotNetboot {
            add_boot_options(&mut reply, &decision, pool.config().server_ip);
            if matches!(decision, BootDecision::Ipxe { .. }) {
                skip_ipxe_proxydhcp_wait(&mut reply);
            }
            echo_client_guid(&mut reply, &req);
            let what = if matches!(verdict, Verdict::Offered(_)) {
                "offer"
            } else {
                "ack"
            };
            let (outcome, detail) = match &decision {
                BootDecision::Decline { reason, .. } => (
                    Outcome::Declined,
                    format!("router {what} {ip}, no boot: {reason}"),
                ),
                other => (
                    Outcome::Ok,
                    format!(
                        "router {what} {ip}: {}",
                        other.boot_file().unwrap_or_default()
                    ),
                ),
            };
            let mut ev = BootEvent::new(BootStage::Dhcp, outcome, detail);
            ev.at = now;
            // The address the client uses from now on (it sent from 0.0.0.0): TFTP and HTTP
            // events from that address are this machine's.
            ev.peer = Some(IpAddr::V4(ip));
            ev.mac = info.mac;
            ev.firmware = decision.firmware();
            ev.vendor_class = info.vendor_class;
            event = Some(ev);
        }
    }

    let bytes = match encode_reply(&reply) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Decided {
                verdict: Some(verdict),
                persist: handled.persist,
                forget: handled.forget,
                ..Decided::dropped(Counter::Malformed, format!("reply not encodable: {e}"))
            };
        }
    };
    Decided {
        reply: Some((bytes, destination(&req, &reply, src))),
        persist: handled.persist,
        forget: handled.forget,
        event,
        verdict: Some(verdict),
        counter: Counter::Replied,
        note: None,
    }
}

/// Where a reply goes: as [`reply_destination`], except that a NAK to a client that is not
/// relayed is always broadcast (RFC 2131 4.3.2: its address is no longer valid).
pub fn destination(req: &Message, reply: &Message, src: SocketAddr) -> SocketAddr {
    if reply.opts().has_msg_type(MessageType::Nak) && req.giaddr().is_unspecified() {
        return SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT));
    }
    reply_destination(req, src)
}

/// The net lease changes of a batch, in order: a later change to the same address wins.
/// Returns (leases to write, addresses to delete), disjoint.
pub fn net_changes<'a>(
    decided: impl IntoIterator<Item = &'a Decided>,
) -> (Vec<Lease>, Vec<Ipv4Addr>) {
    let mut changes: BTreeMap<Ipv4Addr, Option<&Lease>> = BTreeMap::new();
    for d in decided {
        for ip in &d.forget {
            changes.insert(*ip, None);
        }
        for record in &d.persist {
            changes.insert(record.ip, Some(record));
        }
    }
    let mut put = Vec::new();
    let mut delete = Vec::new();
    for (ip, change) in changes {
        match change {
            Some(record) => put.push(record.clone()),
            None => delete.push(ip),
        }
    }
    (put, delete)
}

/// A request to release a MAC's leases (from [`super::LeaseControl`]), answered once the
/// store no longer holds them.
#[derive(Debug)]
pub struct ReleaseRequest {
    pub(crate) mac: flakeboot_catalogue::MacAddr,
    pub(crate) reply: oneshot::Sender<Result<Vec<Ipv4Addr>, super::LeaseControlError>>,
}

/// Serve router mode on `socket` until `shutdown`. Leases load from `leases` first; user
/// releases arrive on `releases`; the IPv6 router advertisement sender runs beside it when
/// `pool.ra` is set. Datagrams are received and decided on a thread of their own
/// ([`super::receiver`]); what needs a commit goes on to the [`committer`]'s thread.
pub(crate) async fn run(
    socket: std::net::UdpSocket,
    cfg: &DhcpServerConfig,
    pool: PoolConfig,
    catalogue: Arc<dyn Catalogue>,
    (leases, mut releases): (Arc<dyn LeaseStore>, mpsc::Receiver<ReleaseRequest>),
    stats: Arc<DhcpStats>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    // One read at start-up, before the loop: blocking the runtime briefly here is harmless.
    let existing = leases.load()?;
    tracing::info!(leases = existing.len(), ranges = ?pool.ranges, "router mode: leases loaded");
    // The RA sender stops with this loop, whichever way it ends.
    let ra_token = shutdown.child_token();
    let _ra_guard = ra_token.clone().drop_guard();
    if let Some(ra) = pool.ra.clone() {
        let interface = cfg.interface.clone();
        tokio::spawn(async move {
            if let Err(e) = ra_sender::run(&interface, &ra, ra_token).await {
                tracing::error!(%interface, error = %e, "IPv6 router advertisements stopped");
            }
        });
    }
    let pool = Arc::new(Mutex::new(Pool::new(pool, existing)));
    let local_port = receiver::local_port(&socket);
    let socket = receiver::blocking(socket)?;
    let (queue, pending) = mpsc::channel(committer::QUEUE);
    let out = committer::Outbox {
        socket: Arc::clone(&socket),
        catalogue: Arc::clone(&catalogue),
        stats: Arc::clone(&stats),
    };
    let committer = committer::spawn(pending, leases, out);
    // Dropped when this future ends or is dropped: the receive thread stops either way.
    let stop = receiver::Stop::new(&socket);
    let mut thread = {
        let (pool, queue, boot, flag) = (
            Arc::clone(&pool),
            queue.clone(),
            cfg.boot.clone(),
            stop.flag.clone(),
        );
        tokio::task::spawn_blocking(move || {
            receive(
                &socket,
                &boot,
                &pool,
                &queue,
                catalogue.as_ref(),
                &stats,
                &flag,
            );
        })
    };
    let releasing = async {
        while let Some(request) = releases.recv().await {
            let (pool, queue) = (Arc::clone(&pool), queue.clone());
            // The pool's lock is held until the release is queued behind what the pool
            // decided before it; the queue may be full, so not on the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || {
                let mut pool = lock(&pool);
                let ips = pool.release_mac(request.mac);
                queue.blocking_send(Pending::Release { ips, request })
            })
            .await;
        }
        // The API's side is gone (the server is stopping): serve on until `shutdown`.
        std::future::pending::<()>().await;
    };
    let ended = tokio::select! {
        joined = &mut thread => receiver::ended(joined, local_port),
        () = shutdown.cancelled() => {
            drop(stop);
            receiver::ended(thread.await, local_port)
        }
        () = releasing => Ok(()),
    };
    // What was decided is still committed and answered before the loop is gone.
    drop(queue);
    if let Err(e) = committer.await {
        tracing::error!(error = %e, "the lease committer failed");
    }
    ended
}

/// The pool, also after a panic of another holder (its state is still a pool: every change
/// to it is one call).
fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The receive thread of [`run`], until `stop` is raised: decides each datagram, sends what
/// needs no commit at once and queues the rest for the committer, in the pool's order.
fn receive(
    socket: &std::net::UdpSocket,
    boot: &BootConfig,
    pool: &Mutex<Pool>,
    queue: &mpsc::Sender<Pending>,
    catalogue: &dyn Catalogue,
    stats: &DhcpStats,
    stop: &CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    while let Some((len, src)) = receiver::next(socket, &mut buf, stop) {
        DhcpStats::bump(&stats.received);
        DhcpStats::add_bytes(&stats.received_bytes, len);
        let arrived = Instant::now();
        let bytes = buf.get(..len).unwrap_or_default();
        let mut pool = lock(pool);
        let decided = decide(&mut pool, boot, bytes, src, SystemTime::now());
        if decided.needs_commit() {
            let pending = Pending::Reply {
                decided: Box::new(decided),
                src,
                arrived,
            };
            // Queued under the pool's lock: a user's release queues behind it.
            if queue.blocking_send(pending).is_err() {
                return;
            }
        } else {
            drop(pool);
            let sent = decided
                .sendable(true)
                .map(|(reply, dest)| socket.send_to(reply, dest));
            finish(decided, src, arrived, true, sent, catalogue, stats);
        }
    }
}

/// Log, record and count one decided datagram, whose reply (if it had one it could send
/// after a commit that did or did not succeed, `durable`) went out with the result `sent`.
fn finish(
    decided: Decided,
    src: SocketAddr,
    arrived: Instant,
    durable: bool,
    sent: Option<std::io::Result<usize>>,
    catalogue: &dyn Catalogue,
    stats: &DhcpStats,
) {
    let mut counter = decided.counter;
    match decided.verdict {
        Some(Verdict::Exhausted) => {
            tracing::warn!(peer = %src, "address pool exhausted: no offer");
            DhcpStats::bump(&stats.pool_exhausted);
        }
        Some(Verdict::Declined(ip)) if durable => {
            tracing::info!(peer = %src, %ip, "address declined by its client: quarantined");
        }
        Some(Verdict::Released(ip)) if durable => {
            tracing::info!(peer = %src, %ip, "lease released");
        }
        _ => {
            if let Some(note) = &decided.note {
                tracing::debug!(peer = %src, "DHCP request not answered: {note}");
            }
        }
    }
    let mut event = decided.event.clone();
    if let Some((reply, dest)) = &decided.reply {
        match sent {
            None => {
                // The commit failed (logged): no ACK, and no boot event claiming one.
                counter = Counter::Ignored;
                event = None;
            }
            Some(Ok(_)) => {
                stats.sent(reply.len(), arrived);
                // An ACK with a boot event is that event's `boot event` line already
                // (within its budget: a flood of them is not a flood of log lines); a
                // lease for a machine that does not netboot is logged here.
                let quiet = match decided.verdict {
                    Some(Verdict::Offered(_) | Verdict::Informed) | None => true,
                    Some(Verdict::Acked(_)) => decided.event.is_some(),
                    Some(_) => false,
                };
                if quiet {
                    tracing::debug!(peer = %src, %dest, verdict = ?decided.verdict, "DHCP reply sent");
                } else {
                    tracing::info!(peer = %src, %dest, verdict = ?decided.verdict, "DHCP reply sent");
                }
            }
            Some(Err(e)) => {
                tracing::warn!(peer = %src, %dest, error = %e, "DHCP reply not sent");
                counter = Counter::Ignored;
            }
        }
    }
    if let Some(event) = event {
        catalogue.record(event);
    }
    DhcpStats::bump(match counter {
        Counter::Replied => &stats.replied,
        Counter::Ignored => &stats.ignored,
        Counter::Malformed => &stats.malformed,
    });
}

mod committer;
#[cfg(test)]
mod tests;
