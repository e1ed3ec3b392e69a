//! The Remote access page: remote management over WireGuard through the [`VpnService`] seam.
//! Server mode (settings, the appliance's key, the devices allowed in, with rename and revoke)
//! and hub mode (the appliance dials out). Adding a device and its one-time config page are in
//! [`super::vpn_peers`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::guard::Principal;
use crate::pages::layout::{Frame, Nav, ago, csrf_field, field_error, page};
use crate::pages::vpn_config::human_bytes;
use crate::pages::vpn_form::{FieldErrors, HubForm, ServerForm};
use crate::state::WebState;
use flakeboot_appliance::vpn::{TunnelState, VpnPeerView, VpnService, VpnServiceError, VpnStatus};

/// What pages and the API say when the daemon runs without a VPN service.
pub const NOT_AVAILABLE: &str = "Remote access over WireGuard is not available on this appliance.";

/// What a user sees of an internal failure (the cause goes to the log).
pub const INTERNAL: &str = "Something went wrong on the appliance. The details are in its log.";

/// The fields of each form, to put a service's field error next to the right input.
const SERVER_FIELDS: [&str; 3] = ["listen_port", "address", "endpoint"];
const HUB_FIELDS: [&str; 5] = [
    "endpoint",
    "public_key",
    "allowed_ips",
    "keepalive",
    "address",
];

/// Which form a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// Server-mode settings.
    Server,
    /// Hub-mode settings.
    Hub,
    /// The add-a-device form.
    Add,
    /// The rename form of one device.
    Peer(u64),
}

impl Section {
    fn key(self, field: &str) -> String {
        match self {
            Section::Server => format!("server.{field}"),
            Section::Hub => format!("hub.{field}"),
            Section::Add => format!("add.{field}"),
            Section::Peer(id) => format!("peer.{id}.{field}"),
        }
    }

    fn has_field(self, field: &str) -> bool {
        match self {
            Section::Server => SERVER_FIELDS.contains(&field),
            Section::Hub => HUB_FIELDS.contains(&field),
            Section::Add | Section::Peer(_) => field == "name",
        }
    }
}

/// What a form sends back into the page: errors by `section.field`, what the user typed, and a
/// notice.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) errors: BTreeMap<String, String>,
    pub(crate) server: Option<ServerForm>,
    pub(crate) hub: Option<HubForm>,
    pub(crate) add_name: Option<String>,
    pub(crate) rename: Option<(u64, String)>,
    pub(crate) notice: Option<Markup>,
    /// Saved, but the server or hub tunnel did not come up: this is why.
    pub(crate) server_down: Option<String>,
    pub(crate) hub_down: Option<String>,
}

impl View {
    /// Puts the form's own errors next to its fields.
    pub(crate) fn with_errors(mut self, section: Section, errors: FieldErrors) -> View {
        for (field, message) in errors {
            self.errors.insert(section.key(field), message);
        }
        self
    }

    fn error(&self, section: Section, field: &str) -> Option<&str> {
        self.errors.get(&section.key(field)).map(String::as_str)
    }
}

/// The page frame with `body`.
fn frame(principal: &Principal, body: Markup) -> Markup {
    page(
        Frame {
            title: "Remote access",
            nav: Nav::RemoteAccess,
            csrf: principal.csrf(),
        },
        body,
    )
}

/// The page of an appliance without remote access (404).
pub(crate) fn not_available(principal: &Principal) -> Response {
    let body = html! {
        h1 { "Remote access" }
        div.notice.info role="status" { (NOT_AVAILABLE) " Manage it from its LAN." }
    };
    (StatusCode::NOT_FOUND, frame(principal, body)).into_response()
}

