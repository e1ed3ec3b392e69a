//! The JSON API under `/api/v1`: the UI's operations for scripts and the CLI. Authenticated by
//! a bearer token (or a browser session plus the `X-CSRF-Token` header for writes). See
//! docs/api.md.

pub mod access_tokens;
pub mod backup;
pub mod builds;
pub mod firmware;
pub mod follow;
pub mod housekeeping;
pub mod metrics;
pub mod preflight;
pub mod vpn;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, WebError};
use crate::pages::machines::{self, MachineUpdate, parse_mac};
use crate::pages::{hosts, settings_input};
use crate::state::WebState;
use flakeboot_appliance::FieldError;
use flakeboot_appliance::flakes::FlakeServiceError;
use flakeboot_appliance::overview;
use flakeboot_appliance::status::DaemonStatus;
use flakeboot_appliance::wire;

/// A JSON result.
pub type ApiResult<T> = Result<T, ApiError>;

/// 422 with the field errors: `errors` lists every problem (`{"field", "message"}`), `fields`
/// maps each field to its messages (the shape older clients read).
pub(crate) fn unprocessable(errors: &[FieldError]) -> Response {
    let fields = settings_input::by_field(errors.to_vec());
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": "invalid input", "fields": fields, "errors": errors })),
    )
        .into_response()
}

/// The dashboard's data.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// The daemon's services and warnings.
    #[serde(flatten)]
    pub daemon: DaemonStatus,
    /// The DHCP mode in effect.
    pub dhcp_mode: &'static str,
    /// Machines seen.
    pub machines: usize,
    /// Builds queued or running.
    pub active_builds: usize,
    /// The nix store's disk and garbage collection.
    pub storage: Option<wire::Storage>,
}

/// GET /api/v1/status
pub async fn status(State(state): State<WebState>) -> ApiResult<Json<StatusView>> {
    let machines = state.db(|s| s.machines()).await?.len();
    let active_builds = state
        .flake(|f| f.builds())
        .await?
        .iter()
        .filter(|b| b.state.is_active())
        .count();
    let storage = state.flake(|f| Ok(f.storage())).await?;
    Ok(Json(StatusView {
        storage,
        daemon: state.status(),
        dhcp_mode: state.settings().dhcp_mode.as_str(),
        machines,
        active_builds,
    }))
}

/// GET /api/v1/health: answered once the daemon serves (its services bound, the store open);
/// what an A/B update waits for before it blesses a slot.
pub async fn health(State(state): State<WebState>) -> ApiResult<Json<serde_json::Value>> {
    state.db(|s| s.schema_version()).await?;
    Ok(Json(serde_json::json!({ "healthy": true })))
}

/// GET /api/v1/lan/dhcp-servers: the other DHCP servers seen on the LAN (full or proxy, what
/// they offer, first and last seen), by address.
pub async fn dhcp_servers(
    State(state): State<WebState>,
) -> ApiResult<Json<Vec<flakeboot_appliance::dhcp_servers::DhcpServerView>>> {
    Ok(Json(
        state
            .lan_actions()
            .map(|a| a.dhcp_servers().list())
            .unwrap_or_default(),
    ))
}

/// GET /api/v1/deploy-key: the public half of the appliance's SSH deploy key (add it to a
/// forge as a read-only deploy key for `git+ssh://` flakes) and its fingerprint.
pub async fn deploy_key(State(state): State<WebState>) -> ApiResult<Json<wire::DeployKey>> {
    Ok(Json(state.deploy_key()?.clone()))
}

/// GET /api/v1/leases: router mode's DHCP leases.
pub async fn leases(State(state): State<WebState>) -> ApiResult<Json<Vec<wire::Lease>>> {
    Ok(Json(wire::all(state.db(|s| s.leases()).await?)))
}

/// GET /api/v1/flakes
pub async fn flakes(State(state): State<WebState>) -> ApiResult<Json<Vec<wire::Flake>>> {
    Ok(Json(wire::all(state.flake(|f| f.flakes()).await?)))
}

/// The body of POST /api/v1/flakes.
#[derive(Debug, Deserialize)]
pub struct AddFlake {
    /// The flake reference.
    pub url: String,
    /// Its name (default: from the URL).
    #[serde(default)]
    pub name: Option<String>,
    /// Follow its branch (re-lock every `check_every`, and on its webhook).
    #[serde(default)]
    pub follow: Option<bool>,
    /// How often to re-lock while it follows, e.g. "15m".
    #[serde(default)]
    pub check_every: Option<String>,
    /// The TXT record announcing its new revisions (implies follow).
    #[serde(default)]
    pub notify_txt: Option<String>,
}

