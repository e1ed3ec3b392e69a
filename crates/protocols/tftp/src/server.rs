//! The tokio server: one listening socket for requests; one thread and one socket per transfer.
//!
//! The loop only receives, decides through [`crate::request::decide`], sends and logs; each
//! transfer thread drives a pure [`crate::session::Session`] ([`crate::transfer`]), and a task
//! of the loop's [`JoinSet`] waits for it, so a slot is the transfer's until its thread ends.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootEvent, BootFile, BootStage, Catalogue, Outcome};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::{self, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::admission::{Admission, AdmissionLimits, Verdict};
use crate::options::Limits;
use crate::packet::{ErrorCode, MAX_PACKET_LEN, Packet};
use crate::refusal_log::{RefusalLog, Report};
use crate::request::{Decision, Refusal, decide};
use crate::stats::TftpStats;
use crate::transfer::{self, Transfer};

/// How the server listens and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpServerConfig {
    /// Address of the request socket (port 69 in production, port 0 in tests).
    pub bind: SocketAddr,
    /// LAN interface to bind every socket to (SO_BINDTODEVICE).
    pub interface: Option<String>,
    /// Concurrent transfers; a request beyond this gets ERROR 0 "server busy, retry" (or
    /// evicts a heavier client's transfer: [`crate::admission`]).
    pub max_transfers: usize,
    /// Concurrent transfers to one client address (and always one per address and port).
    pub max_per_client: usize,
    /// How long a new transfer waits for its first ACK before it is dropped.
    pub first_ack_timeout: Duration,
    /// Retransmission timeout when the client negotiates none.
    pub timeout: Duration,
    /// Retransmissions of one window before a transfer is given up.
    pub retries: u32,
    /// Largest block size granted (further capped to the MTU).
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
    /// MTU of the interface, from the caller (who asks the kernel of its network namespace);
    /// `None` caps blocks by `max_blksize` alone.
    pub mtu: Option<u32>,
}

/// Errors of the server itself (per-transfer problems are boot events, not errors).
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("cannot create a UDP socket for {addr}: {source}")]
    Socket { addr: SocketAddr, source: io::Error },
    #[error("cannot bind the TFTP socket to interface {interface:?}: {source}")]
    BindDevice {
        interface: String,
        source: io::Error,
    },
    #[error("cannot bind TFTP to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the TFTP socket on {addr} failed: {source}")]
    Receive { addr: SocketAddr, source: io::Error },
}

/// A bound, not yet running, TFTP server.
#[derive(Debug)]
pub struct TftpServer {
    socket: UdpSocket,
    local_addr: SocketAddr,
    cfg: TftpServerConfig,
    limits: Limits,
    stats: Arc<TftpStats>,
}

/// A non-blocking UDP socket on `addr` for tokio, bound to `interface` if set.
pub(crate) fn udp_socket(
    addr: SocketAddr,
    interface: Option<&str>,
    reuse_address: bool,
) -> Result<UdpSocket, TftpError> {
    let socket = std_udp_socket(addr, interface, reuse_address, true)?;
    UdpSocket::from_std(socket).map_err(|source| TftpError::Socket { addr, source })
}

/// A UDP socket on `addr`, bound to `interface` if set; blocking unless `nonblocking`.
pub(crate) fn std_udp_socket(
    addr: SocketAddr,
    interface: Option<&str>,
    reuse_address: bool,
    nonblocking: bool,
) -> Result<std::net::UdpSocket, TftpError> {
    let socket_err = |source| TftpError::Socket { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(socket_err)?;
    socket
        .set_reuse_address(reuse_address)
        .map_err(socket_err)?;
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|source| TftpError::BindDevice {
                interface: interface.to_owned(),
                source,
            })?;
    }
    socket.set_nonblocking(nonblocking).map_err(socket_err)?;
    socket
        .bind(&addr.into())
        .map_err(|source| TftpError::Bind { addr, source })?;
    Ok(socket.into())
}

/// Binds the request socket (SO_REUSEADDR, SO_BINDTODEVICE when an interface is set).
pub async fn bind(cfg: TftpServerConfig) -> Result<TftpServer, TftpError> {
    TftpServer::bind(cfg).await
}