/// The page after a failed VPN call from `section`: a field error next to its field, a tunnel
/// that did not come up as its state, an internal failure logged and shown plainly.
pub(crate) async fn refused(
    vpn: &dyn VpnService,
    principal: &Principal,
    section: Section,
    mut view: View,
    error: VpnServiceError,
) -> Response {
    let status = match error {
        VpnServiceError::Invalid { field, message } => {
            if section.has_field(field) {
                view.errors.insert(section.key(field), message);
            } else {
                view.notice = Some(html! { div.notice.bad role="alert" { (message) } });
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        VpnServiceError::NotFound { what } => {
            view.notice = Some(html! {
                div.notice.bad role="alert" { "Not found: " (what) ". It may have been revoked already." }
            });
            StatusCode::NOT_FOUND
        }
        VpnServiceError::Unavailable { message } => {
            let which = match section {
                Section::Server => {
                    view.server_down = Some(message);
                    Some("server")
                }
                Section::Hub => {
                    view.hub_down = Some(message);
                    Some("hub")
                }
                Section::Add | Section::Peer(_) => {
                    view.notice = Some(html! { div.notice.bad role="alert" { (message) } });
                    None
                }
            };
            match which {
                Some(which) => {
                    view.notice = Some(html! {
                        div.notice.warn role="alert" {
                            "Saved, but the " (which) " tunnel is not up: see its state below."
                        }
                    });
                    StatusCode::OK
                }
                None => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
        e @ VpnServiceError::Internal { .. } => {
            tracing::error!("remote access request failed: {e}");
            view.notice = Some(html! { div.notice.bad role="alert" { (INTERNAL) } });
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    render(vpn, principal, view, status).await
}

/// The whole page with the service's status, `view` laid over it.
pub(crate) async fn render(
    vpn: &dyn VpnService,
    principal: &Principal,
    view: View,
    code: StatusCode,
) -> Response {
    let mut status = match vpn.status().await {
        Ok(s) => s,
        Err(e) => {
            let (code, message) = match e {
                VpnServiceError::Unavailable { message } => {
                    (StatusCode::SERVICE_UNAVAILABLE, message)
                }
                e => {
                    tracing::error!("cannot read the remote access status: {e}");
                    (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL.to_owned())
                }
            };
            let body = html! {
                h1 { "Remote access" }
                div.notice.bad role="alert" { (message) }
            };
            return (code, frame(principal, body)).into_response();
        }
    };
    if let Some(message) = view.server_down.clone() {
        status.server_tunnel = TunnelState::Failed { message };
    }
    if let Some(message) = view.hub_down.clone() {
        status.hub.tunnel = TunnelState::Failed { message };
    }
    let body = body(&status, &view, principal.csrf(), SystemTime::now());
    (code, frame(principal, body)).into_response()
}

fn body(status: &VpnStatus, view: &View, csrf: &str, now: SystemTime) -> Markup {
    html! {
        h1 { "Remote access" }
        p {
            strong { "Server" } " lets your laptop or phone dial in to this appliance over WireGuard "
            "from anywhere; the site's router must forward one UDP port to it."
        }
        p {
            strong { "Hub" } " makes this appliance dial out to a WireGuard server you already run, "
            "for sites where you cannot forward a port."
        }
        nav.jump {
            a href="#server" { "Server" }
            a href="#devices" { "Devices" }
            a href="#hub" { "Hub" }
        }
        @if let Some(n) = &view.notice { (n) }
        (server_card(status, view, csrf))
        (devices_card(status, view, csrf, now))
        (hub_card(status, view, csrf, now))
    }
}

/// A badge and a sentence for a tunnel's state.
fn tunnel_badge(t: &TunnelState) -> Markup {
    match t {
        TunnelState::Off => html! { span.badge { "off" } },
        TunnelState::Up { .. } => html! { span.badge.ok { "up" } },
        TunnelState::Failed { .. } => html! { span.badge.bad { "failed" } },
    }
}

fn tunnel_text(t: &TunnelState) -> Markup {
    match t {
        TunnelState::Off => html! { "Off." },
        TunnelState::Up {
            interface,
            implementation,
        } => html! { "Up on " code { (interface) } " (" (implementation) " WireGuard)." },
        TunnelState::Failed { message } => html! {
            span.state-error { "Not up: " (message) }
        },
    }
}

fn handshake(at: Option<SystemTime>, now: SystemTime) -> String {
    at.map_or_else(|| "never".to_owned(), |t| ago(t, now))
}

fn server_card(status: &VpnStatus, view: &View, csrf: &str) -> Markup {
    let form = view
        .server
        .clone()
        .unwrap_or_else(|| ServerForm::from(&status.server));
    let err = |f: &str| view.error(Section::Server, f);
    html! {
        div.card #server {
            div.titlebar { h2 { "Server" } (tunnel_badge(&status.server_tunnel)) }
            dl.facts.mt {
                dt { "State" }
                dd #server-state { (tunnel_text(&status.server_tunnel)) }
                dt { "Appliance public key" }
                dd { code.anywhere #server-public-key { (status.server_public_key) } }
            }
            form.stack.mt method="post" action="/vpn/server" {
                (csrf_field(csrf))
                label.check {
                    input #server_enabled type="checkbox" name="enabled" value="on" checked[form.enabled.is_some()];
                    "Listen for devices"
                }
                div.row.aligned {
                    div {
                        label for="server_listen_port" { "UDP port" span.hint { "Forward this port on the site's router to the appliance." } }
                        input #server_listen_port type="number" min="1" max="65535" name="listen_port" value=(form.listen_port);
                        (field_error(err("listen_port")))
                    }
                    div {
                        label for="server_address" { "Tunnel address" span.hint { "The appliance's address in the tunnel, with prefix; devices get the next free ones." } }
                        input #server_address type="text" name="address" value=(form.address) placeholder="10.78.0.1/24";
                        (field_error(err("address")))
                    }
                }
                div {
                    label for="server_endpoint" { "Public endpoint" span.hint {
                        "What devices dial from outside: the site's public name or address, and the port if the router forwards another one. Written into each device's config; leave it empty to fill it in on the device."
                    } }
                    input #server_endpoint type="text" name="endpoint" value=(form.endpoint) placeholder="office.example.net:51820";
                    (field_error(err("endpoint")))
                }
                div.actions { button type="submit" { "Save server settings" } }
            }
        }
    }
}

fn devices_card(status: &VpnStatus, view: &View, csrf: &str, now: SystemTime) -> Markup {
    let add_name = view.add_name.clone().unwrap_or_default();
    html! {
        div.card #devices {
            h2 { "Devices" }
            p.small.muted {
                "Each device gets its own key pair, made on the appliance. "
                strong { "Revoke cuts a device off at once" } ": its tunnel stops working and its config cannot be used again."
            }
            @let no_endpoint = status.server.endpoint.trim().is_empty();
            @if !status.server.enabled {
                p.small.warn-text { "Server mode is off: devices can connect once you tick “Listen for devices” above." }
            }
            @if no_endpoint {
                p.small.warn-text #no-endpoint { "Set the public endpoint above (the host and port devices dial) before adding a device: its config is shown only once, and without an endpoint it cannot connect." }
            }
            @if status.peers.is_empty() {
                p.empty { "No device yet." }
            } @else {
                div.table-wrap { table.responsive.peers {
                    thead { tr {
                        th { "Device" } th { "Tunnel address" } th { "Last handshake" } th { "Received / sent" } th {}
                    } }
                    tbody {
                        @for p in &status.peers { (peer_row(p, view, csrf, now)) }
                    }
                } }
            }
            form.stack.mt method="post" action="/vpn/peers" {
                (csrf_field(csrf))
                div {
                    label for="peer_name" { "Add a device" span.hint {
                        "A name you will recognise, like alice-laptop. The next page shows its config once: a QR code for the WireGuard app on a phone, and a file for a computer."
                    } }
                    input #peer_name type="text" name="name" value=(add_name) placeholder="alice-laptop" maxlength="64";
                    (field_error(view.error(Section::Add, "name")))
                }
                div.actions { button type="submit" { "Add device" } }
            }
        }
    }
}

fn peer_row(p: &VpnPeerView, view: &View, csrf: &str, now: SystemTime) -> Markup {
    let error = view.error(Section::Peer(p.id), "name");
    let draft = match &view.rename {
        Some((id, name)) if *id == p.id => name.clone(),
        _ => p.name.clone(),
    };
    html! {
        tr #{ "peer-" (p.id) } {
            td.wide {
                strong { (p.name) }
                div.small.muted.anywhere { (p.public_key) }
            }
            td.nowrap { span.phone-only { "Address " } code { (p.address) } }
            td.nowrap { span.phone-only { "Handshake " } (handshake(p.last_handshake, now)) }
            td.nowrap { "↓ " (human_bytes(p.rx_bytes)) " · ↑ " (human_bytes(p.tx_bytes)) }
            td.wide.peer-actions {
                details.rename open[error.is_some()] {
                    summary { "Rename" }
                    form.rename method="post" action={ "/vpn/peers/" (p.id) "/rename" } {
                        (csrf_field(csrf))
                        input type="text" name="name" value=(draft) aria-label={ "New name for " (p.name) } maxlength="64";
                        button.small type="submit" { "Save" }
                    }
                    (field_error(error))
                }
                form.inline method="post" action={ "/vpn/peers/" (p.id) "/revoke" } {
                    (csrf_field(csrf))
                    button.small.danger type="submit" title="Cuts this device off at once" { "Revoke" }
                }
            }
        }
    }
}

fn hub_card(status: &VpnStatus, view: &View, csrf: &str, now: SystemTime) -> Markup {
    let hub = &status.hub;
    let form = view
        .hub
        .clone()
        .unwrap_or_else(|| HubForm::from(&hub.settings));
    let err = |f: &str| view.error(Section::Hub, f);
    html! {
        div.card #hub {
            div.titlebar { h2 { "Hub" } (tunnel_badge(&hub.tunnel)) }
            dl.facts.mt {
                dt { "State" }
                dd #hub-state { (tunnel_text(&hub.tunnel)) }
                dt { "This appliance's key" }
                dd {
                    @if hub.public_key.is_empty() { span.muted { "made when you first save the hub settings" } }
                    @else { code.anywhere #hub-public-key { (hub.public_key) } }
                    div.small.muted { "Add it as a peer on your hub, allowed the tunnel address below." }
                }
                dt { "Last handshake" }
                dd { (handshake(hub.last_handshake, now)) }
                dt { "Traffic" }
                dd { "↓ " (human_bytes(hub.rx_bytes)) " received · ↑ " (human_bytes(hub.tx_bytes)) " sent" }
            }
            form.stack.mt method="post" action="/vpn/hub" {
                (csrf_field(csrf))
                label.check {
                    input #hub_enabled type="checkbox" name="enabled" value="on" checked[form.enabled.is_some()];
                    "Dial the hub"
                }
                div.row.aligned {
                    div {
                        label for="hub_endpoint" { "Hub endpoint" span.hint { "Your WireGuard server's host and port." } }
                        input #hub_endpoint type="text" name="endpoint" value=(form.endpoint) placeholder="hub.example.net:51820";
                        (field_error(err("endpoint")))
                    }
                    div {
                        label for="hub_public_key" { "Hub public key" span.hint { "As " code { "wg show" } " prints it on the hub." } }
                        input #hub_public_key type="text" name="public_key" value=(form.public_key) autocomplete="off" spellcheck="false";
                        (field_error(err("public_key")))
                    }
                }
                div.row.aligned {
                    div {
                        label for="hub_address" { "Tunnel address" span.hint { "This appliance's address in the hub's network, with prefix." } }
                        input #hub_address type="text" name="address" value=(form.address) placeholder="10.99.0.5/24";
                        (field_error(err("address")))
                    }
                    div {
                        label for="hub_allowed_ips" { "Allowed IPs" span.hint { "What is reached through the hub; separate several with commas." } }
                        input #hub_allowed_ips type="text" name="allowed_ips" value=(form.allowed_ips) placeholder="10.99.0.0/24";
                        (field_error(err("allowed_ips")))
                    }
                    div {
                        label for="hub_keepalive" { "Keepalive (seconds)" span.hint { "25 keeps the site's NAT open; 0 turns it off." } }
                        input #hub_keepalive type="number" min="0" max="65535" name="keepalive" value=(form.keepalive);
                        (field_error(err("keepalive")))
                    }
                }
                div.actions { button type="submit" { "Save hub settings" } }
            }
        }
    }
}

/// The `?saved=` flag after a change.
#[derive(Debug, Default, Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub(crate) fn saved(what: &str) -> Response {
    Redirect::to(&format!("/vpn?saved={what}")).into_response()
}

/// GET /vpn
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<SavedQuery>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    let notice = q.saved.map(|what| {
        let text = match what.as_str() {
            "server" => "Server settings saved and applied.",
            "hub" => "Hub settings saved and applied.",
            "renamed" => "Device renamed.",
            "revoked" => "Device revoked: it was cut off at once.",
            _ => "Saved.",
        };
        html! { div.notice.ok role="status" { (text) } }
    });
    let view = View {
        notice,
        ..View::default()
    };
    render(vpn, &principal, view, StatusCode::OK).await
}

/// The answer to the server or hub settings form (`section`): its settings as `parse`d, applied
/// with `apply`, then back to the page with "saved"; or the page again with the form as typed
/// (`keep` puts it in the view) and the errors next to its fields.
async fn save_settings<F, S, Fut>(
    vpn: &dyn VpnService,
    principal: &Principal,
    section: Section,
    form: F,
    parsed: Result<S, FieldErrors>,
    apply: impl FnOnce(S) -> Fut,
    keep: fn(F) -> View,
) -> Response
where
    Fut: Future<Output = Result<(), VpnServiceError>>,
{
    let settings = match parsed {
        Ok(s) => s,
        Err(errors) => {
            let view = keep(form).with_errors(section, errors);
            return render(vpn, principal, view, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    match apply(settings).await {
        Ok(()) => saved(if section == Section::Hub {
            "hub"
        } else {
            "server"
        }),
        Err(e) => {
            let view = match e {
                VpnServiceError::Invalid { .. } => keep(form),
                _ => View::default(),
            };
            refused(vpn, principal, section, view, e).await
        }
    }
}

/// POST /vpn/server
pub async fn server(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<ServerForm>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    let parsed = form.parse();
    let keep = |form| View {
        server: Some(form),
        ..View::default()
    };
    let apply = |s| vpn.set_server(s);
    save_settings(vpn, &principal, Section::Server, form, parsed, apply, keep).await
}

/// POST /vpn/hub
pub async fn hub(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<HubForm>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    let parsed = form.parse();
    let keep = |form| View {
        hub: Some(form),
        ..View::default()
    };
    let apply = |s| vpn.set_hub(s);
    save_settings(vpn, &principal, Section::Hub, form, parsed, apply, keep).await
}