/// POST /api/v1/flakes
pub async fn add_flake(
    State(state): State<WebState>,
    Json(body): Json<AddFlake>,
) -> ApiResult<Response> {
    let follow = follow::FollowBody {
        follow: body.follow,
        check_every: body.check_every.clone(),
        notify_txt: body.notify_txt.clone(),
    };
    let wanted = match follow::follow_from(flakeboot_store::FollowRecord::default(), &follow) {
        Ok(wanted) => wanted,
        Err(e) => return Ok(unprocessable(&[e])),
    };
    let flake = state
        .flakes()
        .add(
            body.url.trim(),
            body.name.as_deref().filter(|n| !n.is_empty()),
        )
        .await?;
    if wanted != flakeboot_store::FollowRecord::default() {
        let name = flake.name.clone();
        state.flake(move |f| f.set_follow(&name, wanted)).await?;
    }
    let name = flake.name.clone();
    Ok(crate::audit::noted(
        (StatusCode::CREATED, Json(wire::Flake::from(flake))),
        name,
    ))
}

/// POST /api/v1/flakes/{name}/update
pub async fn update_flake(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let ids = state.flakes().update(&name).await?;
    Ok(Json(json!({ "builds": ids })))
}

/// GET /api/v1/hosts: every host with its source, current generation and machines.
pub async fn hosts(State(state): State<WebState>) -> ApiResult<Json<Vec<hosts::HostView>>> {
    Ok(Json(hosts::hosts(&state).await?))
}

/// `?host=` of the generations call.
#[derive(Debug, Deserialize)]
pub struct HostQuery {
    /// A qualified host (`flake#host`).
    #[serde(default)]
    pub host: Option<String>,
}

/// A host's generations and its pin.
#[derive(Debug, Serialize)]
pub struct GenerationsView {
    /// Oldest first.
    pub generations: Vec<wire::Generation>,
    /// The pinned generation, if rolled back.
    pub pinned: Option<u32>,
    /// The generation machines boot now: the pinned one, else the newest whose pre-flight
    /// passed or was skipped.
    pub current: Option<u32>,
}

/// GET /api/v1/generations[?host=flake%23host]
pub async fn generations(
    State(state): State<WebState>,
    Query(q): Query<HostQuery>,
) -> ApiResult<Json<BTreeMap<String, GenerationsView>>> {
    let hosts = match q.host {
        Some(h) => vec![h],
        None => state.flake(|f| f.generation_hosts()).await?,
    };
    let out = state
        .flake(move |f| {
            let mut out = BTreeMap::new();
            for h in hosts {
                let generations = f.generations(&h)?;
                // `?host=alpha` resolves a short name; pins are kept under `flake#host`.
                let qualified = generations.first().map_or(h, |g| g.host.clone());
                let pinned = f.pinned(&qualified)?;
                let view = GenerationsView {
                    pinned,
                    current: flakeboot_store::current_of(pinned, &generations).map(|g| g.number),
                    generations: wire::all(generations),
                };
                out.insert(qualified, view);
            }
            Ok(out)
        })
        .await?;
    Ok(Json(out))
}

/// The body of the rollback and unpin calls.
#[derive(Debug, Deserialize)]
pub struct Rollback {
    /// A qualified host.
    pub host: String,
    /// The generation to boot (rollback only).
    #[serde(default)]
    pub number: Option<u32>,
}

/// POST /api/v1/generations/rollback
pub async fn rollback(
    State(state): State<WebState>,
    Json(body): Json<Rollback>,
) -> ApiResult<Response> {
    let number = body.number.ok_or_else(|| {
        WebError::Flake(FlakeServiceError::Invalid {
            field: "number",
            message: "which generation?".into(),
        })
    })?;
    let warning = state
        .flake({
            let a0 = body.host.clone();
            move |f| {
                f.rollback(&a0, number)?;
                let pinned = f.generations(&a0)?.into_iter().find(|g| g.number == number);
                Ok(pinned.and_then(|g| preflight_warning(&g)))
            }
        })
        .await?;
    let target = format!("{} generation {number}", body.host);
    Ok(crate::audit::noted(
        Json(json!({ "host": body.host, "pinned": number, "warning": warning })),
        target,
    ))
}

