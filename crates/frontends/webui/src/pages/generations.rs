//! A host's generations on its flake's page (pre-flight state, duration and console log, one
//! click to boot another), and pinning one: a generation that did not pass pre-flight is
//! pinned only after a confirmation page says so.

use std::time::SystemTime;

use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use flakeboot_store::{GenerationRecord, PreflightState};
use maud::{Markup, html};

use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::flakes::RollbackForm;
use crate::pages::layout::{Frame, Nav, ago, csrf_field, page, timestamp};
use crate::state::WebState;
use flakeboot_appliance::wire;

/// The generations card of one qualified host `q` (`gens` oldest first).
pub fn card(
    q: &str,
    gens: &[GenerationRecord],
    pinned: Option<u32>,
    csrf: &str,
    now: SystemTime,
) -> Markup {
    if gens.is_empty() {
        return html! {};
    }
    let current = flakeboot_store::current_of(pinned, gens).map(|g| g.number);
    html! {
        div.card id=(anchor(q)) {
            h2 { "Generations of " code { (q) } }
            @if pinned.is_some() {
                form.inline method="post" action="/generations/unpin" {
                    (csrf_field(csrf))
                    input type="hidden" name="host" value=(q);
                    p.small { "Pinned: machines boot the pinned generation, not the newest that passed pre-flight. "
                        button.small.secondary type="submit" { "Boot the newest again" } }
                }
            }
            div.table-wrap {
                table.responsive {
                    thead { tr { th { "Generation" } th { "Revision" } th { "Built" } th { "Pre-flight" } th {} } }
                    tbody {
                        @for g in gens.iter().rev() {
                            @let boots = current == Some(g.number);
                            @let pf = wire::Preflight::from_record(g.preflight.clone(), now);
                            tr.generation data-generation=(g.number) data-preflight=(pf.state.as_str()) {
                                td data-label="Generation" { strong { (g.number) } @if boots { " " span.badge.ok { "booting" } } }
                                td.mono data-label="Revision" { (crate::pages::flakes::short_rev(g.revision.as_deref())) }
                                td.nowrap data-label="Built" title=(timestamp(g.built_at)) { (ago(g.built_at, now)) }
                                td data-label="Pre-flight" {
                                    span class={ "badge " (badge(pf.state)) } { (pf.state.as_str()) }
                                    " " span.small { (pf.summary().strip_prefix(pf.state.as_str()).unwrap_or_default().trim_start()) }
                                    @if pf.has_log {
                                        " " a.small href={ "/api/v1/generations/preflight-log?host=" (urlencode(q)) "&number=" (g.number) } { "console log" }
                                    }
                                }
                                td.right {
                                    @if !boots {
                                        form.inline method="post" action="/generations/rollback" {
                                            (csrf_field(csrf))
                                            input type="hidden" name="host" value=(q);
                                            input type="hidden" name="number" value=(g.number);
                                            button.small.secondary type="submit" {
                                                @if g.preflight.state.may_become_current() { "Boot this one" } @else { "Boot this one…" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The badge class of a pre-flight state.
fn badge(state: PreflightState) -> &'static str {
    match state {
        PreflightState::Passed => "ok",
        PreflightState::Failed => "bad",
        PreflightState::Queued => "warn",
        PreflightState::Running => "run",
        PreflightState::Skipped => "",
    }
}

/// The generations card's element id on the flake page (`generations-fleet-alpha`).
pub fn anchor(q: &str) -> String {
    format!("generations-{}", q.replace('#', "-"))
}

/// `#` in a qualified host, escaped for a query string (flake and host names are
/// `[A-Za-z0-9_-]`).
fn urlencode(q: &str) -> String {
    q.replace('#', "%23")
}

/// POST /generations/rollback: pins the generation; one that did not pass pre-flight first
/// gets a page that says so and asks (`confirm=yes` pins it).
pub async fn rollback(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, WebError> {
    let number = form.number.ok_or_else(|| WebError::BadRequest {
        message: "which generation?".into(),
    })?;
    let confirmed = form.confirm.as_deref() == Some("yes");
    let host = form.host.clone();
    let generation = state
        .flake(move |f| {
            Ok(f.generations(&host)?
                .into_iter()
                .find(|g| g.number == number))
        })
        .await?;
    if !confirmed
        && let Some(g) = &generation
        && let Some(warning) = crate::api::preflight_warning(g)
    {
        return Ok(confirm_page(&principal, &form.host, number, &warning));
    }
    state
        .flake({
            let a0 = form.host.clone();
            move |f| f.rollback(&a0, number)
        })
        .await?;
    tracing::info!(host = %escape_for_log(&form.host), number, "rolled back");
    let flake = form.host.split('#').next().unwrap_or_default();
    let to = Redirect::to(&format!("/flakes/{flake}"));
    Ok(crate::audit::noted(
        to,
        format!("{} generation {number}", form.host),
    ))
}

/// "Generation N failed pre-flight: ... Boot it anyway?"
fn confirm_page(principal: &Principal, host: &str, number: u32, warning: &str) -> Response {
    let flake = host.split('#').next().unwrap_or_default();
    let title = format!("Boot {host} generation {number}?");
    let body = html! {
        p.small { a href={ "/flakes/" (flake) } { "← " (flake) } }
        h1 { (title) }
        div.card #confirm-pin {
            div.notice.bad { (warning) "." }
            p { "Machines assigned to " code { (host) } " boot the generation you pin until you unpin it." }
            form.inline method="post" action="/generations/rollback" {
                (csrf_field(principal.csrf()))
                input type="hidden" name="host" value=(host);
                input type="hidden" name="number" value=(number);
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { "Boot generation " (number) " anyway" }
                " " a href={ "/flakes/" (flake) } { "Cancel" }
            }
        }
    };
    let frame = Frame {
        title: &title,
        nav: Nav::Flakes,
        csrf: principal.csrf(),
    };
    page(frame, body).into_response()
}
