//! Flakes: add a URL, its hosts, update, build, cancel, the live build log, generations with
//! one-click rollback. Everything goes through [`flakeboot_appliance::flakes::FlakeService`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use flakeboot_store::{BuildRecord, FlakeRecord, GenerationRecord};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::access_tokens;
use crate::pages::dashboard::build_badge;
use crate::pages::layout::{Frame, Nav, ago, csrf_field, field_error, page, timestamp};
use crate::state::WebState;
use flakeboot_appliance::flakes::FlakeServiceError;
use flakeboot_appliance::wire;

/// The add-a-flake form.
#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    name: String,
}

/// The build-a-host form.
#[derive(Debug, Deserialize)]
pub struct BuildForm {
    host: String,
}

/// The rollback and unpin forms.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) number: Option<u32>,
    /// `yes`: the user confirmed pinning a generation that did not pass pre-flight.
    #[serde(default)]
    pub(crate) confirm: Option<String>,
}

fn frame<'a>(title: &'a str, principal: &'a Principal) -> Frame<'a> {
    Frame {
        title,
        nav: Nav::Flakes,
        csrf: principal.csrf(),
    }
}

pub(crate) fn short_rev(rev: Option<&str>) -> String {
    rev.map_or_else(|| "—".to_owned(), |r| r.chars().take(10).collect())
}

