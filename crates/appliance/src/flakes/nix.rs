//! The flake service over `flakeboot_nix::Flakes`: what the UI, the API and the CLI do with
//! flakes, builds and generations.

use flakeboot_nix::{FlakeError, Flakes, RunnerError};
use flakeboot_store::{
    BuildRecord, FlakeRecord, FollowRecord, GenerationRecord, UpdateRecord, UpdateTrigger,
};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use super::service::{BuildProgressView, FlakeRemoved, FlakeService, FlakeServiceError};
use crate::follow::{FollowError, Started, Updates};

/// The flake operations over nix's [`Flakes`], updates through [`Updates`] (shared with the
/// scheduler, so a user's update and a scheduled one never run at once).
#[derive(Debug, Clone)]
pub struct NixFlakeService {
    flakes: Flakes,
    updates: Updates,
}

impl NixFlakeService {
    /// The service over `updates`' flakes.
    pub fn new(updates: Updates) -> NixFlakeService {
        NixFlakeService {
            flakes: updates.flakes().clone(),
            updates,
        }
    }
}

fn map_follow(e: FollowError) -> FlakeServiceError {
    match e {
        FollowError::Flake(e) => map(e),
        other => internal(other),
    }
}

fn map(e: FlakeError) -> FlakeServiceError {
    match e {
        FlakeError::NameTaken { .. } | FlakeError::BadName { .. } => FlakeServiceError::Invalid {
            field: "name",
            message: e.to_string(),
        },
        FlakeError::BadRef(_)
        | FlakeError::NotAllowed(_)
        | FlakeError::Lock(_)
        | FlakeError::Discover(_) => FlakeServiceError::Invalid {
            field: "url",
            message: e.to_string(),
        },
        FlakeError::Unbootable { .. } | FlakeError::Resolve(_) => FlakeServiceError::Invalid {
            field: "host",
            message: e.to_string(),
        },
        FlakeError::NoSuchFlake { .. }
        | FlakeError::NoSuchHost { .. }
        | FlakeError::NoSuchGeneration { .. }
        | FlakeError::Runner(RunnerError::NoSuchBuild { .. }) => FlakeServiceError::NotFound {
            what: e.to_string(),
        },
        other => FlakeServiceError::Internal {
            message: other.to_string(),
        },
    }
}

fn internal(e: impl std::fmt::Display) -> FlakeServiceError {
    FlakeServiceError::Internal {
        message: e.to_string(),
    }
}

impl FlakeService for NixFlakeService {
    fn flakes(&self) -> Result<Vec<FlakeRecord>, FlakeServiceError> {
        self.flakes.runner().store().flakes().map_err(internal)
    }

    fn add<'a>(
        &'a self,
        url: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<FlakeRecord, FlakeServiceError>> {
        Box::pin(async move { self.flakes.add(url, name).await.map_err(map) })
    }

    fn update<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u64>, FlakeServiceError>> {
        Box::pin(async move {
            match self.trigger(name, UpdateTrigger::Manual).await? {
                Started::Ran(record) => Ok(record.builds.iter().map(|b| b.id).collect()),
                Started::Queued => Ok(Vec::new()),
            }
        })
    }

    fn remove(&self, name: &str) -> Result<FlakeRemoved, FlakeServiceError> {
        let removed = self.flakes.remove(name).map_err(map)?;
        let store = self.flakes.runner().store();
        store.remove_flake_follow(&removed.name).map_err(internal)?;
        let prefix = format!("{}#", removed.name);
        let mut machines = Vec::new();
        for machine in store.machines().map_err(internal)? {
            if machine
                .host
                .as_deref()
                .is_some_and(|h| h.starts_with(&prefix))
            {
                store
                    .set_machine_host(machine.mac, None)
                    .map_err(internal)?;
                machines.push(machine.mac);
            }
        }
        if !machines.is_empty() {
            tracing::info!(flake = %removed.name, machines = ?machines, "machines of a removed flake boot the menu now");
        }
        Ok(FlakeRemoved {
            name: removed.name,
            hosts: removed.hosts,
            generations: removed.generations,
            cancelled_builds: removed.cancelled_builds,
            machines,
        })
    }

