//! The build queue: builds one host at one locked revision at a time (or `max_concurrent`),
//! with identical requests joined, a live log any number of followers can read from the start,
//! cancel and timeout that kill nix with everything it started, and a queue that survives a
//! restart (queued builds are in the store; a build that was running is requeued).
//!
//! The tokio side only schedules: nix runs through [`run_nix`], its log is read by the pure
//! [`ProgressTracker`], and generations are made by [`crate::generation`].

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use flakeboot_config::NixConfig;
use flakeboot_store::{BuildRecord, BuildState, Store, StoreError};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::blocking::on_store;
use crate::command::{CommandError, NixSettings, run_nix};
use crate::current::CurrentGenerations;
use crate::gc::{self, Storage, StorageReport};
use crate::generation;
use crate::live::{LiveBuild, LogFile, LogFollower, lock};
use crate::outputs;
use crate::preflight_gate::PreflightGate;
use crate::progress::{BuildProgress, ProgressTracker};
use crate::rebuild;

/// How the runner works.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// How nix is run at start; [`Runner::set_settings`] replaces it for later builds.
    pub settings: NixSettings,
    /// Builds at once.
    pub max_concurrent: usize,
    /// A build running longer is killed and recorded as timed out.
    pub timeout: Duration,
    /// Generations kept per host.
    pub keep_generations: usize,
    /// `<state>/build-logs/<id>.log` and `<state>/gcroots/`.
    pub state_dir: PathBuf,
    /// `[nix] min_free` in bytes: below it a build first collects garbage, then is refused.
    pub min_free: Option<u64>,
    /// `[nix] gc`: collect garbage after each successful build and daily.
    pub gc: bool,
    /// `[nix] allowed_paths`: the directories local flakes may come from
    /// ([`crate::LocalSources`]; never `/etc` or `state_dir`).
    pub allowed_paths: Vec<PathBuf>,
}

impl RunnerConfig {
    /// From `[nix]` and the state directory.
    pub fn from_config(config: &NixConfig, state_dir: &Path) -> RunnerConfig {
        RunnerConfig {
            settings: NixSettings::from_config(config).with_files(state_dir),
            max_concurrent: config.max_concurrent_builds.max(1),
            timeout: config.build_timeout,
            keep_generations: config.keep_generations.max(1),
            state_dir: state_dir.to_owned(),
            min_free: config.min_free,
            gc: config.gc,
            allowed_paths: config.allowed_paths.clone(),
        }
    }
}

/// What to build: one host of a flake at one locked revision (from lock + discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The flake's name.
    pub flake: String,
    /// The configuration's name.
    pub host: String,
    /// The reference the user gave.
    pub flake_url: String,
    /// The locked reference to build.
    pub locked_url: String,
    /// The locked revision, if any.
    pub revision: Option<String>,
    /// `kernelFile` from discovery.
    pub kernel_file: String,
    /// `boot.kernelParams` from discovery.
    pub kernel_params: Vec<String>,
}

/// A build's state as followers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStatus {
    /// Queued, running, or how it ended.
    pub state: BuildState,
    /// Derivations done / total and the current activity.
    pub progress: BuildProgress,
    /// Why it failed, was cancelled or timed out.
    pub error: Option<String>,
    /// The generation it made.
    pub generation: Option<u32>,
}

/// Why the runner refused a request.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// No build has this id.
    #[error("there is no build {id}")]
    NoSuchBuild {
        /// The id asked for.
        id: u64,
    },
    /// Reading a finished build's log failed.
    #[error("cannot read the log of build {id} ({}): {source}", path.display())]
    Log {
        /// The build.
        id: u64,
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A store task did not finish (the runtime is shutting down).
    #[error("store task did not finish: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
}

