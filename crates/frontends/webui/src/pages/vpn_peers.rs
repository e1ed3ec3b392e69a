//! Devices of server mode: add one (its config page, the only time its private key exists),
//! rename, revoke.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::{Extension, Form};
use maud::{Markup, html};

use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::pages::layout::{Frame, Nav, page};
use crate::pages::vpn::{Section, View, not_available, refused, saved};
use crate::pages::vpn_config::{config_file_name, data_url, qr_svg};
use crate::pages::vpn_form::NameForm;
use crate::state::WebState;
use flakeboot_appliance::vpn::NewPeer;

/// POST /vpn/peers: adds a device and shows its config, once.
pub async fn add(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<NameForm>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    match vpn.add_peer(form.name.trim()).await {
        Ok(new) => {
            tracing::info!(id = new.peer.id, name = %escape_for_log(&new.peer.name), "remote access: device added");
            let markup = page(
                Frame {
                    title: "Device added",
                    nav: Nav::RemoteAccess,
                    csrf: principal.csrf(),
                },
                config_body(&new),
            );
            let name = new.peer.name.clone();
            crate::audit::noted(
                (
                    StatusCode::OK,
                    [(header::CACHE_CONTROL, "no-store")],
                    markup,
                ),
                name,
            )
        }
        Err(e) => {
            let view = View {
                add_name: Some(form.name),
                ..View::default()
            };
            refused(vpn, &principal, Section::Add, view, e).await
        }
    }
}

/// The one-time config page: QR code, the text, a download.
fn config_body(new: &NewPeer) -> Markup {
    let file = config_file_name(&new.peer.name, new.peer.id);
    let stem = file.trim_end_matches(".conf");
    html! {
        h1 { "Device “" (new.peer.name) "” added" }
        div.notice.warn role="alert" {
            strong { "This is the only time this config is shown." }
            " It holds the device's private key, which the appliance does not keep: scan it or "
            "download it now. If it is lost, revoke the device and add it again."
        }
        div.grid.config-grid {
            div.card #qr {
                h2 { "On a phone: scan it" }
                p.small.muted { "In the WireGuard app: + → Scan from QR code." }
                @match qr_svg(&new.config) {
                    Some(svg) => div.qr { (maud::PreEscaped(svg)) },
                    None => p.notice.warn { "This config is too long for a QR code: use the file." },
                }
            }
            div.card #config {
                h2 { "On a computer: use the file" }
                p.small.muted {
                    "Import it in the WireGuard app, or on Linux run "
                    code.nowrap { "sudo wg-quick up ./" (file) } ". The tunnel is called "
                    code { (stem) } "."
                }
                div.actions {
                    a.button #download href=(data_url(&new.config)) download=(file) { "Download " (file) }
                }
                pre.config #config-text { (new.config) }
            }
        }
        div.card {
            dl.facts {
                dt { "Tunnel address" }
                dd { code { (new.peer.address) } }
                dt { "Device public key" }
                dd { code.anywhere { (new.peer.public_key) } }
            }
        }
        div.actions { a.button.secondary href="/vpn" { "Done" } }
    }
}

/// POST /vpn/peers/{id}/rename
pub async fn rename(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<u64>,
    Form(form): Form<NameForm>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    match vpn.rename_peer(id, form.name.trim()).await {
        Ok(()) => saved("renamed"),
        Err(e) => {
            let view = View {
                rename: Some((id, form.name)),
                ..View::default()
            };
            refused(vpn, &principal, Section::Peer(id), view, e).await
        }
    }
}

/// POST /vpn/peers/{id}/revoke: the device is cut off at once.
pub async fn revoke(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<u64>,
) -> Response {
    let Some(vpn) = state.vpn() else {
        return not_available(&principal);
    };
    match vpn.revoke_peer(id).await {
        Ok(()) => {
            tracing::info!(id, "remote access: device revoked");
            saved("revoked")
        }
        Err(e) => refused(vpn, &principal, Section::Peer(id), View::default(), e).await,
    }
}
