//! A flake's automatic updates on its page: follow settings (a form), the push webhook (URL
//! and secret, rotatable) and the update history.

use std::time::SystemTime;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use flakeboot_store::{FlakeRecord, UpdateRecord, UpdateState};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::follow::{FollowBody, hook_info, save_follow};
use crate::auth::escape_for_log;
use crate::error::WebError;
use crate::pages::layout::{ago, csrf_field, timestamp};
use crate::state::WebState;
use flakeboot_appliance::wire::follow::format_every;

/// The follow form.
#[derive(Debug, Default, Deserialize)]
pub struct FollowForm {
    /// A checkbox: present when ticked.
    #[serde(default)]
    follow: Option<String>,
    #[serde(default)]
    check_every: String,
    #[serde(default)]
    notify_txt: String,
}

fn short(rev: Option<&str>) -> String {
    rev.map_or_else(|| "—".to_owned(), |r| r.chars().take(10).collect())
}

fn state_badge(state: UpdateState) -> Markup {
    let class = match state {
        UpdateState::Promoted => "badge ok",
        UpdateState::Failed | UpdateState::NotPromoted => "badge bad",
        UpdateState::Building | UpdateState::Unchanged => "badge",
    };
    html! { span class=(class) { (state.as_str()) } }
}

fn history_table(updates: &[UpdateRecord]) -> Markup {
    let now = SystemTime::now();
    html! {
        div.table-wrap {
            table.responsive #update-history {
                thead { tr { th { "When" } th { "Trigger" } th { "Revision" } th { "Builds" } th { "Result" } } }
                tbody {
                    @for u in updates.iter().rev() {
                        tr {
                            td.nowrap data-label="When" title=(timestamp(u.started_at)) { (ago(u.started_at, now)) }
                            td data-label="Trigger" { (u.trigger.as_str()) }
                            td.mono data-label="Revision" {
                                (short(u.old_revision.as_deref())) " → " (short(u.new_revision.as_deref()))
                            }
                            td data-label="Builds" {
                                @for b in &u.builds {
                                    a href={ "/builds/" (b.id) } { "#" (b.id) } " " (b.host)
                                    @if let Some(g) = b.generation { " (gen " (g) ")" }
                                    " "
                                }
                            }
                            td data-label="Result" {
                                (state_badge(u.state))
                                @if let Some(r) = &u.reason { " " span.small { (r) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The automatic-updates cards of a flake's page.
pub(crate) async fn cards(
    state: &WebState,
    headers: &HeaderMap,
    flake: &FlakeRecord,
    csrf: &str,
) -> Result<Markup, WebError> {
    let name = flake.name.clone();
    let (follow, dns, updates) = state
        .flake(move |f| Ok((f.follow(&name)?, f.dns_status(&name), f.history(&name)?)))
        .await?;
    let hook = match hook_info(state, headers, &flake.name, false).await {
        Ok(hook) => Some(hook),
        Err(e) => {
            tracing::warn!(flake = %escape_for_log(&flake.name), "no webhook secret to show: {e}");
            None
        }
    };
    let in_config = state.flake_in_config(&flake.name, &flake.url);
    Ok(html! {
        div.card #automatic-updates {
            h2 { "Automatic updates" }
            p.small {
                "A flake that follows its branch is re-locked every “check every” and when its push webhook is called; a new revision is built and becomes current."
            }
            @if let Some(place) = &in_config {
                p { "Follow: " strong { (if follow.follow { "on" } else { "off" }) }
                    ", check every " code { (format_every(follow.check_every)) }
                    @if let Some(txt) = &follow.notify_txt { ", DNS notification " code { (txt) } } }
                p.small { "Set in " (place) " (change it there)." }
            } @else {
                form.stack method="post" action={ "/flakes/" (flake.name) "/follow" } {
                    (csrf_field(csrf))
                    label { input type="checkbox" name="follow" value="on" checked[follow.follow]; " Follow its branch" }
                    label for="check_every" { "Check every" }
                    input #check_every type="text" name="check_every" value=(format_every(follow.check_every)) placeholder="15m";
                    label for="notify_txt" { "DNS notification (TXT record)" }
                    input #notify_txt type="text" name="notify_txt" value=(follow.notify_txt.as_deref().unwrap_or_default()) placeholder="_flakeboot.example.org";
                    p.small { "Optional. Its rev=<commit> is asked every minute; when it names another revision, the flake is updated (and it is not re-locked every “check every” then). A name here makes the flake follow." }
                    button.secondary type="submit" { "Save" }
                }
            }
            @if let Some(dns) = &dns {
                p #dns-check.small {
                    "TXT record " code { (dns.record) } ", asked " span title=(timestamp(dns.checked_at)) { (ago(dns.checked_at, SystemTime::now())) } ": "
                    @if let Some(rev) = &dns.rev { "rev " code { (short(Some(rev))) } }
                    @if let Some(e) = &dns.error { span.badge.bad { "unreadable" } " " (e) }
                    @if let Some((rev, at)) = &dns.acted_on {
                        "; update started for " code { (short(Some(rev))) } " " span title=(timestamp(*at)) { (ago(*at, SystemTime::now())) }
                    }
                }
            }
        }
        div.card #push-webhook {
            h2 { "Push webhook" }
            p.small { "In the forge's webhook settings: this URL, content type application/json, and this secret (GitHub, Gitea, Forgejo: “Secret”; GitLab: “Secret token”). A push starts an update at once." }
            @if let Some(hook) = &hook {
                dl.facts {
                    dt { "URL" } dd { code #hook-url { (hook.url) } }
                    dt { "Secret" } dd { code #hook-secret { (hook.secret) } }
                }
            } @else {
                p.notice.bad { "The webhook is not available here." }
            }
            form.inline method="post" action={ "/flakes/" (flake.name) "/hook/rotate" } {
                (csrf_field(csrf))
                button.small.secondary type="submit" { "New secret" }
            }
        }
        div.card {
            h2 { "Update history" }
            @if updates.is_empty() { p.empty { "No update yet." } } @else { (history_table(&updates)) }
        }
    })
}

/// POST /flakes/{name}/follow
pub async fn follow(
    State(state): State<WebState>,
    Path(name): Path<String>,
    Form(form): Form<FollowForm>,
) -> Result<Response, WebError> {
    // A record name makes the flake follow: clearing the name (and the box) stops it.
    let body = FollowBody {
        follow: Some(form.follow.is_some() || !form.notify_txt.trim().is_empty()),
        check_every: Some(form.check_every),
        notify_txt: Some(form.notify_txt),
    };
    if let Err(e) = save_follow(&state, &name, &body).await? {
        return Err(WebError::BadRequest { message: e.message });
    }
    Ok(Redirect::to(&format!("/flakes/{name}")).into_response())
}

/// POST /flakes/{name}/hook/rotate
pub async fn rotate(
    State(state): State<WebState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    hook_info(&state, &headers, &name, true).await?;
    tracing::info!(flake = %escape_for_log(&name), "webhook secret rotated from the UI");
    Ok(Redirect::to(&format!("/flakes/{name}#push-webhook")).into_response())
}
