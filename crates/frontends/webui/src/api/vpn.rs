//! Remote management over WireGuard in the JSON API: `/api/v1/vpn` (status), its server and hub
//! settings, and server-mode peers. Errors follow the rest of the API: `{"error": ...}`, with
//! `"field"` on a 422.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::escape_for_log;
use crate::pages::vpn::{INTERNAL, NOT_AVAILABLE};
use crate::state::WebState;
use flakeboot_appliance::vpn::{
    TunnelState, VpnHubSettings, VpnServerSettings, VpnService, VpnServiceError, VpnStatus,
};

/// Why a VPN API call failed.
#[derive(Debug)]
pub enum VpnApiError {
    /// The daemon runs without remote access.
    NotAvailable,
    /// The VPN service refused or failed.
    Service(VpnServiceError),
}

impl From<VpnServiceError> for VpnApiError {
    fn from(e: VpnServiceError) -> Self {
        VpnApiError::Service(e)
    }
}

impl IntoResponse for VpnApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            VpnApiError::NotAvailable => (StatusCode::NOT_FOUND, json!({ "error": NOT_AVAILABLE })),
            VpnApiError::Service(VpnServiceError::Invalid { field, message }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": message, "field": field }),
            ),
            VpnApiError::Service(e @ VpnServiceError::NotFound { .. }) => {
                (StatusCode::NOT_FOUND, json!({ "error": e.to_string() }))
            }
            VpnApiError::Service(VpnServiceError::Unavailable { message }) => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": message }))
            }
            VpnApiError::Service(e @ VpnServiceError::Internal { .. }) => {
                tracing::error!("remote access request failed: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": INTERNAL }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

type VpnResult<T> = Result<T, VpnApiError>;

fn service(state: &WebState) -> VpnResult<&dyn VpnService> {
    state.vpn().ok_or(VpnApiError::NotAvailable)
}

/// GET /api/v1/vpn: settings, tunnel states, the appliance's keys, peers with their last
/// handshake and traffic, the hub connection. Never a private key.
pub async fn status(State(state): State<WebState>) -> VpnResult<Json<VpnStatus>> {
    Ok(Json(service(&state)?.status().await?))
}

/// Which tunnel a settings call applies.
#[derive(Debug, Clone, Copy)]
enum Tunnel {
    Server,
    Hub,
}

/// The status after a settings change. Saved but not brought up (`Unavailable`) is still a
/// success: the status shows that tunnel as failed, with the reason.
async fn after_settings(
    vpn: &dyn VpnService,
    tunnel: Tunnel,
    applied: Result<(), VpnServiceError>,
) -> VpnResult<Json<VpnStatus>> {
    let down = match applied {
        Ok(()) => None,
        Err(VpnServiceError::Unavailable { message }) => Some(message),
        Err(e) => return Err(e.into()),
    };
    let mut status = vpn.status().await?;
    if let Some(message) = down {
        let failed = TunnelState::Failed { message };
        match tunnel {
            Tunnel::Server => status.server_tunnel = failed,
            Tunnel::Hub => status.hub.tunnel = failed,
        }
    }
    Ok(Json(status))
}

/// PUT /api/v1/vpn/server: replaces the server-mode settings (GET, edit, PUT) and applies them.
pub async fn put_server(
    State(state): State<WebState>,
    Json(settings): Json<VpnServerSettings>,
) -> VpnResult<Json<VpnStatus>> {
    let vpn = service(&state)?;
    let applied = vpn.set_server(settings).await;
    after_settings(vpn, Tunnel::Server, applied).await
}

/// PUT /api/v1/vpn/hub: replaces the hub-mode settings and applies them.
pub async fn put_hub(
    State(state): State<WebState>,
    Json(settings): Json<VpnHubSettings>,
) -> VpnResult<Json<VpnStatus>> {
    let vpn = service(&state)?;
    let applied = vpn.set_hub(settings).await;
    after_settings(vpn, Tunnel::Hub, applied).await
}

/// The body of the add and rename calls.
#[derive(Debug, Deserialize)]
pub struct PeerName {
    /// The device's name.
    pub name: String,
}

/// POST /api/v1/vpn/peers `{"name"}` → `201 {"peer", "config"}`: the only time the config (with
/// the device's private key) is given out.
pub async fn add_peer(
    State(state): State<WebState>,
    Json(body): Json<PeerName>,
) -> VpnResult<Response> {
    let new = service(&state)?.add_peer(body.name.trim()).await?;
    tracing::info!(id = new.peer.id, name = %escape_for_log(&new.peer.name), "remote access: device added");
    let name = new.peer.name.clone();
    Ok(crate::audit::noted(
        (
            StatusCode::CREATED,
            [(header::CACHE_CONTROL, "no-store")],
            Json(new),
        ),
        name,
    ))
}

/// PATCH /api/v1/vpn/peers/{id} `{"name"}` → the peer.
pub async fn rename_peer(
    State(state): State<WebState>,
    Path(id): Path<u64>,
    Json(body): Json<PeerName>,
) -> VpnResult<Response> {
    let vpn = service(&state)?;
    vpn.rename_peer(id, body.name.trim()).await?;
    let status = vpn.status().await?;
    Ok(match status.peers.into_iter().find(|p| p.id == id) {
        Some(peer) => Json(peer).into_response(),
        None => VpnApiError::Service(VpnServiceError::NotFound {
            what: format!("peer {id}"),
        })
        .into_response(),
    })
}

/// DELETE /api/v1/vpn/peers/{id} → 204: the device is cut off at once.
pub async fn revoke_peer(
    State(state): State<WebState>,
    Path(id): Path<u64>,
) -> VpnResult<StatusCode> {
    service(&state)?.revoke_peer(id).await?;
    tracing::info!(id, "remote access: device revoked");
    Ok(StatusCode::NO_CONTENT)
}
