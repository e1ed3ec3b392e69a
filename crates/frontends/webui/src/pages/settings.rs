//! The settings page: LAN and DHCP (mode, ranges, reservations), the WAN port and the DNS
//! forwarder ([`super::settings_wan`]), the boot menu, Nix substituters and builders (saved in
//! the store and announced to the daemon at once, no restart); its password, token and
//! certificate forms are handled in [`super::account`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use flakeboot_store::{ApiTokenRecord, TokenScope};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, csrf_field, field_error, page, timestamp};
use crate::pages::settings_input::{
    FieldErrors, by_field, lines, parse_ranges, parse_reservations,
};
use crate::pages::settings_wan;
use crate::pages::setup::{confirm_router_box, dhcp_mode_choices, parse_mode};
use crate::state::WebState;

/// What a failed form sends back into the page.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) errors: FieldErrors,
    pub(crate) drafts: BTreeMap<&'static str, String>,
    pub(crate) notice: Option<Markup>,
    /// Ask for the confirmation of a switch to router mode beside another DHCP server.
    pub(crate) confirm_router: bool,
}

pub(crate) async fn render(
    state: &WebState,
    principal: &Principal,
    view: View,
) -> Result<Markup, WebError> {
    let s = state.settings();
    let tokens = state.db(|s| s.api_tokens()).await?;
    let csrf = principal.csrf();
    let hosts = state.assignable_hosts();
    let draft = |k: &'static str, default: String| view.drafts.get(k).cloned().unwrap_or(default);
    let err = |k: &'static str| view.errors.get(k).map(String::as_str);
    let ranges = s
        .dhcp_ranges
        .iter()
        .map(|[a, b]| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join("\n");
    let reservations = s
        .reservations
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.mac,
                r.address,
                r.hostname.as_deref().unwrap_or("")
            )
            .trim()
            .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let menu_default = s.menu_default.clone().unwrap_or_default();
    let body = html! {
        h1 { "Settings" }
        nav.jump {
            a href="#network" { "LAN and DHCP" }
            a href="#wan" { "WAN" }
            a href="#dns" { "DNS" }
            a href="#menu" { "Boot menu" }
            a href="#nix" { "Nix" }
            a href="#password" { "Password" }
            a href="#tokens" { "API tokens" }
            a href="#certificate" { "Certificate" }
            a href="/audit" { "Audit log" }
            a href="/firmware" { "Firmware" }
        }
        @if let Some(n) = &view.notice { (n) }
        (problems(&view.errors))
        div.card #network {
            h2 { "LAN and DHCP" }
            form.stack method="post" action="/settings/network" {
                (csrf_field(csrf))
                div {
                    label for="lan_interface" { "LAN port" }
                    @if state.config().interfaces.is_empty() {
                        input #lan_interface type="text" name="lan_interface" value=(draft("lan_interface", s.lan_interface.clone()));
                    } @else {
                        select #lan_interface name="lan_interface" {
                            @for i in &state.config().interfaces { option value=(i) selected[*i == s.lan_interface] { (i) } }
                        }
                    }
                    (field_error(err("lan_interface")))
                }
                fieldset.plain {
                    legend { "DHCP mode" }
                    (dhcp_mode_choices(view.drafts.get("dhcp_mode").and_then(|m| parse_mode(m)).unwrap_or(s.dhcp_mode)))
                    (field_error(err("dhcp_mode")))
                    @if view.confirm_router { (confirm_router_box("Switch to router mode anyway")) }
                }
                div.row {
                    div {
                        label for="dhcp_ranges" { "Address ranges" span.hint { "Router mode: one range per line, like 10.0.0.100-10.0.0.200." } }
                        textarea #dhcp_ranges name="dhcp_ranges" rows="3" { (draft("dhcp_ranges", ranges)) }
                        (field_error(err("dhcp_ranges")))
                    }
                    div {
                        label for="reservations" { "Reservations" span.hint { "One per line: MAC, address, optional host name." } }
                        textarea #reservations name="reservations" rows="3" placeholder="52:54:00:12:34:56 10.0.0.5 node5" { (draft("reservations", reservations)) }
                        (field_error(err("reservations")))
                    }
                }
                div.actions { button type="submit" { "Save LAN and DHCP" } }
            }
        }
        (settings_wan::wan_section(state, csrf, &view))
        (settings_wan::dns_section(state, csrf, &view))
        div.card #menu {
            h2 { "Boot menu" }
            p.small.muted { "Machines not assigned to a host get a menu of every host." }
            form.stack method="post" action="/settings/menu" {
                (csrf_field(csrf))
                div.row {
                    div {
                        label for="menu_default" { "Default entry" }
                        select #menu_default name="menu_default" {
                            option value="" selected[menu_default.is_empty()] { "The first host" }
                            option value="local" selected[menu_default == "local"] { "Local disk" }
                            @for h in &hosts { option value=(h) selected[*h == menu_default] { (h) } }
                            @if !menu_default.is_empty() && menu_default != "local" && !hosts.contains(&menu_default) {
                                option value=(menu_default) selected { (menu_default) " (no longer available)" }
                            }
                        }
                        (field_error(err("menu_default")))
                    }
                    div {
                        label for="menu_timeout_secs" { "Timeout (seconds)" }
                        input #menu_timeout_secs type="number" min="0" max="3600" name="menu_timeout_secs"
                            value=(draft("menu_timeout_secs", s.menu_timeout_secs.to_string()));
                        (field_error(err("menu_timeout_secs")))
                    }
                }
                div.actions { button type="submit" { "Save menu" } }
            }
        }
        div.card #nix {
            h2 { "Nix" }
            form.stack method="post" action="/settings/nix" {
                (csrf_field(csrf))
                div {
                    label for="substituters" { "Binary caches (substituters)" span.hint { "One URL per line, tried in order." } }
                    textarea #substituters name="substituters" rows="3" placeholder="https://cache.nixos.org" { (draft("substituters", s.substituters.join("\n"))) }
                    (field_error(err("substituters")))
                }
                div {
                    label for="builders" { "Remote builders" span.hint { "One machine per line, in nix's builders format: ssh://user@host x86_64-linux" } }
                    textarea #builders name="builders" rows="3" { (draft("builders", s.builders.join("\n"))) }
                    (field_error(err("builders")))
                }
                div.actions { button type="submit" { "Save Nix settings" } }
            }
        }
        div.grid {
            div.card #password {
                h2 { "Admin password" }
                form.stack method="post" action="/settings/password" {
                    (csrf_field(csrf))
                    div {
                        label for="current" { "Current password" }
                        input #current type="password" name="current" autocomplete="current-password";
                        (field_error(err("current")))
                    }
                    div {
                        label for="new_password" { "New password" }
                        input #new_password type="password" name="password" autocomplete="new-password";
                    }
                    div {
                        label for="confirm" { "New password again" }
                        input #confirm type="password" name="confirm" autocomplete="new-password";
                        (field_error(err("password")))
                    }
                    div.actions { button type="submit" { "Change password" } }
                }
            }
            div.card #tokens {
                h2 { "API tokens" }
                p.small.muted { "For scripts and the command line, on " code { "/api/v1" } " only: " code { "Authorization: Bearer TOKEN" } ". A token is shown once." }
                @if !tokens.is_empty() {
                    div.table-wrap { table {
                        thead { tr { th { "Name" } th { "Scope" } th { "Expires" } th {} } }
                        tbody {
                            @for t in &tokens { (token_row(t, csrf, state.clock().wall())) }
                        }
                    } }
                }
                form.stack.mt method="post" action="/settings/tokens" {
                    (csrf_field(csrf))
                    div {
                        label for="token_name" { "New token's name" }
                        input #token_name type="text" name="name" placeholder="laptop";
                        (field_error(err("token_name")))
                    }
                    div.row {
                        div {
                            label for="token_scope" { "Scope"
                                span.hint { "Read only: look, never change. Admin: everything the API can do (the command line's builds, assignments and settings need it)." } }
                            select #token_scope name="scope" {
                                option value=(TokenScope::ReadOnly.as_str()) selected { "Read only" }
                                option value=(TokenScope::Admin.as_str()) { "Admin" }
                            }
                            (field_error(err("token_scope")))
                        }
                        div {
                            label for="token_expires" { "Expires after (days)"
                                span.hint { "Empty: never." } }
                            input #token_expires type="number" name="expires_days" min="1" max=(MAX_TOKEN_DAYS) placeholder="90";
                            (field_error(err("token_expires")))
                        }
                    }
                    div.actions { button type="submit" { "Create token" } }
                }
            }
        }
        div.card #certificate {
            h2 { "HTTPS certificate" }
            @if let Some(certs) = state.certs() {
                @let info = certs.info();
                p.small {
                    @if info.self_signed { "A self-signed certificate made by this appliance. Browsers warn about it until you upload one they trust." }
                    @else { "An uploaded certificate." }
                }
                p.small { "SHA-256: " code.anywhere { (info.fingerprint) } }
            }
            form.stack method="post" action="/settings/certificate" {
                (csrf_field(csrf))
                div.row {
                    div {
                        label for="cert_pem" { "Certificate (PEM, with its chain)" }
                        textarea #cert_pem name="cert_pem" rows="4" placeholder="-----BEGIN CERTIFICATE-----" {}
                    }
                    div {
                        label for="key_pem" { "Private key (PEM)" }
                        textarea #key_pem name="key_pem" rows="4" placeholder="-----BEGIN PRIVATE KEY-----" {}
                    }
                }
                (field_error(err("certificate")))
                div.actions { button type="submit" { "Upload certificate" } }
            }
        }
    };
    Ok(page(
        Frame {
            title: "Settings",
            nav: Nav::Settings,
            csrf,
        },
        body,
    ))
}