fn builds_table(builds: &[&BuildRecord], csrf: &str) -> Markup {
    let now = SystemTime::now();
    html! {
        div.table-wrap {
            table.responsive {
                thead { tr { th { "Build" } th { "Host" } th { "State" } th { "Queued" } th {} } }
                tbody {
                    @for b in builds {
                        @let (class, word) = build_badge(b.state);
                        tr {
                            td data-label="Build" { a href={ "/builds/" (b.id) } { "#" (b.id) } }
                            td data-label="Host" { code { (b.flake) "#" (b.host) } }
                            td data-label="State" { span class=(class) { (word) } }
                            td.nowrap data-label="Queued" title=(timestamp(b.queued_at)) { (ago(b.queued_at, now)) }
                            td.right {
                                @if b.state.is_active() {
                                    form.inline method="post" action={ "/builds/" (b.id) "/cancel" } {
                                        (csrf_field(csrf))
                                        button.small.secondary type="submit" { "Cancel" }
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

fn add_form(csrf: &str, form: &AddForm, error: Option<&FlakeServiceError>) -> Markup {
    let (url_error, name_error) = match error {
        Some(FlakeServiceError::Invalid {
            field: "name",
            message,
        }) => (None, Some(message.as_str())),
        Some(FlakeServiceError::Invalid { message, .. }) => (Some(message.as_str()), None),
        _ => (None, None),
    };
    html! {
        div.card {
            h2 { "Add a flake" }
            form.stack method="post" action="/flakes" {
                (csrf_field(csrf))
                div {
                    label for="url" { "Flake URL"
                        span.hint { "For example github:owner/repo, git+https://host/repo.git, \
                                     git+ssh://git@host/owner/repo.git (with the deploy key below), or path:/srv/fleet. \
                                     flakeboot locks it and lists the NixOS hosts it can boot." } }
                    input #url type="text" name="url" value=(form.url) placeholder="github:owner/repo"
                        autocomplete="off" spellcheck="false" class=[url_error.is_some().then_some("invalid")];
                    (field_error(url_error))
                }
                div {
                    label for="name" { "Name " span.muted { "(optional)" }
                        span.hint { "Hosts are named “name#host”. Default: from the URL." } }
                    input #name type="text" name="name" value=(form.name) autocomplete="off"
                        class=[name_error.is_some().then_some("invalid")];
                    (field_error(name_error))
                }
                div.actions { button type="submit" { "Add flake" } }
            }
        }
    }
}

/// The SSH deploy key's public half, to paste into a forge for `git+ssh://` flakes.
fn deploy_key_card(key: Result<&wire::DeployKey, WebError>) -> Markup {
    html! {
        div.card #deploy-key {
            h2 { "SSH deploy key" }
            p.small { "Add this as a read-only deploy key in your forge for git+ssh:// flakes." }
            @match key {
                Ok(key) => {
                    pre.snippet #deploy-key-public { (key.public_key) }
                    p.small.muted { "Fingerprint " code #deploy-key-fingerprint { (key.fingerprint) } }
                }
                Err(e) => { div.notice.bad { (e) } }
            }
        }
    }
}

async fn render_list(
    state: &WebState,
    principal: &Principal,
    form: &AddForm,
    error: Option<&FlakeServiceError>,
) -> Result<Markup, WebError> {
    let flakes = state.flake(|f| f.flakes()).await?;
    let builds = state.flake(|f| f.builds()).await?;
    let currents = current_generations(state, &flakes).await?;
    let tokens = state.access_tokens(|t| t.list()).await;
    let recent: Vec<&BuildRecord> = builds.iter().rev().take(15).collect();
    let csrf = principal.csrf();
    let body = html! {
        h1 { "Flakes" }
        (add_form(csrf, form, error))
        (deploy_key_card(state.deploy_key()))
        (access_tokens::card(tokens, csrf))
        @for f in &flakes {
            div.card {
                div.titlebar {
                    h2 { a href={ "/flakes/" (f.name) } { (f.name) } }
                    form.inline method="post" action={ "/flakes/" (f.name) "/update" } {
                        (csrf_field(csrf))
                        button.small.secondary type="submit" { "Update and build" }
                    }
                }
                p.small.muted.mt-s { code { (f.url) } " · revision " code { (short_rev(f.revision.as_deref())) } }
                @if let Some(e) = &f.error { div.notice.bad { (e) } }
                (hosts_table(&currents, f, csrf))
            }
        }
        @if flakes.is_empty() { div.card { p.empty { "No flake yet." } } }
        div.card {
            h2 { "Recent builds" }
            @if recent.is_empty() { p.empty { "Nothing was built yet." } } @else { (builds_table(&recent, csrf)) }
        }
    };
    Ok(page(frame("Flakes", principal), body))
}

fn hosts_table(currents: &Currents, f: &FlakeRecord, csrf: &str) -> Markup {
    html! {
        @if f.hosts.is_empty() {
            p.empty { "This flake defines no nixosConfigurations." }
        } @else {
            div.table-wrap {
                table.responsive {
                    thead { tr { th { "Host" } th { "Boots" } th {} } }
                    tbody {
                        @for h in &f.hosts {
                            @let q = format!("{}#{}", f.name, h.name);
                            @let current = currents.get(&q);
                            tr {
                                td data-label="Host" { strong { (h.name) } }
                                td data-label="Boots" {
                                    @if let Some(why) = &h.unbootable {
                                        span.badge.warn { "cannot netboot" } " " span.small.muted { (why) }
                                    } @else if let Some((g, pinned)) = current {
                                        "generation " (g.number)
                                        @if *pinned { " " span.badge.warn { "pinned" } }
                                        span.small.muted { " · " (short_rev(g.revision.as_deref())) }
                                    } @else {
                                        span.muted { "not built yet" }
                                    }
                                }
                                td.right {
                                    @if h.unbootable.is_none() {
                                        form.inline method="post" action={ "/flakes/" (f.name) "/build" } {
                                            (csrf_field(csrf))
                                            input type="hidden" name="host" value=(h.name);
                                            button.small type="submit" { "Build" }
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

/// The generation each qualified host boots, and whether it is pinned.
type Currents = BTreeMap<String, (GenerationRecord, bool)>;

/// The current generation of every host of `flakes`, read off the async threads.
async fn current_generations(
    state: &WebState,
    flakes: &[FlakeRecord],
) -> Result<Currents, WebError> {
    let hosts: Vec<String> = flakes
        .iter()
        .flat_map(|f| {
            f.hosts
                .iter()
                .map(move |h| format!("{}#{}", f.name, h.name))
        })
        .collect();
    state
        .flake(move |svc| {
            let mut out = Currents::new();
            for q in hosts {
                let Ok(gens) = svc.generations(&q) else {
                    continue;
                };
                let pinned = svc.pinned(&q).ok().flatten();
                let current = flakeboot_store::current_of(pinned, &gens)
                    .map(|g| (g.clone(), pinned == Some(g.number)));
                if let Some(current) = current {
                    out.insert(q, current);
                }
            }
            Ok(out)
        })
        .await
}

/// GET /flakes
pub async fn list(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    Ok(render_list(&state, &principal, &AddForm::default(), None)
        .await?
        .into_response())
}

/// POST /flakes
pub async fn add(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<AddForm>,
) -> Result<Response, WebError> {
    let url = form.url.trim().to_owned();
    let name = form.name.trim().to_owned();
    let result = if url.is_empty() {
        Err(FlakeServiceError::Invalid {
            field: "url",
            message: "Enter a flake URL.".into(),
        })
    } else {
        state
            .flakes()
            .add(&url, (!name.is_empty()).then_some(name.as_str()))
            .await
    };
    match result {
        Ok(flake) => {
            tracing::info!(name = %escape_for_log(&flake.name), url = %escape_for_log(&flake.url), "flake added");
            let to = Redirect::to(&format!("/flakes/{}", flake.name));
            Ok(crate::audit::noted(to, flake.name))
        }
        Err(e @ FlakeServiceError::Invalid { .. }) => {
            let page = render_list(&state, &principal, &form, Some(&e)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// GET /flakes/{name}: hosts and their generations with rollback.
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let flake = state
        .flake(|f| f.flakes())
        .await?
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| WebError::NotFound {
            what: format!("flake “{name}”"),
        })?;
    let builds = state.flake(|f| f.builds()).await?;
    let mine: Vec<&BuildRecord> = builds
        .iter()
        .rev()
        .filter(|b| b.flake == name)
        .take(10)
        .collect();
    let csrf = principal.csrf();
    let now = SystemTime::now();
    let currents = current_generations(&state, std::slice::from_ref(&flake)).await?;
    let qualified: Vec<String> = flake
        .hosts
        .iter()
        .map(|h| format!("{}#{}", flake.name, h.name))
        .collect();
    let host_gens = state
        .flake(move |f| {
            let mut out = Vec::new();
            for q in qualified {
                let gens = f.generations(&q)?;
                let pinned = f.pinned(&q)?;
                out.push((q, gens, pinned));
            }
            Ok(out)
        })
        .await?;
    let automatic = crate::pages::flake_follow::cards(&state, &headers, &flake, csrf).await?;
    let body = html! {
        p.small { a href="/flakes" { "← Flakes" } }
        div.titlebar {
            h1 { (flake.name) }
            form.inline method="post" action={ "/flakes/" (flake.name) "/update" } {
                (csrf_field(csrf))
                button.secondary type="submit" { "Update and build" }
            }
            a.button.secondary #remove-flake-link href={ "/flakes/" (flake.name) "/remove" } { "Remove…" }
        }
        div.card {
            dl.facts {
                dt { "URL" } dd { code { (flake.url) } }
                dt { "Revision" } dd { code { (flake.revision.as_deref().unwrap_or("—")) } }
                dt { "Locked" } dd { (flake.locked_at.map_or_else(|| "never".to_owned(), |t| ago(t, now))) }
            }
            @if let Some(e) = &flake.error { div.notice.bad.mt { (e) } }
        }
        div.card {
            h2 { "Hosts" }
            (hosts_table(&currents, &flake, csrf))
        }
        @for (q, gens, pinned) in &host_gens {
            (crate::pages::generations::card(q, gens, *pinned, csrf, now))
        }
        div.card {
            h2 { "Builds" }
            @if mine.is_empty() { p.empty { "Nothing was built yet." } } @else { (builds_table(&mine, csrf)) }
        }
        (automatic)
    };
    Ok(page(frame(&flake.name, &principal), body).into_response())
}

/// POST /flakes/{name}/update
pub async fn update(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let ids = state.flakes().update(&name).await?;
    tracing::info!(flake = %escape_for_log(&name), builds = ?ids, "flake updated");
    Ok(Redirect::to(&format!("/flakes/{name}")).into_response())
}

/// POST /flakes/{name}/build
pub async fn build(
    State(state): State<WebState>,
    Path(name): Path<String>,
    Form(form): Form<BuildForm>,
) -> Result<Response, WebError> {
    let id = state
        .flake({
            let (a0, a1) = (name.clone(), form.host.clone());
            move |f| f.build(&a0, &a1)
        })
        .await?;
    tracing::info!(flake = %escape_for_log(&name), host = %escape_for_log(&form.host), id, "build queued");
    Ok(Redirect::to(&format!("/builds/{id}")).into_response())
}

/// POST /generations/unpin
pub async fn unpin(
    State(state): State<WebState>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, WebError> {
    state
        .flake({
            let a0 = form.host.clone();
            move |f| f.unpin(&a0)
        })
        .await?;
    let flake = form.host.split('#').next().unwrap_or_default();
    let to = Redirect::to(&format!("/flakes/{flake}"));
    Ok(crate::audit::noted(to, form.host.clone()))
}
