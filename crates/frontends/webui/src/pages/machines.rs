//! Machines: every machine seen, and one machine's page (assignment, label, boot options, boot
//! once, what its next boot is, boot timeline).

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use flakeboot_appliance::attempts::{BootState, Verdict, attempts};
use flakeboot_appliance::overview;
use flakeboot_appliance::{FieldError, MachineSettings};
use flakeboot_catalogue::{BootEvent, LOCAL_DISK, MacAddr};
use flakeboot_store::{MachineOptions, MachineRecord};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, ago, csrf_field, field_error, page, timestamp};
use crate::pages::timeline;
use crate::state::WebState;

/// How many events a machine page reads for its timeline.
const EVENTS_PER_MACHINE: usize = overview::EVENTS_FOR_ATTEMPTS;
/// How many attempts its timeline draws.
const ATTEMPTS_SHOWN: usize = 5;
/// The newest log lines read for the page (each boot shows its own, the newest
/// [`timeline::LINES_SHOWN`] of them).
const LOG_LINES_READ: usize = 2000;

/// A change to one machine (form or API). `None` leaves a field as it is.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct MachineUpdate {
    /// A host to boot, `local` for its local disk; the empty string means the boot menu.
    pub host: Option<String>,
    /// A host its next boot gets once; the empty string clears it.
    pub boot_once: Option<String>,
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
    /// Unknown boot-once host.
    pub boot_once: Option<String>,
    /// Bad label.
    pub label: Option<String>,
    /// Bad host name.
    pub hostname: Option<String>,
    /// Bad kernel parameters.
    pub kernel_params: Option<String>,
}

impl MachineErrors {
    fn from_errors(errors: Vec<FieldError>) -> MachineErrors {
        let mut out = MachineErrors::default();
        for e in errors {
            let slot = match e.field {
                "host" => &mut out.host,
                "boot_once" => &mut out.boot_once,
                "label" => &mut out.label,
                "hostname" => &mut out.hostname,
                _ => &mut out.kernel_params,
            };
            match slot {
                Some(m) => {
                    m.push(' ');
                    m.push_str(&e.message);
                }
                None => *slot = Some(e.message),
            }
        }
        out
    }
}

/// Checks an update: the label here, the rest with the config's rules for `[[machines]]`
/// ([`flakeboot_appliance::SettingsCheck::machine`]). Empty when it may be applied; a field
/// the update leaves alone is not checked.
pub(crate) async fn validate(
    state: &WebState,
    mac: MacAddr,
    update: &MachineUpdate,
) -> Result<Vec<FieldError>, WebError> {
    let mut errors = Vec::new();
    if let Some(place) = state.pinned_by(mac) {
        // The file's `[[machines]]` entry gives its host, host name and kernel parameters.
        for (field, changed) in [
            ("host", update.host.is_some()),
            ("boot_once", update.boot_once.is_some()),
            ("hostname", update.hostname.is_some()),
            ("kernel_params", update.kernel_params.is_some()),
        ] {
            if changed {
                errors.push(FieldError {
                    field,
                    message: format!("Set in {place}: change it there."),
                });
            }
        }
        if !errors.is_empty() {
            return Ok(errors);
        }
    }
    if let Some(label) = &update.label
        && (label.chars().count() > 64 || label.chars().any(char::is_control))
    {
        errors.push(FieldError {
            field: "label",
            message: "Use at most 64 characters, on one line.".into(),
        });
    }
    let machine = MachineSettings {
        host: update.host.as_deref().and_then(none_if_empty),
        boot_once: update.boot_once.as_deref().and_then(none_if_empty),
        hostname: update.hostname.as_deref().and_then(none_if_empty),
        kernel_params: update
            .kernel_params
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned(),
    };
    errors.extend(state.check_machine(mac, machine).await?);
    Ok(errors)
}

/// What a machine's own choice boots, in words: a host, its local disk, or the boot menu.
pub(crate) fn boots_in_words(host: Option<&str>) -> String {
    match host {
        Some(LOCAL_DISK) => "its local disk".to_owned(),
        Some(h) => h.to_owned(),
        None => "the boot menu".to_owned(),
    }
}