/// Longest lifetime a token can be given in the form, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

fn token_row(t: &ApiTokenRecord, csrf: &str, now: SystemTime) -> Markup {
    let scope = match t.scope {
        TokenScope::ReadOnly => "read only",
        TokenScope::Admin => "admin",
    };
    html! {
        tr {
            td { strong { (t.name) } div.small.muted { "created " (timestamp(t.created)) } }
            td.token-scope { (scope) }
            td.token-expires {
                @match t.expires {
                    None => "never",
                    Some(at) if t.expired(now) => { strong { "expired" } " " span.small.muted { (timestamp(at)) } },
                    Some(at) => (timestamp(at)),
                }
            }
            td.right {
                form.inline method="post" action={ "/settings/tokens/" (t.id) "/delete" } {
                    (csrf_field(csrf))
                    button.small.secondary type="submit" { "Revoke" }
                }
            }
        }
    }
}

/// Every problem of a refused form at the top of the page, each linking to its section: the
/// fields themselves may be below the fold.
fn problems(errors: &FieldErrors) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.notice.bad #problems role="alert" {
                strong {
                    "Not saved: "
                    @if errors.len() == 1 { "1 problem" } @else { (errors.len()) " problems" }
                    " to fix."
                }
                ul {
                    @for (field, message) in errors {
                        @let (label, section) = field_place(field);
                        li { a href={ "#" (section) } { (label) } ": " (message) }
                    }
                }
            }
        }
    }
}

