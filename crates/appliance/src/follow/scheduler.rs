//! The one task that re-locks following flakes when their `check_every` comes round. It only
//! triggers [`Updates::run`] (the path a user's "update" takes), one flake after another, so
//! at most one re-lock runs from here at a time; the builds are waited for elsewhere.

use std::time::Duration;

use flakeboot_store::UpdateTrigger;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Schedule, Started, Updates};

/// The longest the scheduler sleeps before it reads the follow settings again (flakes added
/// or removed elsewhere).
const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// Runs until `stop`: every following flake is updated every `check_every` (trigger
/// `schedule`), counted from when the scheduler first sees it follow.
pub async fn run(updates: Updates, stop: CancellationToken) {
    let mut schedule = Schedule::default();
    loop {
        let following = {
            let u = updates.clone();
            tokio::task::spawn_blocking(move || following(&u)).await
        };
        let following = match following {
            Ok(Ok(list)) => list,
            Ok(Err(e)) => {
                warn!("cannot read which flakes follow their branch: {e}");
                Vec::new()
            }
            Err(_) => return,
        };
        let now = Instant::now();
        for name in schedule.poll(&following, now.into_std()) {
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                started = updates.run(&name, UpdateTrigger::Schedule) => match started {
                    Ok(Started::Ran(r)) => debug!(flake = %name, state = r.state.as_str(), "scheduled update"),
                    Ok(Started::Queued) => debug!(flake = %name, "scheduled update queued behind a running one"),
                    Err(e) => warn!(flake = %name, "scheduled update failed: {e}"),
                },
            }
        }
        let wake = schedule.poll_at().map_or(now + LOOK_AGAIN, |at| {
            Instant::from_std(at).min(now + LOOK_AGAIN)
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
            _ = updates.changed() => {}
        }
    }
}

/// Every existing flake the schedule re-locks (it follows, and no `notify_txt` record
/// announces its revisions), with its `check_every`.
fn following(updates: &Updates) -> Result<Vec<(String, Duration)>, super::FollowError> {
    let store = updates.flakes().runner().store();
    let flakes = store.flakes()?;
    Ok(store
        .flake_follows()?
        .into_iter()
        .filter(|(name, f)| f.polled() && flakes.iter().any(|r| &r.name == name))
        .map(|(name, f)| (name, f.check_every))
        .collect())
}
