//! Builds over the API: list, queue, cancel, and the log as a text stream or server-sent
//! events (the build page's live view uses the events).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flakeboot_store::{BuildRecord, BuildState};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::api::ApiResult;
use crate::error::WebError;
use crate::pages::dashboard::build_badge;
use crate::state::WebState;
use flakeboot_appliance::flakes::BuildProgressView;
use flakeboot_appliance::wire;

/// How often the event stream sends the build's status.
const STATUS_EVERY: Duration = Duration::from_millis(700);

async fn find(state: &WebState, id: u64) -> Result<BuildRecord, WebError> {
    state
        .flake(|f| f.builds())
        .await?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| WebError::NotFound {
            what: format!("build {id}"),
        })
}

/// A build and where it is.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// The build.
    #[serde(flatten)]
    pub build: wire::Build,
    /// Progress while it runs.
    pub progress: Option<BuildProgressView>,
}

/// GET /api/v1/builds
pub async fn list(State(state): State<WebState>) -> ApiResult<Json<Vec<wire::Build>>> {
    Ok(Json(wire::all(state.flake(|f| f.builds()).await?)))
}

/// The body of POST /api/v1/builds.
#[derive(Debug, Deserialize)]
pub struct NewBuild {
    /// The flake's name.
    pub flake: String,
    /// The host inside it.
    pub host: String,
}

/// POST /api/v1/builds
pub async fn create(
    State(state): State<WebState>,
    Json(body): Json<NewBuild>,
) -> ApiResult<Response> {
    let id = state
        .flake({
            let (a0, a1) = (body.flake.clone(), body.host.clone());
            move |f| f.build(&a0, &a1)
        })
        .await?;
    let target = format!("{}#{}", body.flake, body.host);
    Ok(crate::audit::noted(
        (StatusCode::ACCEPTED, Json(json!({ "id": id }))),
        target,
    ))
}

/// GET /api/v1/builds/{id}
pub async fn get(State(state): State<WebState>, Path(id): Path<u64>) -> ApiResult<Json<BuildView>> {
    let build = find(&state, id).await?;
    Ok(Json(BuildView {
        progress: state.flakes().progress(id),
        build: build.into(),
    }))
}

/// POST /api/v1/builds/{id}/cancel
pub async fn cancel(
    State(state): State<WebState>,
    Path(id): Path<u64>,
) -> ApiResult<Json<serde_json::Value>> {
    find(&state, id).await?;
    let cancelled = state.flake(move |f| f.cancel(id)).await?;
    Ok(Json(json!({ "id": id, "cancelled": cancelled })))
}

/// GET /api/v1/builds/{id}/log: the log as plain text, streamed until the build ends.
pub async fn log(State(state): State<WebState>, Path(id): Path<u64>) -> ApiResult<Response> {
    find(&state, id).await?;
    let stream = state
        .flakes()
        .log(id)?
        .map(|line| Ok::<_, Infallible>(format!("{line}\n")));
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn status_event(state: &WebState, id: u64, finished: bool) -> Option<Event> {
    let build = find(state, id).await.ok()?;
    let (class, word) = build_badge(build.state);
    let finished = finished || !build.state.is_active();
    let data = json!({
        "state": word,
        "class": class,
        "progress": state.flakes().progress(id),
        "finished": finished,
        "generation": build.generation,
        "error": build.error,
    });
    Some(Event::default().event("status").data(data.to_string()))
}

/// GET /api/v1/builds/{id}/events: server-sent events `line` (one log line) and `status`
/// (state and progress), until the build has ended and its log is read.
pub async fn events(State(state): State<WebState>, Path(id): Path<u64>) -> ApiResult<Response> {
    find(&state, id).await?;
    let mut lines = state.flakes().log(id)?;
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(256);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(line) => {
                        if tx.send(Ok(Event::default().event("line").data(line))).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if let Some(ev) = status_event(&state, id, false).await
                        && tx.send(Ok(ev)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        // The log ended: wait briefly for the record to say how, then send the final status.
        for _ in 0..20 {
            if find(&state, id)
                .await
                .is_ok_and(|b| b.state != BuildState::Running)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(ev) = status_event(&state, id, true).await {
            let _ = tx.send(Ok(ev)).await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}