/// A settings field's label and the section it is in.
fn field_place(field: &str) -> (&'static str, &'static str) {
    match field {
        "lan_interface" => ("LAN port", "network"),
        "dhcp_mode" => ("DHCP mode", "network"),
        "dhcp_ranges" => ("Address ranges", "network"),
        "reservations" => ("Reservations", "network"),
        "wan.interface" => ("WAN port", "wan"),
        "wan.mode" => ("WAN address mode", "wan"),
        "wan.address" => ("WAN address", "wan"),
        "wan.gateway" => ("WAN gateway", "wan"),
        "wan.dns" => ("WAN name servers", "wan"),
        "dns.enabled" => ("DNS forwarder", "dns"),
        "dns.upstream" => ("Upstream name servers", "dns"),
        "menu_default" => ("Default entry", "menu"),
        "menu_timeout_secs" => ("Timeout", "menu"),
        "substituters" => ("Substituters", "nix"),
        "builders" => ("Builders", "nix"),
        "current" => ("Current password", "password"),
        "password" => ("New password", "password"),
        "token_name" => ("Token name", "tokens"),
        "token_scope" => ("Token scope", "tokens"),
        "token_expires" => ("Token expiry", "tokens"),
        "certificate" => ("Certificate", "certificate"),
        _ => ("Settings", "network"),
    }
}

pub(crate) fn saved(section: &str) -> Response {
    Redirect::to(&format!("/settings?saved={section}")).into_response()
}

