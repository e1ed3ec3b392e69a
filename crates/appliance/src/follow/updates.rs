//! One update of one flake, whatever started it (schedule, webhook, a user): re-lock, compare,
//! build every netbootable host, wait for the builds, record every step in the flake's
//! update history. At most one update of a flake runs at a time; a trigger that arrives while
//! one runs makes it run once more afterwards (pushes during a build are not lost).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use flakeboot_config::FlakeConfig;
use flakeboot_nix::{FlakeRef, Flakes};
use flakeboot_store::{
    BuildState, FlakeRecord, FollowRecord, PreflightState, Store, UpdateBuild, UpdateRecord,
    UpdateState, UpdateTrigger,
};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::FollowError;
use super::notify::DnsStatus;

/// How often an update looks whether its generations' pre-flights ended (a store read).
const PREFLIGHT_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// What asking for an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It ran: the record as stored (state `building` with its builds, or how it ended).
    Ran(UpdateRecord),
    /// An update of this flake is running: this one runs once that one ends.
    Queued,
}

/// Updates of flakes: the one path the schedule, the webhook and the users' "update" take.
#[derive(Debug, Clone)]
pub struct Updates {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flakes: Flakes,
    /// Flakes being updated -> the trigger of one more run asked for meanwhile.
    running: Mutex<HashMap<String, Option<UpdateTrigger>>>,
    /// Follow settings changed: the scheduler looks again.
    changed: Notify,
    /// Follow settings changed: the TXT watch looks again.
    txt_changed: Notify,
    /// The last check of each flake's `notify_txt` record (the TXT watch writes it).
    dns: Mutex<HashMap<String, DnsStatus>>,
}

