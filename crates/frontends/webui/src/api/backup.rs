//! `GET /api/v1/backup`: the appliance's config and state as one passphrase-encrypted archive
//! (`flakeboot_appliance::backup`). The passphrase comes in the `X-Flakeboot-Passphrase`
//! header, never in the URL (URLs end up in logs). An admin's credential only: a read-only
//! token is refused, since the archive holds every key of the appliance.

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::FieldError;
use flakeboot_appliance::backup::{self, BackupError};
use flakeboot_store::TokenScope;
use tokio_util::io::ReaderStream;

use super::{ApiResult, unprocessable};
use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::state::WebState;

/// The header that carries the passphrase.
pub const PASSPHRASE_HEADER: &str = "x-flakeboot-passphrase";

/// GET /api/v1/backup → the encrypted archive (`application/octet-stream`, a file name to save
/// it under). No passphrase, or a short one: `422` on `passphrase`.
pub async fn download(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if matches!(
        principal,
        Principal::Token {
            scope: TokenScope::ReadOnly,
            ..
        }
    ) {
        return Err(WebError::Forbidden {
            message: "a backup holds the appliance's keys: a read-only token cannot make one"
                .into(),
        }
        .into());
    }
    let passphrase = headers
        .get(PASSPHRASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if backup::check_passphrase(&passphrase).is_err() {
        return Ok(unprocessable(&[FieldError {
            field: "passphrase",
            message: format!(
                "send a passphrase of at least {} characters in the {PASSPHRASE_HEADER} header",
                backup::MIN_PASSPHRASE
            ),
        }]));
    }
    let store = state.store().clone();
    let config_file = state.config().config_file.clone();
    // Written to an owner-only scratch file (unlinked as soon as it is open again), then
    // streamed: the archive's length is known and a slow client holds no store lock.
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, BackupError> {
        let path = backup::scratch_file(store.dir());
        let io = |source| BackupError::Io {
            what: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let _ = std::fs::remove_file(&path);
        backup::write_backup(&store, config_file.as_deref(), &passphrase, &mut file)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok(file)
    })
    .await
    .map_err(|e| WebError::Task(e.to_string()))??;
    let len = file.metadata().map(|m| m.len()).unwrap_or_default();
    let name = format!(
        "attachment; filename=\"flakeboot-backup-{}.age\"",
        crate::pages::layout::timestamp(std::time::SystemTime::now())
            .chars()
            .filter(|c| c.is_ascii_digit())
            .take(8)
            .collect::<String>()
    );
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
