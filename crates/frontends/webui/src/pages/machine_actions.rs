//! A machine's buttons beside its settings: power it on (Wake-on-LAN), release its DHCP lease,
//! forget it. Each answers with the machine page and a notice.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::WebError;
use crate::housekeeping::{self, Forget};
use crate::pages::machines::parse_mac;
use crate::state::WebState;

/// POST /machines/{mac}/wake
pub async fn wake(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> Result<Response, WebError> {
    let mac = parse_mac(&mac)?;
    housekeeping::wake(&state, mac).await?;
    Ok(Redirect::to(&format!("/machines/{mac}?done=woken")).into_response())
}

/// POST /leases/{mac}/release
pub async fn release(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> Result<Response, WebError> {
    let mac = parse_mac(&mac)?;
    housekeeping::release_lease(&state, mac).await?;
    Ok(Redirect::to(&format!("/machines/{mac}?done=released")).into_response())
}

/// POST /machines/{mac}/forget
pub async fn forget(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> Result<Response, WebError> {
    let mac = parse_mac(&mac)?;
    match housekeeping::forget_machine(&state, mac).await? {
        Forget::Forgotten => Ok(Redirect::to("/machines").into_response()),
        Forget::Pinned(place) => Err(WebError::Conflict {
            message: housekeeping::pinned_message(&place),
        }),
    }
}
