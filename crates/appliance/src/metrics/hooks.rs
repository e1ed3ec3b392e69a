//! Calls of the flakes' push webhooks, by how they ended (counted by the web UI's handler).

use std::sync::atomic::{AtomicU64, Ordering};

/// How a webhook call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// The signature or token was right: an update was started.
    Accepted,
    /// No, a wrong or a malformed signature or token, or no such flake: 401.
    Refused,
    /// Over the flake's call limit: 429.
    Limited,
}

/// The counters.
#[derive(Debug, Default)]
pub struct HookCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    limited: AtomicU64,
}

/// The counters at one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookSnapshot {
    pub accepted: u64,
    pub refused: u64,
    pub limited: u64,
}

impl HookCounters {
    /// Counts one call.
    pub fn count(&self, outcome: HookOutcome) {
        let counter = match outcome {
            HookOutcome::Accepted => &self.accepted,
            HookOutcome::Refused => &self.refused,
            HookOutcome::Limited => &self.limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter now.
    pub fn snapshot(&self) -> HookSnapshot {
        HookSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
        }
    }
}
