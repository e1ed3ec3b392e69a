//! A FlakeService fake: flakes with two bootable hosts and one that cannot netboot; builds
//! that log lines and either finish on their own (`auto`) or when the test says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flakeboot_appliance::flakes::FlakeRemoved;
use flakeboot_appliance::follow::Started;
use flakeboot_appliance::{BuildProgressView, FlakeService, FlakeServiceError};
use flakeboot_store::{
    BuildRecord, BuildState, FlakeHostRecord, FlakeRecord, FollowRecord, GenerationRecord,
    UpdateTrigger,
};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

#[derive(Default)]
struct Inner {
    fail: Option<String>,
    flakes: Vec<FlakeRecord>,
    builds: Vec<BuildRecord>,
    logs: BTreeMap<u64, (Vec<String>, Option<broadcast::Sender<String>>)>,
    generations: BTreeMap<String, Vec<GenerationRecord>>,
    pins: BTreeMap<String, u32>,
    hook_secrets: BTreeMap<String, String>,
    triggers: Vec<(String, UpdateTrigger)>,
    follows: BTreeMap<String, FollowRecord>,
}

/// The fake. Clones share state.
#[derive(Clone, Default)]
pub struct FakeFlakes {
    inner: Arc<Mutex<Inner>>,
    /// Builds log a line every this long and finish after `lines` lines; `None`: the test
    /// finishes them with [`FakeFlakes::finish`].
    auto: Option<(Duration, usize)>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeFlakes {
    pub fn manual() -> FakeFlakes {
        FakeFlakes::default()
    }

    pub fn auto(every: Duration, lines: usize) -> FakeFlakes {
        FakeFlakes {
            auto: Some((every, lines)),
            ..FakeFlakes::default()
        }
    }

    /// Every later call fails with an internal error (the cause must not reach a page).
    pub fn fail_with(&self, cause: &str) {
        lock(&self.inner).fail = Some(cause.to_owned());
    }

    /// The pinned generation of a host.
    pub fn pinned_of(&self, host: &str) -> Option<u32> {
        lock(&self.inner).pins.get(host).copied()
    }

    /// How many builds were asked for.
    /// The updates triggered so far (flake, trigger).
    pub fn triggers(&self) -> Vec<(String, UpdateTrigger)> {
        lock(&self.inner).triggers.clone()
    }

    fn known(&self, name: &str) -> Result<(), FlakeServiceError> {
        if lock(&self.inner).flakes.iter().any(|f| f.name == name) {
            Ok(())
        } else {
            Err(FlakeServiceError::NotFound {
                what: format!("flake {name:?}"),
            })
        }
    }

    pub fn builds_len(&self) -> usize {
        lock(&self.inner).builds.len()
    }

    /// Appends a log line to a running build.
    pub fn log_line(&self, id: u64, line: &str) {
        let mut inner = lock(&self.inner);
        if let Some((lines, tx)) = inner.logs.get_mut(&id) {
            lines.push(line.to_owned());
            if let Some(tx) = tx {
                let _ = tx.send(line.to_owned());
            }
        }
    }

    /// Sets a generation's pre-flight record (as the pre-flight runner would).
    #[allow(dead_code)]
    pub fn set_preflight(
        &self,
        host: &str,
        number: u32,
        preflight: flakeboot_store::PreflightRecord,
    ) {
        let mut inner = lock(&self.inner);
        if let Some(g) = inner
            .generations
            .get_mut(host)
            .and_then(|gens| gens.iter_mut().find(|g| g.number == number))
        {
            g.preflight = preflight;
        }
    }

    /// A newer generation of `host` like its newest, with `preflight` (as a later build and
    /// the pre-flight runner would leave it); its number, or `None` for a host never built.
    #[allow(dead_code)]
    pub fn add_generation(
        &self,
        host: &str,
        preflight: flakeboot_store::PreflightRecord,
    ) -> Option<u32> {
        let mut inner = lock(&self.inner);
        let gens = inner.generations.get_mut(host)?;
        let mut next = gens.iter().max_by_key(|g| g.number)?.clone();
        next.number += 1;
        next.built_at = SystemTime::now();
        next.preflight = preflight;
        let number = next.number;
        gens.push(next);
        Some(number)
    }

    /// Ends a build successfully (a new generation) or with an error.
    pub fn finish(&self, id: u64, ok: bool) {
        let mut inner = lock(&self.inner);
        let Some(build) = inner.builds.iter_mut().find(|b| b.id == id) else {
            return;
        };
        if !build.state.is_active() {
            return;
        }
        build.finished_at = Some(SystemTime::now());
        let q = build.qualified_host();
        let record = build.clone();
        if ok {
            let number = inner.generations.get(&q).map_or(1, |g| g.len() as u32 + 1);
            let generation = GenerationRecord {
                host: q.clone(),
                number,
                flake_url: record.flake_url.clone(),
                locked_url: record.locked_url.clone(),
                revision: record.revision.clone(),
                kernel: PathBuf::from("/nix/store/aaaa-kernel/bzImage"),
                initrd: PathBuf::from("/nix/store/bbbb-initrd/initrd"),
                init: PathBuf::from("/nix/store/cccc-toplevel/init"),
                store_paths: vec![],
                kernel_params: vec![],
                built_at: SystemTime::now(),
                build_id: id,
                log: PathBuf::new(),
                gc_roots: vec![],
                preflight: flakeboot_store::PreflightRecord::skipped("off"),
            };
            inner.generations.entry(q).or_default().push(generation);
            if let Some(b) = inner.builds.iter_mut().find(|b| b.id == id) {
                b.state = BuildState::Succeeded;
                b.generation = Some(number);
            }
        } else if let Some(b) = inner.builds.iter_mut().find(|b| b.id == id) {
            b.state = BuildState::Failed;
            b.error = Some("builder for '/nix/store/x.drv' failed with exit code 1".into());
        }
        if let Some((_, tx)) = inner.logs.get_mut(&id) {
            *tx = None; // closes followers
        }
    }

    fn record(&self, flake: &FlakeRecord, host: &str) -> u64 {
        let mut inner = lock(&self.inner);
        let id = inner.builds.len() as u64 + 1;
        inner.builds.push(BuildRecord {
            id,
            flake: flake.name.clone(),
            host: host.to_owned(),
            flake_url: flake.url.clone(),
            locked_url: format!("{}?rev=1111", flake.url),
            revision: flake.revision.clone(),
            kernel_file: "bzImage".into(),
            kernel_params: vec![],
            state: BuildState::Running,
            queued_at: SystemTime::now(),
            started_at: Some(SystemTime::now()),
            finished_at: None,
            error: None,
            interruptions: 0,
            generation: None,
            log: PathBuf::new(),
        });
        let (tx, _) = broadcast::channel(1024);
        inner.logs.insert(
            id,
            (vec![format!("building {}#{host}", flake.name)], Some(tx)),
        );
        id
    }
}

impl FlakeService for FakeFlakes {
    fn follow(&self, name: &str) -> Result<FollowRecord, FlakeServiceError> {
        self.known(name)?;
        Ok(lock(&self.inner)
            .follows
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    fn set_follow(&self, name: &str, follow: FollowRecord) -> Result<(), FlakeServiceError> {
        self.known(name)?;
        lock(&self.inner).follows.insert(name.into(), follow);
        Ok(())
    }

    fn hook_secret(&self, name: &str) -> Result<Option<String>, FlakeServiceError> {
        self.known(name)?;
        Ok(lock(&self.inner).hook_secrets.get(name).cloned())
    }

    fn put_hook_secret(
        &self,
        name: &str,
        secret: &str,
        replace: bool,
    ) -> Result<String, FlakeServiceError> {
        self.known(name)?;
        let mut inner = lock(&self.inner);
        let kept = inner.hook_secrets.get(name).cloned();
        match kept {
            Some(old) if !replace => Ok(old),
            _ => {
                inner.hook_secrets.insert(name.into(), secret.into());
                Ok(secret.into())
            }
        }
    }

    fn trigger<'a>(
        &'a self,
        name: &'a str,
        trigger: UpdateTrigger,
    ) -> BoxFuture<'a, Result<Started, FlakeServiceError>> {
        Box::pin(async move {
            self.known(name)?;
            lock(&self.inner).triggers.push((name.into(), trigger));
            Ok(Started::Queued)
        })
    }

