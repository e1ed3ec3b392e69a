//! One error type for the handlers. Users see a plain message; the cause goes to the log.
//! Pages render [`WebError`] as an HTML page; the API wraps it in [`ApiError`] (JSON).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flakeboot_store::StoreError;

use crate::auth::hash_gate::HashGateError;
use crate::auth::secret::RandomError;
use crate::pages::layout;
use crate::tls::TlsError;
use flakeboot_appliance::LanActionError;
use flakeboot_appliance::access_tokens::AccessTokenError;
use flakeboot_appliance::firmware::FirmwareError;
use flakeboot_appliance::firmware::boot_loader::BootLoaderError;
use flakeboot_appliance::flakes::FlakeServiceError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A flake operation failed.
    #[error("flakes: {0}")]
    Flake(#[from] FlakeServiceError),
    /// No random bytes.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A certificate problem.
    #[error("certificate: {0}")]
    Tls(#[from] TlsError),
    /// Releasing a lease or waking a machine failed.
    #[error("LAN action: {0}")]
    Lan(#[from] LanActionError),
    /// An access token could not be listed, saved or removed.
    #[error("access tokens: {0}")]
    AccessTokens(#[from] AccessTokenError),
    /// A backup could not be made.
    #[error("backup: {0}")]
    Backup(#[from] flakeboot_appliance::backup::BackupError),
    /// A firmware upload was refused or failed, or the reboot failed.
    #[error("firmware: {0}")]
    Firmware(#[from] FirmwareError),
    /// A blocking task died.
    #[error("background task failed: {0}")]
    Task(String),
    /// The request conflicts with the config file (a pinned machine).
    #[error("{message}")]
    Conflict {
        /// Why, for the user.
        message: String,
    },
    /// This appliance cannot do it now (no LAN port yet, a feature not wired).
    #[error("{message}")]
    Unavailable {
        /// Why, for the user.
        message: String,
    },
    /// Nothing here.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for the user.
        message: String,
    },
    /// The form's CSRF token is missing or wrong.
    #[error("the form has expired or did not come from this appliance")]
    BadCsrf,
    /// No session and no token.
    #[error("sign in first")]
    Unauthorized,
    /// Not allowed for this credential (a read-only API token asking to change something).
    #[error("{message}")]
    Forbidden {
        /// Why, for the user.
        message: String,
    },
    /// Too many password checks running or waiting: try again in a moment.
    #[error("too many sign-in attempts at once: try again in a moment")]
    Busy,
    /// Too many failed attempts from this address.
    #[error("too many failed attempts: try again in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
}

impl From<crate::auth::sessions::SessionError> for WebError {
    fn from(e: crate::auth::sessions::SessionError) -> Self {
        match e {
            crate::auth::sessions::SessionError::Random(e) => WebError::Random(e),
            crate::auth::sessions::SessionError::Store(e) => WebError::Store(e),
        }
    }
}

impl WebError {
    /// The status code and the message a user may see (never an internal cause).
    fn public(&self) -> (StatusCode, String) {
        match self {
            WebError::NotFound { .. } => (StatusCode::NOT_FOUND, self.to_string()),
            WebError::BadRequest { .. } => (StatusCode::BAD_REQUEST, self.to_string()),
            WebError::BadCsrf => (StatusCode::FORBIDDEN, self.to_string()),
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()),
            WebError::RateLimited { .. } | WebError::Busy => {
                (StatusCode::TOO_MANY_REQUESTS, self.to_string())
            }
            WebError::Forbidden { .. } => (StatusCode::FORBIDDEN, self.to_string()),
            WebError::Conflict { .. } => (StatusCode::CONFLICT, self.to_string()),
            WebError::Unavailable { .. } | WebError::Lan(LanActionError::NoLan) => {
                (StatusCode::SERVICE_UNAVAILABLE, self.to_string())
            }
            WebError::Flake(FlakeServiceError::Invalid { message, .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, message.clone())
            }
            WebError::Flake(e @ FlakeServiceError::NotFound { .. }) => {
                (StatusCode::NOT_FOUND, e.to_string())
            }
            WebError::AccessTokens(
                e @ (AccessTokenError::Invalid(_) | AccessTokenError::InConfigFile { .. }),
            ) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            WebError::AccessTokens(e @ AccessTokenError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, e.to_string())
            }
            WebError::Firmware(e) => match e {
                FirmwareError::NotAnImage(_) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                FirmwareError::Busy => (StatusCode::CONFLICT, e.to_string()),
                FirmwareError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
                FirmwareError::Upload { .. } => (StatusCode::BAD_REQUEST, e.to_string()),
                FirmwareError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                FirmwareError::Development(
                    BootLoaderError::NoSelected(_) | BootLoaderError::NoDevelopmentEntry { .. },
                ) => (StatusCode::CONFLICT, e.to_string()),
                FirmwareError::Development(BootLoaderError::Write { .. }) => {
                    tracing::error!("firmware: {e}");
                    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                }
                // The admin needs to know what went wrong with the bundle or the reboot.
                FirmwareError::Failed(_) | FirmwareError::Reboot(_) | FirmwareError::Io { .. } => {
                    tracing::error!("firmware: {e}");
                    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                }
            },
            WebError::Backup(flakeboot_appliance::backup::BackupError::WeakPassphrase) => {
                (StatusCode::UNPROCESSABLE_ENTITY, self.to_string())
            }
            WebError::Flake(FlakeServiceError::Internal { .. })
            | WebError::Backup(_)
            | WebError::AccessTokens(AccessTokenError::File(_))
            | WebError::Store(_)
            | WebError::Lan(_)
            | WebError::Random(_)
            | WebError::Tls(_)
            | WebError::Task(_) => {
                tracing::error!("request failed: {self}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the appliance. The details are in its log.".into(),
                )
            }
        }
    }

    /// The `Retry-After` of a refusal that passes with time.
    pub(crate) fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            WebError::RateLimited { retry_after } => {
                HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()).ok()
            }
            WebError::Busy => Some(HeaderValue::from_static("1")),
            _ => None,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = self.public();
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response = (status, layout::message_page(title, &message)).into_response();
        if let Some(v) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<HashGateError> for WebError {
    fn from(e: HashGateError) -> Self {
        match e {
            HashGateError::Busy => WebError::Busy,
            HashGateError::Task(cause) => WebError::Task(cause),
        }
    }
}

/// A [`WebError`] rendered as `{"error": "..."}` for the JSON API.
#[derive(Debug)]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.0.public();
        let body = match &self.0 {
            WebError::Flake(FlakeServiceError::Invalid { field, .. }) => {
                serde_json::json!({ "error": message, "field": field })
            }
            WebError::Firmware(FirmwareError::Refused(_)) => {
                serde_json::json!({ "error": message, "field": "bundle" })
            }
            _ => serde_json::json!({ "error": message }),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(v) = self.0.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"flakeboot\""),
            );
        }
        response
    }
}
