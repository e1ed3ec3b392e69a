//! The dashboard: services and their state, warnings, builds in progress, recent boots.

use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use flakeboot_catalogue::{BootEvent, MacAddr, Outcome};
use flakeboot_store::{BuildRecord, BuildState};
use maud::{Markup, html};

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, ago, page, timestamp};
use crate::pages::timeline;
use crate::pages::vpn_config::human_bytes as human;
use crate::state::WebState;
use flakeboot_appliance::attempts::{Attempt, BootState, Verdict, attempts};
use flakeboot_appliance::status::ServiceState;
use flakeboot_appliance::wire;

/// How many recent boot events the dashboard reads.
const RECENT_EVENTS: usize = 400;
/// How many boots it lists.
const RECENT_BOOTS: usize = 8;

/// The newest boot attempts of all machines with their verdicts `now`, newest first, and how
/// many machines are up (their newest boot among the recent events reported up).
fn recent_boots(
    events: &[BootEvent],
    now: SystemTime,
    report_timeout: Duration,
) -> (Vec<(MacAddr, Attempt, Verdict)>, usize) {
    let mut by_mac: BTreeMap<MacAddr, Vec<BootEvent>> = BTreeMap::new();
    for e in events {
        if let Some(mac) = e.mac {
            by_mac.entry(mac).or_default().push(e.clone());
        }
    }
    let per_machine: Vec<(MacAddr, Vec<Attempt>)> = by_mac
        .iter()
        .map(|(mac, evs)| (*mac, attempts(evs)))
        .collect();
    let up = per_machine
        .iter()
        .filter(|(_, list)| Verdict::last(list, now, report_timeout).state == BootState::Up)
        .count();
    let mut boots: Vec<(MacAddr, Attempt, Verdict)> = per_machine
        .into_iter()
        .flat_map(|(mac, list)| {
            let verdicts = Verdict::all(&list, now, report_timeout);
            list.into_iter()
                .zip(verdicts)
                .map(move |(a, v)| (mac, a, v))
        })
        .collect();
    boots.sort_by_key(|(_, a, _)| std::cmp::Reverse(a.started));
    boots.truncate(RECENT_BOOTS);
    (boots, up)
}

/// A boot event's outcome as a badge.
pub fn outcome_badge(outcome: Outcome) -> Markup {
    match outcome {
        Outcome::Ok => html! { span.badge.ok { "ok" } },
        Outcome::Declined => html! { span.badge.warn { "declined" } },
        Outcome::Failed => html! { span.badge.bad { "failed" } },
    }
}

/// A build's state as a badge class and word.
pub fn build_badge(state: BuildState) -> (&'static str, &'static str) {
    match state {
        BuildState::Queued => ("badge", "queued"),
        BuildState::Running => ("badge run", "building"),
        BuildState::Succeeded => ("badge ok", "succeeded"),
        BuildState::Failed => ("badge bad", "failed"),
        BuildState::Cancelled => ("badge warn", "cancelled"),
        BuildState::TimedOut => ("badge bad", "timed out"),
    }
}

fn service_badge(state: ServiceState) -> Markup {
    let class = match state {
        ServiceState::Running => "badge ok",
        ServiceState::Disabled => "badge",
        ServiceState::Starting => "badge run",
        ServiceState::Failed => "badge bad",
    };
    html! { span class=(class) { (state.as_str()) } }
}

/// Warnings the UI finds itself, beside the daemon's.
fn own_warnings(state: &WebState, builds: &[BuildRecord]) -> Vec<String> {
    let mut out = Vec::new();
    if state.assignable_hosts().is_empty() {
        out.push(
            "There is nothing to boot yet: add a flake on the Flakes page, and machines get a menu of its hosts."
                .to_owned(),
        );
    }
    if let Some(b) = builds
        .iter()
        .rev()
        .find(|b| matches!(b.state, BuildState::Failed | BuildState::TimedOut))
    {
        let newer_ok = builds.iter().any(|o| {
            o.id > b.id
                && o.flake == b.flake
                && o.host == b.host
                && o.state == BuildState::Succeeded
        });
        if !newer_ok {
            out.push(format!(
                "The last build of {}#{} failed: machines keep booting its previous generation.",
                b.flake, b.host
            ));
        }
    }
    out
}

/// GET /
/// The nix store's disk: free space, `[nix] min_free`, the last garbage collection.
fn disk_card(disk: &wire::Storage) -> Markup {
    let low = matches!((disk.free_bytes, disk.min_free_bytes), (Some(f), Some(m)) if f < m);
    html! {
        div.card #disk {
            h2 { "Disk" }
            @match (disk.free_bytes, disk.total_bytes) {
                (Some(free), Some(total)) => {
                    p { strong { (human(free)) } " free of " (human(total)) " for the nix store"
                        @if low { " " span.badge.bad { "below min_free" } } }
                    progress.bar max=(total) value=(total.saturating_sub(free)) {}
                }
                _ => { p.muted { "The nix store's disk cannot be measured." } }
            }
            @if let Some(min) = disk.min_free_bytes {
                p.small.muted { "Builds are refused below " (human(min)) " free ([nix] min_free)." }
            }
            @match &disk.last_gc {
                Some(gc) => p.small { "Last garbage collection (" (gc.reason) "): freed "
                    (human(gc.freed_bytes)) ", " (gc.paths) " store paths." },
                None if disk.gc => p.small.muted { "Garbage is collected after each build and daily ([nix] gc)." },
                None => p.small.muted { "Garbage collection is off ([nix] gc = false)." },
            }
        }
    }
}

pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    let status = state.status();
    let events = state.db(|s| s.recent_events(RECENT_EVENTS)).await?;
    let now = SystemTime::now();
    let (boots, machines_up) = recent_boots(&events, now, state.report_timeout());
    let machines = state.db(|s| s.machines()).await?;
    let builds = state.flake(|f| f.builds()).await?;
    let storage = state.flake(|f| Ok(f.storage())).await?;
    let active: Vec<&BuildRecord> = builds.iter().filter(|b| b.state.is_active()).collect();
    let mut warnings = status.warnings.clone();
    warnings.extend(own_warnings(&state, &builds));
    let development = state.firmware().ok().and_then(|f| f.development());
    // In the development mode: the root file system's type.
    let development_mode = state
        .firmware()
        .ok()
        .filter(|f| f.development_mode())
        .map(|f| f.root_fs());
    let settings = state.settings();
    let label_of = |mac| {
        machines
            .iter()
            .find(|m| m.mac == mac)
            .and_then(|m| m.label.clone())
    };

    let body = html! {
        h1 { "Dashboard" }
        @if let Some(dev) = &development {
            div.notice.warn role="alert" #development { (dev) " " a href="/firmware" { "Firmware" } }
        }
        @if let Some(root_fs) = &development_mode {
            (crate::pages::firmware::development_mode_notice(root_fs.as_deref()))
        }
        @for w in &warnings { div.notice.warn role="alert" { (w) } }
        div.grid {
            div.card {
                h2 { "Services" }
                p.small.muted { "DHCP mode: " strong { (settings.dhcp_mode.as_str()) }
                    @if !settings.lan_interface.is_empty() { " · LAN port " code { (settings.lan_interface) } } }
                @if status.services.is_empty() {
                    p.empty { "The daemon has not reported its services yet." }
                } @else {
                    div.table-wrap { table {
                        tbody {
                            @for s in &status.services {
                                tr {
                                    td { strong { (s.name) } div.muted.small { (s.detail) } }
                                    td.right { (service_badge(s.state)) }
                                }
                            }
                        }
                    } }
                }
            }
            div.card {
                h2 { "Builds in progress" }
                @if active.is_empty() {
                    p.empty { "No build is running." }
                } @else {
                    @for b in &active {
                        @let (class, word) = build_badge(b.state);
                        @let progress = state.flakes().progress(b.id).unwrap_or_default();
                        div.entry {
                            div.actions {
                                a href={ "/builds/" (b.id) } { (b.flake) "#" (b.host) }
                                span class=(class) { (word) }
                            }
                            @if progress.total > 0 {
                                progress.bar.mt-s max=(progress.total) value=(progress.done) {}
                                div.small.muted { (progress.done) " of " (progress.total) " built" }
                            }
                        }
                    }
                }
                p.small { a href="/flakes" { "All flakes and builds →" } }
            }
            div.card {
                h2 { "Machines" }
                p { strong { (machines.len()) } @if machines.len() == 1 { " machine seen, " } @else { " machines seen, " }
                    strong { (machines.iter().filter(|m| m.host.is_some()).count()) } " assigned to a host." }
                p { strong #machines-up { (machines_up) } " up" span.muted.small { " (their last boot reported up)" } }
                p.small { a href="/machines" { "All machines →" } }
            }
            @if let Some(disk) = &storage { (disk_card(disk)) }
        }
        div.card {
            h2 { "Recent boots" }
            @if boots.is_empty() {
                p.empty { "No machine has booted yet. Power on a machine set to network boot (PXE) on this LAN: its boot appears here, step by step." }
            } @else {
                div.table-wrap {
                    table.responsive {
                        thead { tr { th { "When" } th { "Machine" } th { "Firmware" } th { "Result" } th { "Where it got" } } }
                        tbody {
                            @for (mac, a, v) in &boots {
                                tr {
                                    td.nowrap data-label="When" title=(timestamp(a.started)) { (ago(a.started, now)) }
                                    td data-label="Machine" {
                                        a href={ "/machines/" (mac) "#timeline" } {
                                            (label_of(*mac).unwrap_or_else(|| mac.to_string()))
                                        }
                                    }
                                    td.small data-label="Firmware" { (a.firmware.map_or("unknown", |f| f.as_str())) }
                                    td data-label="Result" { (timeline::badge(v)) }
                                    td.small.wide data-label="Where it got" { (v.detail) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        Frame {
            title: "Dashboard",
            nav: Nav::Dashboard,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}
