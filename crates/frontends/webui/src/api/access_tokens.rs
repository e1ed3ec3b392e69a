//! Access tokens for private GitHub/GitLab flakes over the API: `GET /api/v1/access-tokens`
//! (hosts and where each was set, never a token), `POST /api/v1/access-tokens` (`{"host",
//! "token"}`: set or replace) and `DELETE /api/v1/access-tokens/{host}`. The audit log records
//! the action with the host only (the request body is never read by it).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use flakeboot_appliance::wire::AccessToken;
use serde::Deserialize;

use super::ApiResult;
use crate::audit::noted;
use crate::state::WebState;

/// The body of `POST /api/v1/access-tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetToken {
    /// The forge's host (`github.com`).
    pub host: String,
    /// The token (GitLab: `PAT:glpat-...`).
    pub token: String,
}

impl std::fmt::Debug for SetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetToken")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// GET /api/v1/access-tokens
pub async fn list(State(state): State<WebState>) -> ApiResult<Json<Vec<AccessToken>>> {
    Ok(Json(state.access_tokens(|t| t.list()).await?))
}

/// POST /api/v1/access-tokens → 204; a bad host or token, or a host the config file's tokens
/// file has: 422.
pub async fn set(State(state): State<WebState>, Json(body): Json<SetToken>) -> ApiResult<Response> {
    let host = body.host.trim().to_owned();
    let target = host.clone();
    state
        .access_tokens(move |t| t.set(&host, body.token.trim()))
        .await?;
    Ok(noted(StatusCode::NO_CONTENT, target))
}

/// DELETE /api/v1/access-tokens/{host} → 204; none for that host: 404.
pub async fn remove(
    State(state): State<WebState>,
    Path(host): Path<String>,
) -> ApiResult<StatusCode> {
    state.access_tokens(move |t| t.remove(&host)).await?;
    Ok(StatusCode::NO_CONTENT)
}