impl Updates {
    /// Updates over `flakes` (its store keeps the follow settings and the history).
    pub fn new(flakes: Flakes) -> Updates {
        Updates {
            inner: Arc::new(Inner {
                flakes,
                running: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                txt_changed: Notify::new(),
                dns: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The flake operations underneath.
    pub fn flakes(&self) -> &Flakes {
        &self.inner.flakes
    }

    fn store(&self) -> &Store {
        self.inner.flakes.runner().store()
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Option<UpdateTrigger>>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves when follow settings change (the scheduler waits on it).
    pub(crate) async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Resolves when follow settings change (the TXT watch waits on it).
    pub(crate) async fn txt_changed(&self) {
        self.inner.txt_changed.notified().await;
    }

    fn notify_changed(&self) {
        self.inner.changed.notify_one();
        self.inner.txt_changed.notify_one();
    }

    /// The last check of `name`'s `notify_txt` record (`None`: not checked since the start,
    /// or it has none).
    pub fn dns_status(&self, name: &str) -> Option<DnsStatus> {
        self.dns().get(name).cloned()
    }

    /// Records the last check of flakes' records; flakes not in `watched` are forgotten.
    pub(crate) fn set_dns_status(&self, watched: &[String], status: Option<(String, DnsStatus)>) {
        let mut dns = self.dns();
        dns.retain(|name, _| watched.contains(name));
        if let Some((name, s)) = status {
            dns.insert(name, s);
        }
    }

    fn dns(&self) -> MutexGuard<'_, HashMap<String, DnsStatus>> {
        self.inner
            .dns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an update of `name` is running now.
    pub fn is_running(&self, name: &str) -> bool {
        self.running().contains_key(name)
    }

    /// Saves a flake's follow settings; the scheduler picks them up at once.
    pub fn set_follow(&self, name: &str, follow: &FollowRecord) -> Result<(), FollowError> {
        self.flakes().flake(name)?;
        self.store().put_flake_follow(name, follow)?;
        self.notify_changed();
        info!(flake = %name, follow = follow.follow, check_every = %humantime::format_duration(follow.check_every), notify_txt = ?follow.notify_txt, "follow settings saved");
        Ok(())
    }

    /// Saves the follow settings of the config file's flakes (the file wins at every start).
    pub fn sync_config(&self, flakes: &[FlakeConfig]) -> Result<(), FollowError> {
        for f in flakes {
            let name = match &f.name {
                Some(name) => name.clone(),
                None => match FlakeRef::parse(&f.url) {
                    Ok(r) => r.default_name(),
                    Err(_) => continue,
                },
            };
            let follow = FollowRecord {
                follow: f.follows(),
                check_every: f.check_every(),
                notify_txt: f.notify_txt.clone(),
            };
            self.store().put_flake_follow(&name, &follow)?;
        }
        self.notify_changed();
        Ok(())
    }

    /// Update `name`: re-lock it; when the lock moved (or a user asked), build every
    /// netbootable host; the builds are waited for in the background and the record finished
    /// then. `Err` when the flake is unknown or re-locking or queueing failed (recorded too).
    pub fn run(
        &self,
        name: &str,
        trigger: UpdateTrigger,
    ) -> BoxFuture<'static, Result<Started, FollowError>> {
        let (this, name) = (self.clone(), name.to_owned());
        Box::pin(async move {
            {
                let mut running = this.running();
                if let Some(pending) = running.get_mut(&name) {
                    // A user's request outranks the others (it builds even when unchanged).
                    if *pending != Some(UpdateTrigger::Manual) {
                        *pending = Some(trigger);
                    }
                    info!(flake = %name, trigger = trigger.as_str(), "an update is running: this one runs after it");
                    return Ok(Started::Queued);
                }
                running.insert(name.clone(), None);
            }
            let slot = Slot {
                updates: this.clone(),
                name: name.clone(),
            };
            this.start(slot, trigger).await
        })
    }

    async fn start(&self, slot: Slot, trigger: UpdateTrigger) -> Result<Started, FollowError> {
        let name = slot.name.clone();
        let old = self.blocking({
            let name = name.clone();
            move |u| Ok(u.flakes().flake(&name)?)
        });
        let old: FlakeRecord = old.await?;
        let mut record = UpdateRecord {
            flake: name.clone(),
            seq: 0,
            trigger,
            started_at: SystemTime::now(),
            finished_at: None,
            old_revision: old.revision.clone(),
            new_revision: None,
            builds: Vec::new(),
            state: UpdateState::Building,
            promoted: false,
            reason: None,
        };
        let new = match self.flakes().relock(&name).await {
            Ok(new) => new,
            Err(e) => {
                record.state = UpdateState::Failed;
                record.reason = Some(format!("re-locking failed: {e}"));
                self.save_new(record).await?;
                return Err(e.into());
            }
        };
        record.new_revision = new.revision.clone();
        if trigger != UpdateTrigger::Manual && new.locked_url == old.locked_url {
            record.state = UpdateState::Unchanged;
            record.reason = Some("revision unchanged".into());
            let saved = self.save_new(record).await?;
            info!(flake = %name, trigger = trigger.as_str(), rev = ?new.revision, "flake unchanged: nothing to build");
            return Ok(Started::Ran(saved));
        }
        let queued = self.blocking({
            let name = name.clone();
            move |u| Ok(u.flakes().build_all(&name)?)
        });
        let ids = match queued.await {
            Ok(ids) => ids,
            Err(e) => {
                record.state = UpdateState::Failed;
                record.reason = Some(format!("queueing the builds failed: {e}"));
                self.save_new(record).await?;
                return Err(e);
            }
        };
        if ids.is_empty() {
            record.state = UpdateState::NotPromoted;
            record.reason = Some("the flake has no host that can netboot".into());
            return Ok(Started::Ran(self.save_new(record).await?));
        }
        let hosts: HashMap<u64, String> = self
            .blocking({
                let ids = ids.clone();
                move |u| {
                    let mut hosts = HashMap::new();
                    for id in ids {
                        if let Some(b) = u.store().build(id)? {
                            hosts.insert(id, b.host);
                        }
                    }
                    Ok(hosts)
                }
            })
            .await?;
        record.builds = ids
            .iter()
            .map(|id| UpdateBuild {
                id: *id,
                host: hosts.get(id).cloned().unwrap_or_default(),
                state: BuildState::Queued,
                generation: None,
                promoted: false,
            })
            .collect();
        let saved = self.save_new(record).await?;
        info!(flake = %name, trigger = trigger.as_str(), old = ?saved.old_revision, new = ?saved.new_revision, builds = ?ids, "flake update building");
        let this = self.clone();
        let building = saved.clone();
        tokio::spawn(async move {
            // The slot is held until the builds end: never two updates of a flake at once.
            let _slot = slot;
            if let Err(e) = this.finish(building).await {
                warn!(flake = %name, "cannot record the end of an update: {e}");
            }
        });
        Ok(Started::Ran(saved))
    }

    /// Waits until generation `number` of `host` is through pre-flight; `Some(why)` when it
    /// failed ("pre-flight of generation 4 (fleet#alpha) failed after 312 s: no report").
    async fn preflight_end(&self, host: &str, number: u32) -> Result<Option<String>, FollowError> {
        loop {
            let (h, n) = (host.to_owned(), number);
            let generation = self
                .blocking(move |u| Ok(u.store().generation(&h, n)?))
                .await?;
            let Some(g) = generation else {
                // Removed meanwhile (pruned, or its flake removed).
                return Ok(None);
            };
            let p = &g.preflight;
            match p.state {
                PreflightState::Passed | PreflightState::Skipped => return Ok(None),
                PreflightState::Failed => {
                    let secs = p.duration(SystemTime::now()).unwrap_or_default().as_secs();
                    let why = p.reason.as_deref().unwrap_or("no reason recorded");
                    return Ok(Some(format!(
                        "pre-flight of generation {number} ({host}) failed after {secs} s: {why}"
                    )));
                }
                PreflightState::Queued | PreflightState::Running => {
                    tokio::time::sleep(PREFLIGHT_POLL).await;
                }
            }
        }
    }

    /// Waits for an update's builds, decides whether it was promoted and saves the record.
    async fn finish(&self, mut record: UpdateRecord) -> Result<(), FollowError> {
        let mut reasons = Vec::new();
        for build in &mut record.builds {
            match self.flakes().runner().wait(build.id).await {
                Ok(done) => {
                    build.state = done.state;
                    build.generation = done.generation;
                    if done.state != BuildState::Succeeded {
                        let why = done.error.unwrap_or_else(|| format!("{:?}", done.state));
                        reasons.push(format!("build {} ({}) failed: {why}", build.id, build.host));
                    }
                }
                Err(e) => {
                    build.state = BuildState::Failed;
                    reasons.push(format!("build {} ({}): {e}", build.id, build.host));
                }
            }
        }
        // Pre-flight (issue #16): a new generation becomes current only once its pre-flight
        // passed (or was skipped); wait for each to end, then read what the host boots.
        let mut preflight_reasons = Vec::new();
        for build in &record.builds {
            let Some(number) = build.generation else {
                continue;
            };
            let host = format!("{}#{}", record.flake, build.host);
            if let Some(why) = self.preflight_end(&host, number).await? {
                preflight_reasons.push(why);
            }
        }
        reasons.extend(preflight_reasons);
        let flake = record.flake.clone();
        let (builds, pinned_reasons, exists) = self
            .blocking(move |u| {
                let mut builds = record.builds;
                let mut reasons = Vec::new();
                for build in &mut builds {
                    let Some(number) = build.generation else {
                        continue;
                    };
                    let host = format!("{flake}#{}", build.host);
                    let current = u.store().current_generation(&host)?;
                    build.promoted = current.as_ref().is_some_and(|g| g.number == number);
                    let failed_preflight = u
                        .store()
                        .generation(&host, number)?
                        .is_some_and(|g| !g.preflight.state.may_become_current());
                    if !build.promoted
                        && !failed_preflight
                        && let Some(pin) = u.store().pinned_generation(&host)?
                    {
                        reasons.push(format!(
                            "{host} is pinned to generation {pin}: unpin it to boot generation {number}"
                        ));
                    }
                }
                Ok((builds, reasons, u.store().flake(&flake)?.is_some()))
            })
            .await?;
        record.builds = builds;
        reasons.extend(pinned_reasons);
        record.promoted = !record.builds.is_empty() && record.builds.iter().all(|b| b.promoted);
        record.state = if record.promoted {
            UpdateState::Promoted
        } else {
            UpdateState::NotPromoted
        };
        record.reason = reasons.into_iter().next();
        if record.reason.is_none() && !record.promoted {
            record.reason = Some("a newer generation is current".into());
        }
        record.finished_at = Some(SystemTime::now());
        if !exists {
            // Removed while it built: its history went with it.
            return Ok(());
        }
        info!(flake = %record.flake, state = record.state.as_str(), reason = ?record.reason, "flake update ended");
        self.blocking(move |u| Ok(u.store().put_update(&record)?))
            .await
    }

    async fn save_new(&self, mut record: UpdateRecord) -> Result<UpdateRecord, FollowError> {
        if record.state != UpdateState::Building {
            record.finished_at = Some(SystemTime::now());
        }
        self.blocking(move |u| Ok(u.store().add_update(&record)?))
            .await
    }

    /// Runs `f` on the blocking pool (the store and the build queue's submit block).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Updates) -> Result<T, FollowError> + Send + 'static,
    ) -> Result<T, FollowError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| FollowError::Worker {
                reason: e.to_string(),
            })?
    }
}

/// A flake's place in [`Updates::running`]: freed when dropped (the update ended, failed or
/// was abandoned), and then the update asked for meanwhile runs.
#[derive(Debug)]
struct Slot {
    updates: Updates,
    name: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let pending = self.updates.running().remove(&self.name).flatten();
        let Some(trigger) = pending else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (updates, name) = (self.updates.clone(), self.name.clone());
        runtime.spawn(async move {
            if let Err(e) = updates.run(&name, trigger).await {
                warn!(flake = %name, trigger = trigger.as_str(), "update failed: {e}");
            }
        });
    }
}
