//! The seam between the web UI and flake operations. The daemon wires the real implementation
//! (over `flakeboot_nix::Flakes`); tests wire a fake. Records are the store's types, so the UI
//! shows exactly what is persisted.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::Serialize;

use flakeboot_catalogue::MacAddr;
use flakeboot_store::{
    BuildRecord, FlakeRecord, FollowRecord, GenerationRecord, UpdateRecord, UpdateTrigger,
};

use crate::follow::Started;

/// What a service without automatic updates answers to their operations.
fn no_updates() -> FlakeServiceError {
    FlakeServiceError::Internal {
        message: "automatic updates are not available here".into(),
    }
}

/// Why a flake operation failed, sorted by what the UI does with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlakeServiceError {
    /// The user's input is wrong (a bad URL, a taken name, a flake nix cannot lock): shown next
    /// to the form field `field`.
    #[error("{message}")]
    Invalid {
        /// The form field the message belongs to (`url`, `name`, `host`).
        field: &'static str,
        /// What is wrong, in words for the user (nix's message when nix refused).
        message: String,
    },
    /// No such flake, host, build or generation.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `flake "fleet"`.
        what: String,
    },
    /// Something failed on the appliance (the store, the build queue): logged, not shown.
    #[error("flake service failed: {message}")]
    Internal {
        /// The cause, for the log.
        message: String,
    },
}

/// Where a running build is (mirrors `flakeboot_nix::BuildProgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildProgressView {
    /// Derivations built.
    pub done: u64,
    /// Derivations to build in all.
    pub total: u64,
    /// Derivations building now.
    pub running: u64,
    /// What nix is doing now.
    pub current: Option<String>,
}

/// What removing a flake did ([`FlakeService::remove`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlakeRemoved {
    /// The flake's name.
    pub name: String,
    /// Its qualified hosts whose generations (and GC roots) were removed.
    pub hosts: Vec<String>,
    /// How many generations were removed.
    pub generations: usize,
    /// Builds of it that were cancelled.
    pub cancelled_builds: Vec<u64>,
    /// Machines that were assigned to its hosts: they boot the menu now.
    pub machines: Vec<MacAddr>,
}

/// Flakes, builds and generations as the UI and API need them.
///
/// Wiring the real one (in the daemon), method by method over `flakeboot_nix::Flakes`:
/// `flakes` -> `store.flakes()`, `add` -> `Flakes::add`, `update` -> `Flakes::update`,
/// `build` -> `Flakes::build`, `cancel` -> `runner().cancel`, `builds` -> `store.builds()`,
/// `progress` -> `runner().status(id)` (`borrow().progress`), `log` -> `runner().follow(id)`
/// turned into a stream with `futures_util::stream::unfold` over `next_line`,
/// `generations` -> `Flakes::generations`, `generation_hosts` -> `store.generation_hosts()`,
/// `pinned` -> `store.pinned_generation`, `rollback` -> `Flakes::rollback`, `unpin` ->
/// `Flakes::unpin`. Map `FlakeError::{BadRef, BadName, Lock, Discover}` to
/// [`FlakeServiceError::Invalid`] with field `url`, `NameTaken` with field `name`, `NoSuch*` to
/// [`FlakeServiceError::NotFound`], the rest to [`FlakeServiceError::Internal`].
pub trait FlakeService: Send + Sync + 'static {
    /// Every flake, by name.
    fn flakes(&self) -> Result<Vec<FlakeRecord>, FlakeServiceError>;

    /// Validates, locks and discovers a flake; `name` defaults to one derived from the URL.
    fn add<'a>(
        &'a self,
        url: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<FlakeRecord, FlakeServiceError>>;

    /// Re-locks a flake to its newest revision and queues builds of its hosts: their ids.
    fn update<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u64>, FlakeServiceError>>;

    /// Removes a flake: cancels its builds, drops its generations with their GC roots, and
    /// sends the machines assigned to its hosts back to the boot menu. Whether it came from
    /// the config file is the caller's to check (the config would add it again).
    fn remove(&self, name: &str) -> Result<FlakeRemoved, FlakeServiceError>;

    /// Queues a build of one host: its id.
    fn build(&self, flake: &str, host: &str) -> Result<u64, FlakeServiceError>;

    /// Cancels a queued or running build; false when it had already ended.
    fn cancel(&self, id: u64) -> Result<bool, FlakeServiceError>;

    /// Every build, oldest first.
    fn builds(&self) -> Result<Vec<BuildRecord>, FlakeServiceError>;

    /// The progress of a live build (`None` once it has ended or is unknown).
    fn progress(&self, id: u64) -> Option<BuildProgressView>;

    /// A build's log: every line so far, then new lines until it ends.
    fn log(&self, id: u64) -> Result<BoxStream<'static, String>, FlakeServiceError>;

    /// A qualified host's (`flake#host`) generations, oldest first.
    fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, FlakeServiceError>;

    /// Every qualified host that has generations.
    fn generation_hosts(&self) -> Result<Vec<String>, FlakeServiceError>;

    /// The generation a host is pinned to (rolled back to), if any.
    fn pinned(&self, host: &str) -> Result<Option<u32>, FlakeServiceError>;

    /// Pins a host to one of its generations (machines boot it from their next boot on).
    fn rollback(&self, host: &str, number: u32) -> Result<(), FlakeServiceError>;

    /// Unpins a host: it boots its newest generation again (the newest whose pre-flight passed
    /// or was skipped).
    fn unpin(&self, host: &str) -> Result<(), FlakeServiceError>;

    /// The nix store's disk and garbage collection (`None` where no store is managed).
    fn storage(&self) -> Option<crate::wire::Storage> {
        None
    }

    /// A flake's follow settings (whether it follows its branch, how often it is re-locked).
    fn follow(&self, name: &str) -> Result<FollowRecord, FlakeServiceError> {
        let _ = name;
        Ok(FollowRecord::default())
    }

    /// Saves a flake's follow settings (checked by the caller with the config's rules).
    fn set_follow(&self, name: &str, follow: FollowRecord) -> Result<(), FlakeServiceError> {
        let _ = (name, follow);
        Err(no_updates())
    }

    /// The last check of a flake's `notify_txt` record (`None`: it has none, or it was not
    /// checked since the daemon started).
    fn dns_status(&self, name: &str) -> Option<crate::follow::DnsStatus> {
        let _ = name;
        None
    }

    /// A flake's update history, oldest first.
    fn history(&self, name: &str) -> Result<Vec<UpdateRecord>, FlakeServiceError> {
        let _ = name;
        Ok(Vec::new())
    }

    /// Starts an update of a flake, as the schedule, the webhook or a user does: re-lock,
    /// build when the lock moved (always for `Manual`), recorded in the history.
    fn trigger<'a>(
        &'a self,
        name: &'a str,
        trigger: UpdateTrigger,
    ) -> BoxFuture<'a, Result<Started, FlakeServiceError>> {
        let _ = (name, trigger);
        Box::pin(async { Err(no_updates()) })
    }

    /// A flake's webhook secret, if one was made. `NotFound` for an unknown flake.
    fn hook_secret(&self, name: &str) -> Result<Option<String>, FlakeServiceError> {
        let _ = name;
        Ok(None)
    }

    /// Saves `secret` as a flake's webhook secret (with `replace` false an existing one is
    /// kept); returns the secret in force. `NotFound` for an unknown flake.
    fn put_hook_secret(
        &self,
        name: &str,
        secret: &str,
        replace: bool,
    ) -> Result<String, FlakeServiceError> {
        let _ = (name, secret, replace);
        Err(no_updates())
    }
}