/// What pinning `g` risks: its pre-flight failed (or has not passed yet), so machines may not
/// boot it. `None` when it passed or was skipped.
pub(crate) fn preflight_warning(g: &flakeboot_store::GenerationRecord) -> Option<String> {
    use flakeboot_store::PreflightState;
    let why = g
        .preflight
        .reason
        .as_deref()
        .map_or(String::new(), |r| format!(": {r}"));
    match g.preflight.state {
        PreflightState::Passed | PreflightState::Skipped => None,
        PreflightState::Failed => Some(format!(
            "generation {} failed pre-flight{why}; machines boot it anyway from their next boot",
            g.number
        )),
        PreflightState::Queued | PreflightState::Running => Some(format!(
            "generation {} has not passed pre-flight yet; machines boot it anyway from their next boot",
            g.number
        )),
    }
}

/// POST /api/v1/generations/unpin
pub async fn unpin(
    State(state): State<WebState>,
    Json(body): Json<Rollback>,
) -> ApiResult<Response> {
    state
        .flake({
            let a0 = body.host.clone();
            move |f| f.unpin(&a0)
        })
        .await?;
    let target = body.host.clone();
    Ok(crate::audit::noted(
        Json(json!({ "host": body.host, "pinned": null })),
        target,
    ))
}

/// A machine with its boot options.
#[derive(Debug, Serialize)]
pub struct MachineView {
    /// What the store knows, the host it boots now and its last boot.
    #[serde(flatten)]
    pub machine: wire::Machine,
    /// Host name, extra kernel parameters and the boot-once host.
    pub options: wire::MachineOptions,
    /// What its next boot is, in words: "lab#rescue once, then its local disk".
    pub next_boot: String,
}

impl MachineView {
    fn new(machine: wire::Machine, options: wire::MachineOptions) -> MachineView {
        MachineView {
            next_boot: machines::next_boot(machine.host.as_deref(), options.boot_once.as_deref()),
            machine,
            options,
        }
    }
}

/// GET /api/v1/machines[?q=&state=&page=&per_page=]: every machine (or one page of those that
/// match) with its last boot, most recently seen first. `X-Total-Count` says how many match.
pub async fn machines(
    State(state): State<WebState>,
    Query(lq): Query<machines::ListQuery>,
) -> ApiResult<Response> {
    let paged = lq.page.is_some() || lq.per_page.is_some();
    let query = lq.to_query(overview::DEFAULT_PER_PAGE)?;
    let query = if paged {
        query
    } else {
        // Without paging: every match.
        overview::Query {
            per_page: usize::MAX,
            ..query
        }
    };
    let ctx = state.overview_context();
    let now = std::time::SystemTime::now();
    let (page, options) = state
        .db(move |s| {
            Ok((
                overview::overview(s, &ctx, &query, now)?,
                s.all_machine_options()?,
            ))
        })
        .await?;
    let options: BTreeMap<_, _> = options.into_iter().collect();
    let total = page.total;
    let list: Vec<MachineView> = page
        .rows
        .into_iter()
        .map(|row| {
            let options = options
                .get(&row.machine.mac)
                .map(|o| o.clone().into())
                .unwrap_or_default();
            MachineView::new(row.into(), options)
        })
        .collect();
    let mut response = Json(list).into_response();
    response
        .headers_mut()
        .insert("x-total-count", axum::http::HeaderValue::from(total));
    Ok(response)
}

/// One machine with its boot attempts.
#[derive(Debug, Serialize)]
pub struct MachineDetail {
    /// The machine.
    #[serde(flatten)]
    pub view: MachineView,
    /// Its boots, newest first.
    pub attempts: Vec<wire::Attempt>,
}

async fn machine_detail(
    state: &WebState,
    mac: flakeboot_catalogue::MacAddr,
) -> Result<MachineDetail, WebError> {
    let ctx = state.overview_context();
    let now = std::time::SystemTime::now();
    let (found, options) = state
        .db(move |s| {
            Ok((
                overview::machine_attempts(s, &ctx, mac, now)?,
                s.machine_options(mac)?,
            ))
        })
        .await?;
    let (row, list) = found.ok_or_else(|| WebError::NotFound {
        what: format!("machine {mac}"),
    })?;
    Ok(MachineDetail {
        view: MachineView::new(row.into(), options.into()),
        attempts: list.iter().map(|(a, v)| wire::Attempt::new(a, v)).collect(),
    })
}

/// GET /api/v1/machines/{mac}
pub async fn machine(
    State(state): State<WebState>,
    Path(mac): Path<String>,
) -> ApiResult<Json<MachineDetail>> {
    let mac = parse_mac(&mac)?;
    Ok(Json(machine_detail(&state, mac).await?))
}

