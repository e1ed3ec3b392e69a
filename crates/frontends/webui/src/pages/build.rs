//! One build: its state, progress and log, live while it runs (the embedded script follows
//! `/api/v1/builds/{id}/events`), and its cancel button.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::{FutureExt, StreamExt};
use maud::html;

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::dashboard::build_badge;
use crate::pages::layout::{Frame, Nav, csrf_field, page, timestamp};
use crate::state::WebState;

/// Most log lines a build page renders without JavaScript.
const PAGE_LOG_LINES: usize = 2000;

/// POST /builds/{id}/cancel
pub async fn cancel(
    State(state): State<WebState>,
    Path(id): Path<u64>,
) -> Result<Response, WebError> {
    state.flake(move |f| f.cancel(id)).await?;
    Ok(Redirect::to(&format!("/builds/{id}")).into_response())
}

/// The log lines available now (all of them for a finished build).
pub(crate) async fn log_so_far(state: &WebState, id: u64, finished: bool) -> Vec<String> {
    let Ok(mut stream) = state.flakes().log(id) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    while lines.len() < PAGE_LOG_LINES * 4 {
        let next = if finished {
            tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .ok()
                .flatten()
        } else {
            stream.next().now_or_never().flatten()
        };
        match next {
            Some(line) => lines.push(line),
            None => break,
        }
    }
    let skip = lines.len().saturating_sub(PAGE_LOG_LINES);
    lines.split_off(skip)
}

/// GET /builds/{id}
pub async fn build_page(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<u64>,
) -> Result<Response, WebError> {
    let build = state
        .flake(|f| f.builds())
        .await?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| WebError::NotFound {
            what: format!("build {id}"),
        })?;
    let active = build.state.is_active();
    let lines = log_so_far(&state, id, !active).await;
    let progress = state.flakes().progress(id).unwrap_or_default();
    let (class, word) = build_badge(build.state);
    let percent = if !active {
        100
    } else {
        (progress.done * 100)
            .checked_div(progress.total)
            .unwrap_or(0)
    };
    let title = format!("Build #{id}");
    let body = html! {
        p.small { a href={ "/flakes/" (build.flake) } { "← " (build.flake) } }
        div.titlebar {
            h1 { "Build #" (id) " · " code { (build.flake) "#" (build.host) } }
            @if active {
                form #cancel-form .inline method="post" action={ "/builds/" (id) "/cancel" } {
                    (csrf_field(principal.csrf()))
                    button.danger type="submit" { "Cancel build" }
                }
            }
        }
        div.card {
            div.actions {
                span #build-state class=(class) { (word) }
                span #build-counts .small.muted {
                    @if progress.total > 0 { (progress.done) " of " (progress.total) " built" }
                }
                span #build-current .small.muted { (progress.current.as_deref().unwrap_or("")) }
            }
            progress #build-bar .bar.mt max="100" value=(percent) {}
            dl.facts.mt {
                dt { "Revision" } dd.mono { (build.revision.as_deref().unwrap_or("—")) }
                dt { "Queued" } dd { (timestamp(build.queued_at)) }
                @if let Some(t) = build.finished_at { dt { "Finished" } dd { (timestamp(t)) } }
                @if let Some(g) = build.generation { dt { "Generation" } dd { (g) } }
                @if let Some(e) = &build.error { dt { "Error" } dd { (e) } }
            }
        }
        div.card {
            h2 { "Log" }
            pre #build-log .log data-build=(id) {
                @if lines.is_empty() { "(no output yet)" }
                @for l in &lines { (l) "\n" }
            }
            @if active { noscript { p.small.muted { "Reload the page to see new lines." } } }
        }
        @if active { script src="/static/live.js" {} }
    };
    Ok(page(
        Frame {
            title: &title,
            nav: Nav::Flakes,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}
