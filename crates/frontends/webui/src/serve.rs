//! Serving the UI: HTTPS on the management addresses only (never all interfaces), and the
//! plain-HTTP redirect the daemon merges into its boot port.
//!
//! The set of addresses may change while serving ([`serve_tls_on`]): the daemon adds a VPN
//! tunnel's address when the tunnel comes up and removes it when it goes down. Each listener is
//! bound to its interface (SO_BINDTODEVICE), so a packet for the LAN address that arrives on
//! another port (the WAN: Linux accepts it there otherwise, the weak host model) gets no answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service;

use flakeboot_appliance::http_serve::{self, ConnLimits, Handshake};
use flakeboot_appliance::listen_addrs::{ListenAddr, bind_listener};

use crate::auth::guard::LocalOwner;
use crate::routes::{app, ui_paths};
use crate::state::WebState;
use crate::tls::{CertStore, TlsError, TlsSetup};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an address that could not be bound is tried again.
const REBIND_INTERVAL: Duration = Duration::from_secs(2);

/// Why the management server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address would listen on every interface (the WAN too).
    #[error(
        "refusing to serve the management UI on {addr}: give the LAN (or VPN) address, never all interfaces"
    )]
    AllInterfaces {
        /// The address.
        addr: SocketAddr,
    },
    /// No address at all.
    #[error("no management address given")]
    NoAddress,
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate could not be made or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Binds every address (refusing `0.0.0.0` and `::`), then serves [`app`] over TLS until
/// `shutdown`. The certificate is the state's [`CertStore`] if it has one, else the one in
/// `tls.dir` (generated there on first start).
pub async fn serve_tls(
    addrs: Vec<SocketAddr>,
    state: WebState,
    tls: TlsSetup,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let addrs = addrs
        .into_iter()
        .map(|addr| ListenAddr {
            addr,
            interface: None,
        })
        .collect();
    let (_keep, rx) = watch::channel(addrs);
    serve_tls_on(rx, state, tls, shutdown).await
}

/// Like [`serve_tls`], on a set of addresses that may change while serving: every address of
/// the first set must bind (or this fails); later, new addresses are bound (retried every
/// [`REBIND_INTERVAL`] while they fail) and removed ones stop listening. When the sender is
/// dropped, the last set stays until `shutdown`.
pub async fn serve_tls_on(
    addrs: watch::Receiver<Vec<ListenAddr>>,
    state: WebState,
    tls: TlsSetup,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    bind_tls_on(addrs, state, tls, shutdown).await?.run().await
}