    fn flakes(&self) -> Result<Vec<FlakeRecord>, FlakeServiceError> {
        let inner = lock(&self.inner);
        if let Some(cause) = &inner.fail {
            return Err(FlakeServiceError::Internal {
                message: cause.clone(),
            });
        }
        Ok(inner.flakes.clone())
    }

    fn add<'a>(
        &'a self,
        url: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<FlakeRecord, FlakeServiceError>> {
        Box::pin(async move {
            if !url.contains(':') {
                return Err(FlakeServiceError::Invalid {
                    field: "url",
                    message: format!(
                        "{url:?} is not a flake reference: expected a scheme such as github: or path:"
                    ),
                });
            }
            if url.starts_with("path:/missing") {
                return Err(FlakeServiceError::Invalid {
                    field: "url",
                    message: "nix cannot lock the flake: path '/missing' does not exist".into(),
                });
            }
            let name = name
                .map(str::to_owned)
                .unwrap_or_else(|| url.rsplit(['/', ':']).next().unwrap_or("flake").to_owned());
            let mut inner = lock(&self.inner);
            if let Some(other) = inner.flakes.iter().find(|f| f.name == name) {
                return Err(FlakeServiceError::Invalid {
                    field: "name",
                    message: format!("a flake named {name:?} already exists ({})", other.url),
                });
            }
            let host = |n: &str, unbootable: Option<&str>| FlakeHostRecord {
                name: n.into(),
                unbootable: unbootable.map(str::to_owned),
                kernel_file: "bzImage".into(),
                kernel_params: vec![],
            };
            let record = FlakeRecord {
                name,
                url: url.to_owned(),
                locked_url: Some(format!("{url}?rev=1111")),
                revision: Some("1111aaaa2222bbbb3333cccc".into()),
                locked_at: Some(SystemTime::now()),
                hosts: vec![
                    host("alpha", None),
                    host("beta", None),
                    host("gamma", Some("no system.build.netbootRamdisk")),
                ],
                error: None,
            };
            inner.flakes.push(record.clone());
            Ok(record)
        })
    }

