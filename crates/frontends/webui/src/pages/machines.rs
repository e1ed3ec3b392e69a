//! Machines: every machine seen, and one machine's page (assignment, label, boot options, boot
//! timeline).

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use flakeboot_catalogue::{BootEvent, MacAddr};
use flakeboot_store::{MachineOptions, MachineRecord};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, ago, csrf_field, field_error, page, timestamp};
use crate::pages::timeline;
use crate::state::WebState;

/// How many events a machine page reads for its timeline.
const EVENTS_PER_MACHINE: usize = 200;

/// A change to one machine (form or API). `None` leaves a field as it is.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct MachineUpdate {
    /// A host to boot; the empty string means the boot menu.
    pub host: Option<String>,
    /// A name for the machine; empty removes it.
    pub label: Option<String>,
    /// The host name it is given; empty removes it.
    pub hostname: Option<String>,
    /// Extra kernel parameters; empty removes them.
    pub kernel_params: Option<String>,
}

/// Field errors of a [`MachineUpdate`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct MachineErrors {
    /// Unknown host.
    pub host: Option<String>,
    /// Bad label.
    pub label: Option<String>,
    /// Bad host name.
    pub hostname: Option<String>,
    /// Bad kernel parameters.
    pub kernel_params: Option<String>,
}

impl MachineErrors {
    fn any(&self) -> bool {
        self.host.is_some()
            || self.label.is_some()
            || self.hostname.is_some()
            || self.kernel_params.is_some()
    }
}

/// A host name as DHCP and Linux accept it (RFC 1123 labels, dots allowed).
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks an update; `Ok` when it may be applied.
pub(crate) fn validate(state: &WebState, update: &MachineUpdate) -> Result<(), MachineErrors> {
    let mut errors = MachineErrors::default();
    if let Some(host) = update.host.as_deref().filter(|h| !h.is_empty())
        && !state.assignable_hosts().iter().any(|h| h == host)
    {
        errors.host = Some(format!("There is no host named “{host}”."));
    }
    if let Some(label) = &update.label
        && (label.chars().count() > 64 || label.chars().any(char::is_control))
    {
        errors.label = Some("Use at most 64 characters, on one line.".into());
    }
    if let Some(h) = update
        .hostname
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        && !valid_hostname(h)
    {
        errors.hostname = Some("Use letters, digits, '-' and '.', like “rack3-node1”.".into());
    }
    if let Some(p) = &update.kernel_params
        && (p.len() > 1024 || p.chars().any(|c| !(c == ' ' || c.is_ascii_graphic())))
    {
        errors.kernel_params =
            Some("Use printable ASCII on one line (at most 1024 characters).".into());
    }
    if errors.any() { Err(errors) } else { Ok(()) }
}

fn none_if_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Applies a validated update to the store and tells the daemon.
pub(crate) async fn apply(
    state: &WebState,
    mac: MacAddr,
    update: MachineUpdate,
) -> Result<(), WebError> {
    state
        .db(move |s| {
            if let Some(host) = &update.host {
                s.set_machine_host(mac, none_if_empty(host))?;
            }
            if let Some(label) = &update.label {
                s.set_machine_label(mac, none_if_empty(label))?;
            }
            if update.hostname.is_some() || update.kernel_params.is_some() {
                let mut options = s.machine_options(mac)?;
                if let Some(h) = &update.hostname {
                    options.hostname = none_if_empty(h);
                }
                if let Some(p) = &update.kernel_params {
                    options.kernel_params = p.trim().to_owned();
                }
                s.set_machine_options(mac, &options)?;
            }
            Ok(())
        })
        .await?;
    state.machines_changed();
    tracing::info!(%mac, "machine settings changed");
    Ok(())
}

/// Parses a MAC from a path: one machine's own (never a zero, broadcast or multicast address).
pub(crate) fn parse_mac(s: &str) -> Result<MacAddr, WebError> {
    s.parse()
        .ok()
        .filter(MacAddr::is_station)
        .ok_or_else(|| WebError::NotFound {
            what: format!("machine {s}"),
        })
}

