//! Whether a new generation waits for a pre-flight boot (issue #16) before it may become
//! current. The build runner asks it when it stores a generation; the application layer's
//! pre-flight runner turns it on (`[preflight] enabled`) and boots what is queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flakeboot_store::PreflightRecord;

/// The switch the build runner reads for each new generation. Cheap to clone; off by default
/// (new generations are `skipped` and become current as soon as they are built).
#[derive(Debug, Clone, Default)]
pub struct PreflightGate {
    enabled: Arc<AtomicBool>,
}

impl PreflightGate {
    /// Turns pre-flight on or off for generations built from now on.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Whether new generations are pre-flighted.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// The pre-flight record a generation built now starts with.
    pub fn initial(&self) -> PreflightRecord {
        if self.enabled() {
            PreflightRecord::queued()
        } else {
            PreflightRecord::skipped("pre-flight is disabled ([preflight] enabled = false)")
        }
    }
}
