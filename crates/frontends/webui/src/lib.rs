//! flakeboot's web UI and JSON API, served over TLS on the management addresses.
//!
//! - [`app`] is the whole UI and API as an axum router (tested with `oneshot`); [`routes()`] is its
//!   route table.
//! - [`serve_tls`] serves it with rustls (ring) on given addresses, never all interfaces;
//!   [`serve_tls_on`] (or [`bind_tls_on`] then [`TlsServer::run`]) on a set of [`ListenAddr`]s
//!   that changes while serving (LAN plus VPN tunnels), each bound to its interface;
//!   [`redirect_router`] sends plain-HTTP visitors of the boot port to HTTPS.
//! - [`WebState`] holds the store, the [`FlakeService`] (the seam to `flakeboot-nix`), sessions
//!   and the one-time [`SetupCode`]; it announces settings and machine changes on tokio watch
//!   channels the daemon subscribes to.
//!
//! Pages are server-rendered (maud) and work without JavaScript; every asset is embedded.

pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod error;
pub mod from_config;
mod housekeeping;
pub mod pages;
pub mod routes;
pub mod serve;
pub mod state;
pub mod tls;

pub use api::backup::PASSPHRASE_HEADER as BACKUP_PASSPHRASE_HEADER;
pub use auth::sessions::SessionLimits;
pub use auth::setup_code::SetupCode;
pub use error::{ApiError, WebError};
pub use routes::{Access, RouteInfo, app, routes};
pub use serve::{
    API_SOCKET, ServeError, TlsServer, bind_api_socket, bind_tls_on, expire_sessions_every,
    redirect_router, serve_api_socket, serve_tls, serve_tls_on,
};
pub use state::{ConfigFlake, WebConfig, WebState};
pub use tls::{CertInfo, CertStore, TlsError, TlsSetup};