/// The management server with its first addresses bound and accepting: [`TlsServer::run`]
/// follows later changes of the address set until shutdown.
pub struct TlsServer {
    addrs: watch::Receiver<Vec<ListenAddr>>,
    listeners: Listeners,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field(
                "listening",
                &self.listeners.active.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The first half of [`serve_tls_on`]: checks and binds the first set of addresses (every one
/// must bind) and starts accepting on them, so the caller knows the UI answers before it says
/// it is serving.
pub async fn bind_tls_on(
    mut addrs: watch::Receiver<Vec<ListenAddr>>,
    state: WebState,
    tls: TlsSetup,
    shutdown: CancellationToken,
) -> Result<TlsServer, ServeError> {
    let first = addrs.borrow_and_update().clone();
    if first.is_empty() {
        return Err(ServeError::NoAddress);
    }
    if let Some(l) = first.iter().find(|l| l.addr.ip().is_unspecified()) {
        return Err(ServeError::AllInterfaces { addr: l.addr });
    }
    let certs = match state.certs() {
        Some(c) => c.clone(),
        None => CertStore::load_or_generate(&tls)?,
    };
    let acceptor = TlsAcceptor::from(certs.server_config()?);
    let mut bound = Vec::new();
    for l in first {
        let listener = bind_listener(&l).map_err(|source| ServeError::Bind {
            addr: l.addr,
            source,
        })?;
        bound.push((l, listener));
    }
    let mut listeners = Listeners {
        active: HashMap::new(),
        tasks: tokio::task::JoinSet::new(),
        acceptor,
        router: app(state),
        shutdown: shutdown.clone(),
    };
    for (l, listener) in bound {
        listeners.start(l, listener);
    }
    Ok(TlsServer { addrs, listeners })
}

impl TlsServer {
    /// Serves until shutdown, binding and unbinding as the address set changes.
    pub async fn run(self) -> Result<(), ServeError> {
        let TlsServer {
            mut addrs,
            mut listeners,
        } = self;
        let shutdown = listeners.shutdown.clone();
        run_listeners(&mut addrs, &mut listeners, &shutdown).await;
        while listeners.tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn run_listeners(
    addrs: &mut watch::Receiver<Vec<ListenAddr>>,
    listeners: &mut Listeners,
    shutdown: &CancellationToken,
) {
    let mut sender_gone = false;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = addrs.changed(), if !sender_gone => {
                if changed.is_err() {
                    sender_gone = true;
                    continue;
                }
            }
            _ = tokio::time::sleep(REBIND_INTERVAL), if failing => {}
            Some(_) = listeners.tasks.join_next(), if !listeners.tasks.is_empty() => continue,
        }
        let wanted = addrs.borrow_and_update().clone();
        listeners.active.retain(|l, stop| {
            let keep = wanted.contains(l);
            if !keep {
                tracing::info!(
                    addr = %l.addr, interface = l.interface.as_deref().unwrap_or("any"),
                    "web UI stopped listening"
                );
                stop.cancel();
            }
            keep
        });
        failing = false;
        for l in wanted {
            if listeners.active.contains_key(&l) {
                continue;
            }
            if l.addr.ip().is_unspecified() {
                tracing::error!("{}", ServeError::AllInterfaces { addr: l.addr });
                continue;
            }
            match bind_listener(&l) {
                Ok(listener) => listeners.start(l, listener),
                Err(source) => {
                    let addr = l.addr;
                    tracing::warn!("{}; trying again", ServeError::Bind { addr, source });
                    failing = true;
                }
            }
        }
    }
}

/// The accept loops running now, each with its own stop token.
struct Listeners {
    active: HashMap<ListenAddr, CancellationToken>,
    tasks: tokio::task::JoinSet<()>,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
}

impl Listeners {
    fn start(&mut self, l: ListenAddr, listener: TcpListener) {
        tracing::info!(
            addr = %l.addr, interface = l.interface.as_deref().unwrap_or("any"),
            "web UI listening (https)"
        );
        let stop = self.shutdown.child_token();
        self.active.insert(l, stop.clone());
        self.tasks.spawn(accept_loop(
            listener,
            self.acceptor.clone(),
            self.router.clone(),
            stop,
        ));
    }
}

/// The TLS handshake of a management connection, within [`HANDSHAKE_TIMEOUT`].
#[derive(Clone)]
struct Tls(TlsAcceptor);

impl Handshake for Tls {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    async fn handshake(&self, stream: TcpStream, peer: SocketAddr) -> Option<Self::Io> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.0.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

/// One management listener: [`http_serve::serve`] (header-read and idle timeouts, at most
/// [`ConnLimits::UNAUTHENTICATED`]`.max_per_client` connections per address) over TLS.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let limits = ConnLimits {
        drain_timeout: DRAIN_TIMEOUT,
        ..ConnLimits::UNAUTHENTICATED
    };
    http_serve::serve(
        listener,
        router,
        limits,
        Arc::default(),
        Tls(acceptor),
        shutdown,
    )
    .await;
}

/// The file name of the owner-only API socket in the state directory.
pub const API_SOCKET: &str = "api.sock";

/// Binds the owner-only API socket `path` (mode 0600; a stale socket file is replaced: the
/// store's lock proves no other daemon uses this state directory).
pub fn bind_api_socket(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Drops expired sessions every `period` until `shutdown` (they are dropped at start and at
/// each sign-in too; this keeps the store from holding the sessions of browsers that never
/// come back).
pub async fn expire_sessions_every(state: WebState, period: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match state.expire_sessions().await {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "expired sessions dropped"),
            Err(e) => tracing::warn!("cannot drop expired sessions: {e}"),
        }
    }
}

/// Serves `/api/v1` on the owner-only socket until `shutdown`: the CLI on the appliance uses
/// the same API as a laptop with `--server`, without a token (whoever can open the socket owns
/// the state directory). Requests are marked [`LocalOwner`]; every other path is 404.
pub async fn serve_api_socket(
    listener: UnixListener,
    state: WebState,
    shutdown: CancellationToken,
) {
    let router = app(state);
    let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!("API socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(LocalOwner);
                req.extensions_mut().insert(ConnectInfo(local));
                async move { router.call(req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("API socket connection ended: {e}");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
                }
            }
        });
    }
    conns.close();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conns.wait()).await;
}

/// A router for the plain-HTTP boot port: `/` and every UI page redirect (308) to the same
/// path under `https_base` (e.g. `https://10.0.0.2`). Merge it into the boot server's router;
/// it has no other routes, so boot paths stay as they are.
pub fn redirect_router(https_base: &str) -> Router {
    let base: Arc<str> = Arc::from(https_base.trim_end_matches('/'));
    let mut router = Router::new();
    for path in ui_paths() {
        if path.starts_with("/static/") {
            continue;
        }
        let base = base.clone();
        router = router.route(
            path,
            get(move |uri: Uri| async move { redirect(&base, &uri) }),
        );
    }
    router
}

fn redirect(base: &str, uri: &Uri) -> Response {
    let target = match uri.path_and_query() {
        Some(pq) => format!("{base}{pq}"),
        None => format!("{base}/"),
    };
    Redirect::permanent(&target).into_response()
}
