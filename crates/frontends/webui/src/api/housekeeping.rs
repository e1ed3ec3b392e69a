//! `DELETE /api/v1/flakes/{name}`, `DELETE /api/v1/machines/{mac}`,
//! `DELETE /api/v1/leases/{mac}` and `POST /api/v1/machines/{mac}/wake`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::FieldError;
use flakeboot_appliance::flakes::FlakeRemoved;
use serde_json::json;

use super::{ApiResult, unprocessable};
use crate::housekeeping::{self, Forget};
use crate::pages::machines::parse_mac;
use crate::state::WebState;

/// DELETE /api/v1/flakes/{name}: its builds cancelled, its generations and GC roots dropped,
/// its machines back to the menu → what was removed. A flake of the config file: 422 on
/// `name`, naming the file and line.
pub async fn remove_flake(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> ApiResult<Json<FlakeRemoved>> {
    Ok(Json(housekeeping::remove_flake(&state, &name).await?))
}

/// DELETE /api/v1/machines/{mac}: forget a machine (its record, boot options and events) →
/// 204. A machine the config file pins: 422 on `mac`, naming the file and line.
pub async fn forget_machine(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> ApiResult<Response> {
    let mac = parse_mac(&mac)?;
    Ok(match housekeeping::forget_machine(&state, mac).await? {
        Forget::Forgotten => StatusCode::NO_CONTENT.into_response(),
        Forget::Pinned(place) => unprocessable(&[FieldError {
            field: "mac",
            message: housekeeping::pinned_message(&place),
        }]),
    })
}

/// DELETE /api/v1/leases/{mac}: release the machine's leases → `{"mac", "released": [ip]}`;
/// `404` when it holds none.
pub async fn release_lease(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let mac = parse_mac(&mac)?;
    let released = housekeeping::release_lease(&state, mac).await?;
    Ok(Json(json!({ "mac": mac, "released": released })))
}

/// POST /api/v1/machines/{mac}/wake: the Wake-on-LAN magic packet on the LAN port →
/// `{"mac", "interface", "sent": ["udp", "ethernet"]}`.
pub async fn wake(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let mac = parse_mac(&mac)?;
    let sent = housekeeping::wake(&state, mac).await?;
    Ok(Json(json!({
        "mac": mac,
        "interface": sent.interface,
        "sent": ["udp", "ethernet"],
    })))
}