impl From<tokio::task::JoinError> for RunnerError {
    fn from(e: tokio::task::JoinError) -> Self {
        RunnerError::Worker {
            reason: e.to_string(),
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<u64>,
    live: HashMap<u64, Arc<LiveBuild>>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: RunnerConfig,
    /// How nix is run now: each build (and each lock or discovery) takes a snapshot when it
    /// starts, so a change applies to the next one and never to one already running.
    settings: RwLock<Arc<NixSettings>>,
    queue: Mutex<Queue>,
    wake: Notify,
    shutdown: CancellationToken,
    generations: watch::Sender<u64>,
    /// Refreshed before a successful build is announced: whoever waited for the build finds
    /// its generation in the current.
    current: CurrentGenerations,
    /// Disk space: `[nix] min_free` and garbage collection.
    storage: Storage,
    /// Whether a new generation waits for its pre-flight boot.
    preflight: PreflightGate,
}

/// How often garbage is collected with `[nix] gc`, besides after builds.
const DAILY: Duration = Duration::from_secs(24 * 3600);

/// Stops the workers (killing any running nix) when the last [`Runner`] clone is dropped.
#[derive(Debug)]
struct ShutdownOnDrop(CancellationToken);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The build queue. Cheap to clone; dropping the last clone stops the workers and kills any
/// nix they run (a running build stays `running` in the store and is requeued by the next
/// [`Runner::start`]).
#[derive(Debug, Clone)]
pub struct Runner {
    inner: Arc<Inner>,
    _shutdown: Arc<ShutdownOnDrop>,
}

impl Runner {
    /// Start the workers. Builds left queued by a previous run are queued again; builds that
    /// were running are recorded as interrupted and queued again. Call inside a tokio runtime.
    pub fn start(store: Store, config: RunnerConfig) -> Result<Runner, RunnerError> {
        let pending = store.requeue_interrupted_builds()?;
        let current = CurrentGenerations::load(&store)?;
        let (generations, _) = watch::channel(0);
        let storage = Storage::new(Path::new(gc::STORE_DIR), config.min_free, config.gc);
        let inner = Arc::new(Inner {
            storage,
            current,
            store,
            settings: RwLock::new(Arc::new(config.settings.clone())),
            config,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            generations,
            preflight: PreflightGate::default(),
        });
        for build in pending {
            if build.interruptions > 0 {
                warn!(id = build.id, host = %build.qualified_host(), "build interrupted by a restart: requeued");
            }
            inner.enqueue_live(&build);
        }
        for worker in 0..inner.config.max_concurrent {
            let inner = inner.clone();
            tokio::spawn(async move { inner.work(worker).await });
        }
        {
            let inner = inner.clone();
            tokio::spawn(async move { inner.rebuild_missing().await });
        }
        if inner.storage.scheduled() {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(DAILY) => {}
                        () = inner.shutdown.cancelled() => return,
                    }
                    let settings = inner.settings();
                    inner
                        .storage
                        .collect(&settings, &inner.shutdown, "daily")
                        .await;
                }
            });
        }
        Ok(Runner {
            _shutdown: Arc::new(ShutdownOnDrop(inner.shutdown.clone())),
            inner,
        })
    }

    /// Queue a build, or join the queued or running build of the same locked reference and host.
    /// Returns the build's id.
    pub fn submit(&self, request: &BuildRequest) -> Result<u64, RunnerError> {
        let inner = &self.inner;
        let key = (request.locked_url.clone(), request.host.clone());
        // The queue lock is held across the insert so two identical requests cannot both miss.
        let mut queue = lock(&inner.queue);
        if let Some((id, _)) = queue.live.iter().find(|(_, b)| b.key == key) {
            info!(id, host = %request.host, "identical build already queued or running: joined");
            return Ok(*id);
        }
        let build = BuildRecord {
            id: 0,
            flake: request.flake.clone(),
            host: request.host.clone(),
            flake_url: request.flake_url.clone(),
            locked_url: request.locked_url.clone(),
            revision: request.revision.clone(),
            kernel_file: request.kernel_file.clone(),
            kernel_params: request.kernel_params.clone(),
            state: BuildState::Queued,
            queued_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            error: None,
            interruptions: 0,
            generation: None,
            log: PathBuf::new(),
        };
        let record = inner.store.insert_build(&build, &inner.log_dir())?;
        queue
            .live
            .insert(record.id, Arc::new(LiveBuild::new(&record)));
        queue.waiting.push_back(record.id);
        drop(queue);
        inner.wake.notify_one();
        info!(id = record.id, host = %record.qualified_host(), rev = ?record.revision, "build queued");
        Ok(record.id)
    }

    /// Cancel a queued or running build (a running nix is killed with everything it started).
    /// Returns false when the build had already ended.
    pub fn cancel(&self, id: u64) -> Result<bool, RunnerError> {
        let inner = &self.inner;
        let mut queue = lock(&inner.queue);
        let Some(live) = queue.live.get(&id).cloned() else {
            return match inner.store.build(id)? {
                Some(_) => Ok(false),
                None => Err(RunnerError::NoSuchBuild { id }),
            };
        };
        if let Some(pos) = queue.waiting.iter().position(|w| *w == id) {
            queue.waiting.remove(pos);
            queue.live.remove(&id);
            drop(queue);
            let record = inner
                .store
                .build(id)?
                .ok_or(RunnerError::NoSuchBuild { id })?;
            let record = settle(
                record,
                BuildState::Cancelled,
                Some("cancelled before it started".into()),
                None,
            );
            inner.store.put_build(&record)?;
            inner.announce(&live, &record);
        } else {
            live.cancel.cancel();
        }
        info!(id, "build cancelled");
        Ok(true)
    }

    /// A build's current status; a queued or running one's changes can be watched.
    pub fn status(&self, id: u64) -> Result<watch::Receiver<BuildStatus>, RunnerError> {
        if let Some(live) = lock(&self.inner.queue).live.get(&id) {
            return Ok(live.status.subscribe());
        }
        let record = self
            .inner
            .store
            .build(id)?
            .ok_or(RunnerError::NoSuchBuild { id })?;
        let (_, rx) = watch::channel(BuildStatus {
            state: record.state,
            progress: BuildProgress::default(),
            error: record.error,
            generation: record.generation,
        });
        Ok(rx)
    }

    /// Wait until a build has ended; returns its final record.
    pub async fn wait(&self, id: u64) -> Result<BuildRecord, RunnerError> {
        let mut rx = self.status(id)?;
        // An error means the build ended and its sender was dropped: the store has the result.
        let _ = rx.wait_for(|s| !s.state.is_active()).await;
        self.inner
            .store
            .build(id)?
            .ok_or(RunnerError::NoSuchBuild { id })
    }

    /// Follow a build's log: every line from the start, then live lines until it ends.
    pub fn follow(&self, id: u64) -> Result<LogFollower, RunnerError> {
        if let Some(live) = lock(&self.inner.queue).live.get(&id).cloned() {
            return Ok(live.follow());
        }
        let record = self
            .inner
            .store
            .build(id)?
            .ok_or(RunnerError::NoSuchBuild { id })?;
        let text = match std::fs::read_to_string(&record.log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(RunnerError::Log {
                    id,
                    path: record.log,
                    source,
                });
            }
        };
        Ok(LogFollower::finished(&text))
    }

    /// The flake hosts' current generations, refreshed before any build that made a generation
    /// is reported as ended.
    pub fn current(&self) -> &CurrentGenerations {
        &self.inner.current
    }

    /// Ticks whenever a build made a new generation.
    pub fn generations_changed(&self) -> watch::Receiver<u64> {
        self.inner.generations.subscribe()
    }

    /// The switch that makes new generations wait for a pre-flight boot (off until the
    /// application layer turns it on).
    pub fn preflight_gate(&self) -> &PreflightGate {
        &self.inner.preflight
    }

    /// The store the runner records in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// How the runner works (as started: the nix settings in effect are [`Runner::settings`]).
    pub fn config(&self) -> &RunnerConfig {
        &self.inner.config
    }

    /// Disk space on the store's file system and the last garbage collection.
    pub fn storage(&self) -> StorageReport {
        self.inner.storage.report()
    }

    /// How nix is run now (a snapshot: later changes do not alter it).
    pub fn settings(&self) -> Arc<NixSettings> {
        self.inner.settings()
    }

    /// Replace how nix is run (e.g. substituters or builders saved in the web UI). Builds that
    /// start from now on use `settings`; running builds keep the settings they started with.
    pub fn set_settings(&self, settings: NixSettings) {
        let settings = Arc::new(settings);
        match self.inner.settings.write() {
            Ok(mut guard) => *guard = settings,
            // A poisoned lock only means a writer panicked while swapping an Arc: replace it.
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
        info!("nix settings replaced: the next build uses them");
    }
}

