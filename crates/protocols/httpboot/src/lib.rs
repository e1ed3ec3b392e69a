//! HTTP boot: iPXE scripts and menus, kernels and initrds, and iPXE EFI binaries for UEFI HTTP
//! boot, all answered from a [`Catalogue`].
//!
//! Routes of [`router`]:
//! - `GET /boot.ipxe?mac=52:54:00:12:34:56`: the machine's host script, or the menu of all hosts.
//! - `GET|HEAD /boot/{host}/{version}/{kernel|initrd}`: a host's files.
//! - `GET|HEAD /ipxe/{name}`: an iPXE binary (`ipxe.efi`, `snponly.efi`, ...).
//! - `POST /boot/report`: a booted system reports `mac=<MAC>&stage=up` (or `stage=failed&
//!   detail=<text>`); 204, or 403 from an address that MAC neither holds nor last booted from
//!   ([`Catalogue::accept_report`]), 400 for a malformed body, 413 over 4 KiB.
//! - `GET /`: a line saying what this port is.
//!
//! Files are served with `Content-Length`, `Accept-Ranges`, single byte ranges (206/416),
//! `ETag`/`Last-Modified` and conditional requests (304), from descriptors kept open per file:
//! streamed in positioned reads through hyper, or, when the server marks a request with
//! [`WritesFileBodies`], handed to the connection as a [`FileBody`] to `sendfile(2)`. Every script and
//! file request, and every accepted report, records one
//! [`BootEvent`](flakeboot_catalogue::BootEvent).
//!
//! The pure parts (script rendering, range and conditional logic) live in their own modules; the
//! handlers in `routes` only map, call and record.

mod conditional;
mod delivery;
mod file_body;
mod file_response;
pub mod h1;
mod ipxe_text;
mod open_files;
mod query;
mod range;
mod report;
mod routes;
pub mod script;
mod stats;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use flakeboot_catalogue::Catalogue;

pub use conditional::{Conditions, Precondition, Validators};
pub use file_body::{FileBody, FileBodySlot, WritesFileBodies};
pub use file_response::FileError;
pub use ipxe_text::TextError;
pub use range::RangeDecision;
pub use report::{
    MAX_BODY as MAX_REPORT_BODY, MAX_DETAIL as MAX_REPORT_DETAIL, Report, ReportError,
    SystemStatus, parse_report,
};
pub use stats::{HttpBootCounts, HttpBootStats};

/// What the HTTP boot routes need: the catalogue, and the URL machines reach this server at.
#[derive(Clone)]
pub struct HttpBootState {
    /// Answers what a machine boots and where boot files live; receives boot events.
    pub catalogue: Arc<dyn Catalogue>,
    /// The base of every URL put into a script, no trailing slash: `http://10.77.0.1` or
    /// `http://10.77.0.1:8080`.
    pub base_url: String,
}

impl fmt::Debug for HttpBootState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBootState")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The HTTP boot service. Serve it with
/// `axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())`
/// so boot events carry the peer address (without it they carry none).
pub fn router(state: HttpBootState) -> Router {
    router_with_stats(state, Arc::new(HttpBootStats::default()))
}

/// [`router`], counting requests into `stats`.
pub fn router_with_stats(state: HttpBootState, stats: Arc<HttpBootStats>) -> Router {
    boot_router(state, stats).route("/", get(routes::index))
}

/// Only the boot paths (scripts, host files, iPXE binaries, system reports) and the 404 fallback, without the
/// `GET /` index page: for a daemon that merges its own `/` (the redirect to the HTTPS web UI).
pub fn boot_router(state: HttpBootState, stats: Arc<HttpBootStats>) -> Router {
    Router::new()
        .route("/boot.ipxe", get(routes::boot_script))
        .route("/boot/report", post(report::report))
        .route(script::LOCAL_PATH, get(routes::local_disk))
        .route("/boot/{host}/{version}/{kind}", get(routes::host_file))
        .route("/ipxe/{name}", get(routes::ipxe_binary))
        .fallback(routes::fallback)
        .with_state(routes::App {
            boot: state,
            stats,
            files: Arc::default(),
        })
}
