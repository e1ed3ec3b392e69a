//! The one accept loop for HTTP listeners that strangers on the LAN can reach: the HTTP boot
//! port and the management HTTPS port. It bounds what a client can hold without sending a
//! complete request:
//!
//! - **header-read timeout** ([`ConnLimits::header_read_timeout`], 10 s): a request head
//!   (request line and headers) must arrive within this time of the server waiting for it:
//!   after the connection opens and, on a kept-alive connection, after the previous response
//!   (hyper's HTTP/1 `header_read_timeout`, which needs a timer);
//!   A connection that sends nothing at all is closed after the same time;
//! - **idle timeout** ([`ConnLimits::idle_timeout`], 60 s): a connection on which no byte
//!   moves either way while no request is being handled is closed (an idle HTTP/2 connection,
//!   a client that stopped reading its download);
//! - **per-address cap** ([`ConnLimits::max_per_client`], 32): a connection beyond it from the
//!   same address is closed at once, before any TLS handshake;
//! - a `handshake` step per connection (TLS, with its own timeout, for management; none for
//!   boot), run while the connection holds its slot.
//!
//! Requests carry `ConnectInfo<SocketAddr>` as `axum::serve` would give them. On shutdown the
//! listener closes, open connections finish their current request (graceful shutdown) within
//! [`ConnLimits::drain_timeout`], then they are dropped.
//!
//! Management connections run on the daemon's runtime; boot connections on event loops of
//! their own ([`event_loops`]), one per core, each connection on one loop for its life.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use flakeboot_httpboot::h1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

pub mod event_loops;

use event_loops::{EventLoops, Job};

/// The budget of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time to send a complete request head once the server waits for one.
    pub header_read_timeout: Duration,
    /// Time without a byte either way (and no request being handled) before a connection
    /// is closed.
    pub idle_timeout: Duration,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Time open connections get to finish after shutdown.
    pub drain_timeout: Duration,
}

impl ConnLimits {
    /// The defaults for listeners that unauthenticated LAN clients reach.
    pub const UNAUTHENTICATED: ConnLimits = ConnLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_per_client: 32,
        drain_timeout: Duration::from_secs(5),
    };
}

/// Counters of one listener (relaxed atomics, monotonic).
#[derive(Debug, Default)]
pub struct ConnStats {
    accepted: AtomicU64,
    refused_per_client: AtomicU64,
    closed_idle: AtomicU64,
    handshakes_failed: AtomicU64,
}

/// A copy of [`ConnStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStatsSnapshot {
    /// Connections served (past the per-address cap).
    pub accepted: u64,
    /// Connections closed at once: their address had `max_per_client` open.
    pub refused_per_client: u64,
    /// Connections closed for the idle timeout.
    pub closed_idle: u64,
    /// Connections whose handshake (TLS) failed or timed out.
    pub handshakes_failed: u64,
}

impl ConnStats {
    /// The current values.
    pub fn snapshot(&self) -> ConnStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnStatsSnapshot {
            accepted: get(&self.accepted),
            refused_per_client: get(&self.refused_per_client),
            closed_idle: get(&self.closed_idle),
            handshakes_failed: get(&self.handshakes_failed),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Turns an accepted TCP stream into the stream HTTP is spoken on (TLS for management), or
/// `None` when the handshake failed (the step logs why, at debug).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream HTTP runs over.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Performs the handshake with `peer`.
    fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, stream: TcpStream, _peer: SocketAddr) -> Option<TcpStream> {
        Some(stream)
    }
}

/// Serves `router` on `listener` until `shutdown`, within `limits`; returns when every
/// connection has finished or the drain time is over. Each connection runs hyper (HTTP/1.1
/// and HTTP/2) over what `handshake` makes of it.
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    handshake: H,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    let serve_one = move |stream, peer, stats: Arc<ConnStats>| {
        let (router, handshake, shutdown) = (router.clone(), handshake.clone(), shutdown.clone());
        async move {
            let Some(io) = handshake.handshake(stream, peer).await else {
                ConnStats::count(&stats.handshakes_failed);
                return;
            };
            connection(io, peer, router, limits, &stats, shutdown).await;
        }
    };
    let run = |job: Job| drop(tokio::spawn(job));
    accept_loop(listener, limits, stats, stop, serve_one, run).await;
}

