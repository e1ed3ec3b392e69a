//! `GET /metrics`: the Prometheus text format, for a bearer token of either scope (the guard
//! treats `/metrics` like `/api/v1`). The counters come from the boot services
//! ([`WebState::set_metrics`]); the gauges are read from the store and the nix runner now.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flakeboot_appliance::metrics::{self, StateGauges};
use flakeboot_store::LeaseState;

use super::ApiResult;
use crate::state::WebState;

/// GET /metrics
pub async fn metrics(State(state): State<WebState>) -> ApiResult<Response> {
    let now = state.clock().wall();
    let (machines, leases) = state.db(|s| Ok((s.machines()?.len(), s.leases()?))).await?;
    let (builds, storage) = state.flake(|f| Ok((f.builds()?, f.storage()))).await?;
    let mut by_state = BTreeMap::new();
    for build in &builds {
        *by_state
            .entry(metrics::build_state_label(build.state))
            .or_default() += 1;
    }
    let count = |want: LeaseState| {
        leases
            .iter()
            .filter(|l| l.state == want && l.expires > now)
            .count() as u64
    };
    let gauges = StateGauges {
        storage,
        leases_bound: count(LeaseState::Bound),
        leases_declined: count(LeaseState::Declined),
        machines: machines as u64,
        builds: by_state,
    };
    let page = metrics::render(&state.metrics().snapshot(gauges));
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], page).into_response())
}