    fn build(&self, flake: &str, host: &str) -> Result<u64, FlakeServiceError> {
        self.flakes.build(flake, host).map_err(map)
    }

    fn cancel(&self, id: u64) -> Result<bool, FlakeServiceError> {
        self.flakes.runner().cancel(id).map_err(|e| map(e.into()))
    }

    fn builds(&self) -> Result<Vec<BuildRecord>, FlakeServiceError> {
        self.flakes.runner().store().builds().map_err(internal)
    }

    fn progress(&self, id: u64) -> Option<BuildProgressView> {
        let status = self.flakes.runner().status(id).ok()?;
        let s = status.borrow();
        s.state.is_active().then(|| BuildProgressView {
            done: s.progress.done,
            total: s.progress.total,
            running: s.progress.running,
            current: s.progress.current.clone(),
        })
    }

    fn log(&self, id: u64) -> Result<BoxStream<'static, String>, FlakeServiceError> {
        let follower = self.flakes.runner().follow(id).map_err(|e| map(e.into()))?;
        Ok(Box::pin(futures_util::stream::unfold(
            follower,
            |mut f| async move { f.next_line().await.map(|line| (line, f)) },
        )))
    }

    fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, FlakeServiceError> {
        self.flakes.generations(host).map_err(map)
    }

    fn generation_hosts(&self) -> Result<Vec<String>, FlakeServiceError> {
        self.flakes
            .runner()
            .store()
            .generation_hosts()
            .map_err(internal)
    }

    fn pinned(&self, host: &str) -> Result<Option<u32>, FlakeServiceError> {
        self.flakes
            .runner()
            .store()
            .pinned_generation(host)
            .map_err(internal)
    }

    fn rollback(&self, host: &str, number: u32) -> Result<(), FlakeServiceError> {
        self.flakes.rollback(host, number).map_err(map)
    }

    fn unpin(&self, host: &str) -> Result<(), FlakeServiceError> {
        self.flakes.unpin(host).map_err(map)
    }

    fn storage(&self) -> Option<crate::wire::Storage> {
        Some(self.flakes.runner().storage().into())
    }

    fn follow(&self, name: &str) -> Result<FollowRecord, FlakeServiceError> {
        self.flakes.flake(name).map_err(map)?;
        self.flakes
            .runner()
            .store()
            .flake_follow(name)
            .map_err(internal)
    }

    fn set_follow(&self, name: &str, follow: FollowRecord) -> Result<(), FlakeServiceError> {
        self.updates.set_follow(name, &follow).map_err(map_follow)
    }

    fn dns_status(&self, name: &str) -> Option<crate::follow::DnsStatus> {
        self.updates.dns_status(name)
    }

    fn history(&self, name: &str) -> Result<Vec<UpdateRecord>, FlakeServiceError> {
        self.flakes.flake(name).map_err(map)?;
        self.flakes.runner().store().updates(name).map_err(internal)
    }

    fn trigger<'a>(
        &'a self,
        name: &'a str,
        trigger: UpdateTrigger,
    ) -> BoxFuture<'a, Result<Started, FlakeServiceError>> {
        Box::pin(async move { self.updates.run(name, trigger).await.map_err(map_follow) })
    }

    fn hook_secret(&self, name: &str) -> Result<Option<String>, FlakeServiceError> {
        self.flakes.flake(name).map_err(map)?;
        self.flakes
            .runner()
            .store()
            .hook_secret(name)
            .map_err(internal)
    }

    fn put_hook_secret(
        &self,
        name: &str,
        secret: &str,
        replace: bool,
    ) -> Result<String, FlakeServiceError> {
        self.flakes.flake(name).map_err(map)?;
        self.flakes
            .runner()
            .store()
            .put_hook_secret(name, secret, replace)
            .map_err(internal)
    }
}
