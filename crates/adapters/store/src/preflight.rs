//! A generation's pre-flight boot (issue #16): its state, times and console log, and the rule
//! that decides which generation a host boots.
//!
//! Every generation carries a [`PreflightRecord`] inside its JSON [`crate::GenerationRecord`].
//! A generation is booted by itself only once its pre-flight `passed`, or when there was none
//! (`skipped`: built while pre-flight was off, or stored before pre-flight existed, which the
//! schema 2 -> 3 migration spells out). A user may still pin any generation.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::GenerationRecord;

/// Where a generation's pre-flight boot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreflightState {
    /// Waiting for the pre-flight VM (one boots at a time).
    Queued,
    /// Booting in the pre-flight VM now.
    Running,
    /// The system reported `up` in the VM.
    Passed,
    /// It did not boot: timeout, a `failed` report, or the VM exited.
    Failed,
    /// No pre-flight: built while it was off, or stored before it existed.
    Skipped,
}

impl PreflightState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PreflightState::Queued => "queued",
            PreflightState::Running => "running",
            PreflightState::Passed => "passed",
            PreflightState::Failed => "failed",
            PreflightState::Skipped => "skipped",
        }
    }

    /// Whether a generation in this state may become current without a pin.
    pub fn may_become_current(self) -> bool {
        matches!(self, PreflightState::Passed | PreflightState::Skipped)
    }

    /// Whether the pre-flight is over (passed, failed or skipped).
    pub fn is_final(self) -> bool {
        !matches!(self, PreflightState::Queued | PreflightState::Running)
    }
}

/// A generation's pre-flight: state, when it ran, why it ended so, and its console log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightRecord {
    /// Where it is.
    pub state: PreflightState,
    /// When the VM started.
    pub started_at: Option<SystemTime>,
    /// When it passed or failed.
    pub finished_at: Option<SystemTime>,
    /// Why it failed or was skipped (`no report within 300 s`), for people.
    pub reason: Option<String>,
    /// The VM's serial console log (owner-only, under the state directory, bounded).
    pub log: Option<PathBuf>,
}

impl PreflightRecord {
    /// A generation waiting for its pre-flight.
    pub fn queued() -> PreflightRecord {
        PreflightRecord {
            state: PreflightState::Queued,
            started_at: None,
            finished_at: None,
            reason: None,
            log: None,
        }
    }

    /// A generation that gets no pre-flight, and why.
    pub fn skipped(reason: &str) -> PreflightRecord {
        PreflightRecord {
            state: PreflightState::Skipped,
            reason: Some(reason.to_owned()),
            ..PreflightRecord::queued()
        }
    }

    /// What a generation stored before pre-flight existed has.
    pub fn before_preflight() -> PreflightRecord {
        PreflightRecord::skipped("built before pre-flight existed")
    }

    /// How long it ran (to its end, or until `now` while it runs).
    pub fn duration(&self, now: SystemTime) -> Option<Duration> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or(now);
        Some(end.duration_since(start).unwrap_or_default())
    }
}

impl Default for PreflightRecord {
    fn default() -> PreflightRecord {
        PreflightRecord::before_preflight()
    }
}

/// The generation a host boots, among `all` (oldest first): the pinned one if it exists (a
/// user may pin any generation, a failed one included), else the newest whose pre-flight
/// passed or was skipped. A queued, running or failed generation never becomes current by
/// itself: the one before it stays.
pub fn current_of(pinned: Option<u32>, all: &[GenerationRecord]) -> Option<&GenerationRecord> {
    if let Some(n) = pinned
        && let Some(g) = all.iter().find(|g| g.number == n)
    {
        return Some(g);
    }
    all.iter()
        .rev()
        .find(|g| g.preflight.state.may_become_current())
}
