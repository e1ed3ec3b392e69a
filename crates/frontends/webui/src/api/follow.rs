//! Automatic updates over the API: a flake's follow settings, its update history, its push
//! webhook (the secret, and the public `POST /api/v1/flakes/{name}/hook` a forge calls).
//!
//! The webhook route is public (the forge has no session or token, only the flake's secret):
//! it is checked by [`crate::auth::hook_signature`], its body is bounded
//! ([`HOOK_BODY_MAX`]), its calls per flake are limited ([`HookLimiter`]), and all it can do
//! is start an update of that one flake.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flakeboot_appliance::FieldError;
use flakeboot_appliance::follow::Started;
use flakeboot_appliance::metrics::HookOutcome;
use flakeboot_appliance::wire::follow::{Follow, History, Hook};
use flakeboot_appliance::wire::{self};
use flakeboot_store::{FollowRecord, TokenScope, UpdateTrigger};
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, unprocessable};
use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::auth::hook_signature::{self, GITLAB_TOKEN, HUB_SIGNATURE_256, HookHeaders};
use crate::auth::secret::random_token;
use crate::error::WebError;
use crate::pages::Peer;
use crate::state::WebState;

/// The largest webhook body read (a push of many commits is well below).
pub const HOOK_BODY_MAX: usize = 1024 * 1024;

/// Webhook calls per flake in [`HOOK_WINDOW`], accepted or not; beyond: 429.
pub const HOOK_CALLS: usize = 30;

/// The window of [`HOOK_CALLS`].
pub const HOOK_WINDOW: Duration = Duration::from_secs(60);

/// Recent webhook calls per flake (only flakes that exist are counted, so the map is as
/// small as the flake list).
#[derive(Debug, Default)]
pub struct HookLimiter {
    calls: HashMap<String, VecDeque<Instant>>,
}

impl HookLimiter {
    /// Counts a call to `flake` at `now`; `Err(retry_after)` when it is over the limit.
    pub fn admit(&mut self, flake: &str, now: Instant) -> Result<(), Duration> {
        self.calls.retain(|_, calls| {
            while calls
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= HOOK_WINDOW)
            {
                calls.pop_front();
            }
            !calls.is_empty()
        });
        let calls = self.calls.entry(flake.to_owned()).or_default();
        if calls.len() >= HOOK_CALLS {
            let oldest = calls.front().copied().unwrap_or(now);
            return Err(HOOK_WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        calls.push_back(now);
        Ok(())
    }
}

/// POST /api/v1/flakes/{name}/hook (public): a forge's push. A correct signature
/// (`X-Hub-Signature-256`) or token (`X-Gitlab-Token`) starts an update of the flake in the
/// background → 202; anything else → 401 and nothing changes.
pub async fn hook(
    State(state): State<WebState>,
    Peer(peer): Peer,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let metrics = state.metrics();
    let refused = |why: &str| {
        tracing::debug!(?peer, flake = %escape_for_log(&name), "webhook refused: {why}");
        metrics.hooks.count(HookOutcome::Refused);
        WebError::Unauthorized
    };
    let secret = match state
        .flake({
            let name = name.clone();
            move |f| f.hook_secret(&name)
        })
        .await
    {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(refused("the flake has no webhook secret").into()),
        Err(WebError::Flake(flakeboot_appliance::FlakeServiceError::NotFound { .. })) => {
            return Err(refused("no such flake").into());
        }
        Err(e) => return Err(e.into()),
    };
    state
        .hook_limiter(|l| l.admit(&name, state.clock().now()))
        .map_err(|retry_after| {
            tracing::debug!(?peer, flake = %escape_for_log(&name), "webhook refused: too many calls");
            metrics.hooks.count(HookOutcome::Limited);
            WebError::RateLimited { retry_after }
        })?;
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let forge = hook_signature::verify(
        &secret,
        HookHeaders {
            hub_signature_256: text(HUB_SIGNATURE_256),
            gitlab_token: text(GITLAB_TOKEN),
        },
        &body,
    )
    .map_err(|e| refused(&e.to_string()))?;
    tracing::info!(?peer, flake = %escape_for_log(&name), ?forge, "webhook: update requested");
    metrics.hooks.count(HookOutcome::Accepted);
    let flakes = state.flake_service();
    let task_name = name.clone();
    tokio::spawn(async move {
        match flakes.trigger(&task_name, UpdateTrigger::Hook).await {
            Ok(Started::Ran(r)) => {
                tracing::debug!(flake = %escape_for_log(&task_name), state = r.state.as_str(), "webhook update");
            }
            Ok(Started::Queued) => {}
            Err(e) => {
                tracing::warn!(flake = %escape_for_log(&task_name), "webhook update failed: {e}");
            }
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "flake": name, "accepted": true })),
    )
        .into_response())
}

