//! The audit log page: the newest admin actions, who made them, from where and when (plain
//! escaped text; the API's `GET /api/v1/audit` gives the same as JSON).

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::api::Limit;
use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, page, timestamp};
use crate::state::WebState;

/// GET /audit[?limit=]: the newest entries first (200 unless asked).
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Query(limit): Query<Limit>,
) -> Result<Response, WebError> {
    let n = limit.limit.unwrap_or(200).min(flakeboot_store::MAX_AUDIT);
    let entries = state.db(move |s| s.recent_audit(n)).await?;
    let body = html! {
        h1 { "Audit log" }
        p.muted {
            "Every change made in this UI, the API or the CLI: who, what, from where and when. "
            "The newest " (entries.len()) " shown; the appliance keeps the last "
            (flakeboot_store::MAX_AUDIT) "."
        }
        @if entries.is_empty() {
            p { "Nothing recorded yet." }
        } @else {
            table #audit {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "From" } th { "Result" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (timestamp(e.at)) }
                            td { @if let Some(a) = &e.actor { (a) } @else { span.muted { "not signed in" } } }
                            td { code { (e.action) } }
                            td { (e.target) }
                            td { @if let Some(c) = e.client { (c) } @else { "API socket" } }
                            td { (e.status) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        Frame {
            title: "Audit log",
            nav: Nav::Settings,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}
