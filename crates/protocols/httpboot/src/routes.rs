//! The HTTP handlers: map a request to a catalogue question, answer, record one boot event.
//!
//! Nothing from a URL is ever joined to a filesystem path: a request is mapped to a
//! [`BootFile`] (or refused), and only the path the catalogue returns for it is opened.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flakeboot_catalogue::{BootEvent, BootFile, BootStage, FileKind, IpxeBinary, MacAddr, Outcome};

use crate::HttpBootState;
use crate::conditional::Conditions;
use crate::delivery::{Pending, tracked};
use crate::file_body::{FileBodySlot, WritesFileBodies};
use crate::file_response::{FileRequest, serve_file};
use crate::ipxe_text::{check_host_name, check_version};
use crate::open_files::OpenFiles;
use crate::query::{MacParam, mac_param};
use crate::script::{ScriptContext, render};
use crate::stats::HttpBootStats;

/// The router's state: the daemon's [`HttpBootState`] and the counters.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub boot: HttpBootState,
    pub stats: Arc<HttpBootStats>,
    /// Boot files kept open between requests.
    pub files: Arc<OpenFiles>,
}

/// The peer's IP address, when the daemon serves with `into_make_service_with_connect_info`
/// (or a test adds `MockConnectInfo`); `None` otherwise, never a rejection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let info = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await;
        Ok(Peer(info.ok().map(|ConnectInfo(addr)| addr.ip())))
    }
}

/// What shapes a file response besides the file: the request's headers (range, conditions),
/// and whether the connection writes file bodies itself ([`WritesFileBodies`]).
#[derive(Debug, Clone)]
pub(crate) struct FileAsk {
    headers: HeaderMap,
    by_connection: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for FileAsk {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(FileAsk {
            headers: parts.headers.clone(),
            by_connection: parts.extensions.get::<WritesFileBodies>().is_some(),
        })
    }
}

/// Who asked for what: everything a boot event needs besides the outcome.
struct Fetch<'a> {
    app: &'a App,
    peer: Option<IpAddr>,
    mac: Option<MacAddr>,
    /// `GET /boot/demo/static/initrd` (the path without the query).
    what: String,
    /// For a `GET` of a host's file: the host (the event's `host`).
    host: Option<String>,
}

impl<'a> Fetch<'a> {
    /// Read the `?mac=` parameter; an invalid one is logged at debug and counted.
    fn new(app: &'a App, peer: Peer, method: &Method, uri: &Uri, query: Option<&str>) -> Self {
        let mac = match mac_param(query) {
            MacParam::Valid(mac) => Some(mac),
            MacParam::Absent => None,
            MacParam::Invalid(raw) => {
                tracing::debug!(peer = ?peer.0, %uri, mac = %raw, "ignoring an invalid ?mac=");
                HttpBootStats::bump(&app.stats.bad_requests);
                None
            }
        };
        Fetch {
            app,
            peer: peer.0,
            mac,
            what: format!("{method} {}", uri.path()),
            host: None,
        }
    }