pub(crate) async fn failed(
    state: &WebState,
    principal: &Principal,
    view: View,
) -> Result<Response, WebError> {
    let page = render(state, principal, view).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// The `?saved=` flag after a change.
#[derive(Debug, Default, Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// GET /settings
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    axum::extract::Query(q): axum::extract::Query<SavedQuery>,
) -> Result<Response, WebError> {
    let notice = q.saved.map(|section| match section.as_str() {
        // Set up by the daemon in the background (netlink, nftables): it may fail there.
        "wan" => html! { div.notice.ok role="status" { "Saved. The WAN port is set up with it now, without a restart; if that fails, the dashboard says why." } },
        _ => html! { div.notice.ok role="status" { "Saved. The change is in effect now." } },
    });
    Ok(render(
        &state,
        &principal,
        View {
            notice,
            ..View::default()
        },
    )
    .await?
    .into_response())
}

/// The LAN and DHCP form.
#[derive(Debug, Default, Deserialize)]
pub struct NetworkForm {
    #[serde(default)]
    lan_interface: String,
    #[serde(default)]
    dhcp_mode: String,
    #[serde(default)]
    dhcp_ranges: String,
    #[serde(default)]
    reservations: String,
    /// "yes": switch to router mode although another full DHCP server answers.
    #[serde(default)]
    confirm_router: String,
}

/// POST /settings/network
pub async fn network(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<NetworkForm>,
) -> Result<Response, WebError> {
    let mut view = View::default();
    let mut next = state.settings();
    next.lan_interface = form.lan_interface.trim().to_owned();
    match parse_mode(&form.dhcp_mode) {
        Some(m) => next.dhcp_mode = m,
        None => {
            view.errors
                .insert("dhcp_mode", "Choose a DHCP mode.".into());
        }
    }
    match parse_ranges(&form.dhcp_ranges) {
        Ok(r) => next.dhcp_ranges = r,
        Err(e) => {
            view.errors.insert("dhcp_ranges", e);
        }
    }
    match parse_reservations(&form.reservations) {
        Ok(r) => next.reservations = r,
        Err(e) => {
            view.errors.insert("reservations", e);
        }
    }
    if view.errors.is_empty() {
        view.errors = by_field(state.check_settings(next.clone()).await?);
    }
    if view.errors.is_empty()
        && form.confirm_router != "yes"
        && let Some(message) = state.router_conflict(&next)
    {
        view.errors.insert("dhcp_mode", message);
        view.confirm_router = true;
    }
    if !view.errors.is_empty() {
        view.drafts.insert("dhcp_mode", form.dhcp_mode);
        view.drafts.insert("lan_interface", form.lan_interface);
        view.drafts.insert("dhcp_ranges", form.dhcp_ranges);
        view.drafts.insert("reservations", form.reservations);
        return failed(&state, &principal, view).await;
    }
    state.save_settings(next).await?;
    Ok(saved("network"))
}

/// The menu form.
#[derive(Debug, Default, Deserialize)]
pub struct MenuForm {
    #[serde(default)]
    menu_default: String,
    #[serde(default)]
    menu_timeout_secs: String,
}

/// POST /settings/menu
pub async fn menu(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<MenuForm>,
) -> Result<Response, WebError> {
    let mut view = View::default();
    let mut next = state.settings();
    let default = form.menu_default.trim();
    next.menu_default = (!default.is_empty()).then(|| default.to_owned());
    match form.menu_timeout_secs.trim().parse::<u64>() {
        Ok(t) => next.menu_timeout_secs = t,
        Err(_) => {
            view.errors
                .insert("menu_timeout_secs", "Enter a number of seconds.".into());
        }
    }
    for (field, message) in by_field(state.check_settings(next.clone()).await?) {
        view.errors.entry(field).or_insert(message);
    }
    if !view.errors.is_empty() {
        view.drafts
            .insert("menu_timeout_secs", form.menu_timeout_secs);
        return failed(&state, &principal, view).await;
    }
    state.save_settings(next).await?;
    Ok(saved("menu"))
}

/// The Nix form.
#[derive(Debug, Default, Deserialize)]
pub struct NixForm {
    #[serde(default)]
    substituters: String,
    #[serde(default)]
    builders: String,
}

/// POST /settings/nix
pub async fn nix(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<NixForm>,
) -> Result<Response, WebError> {
    let mut next = state.settings();
    next.substituters = lines(&form.substituters);
    next.builders = lines(&form.builders);
    let errors = by_field(state.check_settings(next.clone()).await?);
    if !errors.is_empty() {
        let mut view = View {
            errors,
            ..View::default()
        };
        view.drafts.insert("substituters", form.substituters);
        view.drafts.insert("builders", form.builders);
        return failed(&state, &principal, view).await;
    }
    state.save_settings(next).await?;
    Ok(saved("nix"))
}