impl TftpServer {
    /// Binds the request socket (SO_REUSEADDR, SO_BINDTODEVICE when an interface is set).
    pub async fn bind(cfg: TftpServerConfig) -> Result<TftpServer, TftpError> {
        let socket = udp_socket(cfg.bind, cfg.interface.as_deref(), true)?;
        let local_addr = socket.local_addr().map_err(|source| TftpError::Socket {
            addr: cfg.bind,
            source,
        })?;
        let limits = Limits {
            max_blksize: cfg.max_blksize,
            max_windowsize: cfg.max_windowsize,
            mtu: cfg.mtu,
        };
        Ok(TftpServer {
            socket,
            local_addr,
            cfg,
            limits,
            stats: Arc::default(),
        })
    }

    /// The address the request socket is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Count into `stats` instead of the server's own counters (a restarted server goes on
    /// counting where the last one stopped).
    pub fn with_stats(mut self, stats: Arc<TftpStats>) -> TftpServer {
        self.stats = stats;
        self
    }

    /// The server's counters; they stay readable while and after it runs.
    pub fn stats(&self) -> Arc<TftpStats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` is cancelled, then ends every transfer and returns.
    pub async fn run(
        self,
        catalogue: Arc<dyn Catalogue>,
        shutdown: CancellationToken,
    ) -> Result<(), TftpError> {
        let mut slots = Slots {
            admission: Admission::new(AdmissionLimits {
                max_transfers: self.cfg.max_transfers,
                max_per_client: self.cfg.max_per_client,
            }),
            evict: HashMap::new(),
            transfers: JoinSet::new(),
            refusals: RefusalLog::default(),
        };
        // Every transfer's shutdown token, cancelled with `shutdown` and also when this future
        // is dropped before its end: transfer threads do not outlive their server.
        let stop_transfers = shutdown.child_token();
        let _stop_on_drop = stop_transfers.clone().drop_guard();
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        info!(
            addr = %self.local_addr, interface = ?self.cfg.interface,
            max_transfers = self.cfg.max_transfers, max_per_client = self.cfg.max_per_client,
            "tftp listening"
        );
        let result = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                Some(ended) = slots.transfers.join_next_with_id(), if !slots.transfers.is_empty() => {
                    let id = match ended {
                        Ok((id, unanswered)) => {
                            if let Some(u) = unanswered {
                                report(&mut slots.refusals, catalogue.as_ref(), u.peer, &u.detail);
                            }
                            id
                        }
                        Err(e) => e.id(),
                    };
                    slots.admission.remove(id);
                    slots.evict.remove(&id);
                }
                () = sleep_until(slots.refusals.poll_at()) => {
                    if let Some(summary) = slots.refusals.on_timeout(Instant::now()) {
                        info!(
                            count = summary.count,
                            over_ms = summary.over.as_millis() as u64,
                            last_peer = %summary.last_peer,
                            last_reason = %summary.last_reason,
                            "tftp requests refused or unanswered (one line a second at most)"
                        );
                    }
                }
                received = self.socket.recv_from(&mut buf) => {
                    let (len, peer) = match received {
                        Ok(r) => r,
                        Err(e) if is_transient(&e) => {
                            debug!(error = %e, "tftp receive error, continuing");
                            continue;
                        }
                        Err(source) => break Err(TftpError::Receive { addr: self.local_addr, source }),
                    };
                    let bytes = buf.get(..len).unwrap_or_default();
                    self.on_datagram(bytes, peer, &catalogue, &mut slots, &stop_transfers).await;
                }
            }
        };
        shutdown.cancel();
        while slots.transfers.join_next().await.is_some() {}
        info!(addr = %self.local_addr, "tftp stopped");
        result
    }

    /// Handles one datagram on the request port; starts a transfer if it earns one.
    async fn on_datagram(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        catalogue: &Arc<dyn Catalogue>,
        slots: &mut Slots,
        shutdown: &CancellationToken,
    ) {
        let (binary, requested, options) = match decide(bytes) {
            Decision::Serve {
                binary,
                requested,
                options,
            } => (binary, requested, options),
            Decision::Drop(reason) => {
                self.stats.bad_packet();
                debug!(%peer, %reason, "tftp datagram dropped");
                return;
            }
            Decision::Refuse {
                code,
                message,
                reason,
            } => {
                if reason.is_bad_packet() {
                    self.stats.bad_packet();
                    debug!(%peer, %reason, "tftp malformed request");
                    self.send_error(peer, code, message).await;
                } else {
                    self.refuse(peer, code, message, &reason.to_string(), catalogue, slots)
                        .await;
                }
                return;
            }
        };
        debug!(%peer, file = %requested, ?options, "tftp read request");
        let Some(path) = catalogue.boot_file(&BootFile::Ipxe(binary)) else {
            let reason = Refusal::Name(crate::names::NameError::NotFound { name: requested });
            self.refuse(
                peer,
                ErrorCode::FILE_NOT_FOUND,
                "file not found",
                &reason.to_string(),
                catalogue,
                slots,
            )
            .await;
            return;
        };
        let verdict = slots.admission.decide(peer);
        let busy = |why: &str| format!("{}: {why}", binary.file_name());
        match verdict {
            Verdict::Admit => {}
            Verdict::AdmitEvicting(id) => {
                self.stats.evicted();
                slots.admission.remove(id);
                if let Some(token) = slots.evict.remove(&id) {
                    token.cancel();
                }
                debug!(%peer, "tftp server full: a heavier client's newest transfer makes room");
            }
            Verdict::Duplicate => {
                // A retransmitted RRQ (or a flood from one socket): an ERROR would end the
                // transfer this port already has.
                self.stats.duplicate_request();
                debug!(%peer, "tftp request from a port being served: dropped");
                return;
            }
            Verdict::ClientBusy => {
                self.stats.refused_client_busy();
                let reason = busy(&format!(
                    "client busy ({} transfers to {})",
                    self.cfg.max_per_client,
                    peer.ip()
                ));
                self.refuse(
                    peer,
                    ErrorCode::NOT_DEFINED,
                    "server busy, retry",
                    &reason,
                    catalogue,
                    slots,
                )
                .await;
                return;
            }
            Verdict::ServerBusy => {
                self.stats.refused_server_busy();
                let reason = busy(&format!(
                    "server busy ({} transfers)",
                    self.cfg.max_transfers
                ));
                self.refuse(
                    peer,
                    ErrorCode::NOT_DEFINED,
                    "server busy, retry",
                    &reason,
                    catalogue,
                    slots,
                )
                .await;
                return;
            }
        }
        let evicted = CancellationToken::new();
        let transfer = Transfer {
            peer,
            name: binary.file_name(),
            path,
            options,
            local: SocketAddr::new(self.local_ip(), 0),
            interface: self.cfg.interface.clone(),
            limits: self.limits,
            timeout: self.cfg.timeout,
            retries: self.cfg.retries,
            first_ack_timeout: self.cfg.first_ack_timeout,
            catalogue: Arc::clone(catalogue),
            stats: Arc::clone(&self.stats),
            shutdown: shutdown.child_token(),
            evicted: evicted.clone(),
            started: Instant::now(),
        };
        let id = slots.transfers.spawn(transfer::start(transfer)).id();
        slots.admission.insert(id, peer);
        slots.evict.insert(id, evicted);
    }

    /// Transfer sockets use the request socket's address, so replies come from the address
    /// the client talked to (when bound to a specific address, as the daemon does).
    fn local_ip(&self) -> IpAddr {
        self.local_addr.ip()
    }

    /// Answers a declined request with an ERROR and counts it; reports it through the rate
    /// limiter (a boot event for the first after a quiet second, else a summary line later).
    async fn refuse(
        &self,
        peer: SocketAddr,
        code: ErrorCode,
        message: &str,
        reason: &str,
        catalogue: &Arc<dyn Catalogue>,
        slots: &mut Slots,
    ) {
        self.stats.refused();
        debug!(%peer, %reason, "tftp request refused");
        report(
            &mut slots.refusals,
            catalogue.as_ref(),
            peer,
            &format!("refused: {reason}"),
        );
        self.send_error(peer, code, message).await;
    }

    async fn send_error(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        let bytes = Packet::error(code, message).emit();
        if let Err(e) = self.socket.send_to(&bytes, peer).await {
            debug!(%peer, error = %e, "tftp error packet not sent");
        }
    }
}

/// Reports a refusal or an unanswered transfer through the rate limiter: a boot event now,
/// or a count in the next summary line.
fn report(log: &mut RefusalLog, catalogue: &dyn Catalogue, peer: SocketAddr, detail: &str) {
    if log.refused(Instant::now(), peer, detail) == Report::Now {
        catalogue.record(
            BootEvent::new(BootStage::Tftp, Outcome::Failed, detail.to_owned()).peer(peer.ip()),
        );
    }
}

/// The server loop's bookkeeping of running transfers and refusals.
struct Slots {
    admission: Admission<task::Id>,
    /// Each running transfer's eviction token.
    evict: HashMap<task::Id, CancellationToken>,
    transfers: JoinSet<Option<transfer::Unanswered>>,
    refusals: RefusalLog,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Errors a UDP socket reports for one datagram (ICMP feedback, interrupted calls), after which
/// it keeps working.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
