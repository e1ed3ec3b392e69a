//! Time for sessions and rate limits: the real monotonic clock, which tests can move forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A monotonic clock. Clones share one offset: [`Clock::advance`] moves every clone (tests use
/// it to expire sessions and rate-limit windows without sleeping).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    /// Now, plus whatever tests advanced.
    pub fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Wall-clock time, plus whatever tests advanced (API token expiry).
    pub fn wall(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