    fn record(&self, stage: BootStage, outcome: Outcome, detail: &str) {
        let mut event = BootEvent::new(stage, outcome, format!("{} {detail}", self.what));
        event.mac = self.mac;
        event.peer = self.peer;
        event.host.clone_from(&self.host);
        self.app.boot.catalogue.record(event);
    }
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
    (status, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// `GET /`: what this port is, and nothing else.
pub(crate) async fn index() -> Response {
    plain(
        StatusCode::OK,
        "flakeboot boot server\n\nThis port serves iPXE scripts, kernels and initrds to the \
         machines that netboot from this appliance.\nThe web interface is served separately.\n",
    )
}

/// Anything not routed: 404, logged at debug, counted.
pub(crate) async fn fallback(
    State(app): State<App>,
    Peer(peer): Peer,
    method: Method,
    uri: Uri,
) -> Response {
    tracing::debug!(?peer, %method, %uri, "no such route");
    HttpBootStats::bump(&app.stats.not_found);
    not_found()
}

/// `GET /boot/local?mac=...`: the boot menu's `local` entry, fetched just before iPXE leaves
/// for the local disk. Recorded (stage `local`) so the machine's attempt ends there.
pub(crate) async fn local_disk(
    State(app): State<App>,
    peer: Peer,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let fetch = Fetch::new(&app, peer, &method, &uri, query.as_deref());
    fetch.record(
        BootStage::Local,
        Outcome::Ok,
        "200 booting from the local disk",
    );
    plain(StatusCode::OK, "flakeboot: booting from the local disk\n")
}

/// `GET /boot.ipxe?mac=...`: the host's boot script, or the menu.
pub(crate) async fn boot_script(
    State(app): State<App>,
    peer: Peer,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let fetch = Fetch::new(&app, peer, &method, &uri, query.as_deref());
    let spec = app.boot.catalogue.boot_spec(fetch.mac);
    let ctx = ScriptContext {
        base_url: &app.boot.base_url,
        mac: fetch.mac,
    };
    match render(&spec, &ctx) {
        Ok(rendered) => {
            for skipped in &rendered.skipped {
                tracing::warn!(mac = ?fetch.mac, peer = ?fetch.peer, "boot menu: {skipped}");
            }
            HttpBootStats::bump(&app.stats.scripts);
            fetch.record(
                BootStage::Script,
                Outcome::Ok,
                &format!("200 {}", rendered.summary),
            );
            let headers = [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ];
            (StatusCode::OK, headers, rendered.script).into_response()
        }
        Err(e) => {
            tracing::warn!(mac = ?fetch.mac, peer = ?fetch.peer, "cannot render a boot script: {e}");
            HttpBootStats::bump(&app.stats.errors);
            fetch.record(BootStage::Script, Outcome::Failed, &format!("500 {e}"));
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "flakeboot cannot render a boot script for this machine: see the appliance log\n",
            )
        }
    }
}

/// `GET|HEAD /boot/{host}/{version}/{kernel|initrd}`.
pub(crate) async fn host_file(
    State(app): State<App>,
    peer: Peer,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    ask: FileAsk,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Response {
    let mut fetch = Fetch::new(&app, peer, &method, &uri, query.as_deref());
    let Ok(Path((host, version, kind))) = path else {
        return bad_path(&fetch, BootStage::Kernel);
    };
    let (kind, stage) = match kind.as_str() {
        "kernel" => (FileKind::Kernel, BootStage::Kernel),
        "initrd" => (FileKind::Initrd, BootStage::Initrd),
        _ => return refused(&fetch, BootStage::Kernel),
    };
    if check_host_name(&host).is_err() || check_version(&version).is_err() {
        return refused(&fetch, stage);
    }
    if method == Method::GET {
        fetch.host = Some(host.clone());
    }
    let file = BootFile::Host {
        host,
        version,
        kind,
    };
    serve_boot_file(&fetch, stage, &file, &method, &ask).await
}

/// `GET|HEAD /ipxe/{name}`: an iPXE binary, for UEFI HTTP boot.
pub(crate) async fn ipxe_binary(
    State(app): State<App>,
    peer: Peer,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    ask: FileAsk,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let fetch = Fetch::new(&app, peer, &method, &uri, query.as_deref());
    let Ok(Path(name)) = path else {
        return bad_path(&fetch, BootStage::HttpIpxe);
    };
    match IpxeBinary::from_file_name(&name) {
        Some(binary) => {
            let file = BootFile::Ipxe(binary);
            serve_boot_file(&fetch, BootStage::HttpIpxe, &file, &method, &ask).await
        }
        None => refused(&fetch, BootStage::HttpIpxe),
    }
}

/// A path segment that does not decode (bad percent-encoding, not UTF-8): 400.
fn bad_path(fetch: &Fetch<'_>, stage: BootStage) -> Response {
    tracing::debug!(peer = ?fetch.peer, "{}: undecodable path", fetch.what);
    HttpBootStats::bump(&fetch.app.stats.bad_requests);
    fetch.record(stage, Outcome::Failed, "400 undecodable path");
    plain(StatusCode::BAD_REQUEST, "bad request\n")
}

/// A name that maps to no boot file: 404, without asking the catalogue.
fn refused(fetch: &Fetch<'_>, stage: BootStage) -> Response {
    tracing::debug!(peer = ?fetch.peer, "{}: names no boot file", fetch.what);
    HttpBootStats::bump(&fetch.app.stats.not_found);
    fetch.record(stage, Outcome::Failed, "404 not a boot file");
    not_found()
}

async fn serve_boot_file(
    fetch: &Fetch<'_>,
    stage: BootStage,
    file: &BootFile,
    method: &Method,
    ask: &FileAsk,
) -> Response {
    let stats = &fetch.app.stats;
    let Some(path) = fetch.app.boot.catalogue.boot_file(file) else {
        tracing::debug!(peer = ?fetch.peer, mac = ?fetch.mac, "{}: no host or kept generation has it", fetch.what);
        HttpBootStats::bump(&stats.not_found);
        fetch.record(stage, Outcome::Failed, "404: no host or kept generation has this file (removed, or its generation no longer kept)");
        return not_found();
    };
    let h = |name| ask.headers.get(name).map(HeaderValue::as_bytes);
    let req = FileRequest {
        head: method == Method::HEAD,
        range: h(header::RANGE),
        conditions: Conditions {
            if_none_match: h(header::IF_NONE_MATCH),
            if_modified_since: h(header::IF_MODIFIED_SINCE),
            if_range: h(header::IF_RANGE),
        },
    };
    match serve_file(&fetch.app.files, &path, &req, ask.by_connection).await {
        Ok(mut served) => {
            tracing::debug!(peer = ?fetch.peer, mac = ?fetch.mac, "{} {}", fetch.what, served.detail);
            HttpBootStats::bump(&stats.files);
            let ok = served.status.is_success() || served.status == StatusCode::NOT_MODIFIED;
            let expected = served
                .response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            if !ok || *method == Method::HEAD || expected == 0 {
                let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
                fetch.record(stage, outcome, &served.detail);
                return served.response;
            }
            // A body to send: the event says whether all of it went (recorded when it ends).
            let pending = Pending {
                catalogue: fetch.app.boot.catalogue.clone(),
                stage,
                mac: fetch.mac,
                peer: fetch.peer,
                detail: format!("{} {}", fetch.what, served.detail),
                expected,
                started: std::time::SystemTime::now(),
                host: fetch.host.clone(),
            };
            if let Some(mut file_body) = served.file_body.take() {
                file_body.record_with(pending);
                let mut response = served.response;
                response
                    .extensions_mut()
                    .insert(FileBodySlot::new(file_body));
                return response;
            }
            let (parts, body) = served.response.into_parts();
            Response::from_parts(parts, tracked(body, pending))
        }
        Err(e) => {
            let status = e.status();
            tracing::warn!(peer = ?fetch.peer, mac = ?fetch.mac, "{}: {e}", fetch.what);
            fetch.record(stage, Outcome::Failed, &format!("{} {e}", status.as_u16()));
            if status == StatusCode::NOT_FOUND {
                HttpBootStats::bump(&stats.not_found);
                not_found()
            } else {
                HttpBootStats::bump(&stats.errors);
                plain(
                    status,
                    "the boot file cannot be read: see the appliance log\n",
                )
            }
        }
    }
}