    fn update<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u64>, FlakeServiceError>> {
        Box::pin(async move {
            let flake = self
                .flakes()?
                .into_iter()
                .find(|f| f.name == name)
                .ok_or_else(|| FlakeServiceError::NotFound {
                    what: format!("flake {name:?}"),
                })?;
            let mut ids = Vec::new();
            for h in flake.hosts.iter().filter(|h| h.unbootable.is_none()) {
                ids.push(self.build(&flake.name, &h.name)?);
            }
            Ok(ids)
        })
    }

    fn remove(&self, name: &str) -> Result<FlakeRemoved, FlakeServiceError> {
        let mut inner = lock(&self.inner);
        let Some(at) = inner.flakes.iter().position(|f| f.name == name) else {
            return Err(FlakeServiceError::NotFound {
                what: format!("flake {name:?}"),
            });
        };
        let record = inner.flakes.remove(at);
        Ok(FlakeRemoved {
            hosts: record
                .hosts
                .iter()
                .map(|h| format!("{}#{}", record.name, h.name))
                .collect(),
            name: record.name,
            ..FlakeRemoved::default()
        })
    }

    fn build(&self, flake: &str, host: &str) -> Result<u64, FlakeServiceError> {
        let record = self
            .flakes()?
            .into_iter()
            .find(|f| f.name == flake)
            .ok_or_else(|| FlakeServiceError::NotFound {
                what: format!("flake {flake:?}"),
            })?;
        match record.hosts.iter().find(|h| h.name == host) {
            None => {
                return Err(FlakeServiceError::NotFound {
                    what: format!("host {flake}#{host}"),
                });
            }
            Some(h) if h.unbootable.is_some() => {
                return Err(FlakeServiceError::Invalid {
                    field: "host",
                    message: format!("{flake}#{host} cannot netboot"),
                });
            }
            Some(_) => {}
        }
        let id = self.record(&record, host);
        if let Some((every, lines)) = self.auto {
            let me = self.clone();
            tokio::spawn(async move {
                for i in 1..=lines {
                    tokio::time::sleep(every).await;
                    me.log_line(
                        id,
                        &format!("[{i}/{lines}] building /nix/store/{i:04}-part.drv"),
                    );
                }
                me.finish(id, true);
            });
        }
        Ok(id)
    }

