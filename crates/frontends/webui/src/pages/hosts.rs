//! Hosts: every host a machine can boot (the config file's `[[hosts]]` and every flake's
//! `nixosConfigurations`), with where it comes from, the generation machines get now and the
//! machines assigned to it; a flake host that cannot netboot is listed with the lines that make
//! it bootable. `GET /api/v1/hosts` sends the same list.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flakeboot_catalogue::MacAddr;
use maud::html;
use serde::Serialize;

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, page};
use crate::state::WebState;

/// What a flake host needs to netboot: flakeboot's NixOS module (nixos/README.md).
pub const MODULE_LINES: &str = "# flake.nix, inputs:\n\
flakeboot.url = \"github:flakeboot/flakeboot?dir=nixos\";\n\
# in nixosConfigurations.<host> = nixpkgs.lib.nixosSystem { ... }:\n\
modules = [ flakeboot.nixosModules.default ./configuration.nix ];";

/// How many machines a host's entry names (the rest are counted).
const MACHINES_NAMED: usize = 12;

/// One host.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// The name machines are assigned by (`demo`, `fleet#web1`).
    pub name: String,
    /// `config` (the config file) or `flake`.
    pub source: &'static str,
    /// The flake's name and URL, for a flake host.
    pub flake: Option<String>,
    /// The flake's URL.
    pub url: Option<String>,
    /// The generation machines boot now (the pinned one after a rollback, else the newest);
    /// `None` for config hosts and flake hosts never built.
    pub generation: Option<u32>,
    /// A rollback pins it.
    pub pinned: bool,
    /// Why it cannot netboot (a flake host without flakeboot's module), else `None`.
    pub unbootable: Option<String>,
    /// The machines that boot it now, by MAC.
    pub machines: Vec<MacAddr>,
}

/// Every host with its machines.
pub(crate) async fn hosts(state: &WebState) -> Result<Vec<HostView>, WebError> {
    let ctx = state.overview_context();
    let machines = state.db(|s| s.machines()).await?;
    let mut by_host: BTreeMap<String, Vec<MacAddr>> = BTreeMap::new();
    for m in &machines {
        if let (Some(host), _) = ctx.host_of(m) {
            by_host.entry(host).or_default().push(m.mac);
        }
    }
    let mut out: Vec<HostView> = state
        .config()
        .static_hosts
        .iter()
        .map(|name| HostView {
            name: name.clone(),
            source: "config",
            flake: None,
            url: None,
            generation: None,
            pinned: false,
            unbootable: None,
            machines: by_host.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let flakes = state
        .flake(|f| {
            let mut out = Vec::new();
            for flake in f.flakes()? {
                for host in &flake.hosts {
                    let qualified = format!("{}#{}", flake.name, host.name);
                    let pinned = f.pinned(&qualified)?;
                    let current = flakeboot_store::current_of(pinned, &f.generations(&qualified)?)
                        .map(|g| g.number);
                    out.push((flake.clone(), host.clone(), qualified, current, pinned));
                }
            }
            Ok(out)
        })
        .await?;
    for (flake, host, qualified, current, pinned) in flakes {
        out.push(HostView {
            machines: by_host.get(&qualified).cloned().unwrap_or_default(),
            name: qualified,
            source: "flake",
            flake: Some(flake.name),
            url: Some(flake.url),
            generation: current,
            pinned: pinned.is_some(),
            unbootable: host.unbootable,
        });
    }
    Ok(out)
}

/// GET /hosts
pub async fn list(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    let hosts = hosts(&state).await?;
    let labels: BTreeMap<MacAddr, String> = state
        .db(|s| s.machines())
        .await?
        .into_iter()
        .filter_map(|m| Some((m.mac, m.label?)))
        .collect();
    let body = html! {
        h1 { "Hosts" }
        @if hosts.is_empty() {
            div.card {
                p.empty { "No host yet. " a href="/flakes" { "Add a flake" } " whose NixOS hosts import flakeboot's module, or add a [[hosts]] entry to the config file." }
            }
        }
        @for h in &hosts {
            div.card.host id=(h.name.replace('#', "-")) {
                div.actions {
                    h2 { code { (h.name) } }
                    @match h.source {
                        "config" => span.badge { "config file" },
                        _ => span.badge { "flake" },
                    }
                    @if h.unbootable.is_some() { span.badge.warn { "cannot netboot" } }
                }
                dl.facts {
                    @if let (Some(flake), Some(url)) = (&h.flake, &h.url) {
                        dt { "Flake" } dd { a href={ "/flakes/" (flake) } { (flake) } " " span.mono.small.muted { (url) } }
                        dt { "Generation" } dd {
                            @match h.generation {
                                Some(n) => { "generation " (n) @if h.pinned { " " span.badge.warn { "rolled back" } } }
                                None => span.muted { "not built yet" },
                            }
                        }
                    } @else {
                        dt { "Source" } dd { "the config file's [[hosts]] (fixed kernel and initrd)" }
                    }
                    dt { "Machines" } dd {
                        @if h.machines.is_empty() {
                            span.muted { "none assigned: assign one on its machine page" }
                        } @else {
                            (h.machines.len()) ": "
                            @for (i, mac) in h.machines.iter().take(MACHINES_NAMED).enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/machines/" (mac) } { (labels.get(mac).cloned().unwrap_or_else(|| mac.to_string())) }
                            }
                            @if h.machines.len() > MACHINES_NAMED {
                                " … " a href={ "/machines?q=" (h.name.replace('#', "%23")) } { "all " (h.machines.len()) }
                            }
                        }
                    }
                }
                @if let Some(why) = &h.unbootable {
                    p.small { "It cannot netboot: " (why) }
                    p.small { "Import flakeboot's NixOS module in this host (nixos/README.md), commit, and update the flake:" }
                    pre.snippet { (MODULE_LINES) }
                }
            }
        }
    };
    Ok(page(
        Frame {
            title: "Hosts",
            nav: Nav::Hosts,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}