/// [`serve`] for the plain-HTTP boot port: each connection is the boot port's own HTTP/1.1
/// loop ([`flakeboot_httpboot::h1`]), which writes boot files' bodies with `sendfile(2)`, on
/// one of the boot port's [`EventLoops`]. Same limits, same counters. A connection still
/// sending a file when the drain time is over is dropped (its boot event says the body was cut
/// off).
pub async fn serve_boot(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    let loops = EventLoops::per_core("http-boot");
    let serve_one = move |stream: TcpStream, peer, stats: Arc<ConnStats>| {
        let (router, shutdown) = (router.clone(), shutdown.clone());
        // Off this runtime's reactor; the loop that runs it registers it with its own.
        let stream = stream.into_std();
        async move {
            let stream = match stream.and_then(TcpStream::from_std) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, "cannot hand the connection to an event loop: {e}");
                    return;
                }
            };
            let drained = async {
                shutdown.cancelled().await;
                tokio::time::sleep(limits.drain_timeout).await;
            };
            let timeouts = h1::Timeouts {
                header_read: limits.header_read_timeout,
                idle: limits.idle_timeout,
            };
            tokio::select! {
                ended = h1::serve_connection(stream, peer, router, timeouts, shutdown.clone()) => {
                    if ended == h1::Ended::TimedOut {
                        ConnStats::count(&stats.closed_idle);
                    }
                }
                () = drained => {}
            }
        }
    };
    let run = |job: Job| loops.spawn(job);
    accept_loop(listener, limits, stats, stop, serve_one, run).await;
}

/// Accepts connections until `shutdown`, refuses those beyond the per-address cap, and has
/// `run` run `serve_one` for each other one while it holds its address's slot; returns when
/// every connection has finished or the drain time is over.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    shutdown: CancellationToken,
    serve_one: F,
    run: impl Fn(Job),
) where
    F: Fn(TcpStream, SocketAddr, Arc<ConnStats>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let clients = ClientSlots::new(limits.max_per_client);
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: the next accept may work.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = clients.take(peer.ip()) else {
            ConnStats::count(&stats.refused_per_client);
            tracing::debug!(%peer, max = limits.max_per_client, "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        ConnStats::count(&stats.accepted);
        // Small responses (and TLS records) must not wait for the peer's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let served = serve_one(stream, peer, Arc::clone(&stats));
        run(Box::pin(conns.track_future(async move {
            let _slot = slot;
            served.await;
        })));
    }
    drop(listener);
    conns.close();
    let _ = tokio::time::timeout(limits.drain_timeout, conns.wait()).await;
}

/// Serves one connection until it ends, idles out or the server shuts down.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    stats: &ConnStats,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let busy = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        let handling = busy.handling();
        async move {
            let response = router.call(req).await;
            drop(handling);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let io = Tracked {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    loop {
        // Before its first byte a connection gets the header-read timeout: hyper's timer only
        // starts once the protocol is known, which takes a byte.
        let quiet_limit = match activity.has_read() {
            true => limits.idle_timeout,
            false => limits.header_read_timeout,
        };
        let idle_at = activity.last() + quiet_limit;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.drain_timeout, conn).await;
                return;
            }
            () = tokio::time::sleep_until(idle_at) => {
                if activity.is_idle(quiet_limit) {
                    ConnStats::count(&stats.closed_idle);
                    tracing::debug!(%peer, "connection closed: quiet for {} ms", quiet_limit.as_millis());
                    return;
                }
            }
        }
    }
}

/// When a byte last moved on a connection, and how many requests it is handling.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` of the last byte read or written.
    last_ms: AtomicU64,
    handling: AtomicUsize,
    read_any: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
            read_any: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn has_read(&self) -> bool {
        self.read_any.load(Ordering::Relaxed)
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        self.handling.load(Ordering::Relaxed) == 0 && self.last() + timeout <= Instant::now()
    }

    /// Marks a request as being handled until the guard drops (a slow handler is not idle).
    fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        Handling(Arc::clone(self))
    }
}

struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes each read or write that moved bytes.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_any.store(true, Ordering::Relaxed);
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections per client address.
#[derive(Debug, Clone)]
struct ClientSlots {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of an address; dropping it frees the slot.
#[derive(Debug)]
struct ClientSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ClientSlots {
    fn new(max: usize) -> Self {
        ClientSlots {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for `ip`, or `None` when it has `max` connections open.
    fn take(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = lock(&self.open);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The map stays consistent whatever panicked while holding it (only counters change).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_address_and_freed_on_drop() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some(), "another address is not affected");
        drop(first);
        assert!(slots.take(a).is_some());
        assert!(lock(&slots.open).get(&b).is_none(), "empty entries go");
    }
}
