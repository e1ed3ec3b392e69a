//! Serving the UI: HTTPS on the management addresses only (never all interfaces), and the
//! plain-HTTP redirect the daemon merges into its boot port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::routes::{app, ui_paths};
use crate::state::WebState;
use crate::tls::{CertStore, TlsError, TlsSetup};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    if addrs.is_empty() {
        return Err(ServeError::NoAddress);
    }
    if let Some(addr) = addrs.iter().find(|a| a.ip().is_unspecified()) {
        return Err(ServeError::AllInterfaces { addr: *addr });
    }
    let certs = match state.certs() {
        Some(c) => c.clone(),
        None => CertStore::load_or_generate(&tls)?,
    };
    let acceptor = TlsAcceptor::from(certs.server_config()?);
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        tracing::info!(%addr, "web UI listening (https)");
        listeners.push(listener);
    }
    let router = app(state);
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept_loop(
            listener,
            acceptor.clone(),
            router.clone(),
            shutdown.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        conns.spawn(connection(
            stream,
            peer,
            acceptor.clone(),
            router.clone(),
            shutdown.clone(),
        ));
    }
    conns.close();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conns.wait()).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        async move { router.call(req).await }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
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
