//! Flake operations, one code path for the config file and the web API:
//! add a flake (validate, lock, discover), update it (re-lock to the newest revision, build),
//! build a host, roll a host back (pin a generation) or forward again.

use std::time::SystemTime;

use flakeboot_config::FlakeConfig;
use flakeboot_store::{FlakeHostRecord, FlakeRecord, GenerationRecord, Store, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::blocking::on_store;
use crate::current::{CurrentGenerations, ResolveError};
use crate::discover::{DiscoverError, HostStatus, discover};
use crate::flakeref::{FlakeRef, FlakeRefError};
use crate::generation::{self, GenerationError};
use crate::local::{LocalSourceError, LocalSources};
use crate::lock::{LockError, lock};
use crate::runner::{BuildRequest, Runner, RunnerError};

/// Why a flake operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FlakeError {
    /// The reference is malformed.
    #[error(transparent)]
    BadRef(#[from] FlakeRefError),
    /// A local reference outside `[nix] allowed_paths` (or `/etc`, or the state directory).
    #[error(transparent)]
    NotAllowed(#[from] LocalSourceError),
    /// The flake's name is not usable.
    #[error("flake name {name:?} is not allowed: use letters, digits, '-' and '_'")]
    BadName {
        /// The name.
        name: String,
    },
    /// Another flake has this name.
    #[error("a flake named {name:?} already exists ({url}): give this one another name")]
    NameTaken {
        /// The name.
        name: String,
        /// The other flake's reference.
        url: String,
    },
    /// nix could not lock the flake (unreachable, malformed, no flake.nix ...).
    #[error(transparent)]
    Lock(#[from] LockError),
    /// nix could not evaluate its `nixosConfigurations`.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// No flake has this name.
    #[error("there is no flake named {name:?}")]
    NoSuchFlake {
        /// The name.
        name: String,
    },
    /// The flake has no such configuration.
    #[error("flake {flake:?} has no nixosConfigurations.{host}")]
    NoSuchHost {
        /// The flake.
        flake: String,
        /// The host asked for.
        host: String,
    },
    /// The configuration exists but cannot netboot.
    #[error("{flake}#{host} cannot netboot: {reason}")]
    Unbootable {
        /// The flake.
        flake: String,
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The host has no such generation (it never existed or was pruned).
    #[error("{host} has no generation {number}")]
    NoSuchGeneration {
        /// The qualified host.
        host: String,
        /// The generation asked for.
        number: u32,
    },
    /// The host name is ambiguous.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The build queue refused.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Removing a generation (its GC roots) failed.
    #[error(transparent)]
    Generation(#[from] GenerationError),
    /// A store task did not finish (the runtime is shutting down).
    #[error("store task did not finish: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
}

impl From<tokio::task::JoinError> for FlakeError {
    fn from(e: tokio::task::JoinError) -> Self {
        FlakeError::Worker {
            reason: e.to_string(),
        }
    }
}

/// Flakes, their builds and their generations.
///
/// The `async` operations run nix and reach the store on the blocking pool; the plain ones
/// (`build`, `rollback`, `unpin`, `generations`, `flake`) are one quick store transaction each:
/// call them from `spawn_blocking` in a request handler.
#[derive(Debug, Clone)]
pub struct Flakes {
    runner: Runner,
    current: CurrentGenerations,
    local: LocalSources,
}

impl Flakes {
    /// Operations over `runner`'s store and current generations (the runner refreshes them after
    /// every new generation; the operations here after every change they make). Local flakes
    /// come only from the runner config's `allowed_paths`.
    pub fn new(runner: Runner) -> Flakes {
        let current = runner.current().clone();
        let config = runner.config();
        let local = LocalSources::new(&config.allowed_paths, &config.state_dir);
        Flakes {
            runner,
            current,
            local,
        }
    }

    /// Where local flakes may come from.
    pub fn local_sources(&self) -> &LocalSources {
        &self.local
    }

    /// Parses a stored or given reference and checks a local one against `allowed_paths`.
    fn checked_ref(&self, url: &str) -> Result<FlakeRef, FlakeError> {
        let flake_ref = FlakeRef::parse(url)?;
        self.local.check(&flake_ref)?;
        Ok(flake_ref)
    }

    /// What the boot services consult.
    pub fn current(&self) -> &CurrentGenerations {
        &self.current
    }

    /// The build queue.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    fn store(&self) -> &Store {
        self.runner.store()
    }

    /// Add a flake: validate the reference (a local one must be under `[nix] allowed_paths`),
    /// lock it, discover its hosts. A flake of the same name and URL that is already known is
    /// returned as it is (a restart does not re-lock).
    pub async fn add(&self, url: &str, name: Option<&str>) -> Result<FlakeRecord, FlakeError> {
        let flake_ref = self.checked_ref(url)?;
        let name = name.map_or_else(|| flake_ref.default_name(), str::to_owned);
        if !flakeboot_catalogue::text::valid_flake_name(&name) {
            return Err(FlakeError::BadName { name });
        }
        let key = name.clone();
        if let Some(existing) = on_store(self.store(), move |s| s.flake(&key)).await?? {
            if existing.url == flake_ref.as_str() {
                return Ok(existing);
            }
            return Err(FlakeError::NameTaken {
                name,
                url: existing.url,
            });
        }
        let record = self.lock_and_discover(&name, &flake_ref).await?;
        info!(flake = %name, url = %flake_ref, rev = ?record.revision, hosts = record.hosts.len(), "flake added");
        Ok(record)
    }

    async fn lock_and_discover(
        &self,
        name: &str,
        flake_ref: &FlakeRef,
    ) -> Result<FlakeRecord, FlakeError> {
        let settings = self.runner.settings();
        let cancel = CancellationToken::new();
        // nix gets the path as judged, resolved just now: a symlink on the given path swapped
        // after the check cannot redirect it. The lock pins the content (narHash or rev).
        let for_nix = self.local.resolve(flake_ref)?;
        let locked = lock(&settings, &for_nix, &cancel).await?;
        let hosts = discover(&settings, &locked.locked_url, &cancel).await?;
        let record = FlakeRecord {
            name: name.to_owned(),
            url: flake_ref.as_str().to_owned(),
            locked_url: Some(locked.locked_url),
            revision: locked.revision,
            locked_at: Some(SystemTime::now()),
            hosts: hosts
                .into_iter()
                .map(|h| match h.status {
                    HostStatus::Netboot(info) => FlakeHostRecord {
                        name: h.name,
                        unbootable: None,
                        kernel_file: info.kernel_file,
                        kernel_params: info.kernel_params,
                    },
                    HostStatus::Unbootable { reason } => FlakeHostRecord {
                        name: h.name,
                        unbootable: Some(reason),
                        kernel_file: String::new(),
                        kernel_params: Vec::new(),
                    },
                })
                .collect(),
            error: None,
        };
        let (saved, current) = (record.clone(), self.current.clone());
        on_store(self.store(), move |s| {
            s.put_flake(&saved)?;
            current.refresh(s)
        })
        .await??;
        Ok(record)
    }

    /// Update a flake: re-lock it to the newest revision, rediscover, and build every
    /// netbootable host. Returns the builds. A failed build never replaces a current generation.
    pub async fn update(&self, name: &str) -> Result<Vec<u64>, FlakeError> {
        self.relock(name).await?;
        self.build_all(name)
    }

    /// Re-lock a flake to the newest revision of its reference and rediscover its hosts,
    /// without building (later builds use the new lock).
    pub async fn relock(&self, name: &str) -> Result<FlakeRecord, FlakeError> {
        let existing = self.flake(name)?;
        let flake_ref = self.checked_ref(&existing.url)?;
        let record = self.lock_and_discover(name, &flake_ref).await?;
        info!(flake = %name, rev = ?record.revision, "flake re-locked");
        Ok(record)
    }

    /// The flake with this name.
    pub fn flake(&self, name: &str) -> Result<FlakeRecord, FlakeError> {
        self.store()
            .flake(name)?
            .ok_or_else(|| FlakeError::NoSuchFlake { name: name.into() })
    }

    /// Build one host of a flake at its current lock (a local flake only while it is still
    /// under `[nix] allowed_paths`).
    pub fn build(&self, flake: &str, host: &str) -> Result<u64, FlakeError> {
        let record = self.flake(flake)?;
        self.checked_ref(&record.url)?;
        let h = record
            .hosts
            .iter()
            .find(|h| h.name == host)
            .ok_or_else(|| FlakeError::NoSuchHost {
                flake: flake.into(),
                host: host.into(),
            })?;
        if let Some(reason) = &h.unbootable {
            return Err(FlakeError::Unbootable {
                flake: flake.into(),
                host: host.into(),
                reason: reason.clone(),
            });
        }
        let locked_url = record
            .locked_url
            .clone()
            .ok_or_else(|| FlakeError::NoSuchFlake { name: flake.into() })?;
        Ok(self.runner.submit(&BuildRequest {
            flake: record.name.clone(),
            host: h.name.clone(),
            flake_url: record.url.clone(),
            locked_url,
            revision: record.revision.clone(),
            kernel_file: h.kernel_file.clone(),
            kernel_params: h.kernel_params.clone(),
        })?)
    }

    /// Build every netbootable host of a flake at its current lock.
    pub fn build_all(&self, flake: &str) -> Result<Vec<u64>, FlakeError> {
        let record = self.flake(flake)?;
        record
            .hosts
            .iter()
            .filter(|h| h.unbootable.is_none())
            .map(|h| self.build(flake, &h.name))
            .collect()
    }

    /// Add the flakes of the config file (same path as the API); build hosts never built.
    /// Every flake is tried: the errors are returned, one per flake that failed.
    pub async fn sync_config(&self, flakes: &[FlakeConfig]) -> Vec<FlakeError> {
        let mut errors = Vec::new();
        for f in flakes {
            let added = match self.add(&f.url, f.name.as_deref()).await {
                Ok(record) => record,
                Err(e) => {
                    warn!(url = %f.url, "cannot add flake: {e}");
                    errors.push(e);
                    continue;
                }
            };
            for host in added.hosts.iter().filter(|h| h.unbootable.is_none()) {
                let qualified = format!("{}#{}", added.name, host.name);
                let built = match on_store(self.store(), move |s| s.generations(&qualified)).await {
                    Ok(Ok(g)) => !g.is_empty(),
                    Ok(Err(e)) => {
                        errors.push(e.into());
                        continue;
                    }
                    Err(e) => {
                        errors.push(e.into());
                        continue;
                    }
                };
                if !built && let Err(e) = self.build(&added.name, &host.name) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Remove a flake: its queued and running builds are cancelled, every generation of its
    /// hosts is dropped with its GC roots (nix may collect the store paths at its next
    /// collection) and its pins, then the flake itself. Machines assigned to its hosts are the
    /// caller's business (they are in the store, not here).
    pub fn remove(&self, name: &str) -> Result<RemovedFlake, FlakeError> {
        let record = self.flake(name)?;
        let mut cancelled = Vec::new();
        for build in self.store().builds()? {
            if build.flake == record.name
                && build.state.is_active()
                && self.runner.cancel(build.id)?
            {
                cancelled.push(build.id);
            }
        }
        let prefix = format!("{}#", record.name);
        let hosts: Vec<String> = self
            .store()
            .generation_hosts()?
            .into_iter()
            .filter(|h| h.starts_with(&prefix))
            .collect();
        let mut generations = 0;
        for host in &hosts {
            generations += generation::remove_host(self.store(), host)?;
        }
        self.store().remove_flake(&record.name)?;
        self.current.refresh(self.store())?;
        info!(flake = %record.name, generations, cancelled = ?cancelled, "flake removed with its generations and GC roots");
        Ok(RemovedFlake {
            name: record.name,
            hosts,
            generations,
            cancelled_builds: cancelled,
        })
    }

    /// Roll a host back (or forward) to one of its generations: it stays current until
    /// [`Flakes::unpin`], whatever is built later.
    pub fn rollback(&self, host: &str, number: u32) -> Result<(), FlakeError> {
        let qualified = self.qualify(host)?;
        if !self.store().pin_generation(&qualified, Some(number))? {
            return Err(FlakeError::NoSuchGeneration {
                host: qualified,
                number,
            });
        }
        info!(host = %qualified, generation = number, "host pinned to a generation (rollback)");
        self.current.refresh(self.store())?;
        Ok(())
    }

    /// Undo a pin: the host boots its newest generation again (the newest whose pre-flight
    /// passed or was skipped).
    pub fn unpin(&self, host: &str) -> Result<(), FlakeError> {
        let qualified = self.qualify(host)?;
        self.store().pin_generation(&qualified, None)?;
        self.current.refresh(self.store())?;
        Ok(())
    }

    /// A host's generations, oldest first.
    pub fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, FlakeError> {
        let qualified = self.qualify(host)?;
        Ok(self.store().generations(&qualified)?)
    }

    fn qualify(&self, host: &str) -> Result<String, FlakeError> {
        self.current
            .resolve(host, false)?
            .ok_or_else(|| match host.split_once('#') {
                Some((flake, h)) => FlakeError::NoSuchHost {
                    flake: flake.into(),
                    host: h.into(),
                },
                None => FlakeError::NoSuchHost {
                    flake: "*".into(),
                    host: host.into(),
                },
            })
    }
}

/// What [`Flakes::remove`] dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedFlake {
    /// The flake's name.
    pub name: String,
    /// Its qualified hosts that had generations.
    pub hosts: Vec<String>,
    /// How many generations were removed (each with its GC roots).
    pub generations: usize,
    /// Builds cancelled.
    pub cancelled_builds: Vec<u64>,
}
