//! Removing a flake, forgetting a machine, releasing a lease and waking a machine: the checks
//! and the calls the pages and the API share. What the config file adds (a `[[flakes]]` entry,
//! a `[[machines]]` pin) is refused with its file and line: the file would bring it back.

use std::net::Ipv4Addr;

use flakeboot_appliance::flakes::{FlakeRemoved, FlakeServiceError};
use flakeboot_appliance::lan_actions::Sent;
use flakeboot_catalogue::MacAddr;
use flakeboot_store::{FlakeRecord, LeaseState};

use crate::error::WebError;
use crate::state::WebState;

/// A flake and the machines assigned to its hosts (what removing it sends to the menu).
#[derive(Debug, Clone)]
pub(crate) struct FlakeUse {
    pub flake: FlakeRecord,
    /// Machines assigned to one of its hosts, with the host.
    pub machines: Vec<(MacAddr, String)>,
    /// Where the config file adds it, if it does.
    pub in_config: Option<String>,
}

/// The flake `name`, what uses it, and whether the config file adds it.
pub(crate) async fn flake_use(state: &WebState, name: &str) -> Result<FlakeUse, WebError> {
    let wanted = name.to_owned();
    let flake = state
        .flake(move |f| f.flakes())
        .await?
        .into_iter()
        .find(|f| f.name == wanted)
        .ok_or_else(|| WebError::NotFound {
            what: format!("flake {name:?}"),
        })?;
    let prefix = format!("{}#", flake.name);
    let machines = state
        .db(move |s| s.machines())
        .await?
        .into_iter()
        .filter_map(|m| {
            m.host
                .filter(|h| h.starts_with(&prefix))
                .map(|h| (m.mac, h))
        })
        .collect();
    let in_config = state.flake_in_config(&flake.name, &flake.url);
    Ok(FlakeUse {
        flake,
        machines,
        in_config,
    })
}

/// Why a flake cannot be removed: the config file adds it.
pub(crate) fn config_flake_error(name: &str, place: &str) -> WebError {
    WebError::Flake(FlakeServiceError::Invalid {
        field: "name",
        message: format!(
            "Flake {name} is added by the config file ({place}): remove it there and restart flakeboot."
        ),
    })
}

/// Removes a flake that the config file does not add; machines of its hosts boot the menu.
pub(crate) async fn remove_flake(state: &WebState, name: &str) -> Result<FlakeRemoved, WebError> {
    let used = flake_use(state, name).await?;
    if let Some(place) = &used.in_config {
        return Err(config_flake_error(name, place));
    }
    let name = used.flake.name.clone();
    let removed = state.flake(move |f| f.remove(&name)).await?;
    state.machines_changed();
    tracing::info!(flake = %removed.name, machines = removed.machines.len(), "flake removed");
    Ok(removed)
}

/// What forgetting a machine did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forget {
    /// Its record, boot options and events are gone.
    Forgotten,
    /// The config file pins it (where): nothing was changed.
    Pinned(String),
}

/// The message for a machine the config file pins.
pub(crate) fn pinned_message(place: &str) -> String {
    format!("Set in {place}: a machine the config file pins cannot be forgotten; remove it there.")
}

/// Forgets a machine unless the config file pins it. `NotFound` when it has no record.
pub(crate) async fn forget_machine(state: &WebState, mac: MacAddr) -> Result<Forget, WebError> {
    if let Some(place) = state.pinned_by(mac) {
        return Ok(Forget::Pinned(place));
    }
    if !state.db(move |s| s.delete_machine(mac)).await? {
        return Err(WebError::NotFound {
            what: format!("machine {mac}"),
        });
    }
    state.machines_changed();
    tracing::info!(%mac, "machine forgotten");
    Ok(Forget::Forgotten)
}

/// The address `mac` holds now (a bound router-mode lease), if any.
pub(crate) async fn lease_of(state: &WebState, mac: MacAddr) -> Result<Option<Ipv4Addr>, WebError> {
    Ok(state
        .db(|s| s.leases())
        .await?
        .into_iter()
        .find(|l| l.mac == mac && l.state == LeaseState::Bound)
        .map(|l| l.ip))
}

/// Releases the leases of `mac`: their addresses. `NotFound` when it holds none.
pub(crate) async fn release_lease(
    state: &WebState,
    mac: MacAddr,
) -> Result<Vec<Ipv4Addr>, WebError> {
    let released = match state.lan_actions() {
        Some(actions) => actions.release_lease(mac).await?,
        None => state.db(move |s| s.release_leases_of(mac)).await?,
    };
    if released.is_empty() {
        return Err(WebError::NotFound {
            what: format!("a lease of {mac}"),
        });
    }
    Ok(released)
}

/// Sends the Wake-on-LAN magic packet for `mac` on the LAN port.
pub(crate) async fn wake(state: &WebState, mac: MacAddr) -> Result<Sent, WebError> {
    let actions = state.lan_actions().ok_or_else(|| WebError::Unavailable {
        message: "Wake-on-LAN is not available on this appliance.".into(),
    })?;
    Ok(actions.wake(mac).await?)
}
