//! How long the server took to answer: from a request's arrival to its reply being sent (in
//! router mode this includes the lease commit's fsync), as a histogram with fixed buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The buckets' upper bounds in seconds (Prometheus `le`): 100 µs to 1 s.
pub const BUCKETS: [f64; 9] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

/// Reply latencies (relaxed atomics, like the counters).
#[derive(Debug, Default)]
pub struct ReplyLatency {
    /// Replies at or under each bound (not cumulative; the snapshot sums them).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Replies over the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A copy of [`ReplyLatency`]: cumulative counts per bound of [`BUCKETS`], as Prometheus has them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Replies that took at most `BUCKETS[i]` seconds.
    pub cumulative: [u64; BUCKETS.len()],
    /// Every reply (the `+Inf` bucket).
    pub count: u64,
    /// Their total time in seconds.
    pub sum_seconds: f64,
}

impl ReplyLatency {
    /// Count one reply that took `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => {
                if let Some(c) = self.buckets.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.over.fetch_add(1, Ordering::Relaxed);
            }
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut cumulative = [0; BUCKETS.len()];
        let mut running = 0;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            running += b.load(Ordering::Relaxed);
            *c = running;
        }
        LatencySnapshot {
            cumulative,
            count: running + self.over.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_into_cumulative_buckets() {
        let l = ReplyLatency::default();
        l.observe(Duration::from_micros(50));
        l.observe(Duration::from_millis(3));
        l.observe(Duration::from_secs(2));
        let s = l.snapshot();
        assert_eq!(s.cumulative, [1, 1, 1, 2, 2, 2, 2, 2, 2]);
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 2.00305).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