/// Read-only API tokens may read a flake's history, never its webhook secret.
fn may_see_secret(principal: &Principal) -> Result<(), WebError> {
    match principal {
        Principal::Token {
            scope: TokenScope::ReadOnly,
            ..
        } => Err(WebError::Forbidden {
            message: "a read-only token cannot read or change a webhook secret".into(),
        }),
        _ => Ok(()),
    }
}

/// The webhook's URL as the caller reached this appliance.
fn hook_url(headers: &HeaderMap, name: &str) -> String {
    let path = format!("/api/v1/flakes/{name}/hook");
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() && host != "localhost" => format!("https://{host}{path}"),
        _ => path,
    }
}

/// The webhook of `name`, its secret made now if it has none (`rotate`: always a new one).
pub(crate) async fn hook_info(
    state: &WebState,
    headers: &HeaderMap,
    name: &str,
    rotate: bool,
) -> Result<Hook, WebError> {
    let fresh = random_token()?;
    let secret = state
        .flake({
            let name = name.to_owned();
            move |f| f.put_hook_secret(&name, &fresh, rotate)
        })
        .await?;
    if rotate {
        tracing::info!(flake = %escape_for_log(name), "webhook secret rotated");
    }
    Ok(Hook {
        flake: name.to_owned(),
        url: hook_url(headers, name),
        secret,
        content_type: "application/json".into(),
    })
}

