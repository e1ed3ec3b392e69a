//! A generation's pre-flight console log: `GET /api/v1/generations/preflight-log?host=&number=`
//! (signed in or a token, like a build's log).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::flakes::FlakeServiceError;
use serde::Deserialize;

use super::ApiResult;
use crate::state::WebState;

/// `?host=flake%23host&number=N`.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// A qualified host (`flake#host`) or a short name one flake defines.
    pub host: String,
    /// The generation.
    pub number: u32,
}

/// The most of a log this route sends (the runner bounds the file already).
const MAX_LOG: u64 = 4 << 20;

/// GET /api/v1/generations/preflight-log?host=&number=: the VM's serial console, as text.
pub async fn log(State(state): State<WebState>, Query(q): Query<LogQuery>) -> ApiResult<Response> {
    let text = state
        .flake(move |f| {
            let not_found = || FlakeServiceError::NotFound {
                what: format!("the pre-flight log of {} generation {}", q.host, q.number),
            };
            let generation = f
                .generations(&q.host)?
                .into_iter()
                .find(|g| g.number == q.number)
                .ok_or_else(not_found)?;
            let path = generation.preflight.log.ok_or_else(not_found)?;
            read_bounded(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => not_found(),
                _ => FlakeServiceError::Internal {
                    message: format!("cannot read {}: {e}", path.display()),
                },
            })
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The last [`MAX_LOG`] bytes of a file, as text (invalid UTF-8 replaced).
fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_LOG {
        file.seek(SeekFrom::Start(len - MAX_LOG))?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOG).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