impl Inner {
    fn settings(&self) -> Arc<NixSettings> {
        match self.settings.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.config.state_dir.join("build-logs")
    }

    /// Queue a build found in the store at start. A build interrupted by a restart keeps its
    /// log: followers get the earlier run's lines first.
    fn enqueue_live(&self, record: &BuildRecord) {
        let live = LiveBuild::new(record);
        if let Ok(text) = std::fs::read_to_string(&record.log) {
            live.preload(text.lines().map(str::to_owned));
        }
        let mut queue = lock(&self.queue);
        queue.live.insert(record.id, Arc::new(live));
        queue.waiting.push_back(record.id);
    }

    async fn work(self: Arc<Self>, worker: usize) {
        loop {
            let next = loop {
                let notified = self.wake.notified();
                let next = {
                    let mut queue = lock(&self.queue);
                    queue
                        .waiting
                        .pop_front()
                        .and_then(|id| queue.live.get(&id).cloned().map(|l| (id, l)))
                };
                if let Some(next) = next {
                    break next;
                }
                tokio::select! {
                    () = notified => {}
                    () = self.shutdown.cancelled() => return,
                }
            };
            let (id, live) = next;
            tokio::select! {
                result = self.run(id, &live) => {
                    if let Err(e) = result {
                        // The store could not record it: followers still learn that it ended.
                        warn!(worker, id, "build bookkeeping failed: {e}");
                        live.status.send_modify(|s| {
                            s.state = BuildState::Failed;
                            s.error = Some(format!("flakeboot could not record the build: {e}"));
                        });
                    }
                }
                // Dropping `run` kills nix; the store still says "running": requeued at start.
                () = self.shutdown.cancelled() => return,
            }
            lock(&self.queue).live.remove(&id);
        }
    }