/// GET /api/v1/flakes/{name}/hook: the webhook's URL and secret (made on first ask).
pub async fn get_hook(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Hook>> {
    may_see_secret(&principal)?;
    Ok(Json(hook_info(&state, &headers, &name, false).await?))
}

/// POST /api/v1/flakes/{name}/hook/rotate: a new secret; the old one stops working at once.
pub async fn rotate_hook(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Hook>> {
    may_see_secret(&principal)?;
    Ok(Json(hook_info(&state, &headers, &name, true).await?))
}

/// GET /api/v1/flakes/{name}/history: follow settings and updates, oldest first.
pub async fn history(
    State(state): State<WebState>,
    Path(name): Path<String>,
) -> ApiResult<Json<History>> {
    let (follow, dns, updates) = state
        .flake({
            let name = name.clone();
            move |f| Ok((f.follow(&name)?, f.dns_status(&name), f.history(&name)?))
        })
        .await?;
    Ok(Json(History {
        flake: name,
        follow: follow.into(),
        dns: dns.map(Into::into),
        updates: wire::all(updates),
    }))
}

/// The body of PUT /api/v1/flakes/{name}/follow (and the follow part of adding a flake).
#[derive(Debug, Default, Deserialize)]
pub struct FollowBody {
    /// Follow the branch.
    #[serde(default)]
    pub follow: Option<bool>,
    /// How often to re-lock, e.g. "15m" (unset: kept, or the default).
    #[serde(default)]
    pub check_every: Option<String>,
    /// The TXT record announcing new revisions, e.g. "_flakeboot.example.org" (implies
    /// follow); "" clears it; unset: kept, unless `follow` is false (then cleared).
    #[serde(default)]
    pub notify_txt: Option<String>,
}

/// Reads `check_every` with the config file's rules.
pub(crate) fn parse_check_every(text: &str) -> Result<Duration, FieldError> {
    let every = humantime::parse_duration(text.trim()).map_err(|e| FieldError {
        field: "check_every",
        message: format!("{text:?} is not a duration such as \"15m\": {e}"),
    })?;
    match flakeboot_config::check_every_problem(every) {
        Some(message) => Err(FieldError {
            field: "check_every",
            message,
        }),
        None => Ok(every),
    }
}

/// Reads `notify_txt` with the config file's rules ("" clears it).
pub(crate) fn parse_notify_txt(text: &str) -> Result<Option<String>, FieldError> {
    let name = text.trim();
    if name.is_empty() {
        return Ok(None);
    }
    match flakeboot_config::notify_txt_problem(name) {
        Some(why) => Err(FieldError {
            field: "notify_txt",
            message: format!("notify_txt {why}"),
        }),
        None => Ok(Some(name.to_owned())),
    }
}

/// Applies `body` over `current`. A `notify_txt` record implies following; stopping to follow
/// (`follow: false`) clears it.
pub(crate) fn follow_from(
    current: FollowRecord,
    body: &FollowBody,
) -> Result<FollowRecord, FieldError> {
    let notify_txt = match (&body.notify_txt, body.follow) {
        (Some(text), _) => parse_notify_txt(text)?,
        (None, Some(false)) => None,
        (None, _) => current.notify_txt.clone(),
    };
    if body.follow == Some(false) && notify_txt.is_some() {
        return Err(FieldError {
            field: "notify_txt",
            message: "notify_txt makes the flake follow its branch: clear it to stop following"
                .into(),
        });
    }
    Ok(FollowRecord {
        follow: body.follow.unwrap_or(current.follow) || notify_txt.is_some(),
        check_every: match &body.check_every {
            Some(text) if !text.trim().is_empty() => parse_check_every(text)?,
            _ => current.check_every,
        },
        notify_txt,
    })
}

/// Saves follow settings of a flake the config file does not add (the file's settings are
/// laid over the store at every start, so changing them here would not last).
pub(crate) async fn save_follow(
    state: &WebState,
    name: &str,
    body: &FollowBody,
) -> Result<Result<FollowRecord, FieldError>, WebError> {
    let (flake, current) = state
        .flake({
            let name = name.to_owned();
            move |f| {
                let flake = f.flakes()?.into_iter().find(|r| r.name == name);
                Ok((flake, f.follow(&name)?))
            }
        })
        .await?;
    let Some(flake) = flake else {
        return Err(WebError::NotFound {
            what: format!("flake {name:?}"),
        });
    };
    if let Some(place) = state.flake_in_config(&flake.name, &flake.url) {
        return Ok(Err(FieldError {
            field: "follow",
            message: format!(
                "Flake {name} is added by the config file ({place}): set follow, check_every and notify_txt there."
            ),
        }));
    }
    let next = match follow_from(current, body) {
        Ok(next) => next,
        Err(e) => return Ok(Err(e)),
    };
    state
        .flake({
            let (name, next) = (name.to_owned(), next.clone());
            move |f| f.set_follow(&name, next)
        })
        .await?;
    Ok(Ok(next))
}

/// PUT /api/v1/flakes/{name}/follow: `{"follow": true, "check_every": "15m", "notify_txt":
/// "_flakeboot.example.org"}` → the settings.
pub async fn put_follow(
    State(state): State<WebState>,
    Path(name): Path<String>,
    Json(body): Json<FollowBody>,
) -> ApiResult<Response> {
    Ok(match save_follow(&state, &name, &body).await? {
        Ok(saved) => Json(Follow::from(saved)).into_response(),
        Err(e) => unprocessable(&[e]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_limit_counts_per_flake_and_passes_with_time() {
        let t0 = Instant::now();
        let mut limiter = HookLimiter::default();
        for _ in 0..HOOK_CALLS {
            assert!(limiter.admit("lab", t0).is_ok());
        }
        assert_eq!(limiter.admit("lab", t0), Err(HOOK_WINDOW));
        assert!(limiter.admit("fleet", t0).is_ok());
        let later = t0 + Duration::from_secs(20);
        assert_eq!(limiter.admit("lab", later), Err(Duration::from_secs(40)));
        assert!(limiter.admit("lab", t0 + HOOK_WINDOW).is_ok());
        // Expired flakes are forgotten.
        assert!(limiter.admit("fleet", t0 + HOOK_WINDOW * 3).is_ok());
        assert_eq!(limiter.calls.len(), 1);
    }

    #[test]
    fn check_every_follows_the_config_rules() {
        assert_eq!(parse_check_every("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_check_every("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_check_every("100ms").unwrap_err().field, "check_every");
        assert!(parse_check_every("soon").is_err());
        let kept = follow_from(
            FollowRecord::default(),
            &FollowBody {
                follow: Some(true),
                check_every: None,
                notify_txt: None,
            },
        )
        .unwrap();
        assert!(kept.follow);
        assert_eq!(kept.check_every, flakeboot_store::DEFAULT_CHECK_EVERY);
    }

    #[test]
    fn notify_txt_implies_follow_and_follow_off_clears_it() {
        let body = |follow, notify: Option<&str>| FollowBody {
            follow,
            check_every: None,
            notify_txt: notify.map(str::to_owned),
        };
        let none = FollowRecord::default();
        let set = follow_from(none.clone(), &body(None, Some(" _flakeboot.example.org "))).unwrap();
        assert!(set.follow);
        assert_eq!(set.notify_txt.as_deref(), Some("_flakeboot.example.org"));
        // Kept when not given; cleared by "" (still following) or by follow: false.
        let kept = follow_from(set.clone(), &body(Some(true), None)).unwrap();
        assert_eq!(kept, set);
        let cleared = follow_from(set.clone(), &body(None, Some(""))).unwrap();
        assert!(cleared.follow && cleared.notify_txt.is_none());
        let off = follow_from(set.clone(), &body(Some(false), None)).unwrap();
        assert!(!off.follow && off.notify_txt.is_none());
        let both = follow_from(none.clone(), &body(Some(false), Some("_f.example.org")));
        assert_eq!(both.unwrap_err().field, "notify_txt");
        for bad in ["a..b", "bad name.org", "rev=x"] {
            let err = follow_from(none.clone(), &body(None, Some(bad))).unwrap_err();
            assert_eq!(err.field, "notify_txt", "{bad}");
            assert!(
                err.message.contains("not a DNS name"),
                "{bad}: {}",
                err.message
            );
        }
    }
}