fn outcome_badge(machine_events: &[BootEvent]) -> Markup {
    match timeline::attempts(machine_events).first() {
        Some(a) if a.system.as_ref().is_some_and(|r| r.up) => html! { span.badge.ok { "up" } },
        Some(a) if a.system.is_some() => html! { span.badge.bad { "failed" } },
        Some(a) if a.complete => html! { span.badge.ok { "booted" } },
        Some(_) => html! { span.badge.bad { "stopped" } },
        None => html! { span.badge { "no boots" } },
    }
}

/// GET /machines
pub async fn list(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    let machines = state.db(|s| s.machines()).await?;
    let mut rows = Vec::with_capacity(machines.len());
    for m in machines {
        let mac = m.mac;
        let events = state.db(move |s| s.events_for(mac, 20)).await?;
        rows.push((m, events));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0.last_seen));
    let now = SystemTime::now();
    let body = html! {
        h1 { "Machines" }
        div.card {
            @if rows.is_empty() {
                p.empty { "No machine has booted from the network yet. Power one on with network boot (PXE) enabled: it appears here." }
            } @else {
                div.table-wrap {
                    table.responsive {
                        thead { tr { th { "Machine" } th { "Firmware" } th { "Boots" } th { "Last seen" } th { "Last boot" } } }
                        tbody {
                            @for (m, events) in &rows {
                                tr {
                                    td.wide data-label="Machine" {
                                        @match &m.label {
                                            Some(label) => {
                                                a href={ "/machines/" (m.mac) } { (label) }
                                                " " span.mono.small.muted { (m.mac) }
                                            }
                                            None => a.mono href={ "/machines/" (m.mac) } { (m.mac) },
                                        }
                                        @if let Some(v) = &m.vendor_class { div.muted.small { (v) } }
                                    }
                                    td data-label="Firmware" { (m.firmware.map_or("unknown", |f| f.as_str())) }
                                    td data-label="Boots" {
                                        @let pinned = state.config().pinned_machines.get(&m.mac);
                                        @match pinned.cloned().unwrap_or_else(|| m.host.clone()) {
                                            Some(h) => code { (h) },
                                            None => span.muted { "boot menu" },
                                        }
                                        @if pinned.is_some() { " " span.badge.warn title="Set in flakeboot.toml" { "config file" } }
                                    }
                                    td.nowrap data-label="Last seen" title=(timestamp(m.last_seen)) { (ago(m.last_seen, now)) }
                                    td data-label="Last boot" { (outcome_badge(events)) }
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
            title: "Machines",
            nav: Nav::Machines,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}

/// The `?saved=1` flag after a change.
#[derive(Debug, Default, Deserialize)]
pub struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

struct Detail {
    machine: MachineRecord,
    options: MachineOptions,
    events: Vec<BootEvent>,
}

async fn load(state: &WebState, mac: MacAddr) -> Result<Detail, WebError> {
    let (machine, options, events) = state
        .db(move |s| {
            Ok((
                s.machine(mac)?,
                s.machine_options(mac)?,
                s.events_for(mac, EVENTS_PER_MACHINE)?,
            ))
        })
        .await?;
    let machine = machine.ok_or_else(|| WebError::NotFound {
        what: format!("machine {mac}"),
    })?;
    Ok(Detail {
        machine,
        options,
        events,
    })
}

fn render_detail(
    state: &WebState,
    principal: &Principal,
    d: &Detail,
    form: &MachineUpdate,
    errors: &MachineErrors,
    saved: bool,
) -> Markup {
    let m = &d.machine;
    let now = SystemTime::now();
    let hosts = state.assignable_hosts();
    let current_host = form
        .host
        .clone()
        .or_else(|| m.host.clone())
        .unwrap_or_default();
    let label = form
        .label
        .clone()
        .or_else(|| m.label.clone())
        .unwrap_or_default();
    let hostname = form
        .hostname
        .clone()
        .or_else(|| d.options.hostname.clone())
        .unwrap_or_default();
    let params = form
        .kernel_params
        .clone()
        .unwrap_or_else(|| d.options.kernel_params.clone());
    let attempts = timeline::attempts(&d.events);
    let title = m.label.clone().unwrap_or_else(|| m.mac.to_string());
    let body = html! {
        p.small { a href="/machines" { "← Machines" } }
        h1 { (title) }
        @if saved { div.notice.ok role="status" { "Saved. The machine gets it at its next boot." } }
        @if let Some(pinned) = state.config().pinned_machines.get(&m.mac) {
            div.notice.info {
                "The config file (flakeboot.toml) pins this machine to "
                @match pinned { Some(h) => code { (h) }, None => "the boot menu" }
                ". The file wins over the choice below until you remove it there."
            }
        }
        div.grid {
            div.card {
                h2 { "Machine" }
                dl.facts {
                    dt { "MAC" } dd.mono { (m.mac) }
                    dt { "Firmware" } dd { (m.firmware.map_or("unknown", |f| f.as_str())) }
                    dt { "Vendor" } dd { (m.vendor_class.as_deref().unwrap_or("—")) }
                    dt { "First seen" } dd { (timestamp(m.first_seen)) }
                    dt { "Last seen" } dd { (ago(m.last_seen, now)) " (" (timestamp(m.last_seen)) ")" }
                }
            }
            div.card {
                h2 { "Boot settings" }
                form.stack method="post" action={ "/machines/" (m.mac) } {
                    (csrf_field(principal.csrf()))
                    div {
                        label for="host" { "Boots" }
                        select #host name="host" {
                            option value="" selected[current_host.is_empty()] { "The boot menu (choose at boot)" }
                            @for h in &hosts {
                                option value=(h) selected[*h == current_host] { (h) }
                            }
                            @if !current_host.is_empty() && !hosts.contains(&current_host) {
                                option value=(current_host) selected { (current_host) " (no longer available)" }
                            }
                        }
                        (field_error(errors.host.as_deref()))
                    }
                    div {
                        label for="label" { "Label" span.hint { "A name for you, e.g. “rack 3, top”." } }
                        input #label type="text" name="label" value=(label);
                        (field_error(errors.label.as_deref()))
                    }
                    div.row.aligned {
                        div {
                            label for="hostname" { "Host name" span.hint { "Given on the kernel command line." } }
                            input #hostname type="text" name="hostname" value=(hostname) placeholder="node1";
                            (field_error(errors.hostname.as_deref()))
                        }
                        div {
                            label for="kernel_params" { "Extra kernel parameters" span.hint { "Added for this machine only." } }
                            input #kernel_params type="text" name="kernel_params" value=(params) placeholder="console=ttyS0";
                            (field_error(errors.kernel_params.as_deref()))
                        }
                    }
                    div.actions { button type="submit" { "Save" } }
                }
            }
        }
        div.card #timeline {
            h2 { "Boot timeline" }
            @if attempts.is_empty() {
                p.empty { "No boot recorded yet." }
            } @else {
                @for a in attempts.iter().take(5) { (timeline::render(a, a.end(now, state.report_timeout()).as_ref())) }
            }
        }
        @if !d.events.is_empty() {
            div.card {
                h2 { "Boot events" }
                div.table-wrap {
                    table.responsive {
                        thead { tr { th { "Time" } th { "Step" } th { "Result" } th { "Detail" } } }
                        tbody {
                            @for e in d.events.iter().rev().take(50) {
                                tr {
                                    td.nowrap data-label="Time" { (timestamp(e.at)) }
                                    td data-label="Step" { (e.stage.as_str()) }
                                    td data-label="Result" { (crate::pages::dashboard::outcome_badge(e.outcome)) }
                                    td.wide data-label="Detail" { (e.detail) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        Frame {
            title: &title,
            nav: Nav::Machines,
            csrf: principal.csrf(),
        },
        body,
    )
}

/// GET /machines/{mac}
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(mac): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, WebError> {
    let mac = parse_mac(&mac)?;
    let detail = load(&state, mac).await?;
    Ok(render_detail(
        &state,
        &principal,
        &detail,
        &MachineUpdate::default(),
        &MachineErrors::default(),
        saved.saved.is_some(),
    )
    .into_response())
}

/// POST /machines/{mac}
pub async fn update(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(mac): Path<String>,
    Form(form): Form<MachineUpdate>,
) -> Result<Response, WebError> {
    let mac = parse_mac(&mac)?;
    let detail = load(&state, mac).await?;
    if let Err(errors) = validate(&state, &form) {
        let page = render_detail(&state, &principal, &detail, &form, &errors, false);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    apply(&state, mac, form).await?;
    Ok(Redirect::to(&format!("/machines/{mac}?saved=1")).into_response())
}