    async fn run(&self, id: u64, live: &LiveBuild) -> Result<(), RunnerError> {
        let mut record = on_store(&self.store, move |s| s.build(id))
            .await??
            .ok_or(RunnerError::NoSuchBuild { id })?;
        record.state = BuildState::Running;
        record.started_at = Some(SystemTime::now());
        let saved = record.clone();
        on_store(&self.store, move |s| s.put_build(&saved)).await??;
        live.status.send_modify(|s| s.state = BuildState::Running);
        info!(id, host = %record.qualified_host(), locked = %record.locked_url, "build started");

        let mut file = LogFile::open(id, &record.log);
        let mut log = |line: String| {
            file.write_line(&line);
            live.push_line(line);
        };
        if record.interruptions > 0 {
            log(format!(
                "[flakeboot: restarted after {} interruption(s)]",
                record.interruptions
            ));
        }
        let mut tracker = ProgressTracker::new();
        let mut on_line = |line: &str| {
            if let Some(text) = tracker.feed(line) {
                log(text);
            }
            let progress = tracker.progress().clone();
            live.status.send_if_modified(|s| {
                let changed = s.progress != progress;
                s.progress = progress;
                changed
            });
        };
        // This build's nix settings: a change made while it runs applies to the next build.
        let settings = self.settings();
        let started = tokio::time::Instant::now();
        let timeout = self.config.timeout;
        // First the outputs' derivations (evaluation only), then the build: nix's results are
        // matched to the outputs by derivation (see `outputs`). Both count against the timeout.
        let result = async {
            if let Err(refused) = self.storage.before_build(&settings, &live.cancel).await {
                return Err(CommandError::Refused(refused));
            }
            // Until this build's roots exist, no garbage collection (see `gc`).
            let in_flight = self.storage.build_in_flight().await;
            let (url, host) = (&record.locked_url, &record.host);
            let derivations = run_nix(
                &settings,
                &outputs::derivations_args(url, host),
                &live.cancel,
                Some(timeout),
                &mut on_line,
            )
            .await?;
            let built = run_nix(
                &settings,
                &outputs::build_args(url, host),
                &live.cancel,
                Some(timeout.saturating_sub(started.elapsed())),
                &mut on_line,
            )
            .await?;
            Ok::<_, CommandError>((in_flight, derivations, built))
        }
        .await;

        let (state, error, generation) = match result {
            Ok((in_flight, derivations, built)) => {
                let made = self
                    .make_generation(&record, &settings, &derivations, &built)
                    .await;
                drop(in_flight);
                match made {
                    Ok(n) => (BuildState::Succeeded, None, Some(n)),
                    Err(e) => (BuildState::Failed, Some(e.to_string()), None),
                }
            }
            Err(CommandError::Cancelled) => (
                BuildState::Cancelled,
                Some("cancelled by the user".into()),
                None,
            ),
            Err(CommandError::TimedOut { .. }) => (
                BuildState::TimedOut,
                Some(format!(
                    "timed out after {}s ([nix] build_timeout): nix was killed",
                    timeout.as_secs()
                )),
                None,
            ),
            Err(e) => (BuildState::Failed, Some(e.to_string()), None),
        };
        let line = match (&error, generation) {
            (None, Some(n)) => format!("[flakeboot: build succeeded: generation {n}]"),
            (Some(e), _) => format!("[flakeboot: build {state:?}: {e}]"),
            (None, None) => format!("[flakeboot: build {state:?}]"),
        };
        log(line);
        let record = settle(record, state, error, generation);
        let saved = record.clone();
        on_store(&self.store, move |s| s.put_build(&saved)).await??;
        if record.generation.is_some() {
            let current = self.current.clone();
            on_store(&self.store, move |s| current.refresh(s)).await??;
        }
        self.announce(live, &record);
        if record.generation.is_some() {
            self.storage.after_build(&settings, &self.shutdown).await;
        }
        Ok(())
    }