/// `?limit=` of the attempts call.
#[derive(Debug, Deserialize)]
pub struct AttemptLimit {
    /// At most this many attempts (default 10).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// GET /api/v1/machines/{mac}/attempts[?limit=N]: its recent boot attempts, newest first.
pub async fn machine_attempts(
    State(state): State<WebState>,
    Path(mac): Path<String>,
    Query(limit): Query<AttemptLimit>,
) -> ApiResult<Json<Vec<wire::Attempt>>> {
    let mac = parse_mac(&mac)?;
    let mut detail = machine_detail(&state, mac).await?;
    detail.attempts.truncate(limit.limit.unwrap_or(10));
    Ok(Json(detail.attempts))
}

/// POST /api/v1/machines/{mac}: assign (a host, `local`, or the menu), label, host name, kernel
/// parameters, boot once.
pub async fn update_machine(
    State(state): State<WebState>,
    Path(mac): Path<String>,
    Json(update): Json<MachineUpdate>,
) -> ApiResult<Response> {
    let mac = parse_mac(&mac)?;
    let errors = machines::validate(&state, mac, &update).await?;
    if !errors.is_empty() {
        return Ok(unprocessable(&errors));
    }
    machines::apply(&state, mac, update).await?;
    Ok(Json(machine_detail(&state, mac).await?).into_response())
}

/// `?limit=` of the event calls.
#[derive(Debug, Deserialize)]
pub struct Limit {
    /// At most this many (default 100, at most 10000).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl Limit {
    pub(crate) fn get(&self) -> usize {
        self.limit.unwrap_or(100).min(10_000)
    }
}

/// GET /api/v1/machines/{mac}/logs[?limit=N]: the newest lines of its console and logs
/// (netconsole, syslog), oldest first (default 100, at most 10000). 404 for an unknown machine.
pub async fn machine_logs(
    State(state): State<WebState>,
    Path(mac): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<wire::LogLine>>> {
    let mac = parse_mac(&mac)?;
    let n = limit.get();
    let (machine, lines) = state
        .db(move |s| Ok((s.machine(mac)?, s.logs_for(mac, n)?)))
        .await?;
    if machine.is_none() {
        return Err(WebError::NotFound {
            what: format!("machine {mac}"),
        }
        .into());
    }
    Ok(Json(wire::all(lines)))
}

/// GET /api/v1/machines/{mac}/events
pub async fn machine_events(
    State(state): State<WebState>,
    Path(mac): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<wire::Event>>> {
    let mac = parse_mac(&mac)?;
    let n = limit.get();
    Ok(Json(wire::all(
        state.db(move |s| s.events_for(mac, n)).await?,
    )))
}

/// GET /api/v1/events
pub async fn events(
    State(state): State<WebState>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<wire::Event>>> {
    let n = limit.get();
    Ok(Json(wire::all(
        state.db(move |s| s.recent_events(n)).await?,
    )))
}

/// GET /api/v1/audit[?limit=]: the audit log, newest first (default 100, at most 10000).
pub async fn audit(
    State(state): State<WebState>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Vec<wire::AuditEntry>>> {
    let n = limit.get();
    Ok(Json(wire::all(state.db(move |s| s.recent_audit(n)).await?)))
}

/// GET /api/v1/settings
pub async fn get_settings(State(state): State<WebState>) -> Json<wire::Settings> {
    Json(state.settings().into())
}

/// `PUT /api/v1/settings?confirm=router`: switch to router mode although another full DHCP
/// server answers on the LAN.
#[derive(Debug, Default, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    confirm: Option<String>,
}

/// PUT /api/v1/settings: replaces every setting (GET, edit, PUT). A switch to router mode while
/// another full DHCP server answers is `409` with the servers, and saved only with
/// `?confirm=router`.
pub async fn put_settings(
    State(state): State<WebState>,
    Query(confirm): Query<ConfirmQuery>,
    Json(next): Json<wire::Settings>,
) -> ApiResult<Response> {
    // `wan` and `dns` left out (a client of an earlier version) stay as they are.
    let next = match next.into_store() {
        Ok(next) => next.or_file(&state.settings()),
        Err(errors) => return Ok(unprocessable(&errors)),
    };
    let errors = state.check_settings(next.clone()).await?;
    if !errors.is_empty() {
        return Ok(unprocessable(&errors));
    }
    if confirm.confirm.as_deref() != Some("router")
        && let Some(message) = state.router_conflict(&next)
    {
        let servers = state
            .lan_actions()
            .map(|a| a.dhcp_servers().list())
            .unwrap_or_default();
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({
                "error": message,
                "fields": { "dhcp_mode": message },
                "dhcp_servers": servers,
                "confirm": "PUT the same settings to /api/v1/settings?confirm=router to switch anyway",
            })),
        )
            .into_response());
    }
    state.save_settings(next.clone()).await?;
    Ok(Json(wire::Settings::from(next)).into_response())
}
