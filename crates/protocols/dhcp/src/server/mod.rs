//! The DHCP server: sockets, the receive loops and the public API the daemon calls. The router
//! loop is a tokio task; the proxy loops (port 67 in proxy mode, and 4011 in both modes) each
//! run on a blocking thread of their own ([`proxy_loop`]).
//!
//! The loops only receive, call the pure functions of this crate ([`crate::options`],
//! [`crate::boot`], [`crate::proxy`], [`crate::lease`]), send and log. A malformed packet is
//! counted in [`DhcpStats::malformed`], logged at debug with its sender and dropped: it never
//! ends a loop.
//!
//! ```no_run
//! # async fn f(cfg: flakeboot_dhcp::server::DhcpServerConfig,
//! #   catalogue: std::sync::Arc<dyn flakeboot_catalogue::Catalogue>,
//! #   leases: std::sync::Arc<dyn flakeboot_dhcp::LeaseStore>)
//! #   -> Result<(), flakeboot_dhcp::server::DhcpError> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let server = flakeboot_dhcp::server::DhcpServer::bind(cfg)?;
//! let stats = server.stats();
//! server.run(catalogue, leases, shutdown.clone()).await?;
//! # Ok(()) }
//! ```

pub mod latency;
mod proxy_loop;
pub(crate) mod ra_sender;
mod receiver;
pub mod router;
pub mod socket;
pub mod watch;

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flakeboot_catalogue::Catalogue;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::boot::BootConfig;
use crate::lease::{LeaseStore, LeaseStoreError, PoolConfig};
use crate::proxy::ProxyPort;

pub use proxy_loop::{Counter, Handled, handle_datagram};

/// How the DHCP server is run, resolved from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpServerConfig {
    /// The LAN interface to serve (SO_BINDTODEVICE).
    pub interface: String,
    /// The appliance's address on that interface.
    pub server_ip: Ipv4Addr,
    /// The DHCP server port (67).
    pub port: u16,
    /// The PXE boot server port (4011).
    pub pxe_port: u16,
    /// What boot clients get.
    pub boot: BootConfig,
    /// Proxy or router.
    pub mode: ServerMode,
}

/// Proxy mode answers only boot clients beside the LAN's DHCP server; router mode is the
/// LAN's DHCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMode {
    /// proxyDHCP: boot information only, no addresses.
    Proxy,
    /// The LAN's DHCP server, with this pool.
    Router(PoolConfig),
}

/// Counters for metrics and tests. Every received datagram ends in exactly one of
/// `replied`, `ignored_non_boot`, `ignored`, `malformed`, `declined` (or a send error, logged).
#[derive(Debug, Default)]
pub struct DhcpStats {
    /// Datagrams received, on any port.
    pub received: AtomicU64,
    /// Replies sent.
    pub replied: AtomicU64,
    /// Requests from clients that are not network-boot clients (proxy mode stays silent).
    pub ignored_non_boot: AtomicU64,
    /// Other requests not answered: message types or servers that are not ours.
    pub ignored: AtomicU64,
    /// Datagrams that are not valid DHCP requests.
    pub malformed: AtomicU64,
    /// Boot clients declined (unknown architecture, no binary configured).
    pub declined: AtomicU64,
    /// Router mode: DISCOVERs left without an offer because the pool was full (also `ignored`).
    pub pool_exhausted: AtomicU64,
    /// Bytes of every datagram received.
    pub received_bytes: AtomicU64,
    /// Bytes of every reply sent.
    pub sent_bytes: AtomicU64,
    /// From a request's arrival to its reply sent.
    pub reply_latency: latency::ReplyLatency,
}

/// A point-in-time copy of [`DhcpStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DhcpStatsSnapshot {
    pub received: u64,
    pub replied: u64,
    pub ignored_non_boot: u64,
    pub ignored: u64,
    pub malformed: u64,
    pub declined: u64,
    pub pool_exhausted: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub reply_latency: latency::LatencySnapshot,
}

impl DhcpStats {
    /// Read every counter.
    pub fn snapshot(&self) -> DhcpStatsSnapshot {
        DhcpStatsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            replied: self.replied.load(Ordering::Relaxed),
            ignored_non_boot: self.ignored_non_boot.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            declined: self.declined.load(Ordering::Relaxed),
            pool_exhausted: self.pool_exhausted.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            reply_latency: self.reply_latency.snapshot(),
        }
    }

    /// Add one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Add `n` bytes to a byte counter.
    pub fn add_bytes(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A reply to a request that arrived at `received` was sent, `len` bytes.
    fn sent(&self, len: usize, received: std::time::Instant) {
        Self::add_bytes(&self.sent_bytes, len);
        self.reply_latency.observe(received.elapsed());
    }
}