    /// Generations whose store paths are gone (a restored backup) are built again from their
    /// locked references (see [`crate::rebuild`]); no garbage collection meanwhile.
    async fn rebuild_missing(&self) {
        let in_flight = self.storage.build_in_flight().await;
        let settings = self.settings();
        let done = rebuild::rebuild_missing(
            &self.store,
            &settings,
            &self.config.state_dir,
            &self.shutdown,
            self.config.timeout,
        )
        .await;
        drop(in_flight);
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                warn!(error = %e, "cannot look for generations whose store paths are missing");
                return;
            }
        };
        for rebuilt in &done {
            match &rebuilt.result {
                Ok(()) => info!(
                    host = %rebuilt.host,
                    generation = rebuilt.number,
                    "store paths were missing (a restored backup?): rebuilt from the locked revision"
                ),
                Err(e) => warn!(
                    host = %rebuilt.host,
                    generation = rebuilt.number,
                    error = %e,
                    "store paths are missing and the generation could not be rebuilt"
                ),
            }
        }
        if done.iter().any(|r| r.result.is_ok()) {
            let current = self.current.clone();
            match on_store(&self.store, move |s| current.refresh(s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "cannot reload the generations"),
                Err(e) => warn!(error = %e, "cannot reload the generations"),
            }
            self.generations.send_modify(|n| *n += 1);
        }
    }

    async fn make_generation(
        &self,
        record: &BuildRecord,
        settings: &NixSettings,
        derivations: &[u8],
        built: &[u8],
    ) -> Result<u32, generation::GenerationError> {
        let outputs = generation::built_outputs(derivations, built)?;
        let mut draft = generation::draft_generation(record, outputs, SystemTime::now());
        draft.preflight = self.preflight.initial();
        // Before anything is stored: a host the boot script cannot carry never becomes current.
        generation::check_generation(&draft)?;
        let roots = generation::roots_dir(&self.config.state_dir, record);
        let made = generation::record_generation(&self.store, settings, &roots, &draft).await?;
        let (host, keep) = (record.qualified_host(), self.config.keep_generations);
        info!(host, generation = made.number, "new generation");
        on_store(&self.store, move |s| generation::prune(s, &host, keep)).await??;
        Ok(made.number)
    }

    /// Tell followers and the current how a (stored) build ended.
    fn announce(&self, live: &LiveBuild, record: &BuildRecord) {
        let (state, error, generation) = (record.state, record.error.clone(), record.generation);
        if generation.is_some() {
            self.generations.send_modify(|n| *n += 1);
        }
        match &error {
            Some(e) => {
                warn!(id = record.id, host = %record.qualified_host(), ?state, "build ended: {e}")
            }
            None => info!(id = record.id, host = %record.qualified_host(), ?state, "build ended"),
        }
        live.status.send_modify(|s| {
            s.state = state;
            s.error = error;
            s.generation = generation;
        });
    }
}

/// A build's record once it ended.
fn settle(
    mut record: BuildRecord,
    state: BuildState,
    error: Option<String>,
    generation: Option<u32>,
) -> BuildRecord {
    record.state = state;
    record.finished_at = Some(SystemTime::now());
    record.error = error;
    record.generation = generation;
    record
}
