//! `GET /api/v1/firmware`, `POST /api/v1/firmware` (a signed update bundle as the request
//! body, streamed) and `POST /api/v1/firmware/reboot`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use flakeboot_appliance::firmware::{FirmwareInstalled, FirmwareStatus};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tokio_util::io::StreamReader;

use super::ApiResult;
use crate::state::WebState;

/// GET /api/v1/firmware: both slots (their versions and boot entries' states), the running
/// slot, the image's version and board, the development-build notice and the last upload's
/// outcome.
pub async fn status(State(state): State<WebState>) -> ApiResult<Json<FirmwareStatus>> {
    let firmware = state.firmware()?.clone();
    let status = tokio::task::spawn_blocking(move || firmware.status())
        .await
        .map_err(|e| crate::error::WebError::Task(e.to_string()))?;
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

/// POST /api/v1/firmware/reboot: reboot the appliance now (into a newly installed slot) →
/// 202.
pub async fn reboot(State(state): State<WebState>) -> ApiResult<(StatusCode, Json<Value>)> {
    state.firmware()?.reboot()?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "rebooting": true }))))
}
