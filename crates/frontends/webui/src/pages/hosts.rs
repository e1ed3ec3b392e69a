//! Hosts: every host a machine can boot (the config file's `[[hosts]]` and every flake's
//! `nixosConfigurations`), with where it comes from, the generation machines get now and the
//! machines assigned to it, with each generation's pre-flight: the current one's, and a newer
//! one's that is not current (queued, running, or failed: machines keep the current one); a
//! flake host that cannot netboot is listed with the lines that make it bootable.
//! `GET /api/v1/hosts` sends the same list.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::wire::Preflight;
use flakeboot_catalogue::MacAddr;
use flakeboot_store::{GenerationRecord, PreflightState};
use maud::{Markup, html};
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
    /// The current generation's pre-flight.
    pub preflight: Option<Preflight>,
    /// The newest generation, when it is not the current one: its pre-flight is queued, running
    /// or failed (or a rollback pinned an older one).
    pub newest: Option<NewestView>,
    /// Why it cannot netboot (a flake host without flakeboot's module), else `None`.
    pub unbootable: Option<String>,
    /// The machines that boot it now, by MAC.
    pub machines: Vec<MacAddr>,
}

/// A host's newest generation that machines do not boot.
#[derive(Debug, Clone, Serialize)]
pub struct NewestView {
    pub number: u32,
    pub preflight: Preflight,
}

/// The current generation's number and pre-flight, and the newest when it is another (pure).
fn generation_views(
    pinned: Option<u32>,
    gens: &[GenerationRecord],
    now: std::time::SystemTime,
) -> (Option<u32>, Option<Preflight>, Option<NewestView>) {
    let current = flakeboot_store::current_of(pinned, gens);
    let newest = gens
        .iter()
        .max_by_key(|g| g.number)
        .filter(|g| current.is_none_or(|c| c.number != g.number))
        .map(|g| NewestView {
            number: g.number,
            preflight: Preflight::from_record(g.preflight.clone(), now),
        });
    (
        current.map(|g| g.number),
        current.map(|g| Preflight::from_record(g.preflight.clone(), now)),
        newest,
    )
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
            preflight: None,
            newest: None,
            unbootable: None,
            machines: by_host.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let flakes = state
        .flake(|f| {
            let now = std::time::SystemTime::now();
            let mut out = Vec::new();
            for flake in f.flakes()? {
                for host in &flake.hosts {
                    let qualified = format!("{}#{}", flake.name, host.name);
                    let pinned = f.pinned(&qualified)?;
                    let views = generation_views(pinned, &f.generations(&qualified)?, now);
                    out.push((flake.clone(), host.clone(), qualified, views, pinned));
                }
            }
            Ok(out)
        })
        .await?;
    for (flake, host, qualified, (current, preflight, newest), pinned) in flakes {
        out.push(HostView {
            machines: by_host.get(&qualified).cloned().unwrap_or_default(),
            name: qualified,
            source: "flake",
            flake: Some(flake.name),
            url: Some(flake.url),
            generation: current,
            pinned: pinned.is_some(),
            preflight,
            newest,
            unbootable: host.unbootable,
        });
    }
    Ok(out)
}

/// "pre-flight passed", coloured by state.
fn preflight_badge(pf: &Preflight) -> Markup {
    let class = match pf.state {
        PreflightState::Passed => "badge ok",
        PreflightState::Failed => "badge bad",
        PreflightState::Queued => "badge warn",
        PreflightState::Running => "badge run",
        PreflightState::Skipped => "badge",
    };
    html! { span class=(class) title=(pf.summary()) { "pre-flight " (pf.state.as_str()) } }
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
                                Some(n) => {
                                    "generation " (n) @if h.pinned { " " span.badge.warn { "rolled back" } }
                                    @if let Some(pf) = &h.preflight { " " (preflight_badge(pf)) }
                                }
                                None => span.muted { "not built yet" },
                            }
                        }
                        @if let Some(newest) = &h.newest {
                            dt { "Newest" } dd.newest data-preflight=(newest.preflight.state.as_str()) {
                                "generation " (newest.number) " " (preflight_badge(&newest.preflight))
                                @if let Some(why) = &newest.preflight.reason { " " span.small { (why) } }
                                @match (newest.preflight.state, h.generation) {
                                    (PreflightState::Failed, Some(n)) => { " " span.small { "— machines keep generation " (n) "." } }
                                    (PreflightState::Failed, None) => { " " span.small { "— no generation to boot yet." } }
                                    _ => {}
                                }
                                " " a.small href={ "/flakes/" (h.flake.as_deref().unwrap_or_default()) "#" (crate::pages::generations::anchor(&h.name)) } { "all generations" }
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
