//! Removing a flake: a confirmation page that lists what goes (its hosts' generations and GC
//! roots) and the machines that will boot the menu instead, then the removal.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::housekeeping;
use crate::pages::layout::{Frame, Nav, csrf_field, page};
use crate::state::WebState;

/// GET /flakes/{name}/remove: what removing it does, and the button.
pub async fn confirm(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let used = housekeeping::flake_use(&state, &name).await?;
    let flake = &used.flake;
    let title = format!("Remove {}", flake.name);
    let body = html! {
        p.small { a href={ "/flakes/" (flake.name) } { "← " (flake.name) } }
        h1 { (title) }
        div.card #remove-flake {
            @if let Some(place) = &used.in_config {
                div.notice.info #config-flake {
                    "The config file adds this flake (" code { (place) } "): remove it there and restart flakeboot."
                }
            } @else {
                p { "Removing " code { (flake.url) } " cancels its builds and deletes every generation of its hosts with their GC roots (nix frees their store paths at its next garbage collection)." }
                @if used.machines.is_empty() {
                    p #no-machines { "No machine is assigned to its hosts." }
                } @else {
                    p { "These machines are assigned to its hosts and will boot the menu instead:" }
                    ul #affected-machines {
                        @for (mac, host) in &used.machines {
                            li { a.mono href={ "/machines/" (mac) } { (mac) } " boots " code { (host) } }
                        }
                    }
                }
                form.inline method="post" action={ "/flakes/" (flake.name) "/remove" } {
                    (csrf_field(principal.csrf()))
                    button.danger type="submit" { "Remove flake " (flake.name) }
                    " " a href={ "/flakes/" (flake.name) } { "Cancel" }
                }
            }
        }
    };
    let status = if used.in_config.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let frame = Frame {
        title: &title,
        nav: Nav::Flakes,
        csrf: principal.csrf(),
    };
    Ok((status, page(frame, body)).into_response())
}

/// POST /flakes/{name}/remove
pub async fn remove(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let removed = housekeeping::remove_flake(&state, &name).await?;
    tracing::info!(flake = %escape_for_log(&removed.name), "flake removed from the UI");
    Ok(Redirect::to("/flakes").into_response())
}