/// Errors of the DHCP server.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// A socket could not be bound (port in use, no such interface, not root).
    #[error("cannot bind UDP port {port} on interface {interface}: {source}")]
    Bind {
        interface: String,
        port: u16,
        #[source]
        source: io::Error,
    },
    /// A socket failed in a way the loop cannot continue from.
    #[error("DHCP socket on port {port} failed: {source}")]
    Socket {
        port: u16,
        #[source]
        source: io::Error,
    },
    /// A mode or feature that is not available in this build.
    #[error("{what} is not supported yet")]
    Unsupported { what: &'static str },
    /// The lease store failed (router mode).
    #[error(transparent)]
    Leases(#[from] LeaseStoreError),
}

/// A bound DHCP server, ready to [`run`](DhcpServer::run).
#[derive(Debug)]
pub struct DhcpServer {
    cfg: DhcpServerConfig,
    dhcp_socket: std::net::UdpSocket,
    pxe_socket: std::net::UdpSocket,
    stats: Arc<DhcpStats>,
    control: LeaseControl,
    requests: mpsc::Receiver<router::ReleaseRequest>,
}

/// Releases leases held by a running router-mode pool: the request goes into its receive loop,
/// which forgets the MAC's leases in memory and deletes them from the store before it answers.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseControl(mpsc::Sender<router::ReleaseRequest>);

/// Why a [`LeaseControl`] could not release.
#[derive(Debug, thiserror::Error)]
pub enum LeaseControlError {
    /// No router-mode loop is running behind this control (proxy mode, DHCP off or
    /// stopped): the leases, if any, are only in the store.
    #[error("no router-mode DHCP server is running")]
    NotRunning,
    /// The loop forgot the leases but could not delete them from the store.
    #[error(transparent)]
    Store(#[from] LeaseStoreError),
}

impl LeaseControl {
    /// Releases every bound lease of `mac`: their addresses (empty when it had none).
    pub async fn release(
        &self,
        mac: flakeboot_catalogue::MacAddr,
    ) -> Result<Vec<Ipv4Addr>, LeaseControlError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(router::ReleaseRequest { mac, reply })
            .await
            .map_err(|_| LeaseControlError::NotRunning)?;
        answer.await.map_err(|_| LeaseControlError::NotRunning)?
    }
}

impl DhcpServer {
    /// Bind the DHCP port and the PXE boot server port on the configured interface.
    pub fn bind(cfg: DhcpServerConfig) -> Result<DhcpServer, DhcpError> {
        let bind = |ip, port| {
            socket::bind_std(&cfg.interface, ip, port).map_err(|source| DhcpError::Bind {
                interface: cfg.interface.clone(),
                port,
                source,
            })
        };
        // Port 67 on 0.0.0.0: clients without an address broadcast. Port 4011 on the server
        // address: clients unicast there (to option 54 of the proxy offer), and a reply from
        // a socket bound to that address carries it as source, which UEFI firmware checks.
        let dhcp_socket = bind(Ipv4Addr::UNSPECIFIED, cfg.port)?;
        let pxe_socket = bind(cfg.server_ip, cfg.pxe_port)?;
        let (control, requests) = mpsc::channel(8);
        Ok(DhcpServer {
            cfg,
            dhcp_socket,
            pxe_socket,
            stats: Arc::new(DhcpStats::default()),
            control: LeaseControl(control),
            requests,
        })
    }

    /// Releases leases of the router-mode pool this server runs (in proxy mode every release
    /// answers [`LeaseControlError::NotRunning`]).
    pub fn lease_control(&self) -> LeaseControl {
        self.control.clone()
    }

    /// Count into `stats` instead of the server's own counters (a restarted server goes on
    /// counting where the last one stopped).
    pub fn with_stats(mut self, stats: Arc<DhcpStats>) -> DhcpServer {
        self.stats = stats;
        self
    }

    /// The counters, shared with the running loops.
    pub fn stats(&self) -> Arc<DhcpStats> {
        Arc::clone(&self.stats)
    }

    /// Serve until `shutdown` is cancelled: the port-67 loop of the configured mode and the
    /// PXE boot server loop (both modes). Router mode loads its leases from `leases` first and
    /// commits every batch of changes there before it sends the ACKs; proxy mode never touches
    /// it. Returns early only when a socket fails for good (or the leases cannot be loaded).
    pub async fn run(
        self,
        catalogue: Arc<dyn Catalogue>,
        leases: Arc<dyn LeaseStore>,
        shutdown: CancellationToken,
    ) -> Result<(), DhcpError> {
        let DhcpServer {
            cfg,
            dhcp_socket,
            pxe_socket,
            stats,
            control,
            requests,
        } = self;
        // Releases reach the router loop only; in proxy mode they find the channel closed.
        drop(control);
        tracing::info!(
            interface = %cfg.interface,
            server_ip = %cfg.server_ip,
            port = cfg.port,
            pxe_port = cfg.pxe_port,
            mode = match cfg.mode { ServerMode::Proxy => "proxy", ServerMode::Router(_) => "router" },
            "DHCP listening"
        );
        let boot_server = proxy_loop::run(
            pxe_socket,
            ProxyPort::BootServer,
            cfg.boot.clone(),
            Arc::clone(&catalogue),
            Arc::clone(&stats),
            shutdown.clone(),
        );
        let dhcp = async {
            match &cfg.mode {
                ServerMode::Proxy => {
                    drop(requests);
                    proxy_loop::run(
                        dhcp_socket,
                        ProxyPort::Dhcp,
                        cfg.boot.clone(),
                        Arc::clone(&catalogue),
                        Arc::clone(&stats),
                        shutdown.clone(),
                    )
                    .await
                }
                ServerMode::Router(pool) => {
                    router::run(
                        dhcp_socket,
                        &cfg,
                        pool.clone(),
                        Arc::clone(&catalogue),
                        (leases, requests),
                        Arc::clone(&stats),
                        shutdown.clone(),
                    )
                    .await
                }
            }
        };
        // The first error ends both loops (try_join drops the other one).
        tokio::try_join!(boot_server, dhcp).map(|_| ())
    }
}
