//! Automatic updates: git is the source of truth (issue #16). A flake that follows its branch
//! is re-locked every `check_every` ([`scheduler`], one task) and when its forge's push
//! webhook calls (the web UI checks the signature); a new revision is built and becomes
//! current. Every update, whatever started it, takes the one path in [`updates`] and is kept
//! in the flake's update history (`flakeboot_store::UpdateRecord`). A flake with a
//! `notify_txt` record is not re-locked on the schedule: [`txt_watch`] (one task) asks the
//! record every `[updates] txt_every` and updates it when the record names another revision
//! ([`notify`] decides, pure; [`notice`] reads the record's `rev=`, pure), through the DNS
//! forwarder's resolver (`flakeboot_dns::Upstream`: hickory-resolver, UDP and TCP).
//!
//! Between "built" and "promoted", `Updates::finish` waits for each new generation's pre-flight
//! boot ([`crate::preflight`]); a failed one is recorded as the reason the update was not
//! promoted.

pub mod notice;
pub mod notify;
pub mod schedule;
pub mod scheduler;
pub mod txt_watch;
pub mod updates;

pub use notify::{DnsStatus, Notices};
pub use schedule::Schedule;
pub use txt_watch::{Resolver, TxtWatch};
pub use updates::{Started, Updates};

use flakeboot_nix::FlakeError;
use flakeboot_store::StoreError;

/// Why an update, or a change to a flake's follow settings, failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The flake operation failed (no such flake, nix could not lock it, the build queue).
    #[error(transparent)]
    Flake(#[from] FlakeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task did not finish (the runtime is shutting down).
    #[error("store task did not finish: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
}
