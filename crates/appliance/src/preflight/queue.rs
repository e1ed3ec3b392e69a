//! The pre-flight queue: one task that boots queued generations one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flakeboot_nix::CurrentGenerations;
use flakeboot_store::{GenerationRecord, PreflightRecord, PreflightState, Store, StoreError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::PreflightVm;

/// What the queue needs besides the store.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `[preflight] timeout`.
    pub timeout: Duration,
    /// Console logs go to `<log_dir>/<flake>-<host>-<n>.log` (the directory is made 0700).
    pub log_dir: PathBuf,
}

/// The running queue: ticks whenever a pre-flight ended (the update path waits on it).
#[derive(Debug, Clone)]
pub struct PreflightQueue {
    ended: watch::Receiver<u64>,
}

impl PreflightQueue {
    /// Starts the queue task. `wake` ticks when new generations may be queued (the build
    /// runner's `generations_changed`); `current` is refreshed after each pre-flight. A
    /// pre-flight left `running` by a previous run is queued again first.
    pub fn start(
        store: Store,
        current: CurrentGenerations,
        vm: Arc<dyn PreflightVm>,
        settings: QueueSettings,
        mut wake: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) -> PreflightQueue {
        let (tx, ended) = watch::channel(0u64);
        tokio::spawn(async move {
            if let Err(e) = blocking(&store, requeue_interrupted).await {
                warn!("cannot requeue interrupted pre-flights: {e}");
            }
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let next = match blocking(&store, next_queued).await {
                    Ok(next) => next,
                    Err(e) => {
                        warn!("cannot read the pre-flight queue: {e}");
                        None
                    }
                };
                let Some(generation) = next else {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        changed = wake.changed() => if changed.is_err() {
                            // The build runner is gone: nothing new can be queued.
                            shutdown.cancelled().await;
                            return;
                        },
                    }
                    continue;
                };
                match run_one(&store, vm.as_ref(), &settings, &generation, &shutdown).await {
                    Ok(()) => {}
                    Err(e) => {
                        warn!(host = %generation.host, generation = generation.number, "pre-flight not recorded: {e}")
                    }
                }
                let refreshed = current.clone();
                if let Err(e) = blocking(&store, move |s| refreshed.refresh(s)).await {
                    warn!("cannot refresh the current generations after a pre-flight: {e}");
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        PreflightQueue { ended }
    }

    /// Ticks after every pre-flight that ended.
    pub fn ended(&self) -> watch::Receiver<u64> {
        self.ended.clone()
    }
}

/// What can keep the queue from recording a pre-flight.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking worker running a store call panicked or was cancelled.
    #[error("a store call did not finish: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, QueueError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| QueueError::Worker {
            reason: e.to_string(),
        })?
        .map_err(QueueError::from)
}

/// `running` pre-flights of a previous run (the daemon stopped mid-boot) go back to `queued`.
fn requeue_interrupted(store: &Store) -> Result<(), StoreError> {
    for g in store.unfinished_preflights()? {
        if g.preflight.state == PreflightState::Running {
            store.set_preflight(&g.host, g.number, &PreflightRecord::queued())?;
        }
    }
    Ok(())
}

/// The oldest queued generation.
fn next_queued(store: &Store) -> Result<Option<GenerationRecord>, StoreError> {
    Ok(store
        .unfinished_preflights()?
        .into_iter()
        .find(|g| g.preflight.state == PreflightState::Queued))
}

/// `<log_dir>/<flake>-<host>-<n>.log` (flake and host names are `[A-Za-z0-9_-]`).
fn log_path(log_dir: &Path, g: &GenerationRecord) -> PathBuf {
    let name = g.host.replace('#', "-");
    log_dir.join(format!("{name}-{}.log", g.number))
}

/// An empty owner-only log file in an owner-only directory.
fn create_log(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    Ok(())
}

/// Boots one generation and records how it went. A generation removed meanwhile is left alone.
async fn run_one(
    store: &Store,
    vm: &dyn PreflightVm,
    settings: &QueueSettings,
    generation: &GenerationRecord,
    shutdown: &CancellationToken,
) -> Result<(), QueueError> {
    let log = log_path(&settings.log_dir, generation);
    let started = SystemTime::now();
    let mut record = PreflightRecord {
        state: PreflightState::Running,
        started_at: Some(started),
        finished_at: None,
        reason: None,
        log: Some(log.clone()),
    };
    if let Err(e) = create_log(&log) {
        record.log = None;
        warn!(path = %log.display(), "cannot create the pre-flight console log: {e}");
    }
    let (host, number) = (generation.host.clone(), generation.number);
    let running = record.clone();
    if !blocking(store, move |s| s.set_preflight(&host, number, &running)).await? {
        return Ok(());
    }
    info!(host = %generation.host, generation = generation.number, "pre-flight started");
    let cancel = shutdown.child_token();
    // The VM enforces the timeout; this bound (a little later) holds even if it does not.
    let outcome = tokio::time::timeout(
        settings.timeout + Duration::from_secs(30),
        vm.boot(generation, &log, settings.timeout, cancel.clone()),
    )
    .await
    .unwrap_or_else(|_| Err("no report (the VM did not end at its timeout)".into()));
    cancel.cancel();
    if shutdown.is_cancelled() {
        // Stopped mid-boot: it stays `running` in the store and is queued again at start.
        return Ok(());
    }
    let finished = SystemTime::now();
    record.finished_at = Some(finished);
    let secs = finished
        .duration_since(started)
        .unwrap_or_default()
        .as_secs();
    match outcome {
        Ok(()) => {
            record.state = PreflightState::Passed;
            info!(host = %generation.host, generation = generation.number, secs, "pre-flight passed");
        }
        Err(reason) => {
            record.state = PreflightState::Failed;
            warn!(host = %generation.host, generation = generation.number, secs, "pre-flight failed: {reason}");
            record.reason = Some(reason);
        }
    }
    let (host, number) = (generation.host.clone(), generation.number);
    blocking(store, move |s| s.set_preflight(&host, number, &record)).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
