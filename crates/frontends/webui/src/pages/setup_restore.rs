//! `POST /setup/restore`: a fresh appliance takes a backup instead of being set up. The
//! archive is the request body (the setup page's script sends it with a progress bar); the
//! setup code, the backup's passphrase and the page's form token come in headers, and the
//! code is checked (and counted, as setup counts it) before a byte of the body is read. On
//! success the daemon starts again on the restored state ([`SetupRestore`]); the answer says
//! so in JSON.
//!
//! [`SetupRestore`]: flakeboot_appliance::setup_restore::SetupRestore

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::backup::{self, BackupError};
use flakeboot_appliance::setup_restore::SetupRestoreError;
use flakeboot_appliance::setup_restore::{MAX_ARCHIVE, SetupRestore};
use flakeboot_appliance::upload::ReceiveError;
use flakeboot_store::AuditRecord;
use futures_util::TryStreamExt;
use serde_json::json;
use tokio_util::io::StreamReader;

use crate::api::backup::PASSPHRASE_HEADER;
use crate::auth::guard::drain;
use crate::pages::{Peer, check_form_token};
use crate::state::WebState;

/// The setup code (as on the console).
pub const CODE_HEADER: &str = "x-flakeboot-setup-code";
/// The setup page's form token (its cookie's twin).
pub const FORM_HEADER: &str = "x-flakeboot-form";

fn answer(status: StatusCode, field: Option<&str>, message: &str) -> Response {
    let body = match field {
        Some(field) => json!({ "error": message, "field": field }),
        None => json!({ "error": message }),
    };
    (status, Json(body)).into_response()
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// POST /setup/restore → 200 `{"restored": VERSION, "created_at": SECS, "restarting": true}`;
/// 409 once setup is done, 403 without the form token, 422 with `field` (`code`,
/// `passphrase`, `file`), 429 after too many wrong codes, 503 when this daemon cannot restore.
pub async fn submit(
    State(state): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let restore = match admitted(&state, peer, &headers).await {
        Ok(restore) => restore,
        // Read (and dropped) first: a client still sending its body when the answer comes
        // sees a reset stream instead of it (curl, HTTP/2). Bounded as a restore is.
        Err(refusal) => return drained(body, refusal).await,
    };
    let passphrase = header_text(&headers, PASSPHRASE_HEADER);
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let audit = AuditRecord {
        at: state.clock().wall(),
        actor: None,
        action: "setup.restore".into(),
        target: String::new(),
        client: peer,
        status: StatusCode::OK.as_u16(),
    };
    match restore
        .restore(StreamReader::new(stream), passphrase, audit)
        .await
    {
        Ok(done) => {
            // No second restore or setup before the daemon starts again on the backup.
            state.finish_setup();
            tracing::info!(
                ?peer,
                version = %done.manifest.version,
                entries = done.entries,
                "a backup was restored from the setup page: starting again on it"
            );
            (
                StatusCode::OK,
                Json(json!({
                    "restored": done.manifest.version,
                    "created_at": done.manifest.created_at,
                    "restarting": true,
                })),
            )
                .into_response()
        }
        Err(e) => refused(&e),
    }
}

/// How long a refused archive is read before the answer goes out (a 2 GiB archive takes a few
/// minutes on a slow LAN or VPN).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// `refusal`, once the request's body is read to its end or past [`MAX_ARCHIVE`] (or for
/// [`DRAIN_TIME`]).
async fn drained(body: Body, refusal: Response) -> Response {
    drain(body, MAX_ARCHIVE, DRAIN_TIME).await;
    refusal
}

/// The restore, when this request may make one: setup not done, the daemon can restore, the
/// form token and the setup code right (the code counted as setup counts it). Else the answer.
async fn admitted(
    state: &WebState,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> Result<SetupRestore, Response> {
    if state.setup_done() {
        return Err(answer(
            StatusCode::CONFLICT,
            None,
            "setup is done: restore a backup with `flakeboot restore` while the daemon is stopped",
        ));
    }
    let Some(restore) = state.setup_restore().cloned() else {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "this daemon cannot restore a backup from the setup page: use `flakeboot restore`",
        ));
    };
    if let Err(e) = check_form_token(headers, &header_text(headers, FORM_HEADER)) {
        return Err(answer(StatusCode::FORBIDDEN, None, &e.to_string()));
    }
    // Counted before the code is checked, as setup counts it.
    let attempt = match state.reserve_attempt(peer, None) {
        Ok(attempt) => attempt,
        Err(refused) => {
            let mut response = answer(
                StatusCode::TOO_MANY_REQUESTS,
                Some("code"),
                &refused.to_string(),
            );
            if let Some(wait) = refused.retry_after() {
                response.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            return Err(response);
        }
    };
    let code = header_text(headers, CODE_HEADER);
    if !state.setup_code().is_some_and(|c| c.matches(&code)) {
        tracing::info!(?peer, "restore attempt with a wrong setup code");
        state
            .audit(AuditRecord {
                at: state.clock().wall(),
                actor: None,
                action: "setup.failed".into(),
                target: "restore".into(),
                client: peer,
                status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            })
            .await;
        return Err(answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("code"),
            "That is not the setup code shown on the console.",
        ));
    }
    state.attempt_succeeded(attempt);
    if let Err(e) = backup::check_passphrase(&header_text(headers, PASSPHRASE_HEADER)) {
        return Err(refused(&SetupRestoreError::Backup(e)));
    }
    Ok(restore)
}

fn refused(e: &SetupRestoreError) -> Response {
    let message = e.to_string();
    match e {
        SetupRestoreError::Backup(BackupError::WeakPassphrase | BackupError::Decrypt(_)) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("passphrase"),
            &message,
        ),
        SetupRestoreError::Backup(BackupError::NotABackup(_) | BackupError::NewerFormat(_)) => {
            answer(StatusCode::UNPROCESSABLE_ENTITY, Some("file"), &message)
        }
        SetupRestoreError::Receive(ReceiveError::TooLarge { .. }) => {
            answer(StatusCode::PAYLOAD_TOO_LARGE, Some("file"), &message)
        }
        SetupRestoreError::Receive(ReceiveError::Upload { .. }) => {
            answer(StatusCode::BAD_REQUEST, Some("file"), &message)
        }
        SetupRestoreError::Busy => answer(StatusCode::CONFLICT, None, &message),
        SetupRestoreError::Backup(_)
        | SetupRestoreError::Receive(ReceiveError::Io { .. })
        | SetupRestoreError::Io { .. } => {
            tracing::error!(error = %message, "restoring a backup from the setup page failed");
            answer(StatusCode::INTERNAL_SERVER_ERROR, None, &message)
        }
    }
}