    fn cancel(&self, id: u64) -> Result<bool, FlakeServiceError> {
        let mut inner = lock(&self.inner);
        let Some(b) = inner.builds.iter_mut().find(|b| b.id == id) else {
            return Err(FlakeServiceError::NotFound {
                what: format!("build {id}"),
            });
        };
        if !b.state.is_active() {
            return Ok(false);
        }
        b.state = BuildState::Cancelled;
        b.error = Some("cancelled by the user".into());
        b.finished_at = Some(SystemTime::now());
        if let Some((_, tx)) = inner.logs.get_mut(&id) {
            *tx = None;
        }
        Ok(true)
    }

    fn builds(&self) -> Result<Vec<BuildRecord>, FlakeServiceError> {
        Ok(lock(&self.inner).builds.clone())
    }

    fn progress(&self, id: u64) -> Option<BuildProgressView> {
        let inner = lock(&self.inner);
        let b = inner.builds.iter().find(|b| b.id == id)?;
        if !b.state.is_active() {
            return None;
        }
        let done = inner.logs.get(&id).map_or(0, |l| l.0.len() as u64 - 1);
        let total = self.auto.map_or(4, |(_, n)| n as u64);
        Some(BuildProgressView {
            done,
            total,
            running: 1,
            current: Some(format!("building {}-part", done + 1)),
        })
    }

    fn log(&self, id: u64) -> Result<BoxStream<'static, String>, FlakeServiceError> {
        let inner = lock(&self.inner);
        let (lines, tx) = inner
            .logs
            .get(&id)
            .ok_or_else(|| FlakeServiceError::NotFound {
                what: format!("build {id}"),
            })?;
        let backlog = futures_util::stream::iter(lines.clone());
        let live = tx.as_ref().map(|t| t.subscribe());
        let live = futures_util::stream::unfold(live, |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(line) => Some((line, Some(rx))),
                Err(_) => None,
            }
        });
        Ok(Box::pin(futures_util::StreamExt::chain(backlog, live)))
    }

    fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, FlakeServiceError> {
        // Like `Flakes::generations`: a bare host name resolves to its one `flake#host`.
        let inner = lock(&self.inner);
        let found = inner.generations.get(host).or_else(|| {
            let suffix = format!("#{host}");
            inner
                .generations
                .iter()
                .find(|(q, _)| q.ends_with(&suffix))
                .map(|(_, g)| g)
        });
        Ok(found.cloned().unwrap_or_default())
    }

    fn generation_hosts(&self) -> Result<Vec<String>, FlakeServiceError> {
        Ok(lock(&self.inner).generations.keys().cloned().collect())
    }

    fn pinned(&self, host: &str) -> Result<Option<u32>, FlakeServiceError> {
        Ok(lock(&self.inner).pins.get(host).copied())
    }

    fn rollback(&self, host: &str, number: u32) -> Result<(), FlakeServiceError> {
        let mut inner = lock(&self.inner);
        let exists = inner
            .generations
            .get(host)
            .is_some_and(|g| g.iter().any(|g| g.number == number));
        if !exists {
            return Err(FlakeServiceError::NotFound {
                what: format!("generation {number} of {host}"),
            });
        }
        inner.pins.insert(host.to_owned(), number);
        Ok(())
    }

    fn unpin(&self, host: &str) -> Result<(), FlakeServiceError> {
        lock(&self.inner).pins.remove(host);
        Ok(())
    }
}
