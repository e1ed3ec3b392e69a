//! Flakes for flakeboot: the NixOS hosts a flake defines become bootable.
//!
//! Pure parts (no I/O, unit-tested with captured nix output):
//! - [`flakeref`]: check a flake reference and derive its default name;
//! - [`local`]: which directories local flakes may come from (`[nix] allowed_paths`; never
//!   `/etc` or the state directory), judged with symlinks resolved;
//! - [`progress`]: read nix's structured log into build progress and log lines;
//! - parsing in [`lock`], [`discover`], [`outputs`] and [`generation`].
//!
//! Running nix: [`command`] is the one way nix is started (arguments only, settings as
//! `--option`, its own process group, killed with everything it started on cancel/timeout).
//! [`lock`] and [`discover`] lock a flake and list its hosts; [`runner`] is the build queue,
//! which builds what [`outputs`] names and matches nix's results to it by derivation;
//! [`deploy_key`] is the appliance's SSH key for `git+ssh://` flakes, [`git_ssh`] how nix's git
//! uses it; [`tokens`] the access tokens for private GitHub/GitLab flakes set from the UI;
//! [`generation`] turns builds into generations with GC roots, [`rebuild`] builds again those
//! whose store paths are gone (a restored backup); [`flakes`] is the operations
//! API (add, update, build, rollback) and [`current`] the generations the boot services serve now.

mod blocking;
pub mod command;
pub mod conf;
pub mod current;
pub mod deploy_key;
pub mod discover;
pub mod flakeref;
pub mod flakes;
pub mod gc;
pub mod generation;
pub mod git_ssh;
mod live;
pub mod local;
pub mod lock;
pub mod outputs;
pub mod preflight_gate;
mod procs;
pub mod progress;
pub mod rebuild;
pub mod runner;
pub mod tokens;

pub use command::{CommandError, NixSettings};
pub use conf::{ConfError, NixFiles};
pub use current::{CurrentGenerations, FlakeBoot, ResolveError};
pub use deploy_key::{DeployKey, DeployKeyError};
pub use discover::{DiscoveredHost, HostStatus, NetbootInfo};
pub use flakeref::{FlakeRef, FlakeRefError, FlakeRefKind};
pub use flakes::{FlakeError, Flakes, RemovedFlake};
pub use gc::{DiskUsage, GcReport, Storage, StorageReport};
pub use git_ssh::GitSsh;
pub use live::LogFollower;
pub use local::{LocalSourceError, LocalSources};
pub use lock::LockedFlake;
pub use preflight_gate::PreflightGate;
pub use progress::{BuildProgress, NixLogEvent, ProgressError, ProgressTracker};
pub use runner::{BuildRequest, BuildStatus, Runner, RunnerConfig, RunnerError};
pub use tokens::{TokenError, TokenFile};