/// What its next boot is: "lab#rescue once, then its local disk", or its own choice.
pub(crate) fn next_boot(host: Option<&str>, boot_once: Option<&str>) -> String {
    match boot_once {
        Some(once) => format!("{once} once, then {}", boots_in_words(host)),
        None => boots_in_words(host),
    }
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
            if update.boot_once.is_some() && s.machine(mac)?.is_none() {
                // Boot once for a machine not seen yet: the user makes its record.
                s.set_machine_label(mac, None)?;
            }
            if update.hostname.is_some()
                || update.kernel_params.is_some()
                || update.boot_once.is_some()
            {
                let mut options = s.machine_options(mac)?;
                if let Some(h) = &update.hostname {
                    options.hostname = none_if_empty(h);
                }
                if let Some(p) = &update.kernel_params {
                    options.kernel_params = p.trim().to_owned();
                }
                if let Some(once) = &update.boot_once {
                    options.boot_once = none_if_empty(once);
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

/// `?q=&state=&sort=&page=&per_page=` of the machine list (page and API).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    /// Words to search for.
    #[serde(default)]
    pub q: String,
    /// `up`, `failed`, `no_report`, `booting`, `offline`, `local`, `never`, or empty.
    #[serde(default)]
    pub state: String,
    /// `seen` (most recently seen first, the default), `mac`, `label`, `host`, or empty.
    #[serde(default)]
    pub sort: String,
    /// From 1.
    #[serde(default)]
    pub page: Option<usize>,
    /// Machines per page.
    #[serde(default)]
    pub per_page: Option<usize>,
}

impl ListQuery {
    /// The overview query, or what is wrong with `state`.
    pub(crate) fn to_query(&self, default_per_page: usize) -> Result<overview::Query, WebError> {
        let state = match self.state.trim() {
            "" | "all" => None,
            name => Some(BootState::parse(name).ok_or_else(|| WebError::BadRequest {
                message: format!(
                    "Unknown state “{name}”: use up, booting, failed, no_report, offline, local or never."
                ),
            })?),
        };
        let sort = match self.sort.trim() {
            "" => overview::Sort::Seen,
            name => overview::Sort::parse(name).ok_or_else(|| WebError::BadRequest {
                message: format!("Unknown order “{name}”: use seen, mac, label or host."),
            })?,
        };
        Ok(overview::Query {
            text: self.q.trim().to_owned(),
            state,
            sort,
            page: self.page.unwrap_or(1),
            per_page: self
                .per_page
                .unwrap_or(default_per_page)
                .min(overview::MAX_PER_PAGE),
        })
    }

    /// This query on another page, as a link.
    fn link(&self, page: usize) -> String {
        let mut out = format!("/machines?page={page}");
        for (k, v) in [
            ("q", self.q.trim()),
            ("state", self.state.trim()),
            ("sort", self.sort.trim()),
        ] {
            if !v.is_empty() {
                out.push_str(&format!("&{k}={}", encode_query(v)));
            }
        }
        if let Some(n) = self.per_page {
            out.push_str(&format!("&per_page={n}"));
        }
        out
    }
}

/// Percent-encodes a query value.
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET /machines[?q=&state=&sort=&page=]
pub async fn list(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Query(lq): Query<ListQuery>,
) -> Result<Response, WebError> {
    let query = lq.to_query(overview::DEFAULT_PER_PAGE)?;
    let ctx = state.overview_context();
    let now = SystemTime::now();
    let page_data = {
        let query = query.clone();
        state
            .db(move |s| overview::overview(s, &ctx, &query, now))
            .await?
    };
    let filtered = !query.text.is_empty() || query.state.is_some();
    let body = html! {
        h1 { "Machines" }
        div.card {
            @if page_data.machines == 0 {
                p.empty { "No machine has booted from the network yet. Power on a machine set to network boot (PXE) on this LAN: it appears here." }
            } @else {
                form.filters method="get" action="/machines" role="search" {
                    input type="search" name="q" value=(lq.q) placeholder="MAC, label, host, firmware" aria-label="Search";
                    select name="state" aria-label="State" {
                        option value="" selected[query.state.is_none()] { "Any state" }
                        @for s in BootState::ALL {
                            option value=(s.as_str()) selected[query.state == Some(s)] { (s.label()) }
                        }
                    }
                    select name="sort" aria-label="Order" {
                        @for s in overview::Sort::ALL {
                            option value=(s.as_str()) selected[query.sort == s] { "by " (s.label()) }
                        }
                    }
                    button type="submit" { "Filter" }
                    @if filtered { a.small href="/machines" { "Clear" } }
                }
                p.small.muted #machine-count {
                    (page_data.total) @if page_data.total == 1 { " machine" } @else { " machines" }
                    @if filtered { " match (of " (page_data.machines) ")" }
                    @if page_data.pages() > 1 { " · page " (page_data.page) " of " (page_data.pages()) }
                }
                @if page_data.rows.is_empty() {
                    p.empty { "No machine matches. " a href="/machines" { "Show every machine." } }
                } @else {
                    div.table-wrap {
                        table.responsive #machines {
                            thead { tr { th { "Machine" } th { "State" } th { "Boots" } th { "Firmware" } th { "Last boot" } th { "Last seen" } } }
                            tbody {
                                @for row in &page_data.rows {
                                    @let m = &row.machine;
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
                                        td data-label="State" {
                                            (timeline::badge(&row.last_boot))
                                            @if row.last_boot.state != BootState::Never {
                                                div.muted.small { (row.last_boot.detail) }
                                            }
                                        }
                                        td data-label="Boots" {
                                            @match row.host.as_deref() {
                                                Some(LOCAL_DISK) => "local disk",
                                                Some(h) => code { (h) },
                                                None => span.muted { "boot menu" },
                                            }
                                            @if row.pinned { " " span.badge.warn title="Set in the config file" { "config file" } }
                                        }
                                        td data-label="Firmware" { (m.firmware.map_or("unknown", |f| f.as_str())) }
                                        td.nowrap data-label="Last boot" {
                                            @match row.last_boot.duration() {
                                                Some(d) => (timeline::short_span(d)),
                                                None => span.muted { "—" },
                                            }
                                        }
                                        td.nowrap data-label="Last seen" title=(timestamp(m.last_seen)) { (ago(m.last_seen, now)) }
                                    }
                                }
                            }
                        }
                    }
                    @if page_data.pages() > 1 {
                        nav.pager aria-label="Pages" {
                            @if page_data.page > 1 {
                                a rel="prev" href=(lq.link(page_data.page - 1)) { "← Newer" }
                            }
                            span.small.muted { "Page " (page_data.page) " of " (page_data.pages()) }
                            @if page_data.page < page_data.pages() {
                                a rel="next" href=(lq.link(page_data.page + 1)) { "Older →" }
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

/// The `?saved=1` flag after a change, `?done=woken|released` after an action.
#[derive(Debug, Default, Deserialize)]
pub struct Saved {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

struct Detail {
    machine: MachineRecord,
    options: MachineOptions,
    events: Vec<BootEvent>,
    /// Its newest log lines, oldest first.
    logs: Vec<flakeboot_store::LogRecord>,
    lease: Option<std::net::Ipv4Addr>,
}

async fn load(state: &WebState, mac: MacAddr) -> Result<Detail, WebError> {
    let (machine, options, events, logs) = state
        .db(move |s| {
            Ok((
                s.machine(mac)?,
                s.machine_options(mac)?,
                s.events_for(mac, EVENTS_PER_MACHINE)?,
                s.logs_for(mac, LOG_LINES_READ)?,
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
        logs,
        lease: crate::housekeeping::lease_of(state, mac).await?,
    })
}

fn render_detail(
    state: &WebState,
    principal: &Principal,
    d: &Detail,
    form: &MachineUpdate,
    errors: &MachineErrors,
    saved: &Saved,
) -> Markup {
    let m = &d.machine;
    let now = SystemTime::now();
    let hosts = state.assignable_hosts();
    let current_host = form
        .host
        .clone()
        .or_else(|| m.host.clone())
        .unwrap_or_default();
    let boot_once = form
        .boot_once
        .clone()
        .or_else(|| d.options.boot_once.clone())
        .unwrap_or_default();
    // What the next boot is: a config-file pin gives the machine's own choice.
    let own_host = match state.config().pinned_machines.get(&m.mac) {
        Some(pinned) => pinned.clone(),
        None => m.host.clone(),
    };
    let next = next_boot(own_host.as_deref(), d.options.boot_once.as_deref());
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
    let report_timeout = state.report_timeout();
    let attempts = attempts(&d.events);
    let lines = flakeboot_appliance::attempts::group_by_attempt(&attempts, &d.logs, |l| l.at);
    let pinned_by = state.pinned_by(m.mac);
    let title = m.label.clone().unwrap_or_else(|| m.mac.to_string());
    let body = html! {
        p.small { a href="/machines" { "← Machines" } }
        h1 { (title) }
        @if saved.saved.is_some() { div.notice.ok role="status" { "Saved. The machine gets it at its next boot." } }
        @match saved.done.as_deref() {
            Some("woken") => div.notice.ok role="status" #woken { "Magic packet sent on the LAN (UDP port 9 and EtherType 0x0842). A machine with Wake-on-LAN enabled powers on." },
            Some("released") => div.notice.ok role="status" #released { "Lease released: its address is free for the next client." },
            _ => {},
        }
        @if let (Some(place), Some(pinned)) = (&pinned_by, state.config().pinned_machines.get(&m.mac)) {
            div.notice.info #pinned {
                "Pinned by the config file: " code { (place) } " gives this machine "
                @match pinned { Some(h) => { "the host " code { (h) } }, None => "the boot menu" }
                " and its boot settings. They are read-only here: change them in the file and restart flakeboot."
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
                    dt { "Next boot" } dd #next-boot { (next) }
                }
            }
            div.card {
                h2 { "Boot settings" }
                form.stack method="post" action={ "/machines/" (m.mac) } {
                    (csrf_field(principal.csrf()))
                    fieldset.plain disabled[pinned_by.is_some()] {
                    div {
                        label for="host" { "Boots" }
                        select #host name="host" {
                            option value="" selected[current_host.is_empty()] { "The boot menu (choose at boot)" }
                            option value=(LOCAL_DISK) selected[current_host == LOCAL_DISK] { "Local disk (leave the network boot)" }
                            @for h in &hosts {
                                option value=(h) selected[*h == current_host] { (h) }
                            }
                            @if !current_host.is_empty() && current_host != LOCAL_DISK && !hosts.contains(&current_host) {
                                option value=(current_host) selected { (current_host) " (no longer available)" }
                            }
                        }
                        (field_error(errors.host.as_deref()))
                    }
                    div {
                        label for="boot_once" { "Boot once" span.hint { "Its next boot only (a rescue system, a memory test); the one after boots the above again." } }
                        select #boot_once name="boot_once" {
                            option value="" selected[boot_once.is_empty()] { "—" }
                            @for h in &hosts {
                                option value=(h) selected[*h == boot_once] { (h) }
                            }
                            @if !boot_once.is_empty() && !hosts.contains(&boot_once) {
                                option value=(boot_once) selected { (boot_once) " (not available now)" }
                            }
                        }
                        (field_error(errors.boot_once.as_deref()))
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
                    }
                    div {
                        label for="label" { "Label" span.hint { "A name for you, e.g. “rack 3, top”." } }
                        input #label type="text" name="label" value=(label);
                        (field_error(errors.label.as_deref()))
                    }
                    div.actions { button type="submit" { @if pinned_by.is_some() { "Save label" } @else { "Save" } } }
                }
            }
        }
        div.card #actions {
            h2 { "Power and housekeeping" }
            div.actions {
                form.inline method="post" action={ "/machines/" (m.mac) "/wake" } {
                    (csrf_field(principal.csrf()))
                    button #power-on type="submit" { "Power on" }
                }
                @if let Some(ip) = d.lease {
                    form.inline method="post" action={ "/leases/" (m.mac) "/release" } {
                        (csrf_field(principal.csrf()))
                        button.secondary #release-lease type="submit" { "Release lease " (ip) }
                    }
                }
                @if pinned_by.is_none() {
                    form.inline method="post" action={ "/machines/" (m.mac) "/forget" } {
                        (csrf_field(principal.csrf()))
                        button.danger #forget type="submit" { "Forget this machine" }
                    }
                }
            }
            p.small.muted {
                "Power on sends a Wake-on-LAN magic packet. "
                @if let Some(place) = &pinned_by {
                    "Pinned by " code { (place) } ": it cannot be forgotten here."
                } @else {
                    "Forgetting removes its record, settings and boot events; its next DHCP request makes it anew."
                }
            }
        }
        div.card #timeline {
            h2 { "Boot timeline" }
            @if attempts.is_empty() {
                p.empty { "No boot recorded yet. Power this machine on with network boot (PXE) first in its boot order: each step appears here." }
            } @else {
                p.small.muted { "The last " (attempts.len().min(ATTEMPTS_SHOWN)) " boots, newest first; bars are each stage's time on the boot's own axis." }
                @for ((a, v), lines) in attempts.iter().zip(Verdict::all(&attempts, now, report_timeout)).zip(&lines).take(ATTEMPTS_SHOWN) {
                    (timeline::render(a, &v, now, lines))
                }
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
        &saved,
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
    // A pinned machine's form sends only its label (the rest is disabled).
    let errors = validate(&state, mac, &form).await?;
    if !errors.is_empty() {
        let errors = MachineErrors::from_errors(errors);
        let page = render_detail(
            &state,
            &principal,
            &detail,
            &form,
            &errors,
            &Saved::default(),
        );
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    apply(&state, mac, form).await?;
    Ok(Redirect::to(&format!("/machines/{mac}?saved=1")).into_response())
}
