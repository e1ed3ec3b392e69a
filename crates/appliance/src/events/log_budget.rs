//! How many `boot event` lines the log gets: every one up to a burst, then a steady rate, and
//! once a second a count of those left out. The timeline in the store keeps the events (within
//! the writer's own budgets, see [`super`]); the log is for a person reading along (and for the journal, which itself drops lines past
//! 10,000 in 30 s per service by default). A flood of DHCP packets (a stranger inventing MACs)
//! would otherwise cost a formatted line and a write for each, about a tenth of the daemon's
//! CPU in proxy mode.

use std::time::{Duration, Instant};

use super::bucket::TokenBucket;

/// Lines logged at once after a quiet spell.
pub const BURST: u32 = 1_000;
/// Lines a second after the burst.
pub const PER_SECOND: u32 = 200;
/// Least time between two reports of lines left out.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The `boot event` lines' bucket, and the count of those left out.
#[derive(Debug)]
pub struct LogBudget {
    lines: TokenBucket,
    /// Lines left out since the last report.
    skipped: u64,
    reported: Instant,
}

impl LogBudget {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        LogBudget {
            lines: TokenBucket::new(BURST, PER_SECOND, now),
            skipped: 0,
            reported: now,
        }
    }

    /// Whether one more line may be logged at `now` (if not, it is counted as left out).
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.lines.available(now) >= 1 {
            self.lines.take(1);
            true
        } else {
            self.skipped = self.skipped.saturating_add(1);
            false
        }
    }

    /// How many lines were left out since the last report, at most once per second and only
    /// when some were (the caller logs the count).
    pub fn report(&mut self, now: Instant) -> Option<u64> {
        if self.skipped == 0 || now.saturating_duration_since(self.reported) < REPORT_EVERY {
            return None;
        }
        self.reported = now;
        Some(std::mem::take(&mut self.skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_whole_then_the_steady_rate() {
        let start = Instant::now();
        let mut budget = LogBudget::new(start);
        assert!((0..BURST).all(|_| budget.allow(start)));
        assert!(!budget.allow(start));
        assert_eq!(budget.report(start), None, "not before a second");
        // A second of a flood (20,000 lines): PER_SECOND of them logged.
        let mut logged = 0;
        for i in 1..=20_000u64 {
            if budget.allow(start + Duration::from_micros(50 * i)) {
                logged += 1;
            }
        }
        assert!(
            (PER_SECOND - 1..=PER_SECOND).contains(&logged),
            "{logged} logged"
        );
        let second = start + Duration::from_secs(1);
        assert_eq!(budget.report(second), Some(20_001 - u64::from(logged)));
        assert_eq!(budget.report(second + REPORT_EVERY), None, "nothing new");
        // After a quiet minute the bucket is full again, and no fuller.
        let later = second + Duration::from_secs(60);
        assert!((0..BURST).all(|_| budget.allow(later)));
        assert!(!budget.allow(later));
    }

    #[test]
    fn time_going_backwards_earns_nothing_and_does_not_panic() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut budget = LogBudget::new(start);
        assert!((0..BURST).all(|_| budget.allow(start)));
        assert!(!budget.allow(start - Duration::from_secs(5)));
    }
}
