//! `GET /api/v1/firmware`, `POST /api/v1/firmware` (a signed update bundle as the request
//! body, streamed) and `POST /api/v1/firmware/reboot`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::firmware::{FirmwareInstalled, FirmwareStatus};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::StreamReader;

use super::ApiResult;
use crate::audit::noted;
use crate::error::WebError;
use crate::state::WebState;

/// GET /api/v1/firmware: both slots (their versions and boot entries' states), the running
/// slot, the image's version and board, the development-build notice and the last upload's
/// outcome.
pub async fn status(State(state): State<WebState>) -> ApiResult<Json<FirmwareStatus>> {
    let firmware = state.firmware()?.clone();
    let status = tokio::task::spawn_blocking(move || firmware.status())
        .await
        .map_err(|e| WebError::Task(e.to_string()))?;
    Ok(Json(status))
}

/// POST /api/v1/firmware: the bundle is the body (any content type). Checked against the
/// image's keys and board before anything is written, then installed into the slot not
/// running → 200 with what was installed; the next reboot starts it. 422 (`field: bundle`)
/// when it is refused, 409 while another update runs, 413 above the size limit.
pub async fn upload(
    State(state): State<WebState>,
    body: Body,
) -> ApiResult<(StatusCode, Json<FirmwareInstalled>)> {
    let firmware = state.firmware()?.clone();
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let installed = firmware.upload(StreamReader::new(stream)).await?;
    Ok((StatusCode::OK, Json(installed)))
}

/// What `POST /api/v1/firmware/reboot` may ask for; no body is a plain reboot.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootRequest {
    /// The next boot (only that one) is the running slot's development mode: a writable
    /// overlay in memory over the read-only root.
    #[serde(default)]
    pub development: bool,
}

/// POST /api/v1/firmware/reboot: reboot the appliance now (into a newly installed slot), or
/// with `{"development": true}` once into the development mode → 202; 409 when the running
/// image's boot loader offers no development entry.
pub async fn reboot(State(state): State<WebState>, body: Bytes) -> ApiResult<Response> {
    let request: RebootRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RebootRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| WebError::BadRequest {
            message: format!("the body is not a reboot request ({{\"development\": true}}): {e}"),
        })?
    };
    state.firmware()?.reboot(request.development)?;
    let answer = (
        StatusCode::ACCEPTED,
        Json(json!({ "rebooting": true, "development": request.development })),
    );
    Ok(reboot_noted(answer, request.development))
}

/// A reboot's answer; the audit entry's target says when it was into the development mode.
pub(crate) fn reboot_noted(answer: impl IntoResponse, development: bool) -> Response {
    match development {
        true => noted(answer, "development mode"),
        false => answer.into_response(),
    }
}
