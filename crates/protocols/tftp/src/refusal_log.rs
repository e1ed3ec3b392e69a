//! Rate-limited reporting of refused requests (and of transfers nobody answered, which a
//! flood of forged requests produces): at most one line per second, however fast they come.
//! Pure, driven with explicit time like [`crate::session::Session`].
//!
//! After a quiet second, a refusal is reported on its own (a boot event with its peer and
//! reason: what a user debugging one machine wants). Refusals in the second after that are
//! only counted; when the second is over, one summary line gives the count, and the next
//! second starts counting again. A flood thus costs one line per second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often at most a refusal is reported.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Report this refusal on its own.
    Now,
    /// Only count it; a [`Summary`] follows.
    Counted,
}

/// The refusals of one interval that were not reported on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// How many.
    pub count: u64,
    /// Over how long.
    pub over: Duration,
    /// The last one's peer.
    pub last_peer: SocketAddr,
    /// The last one's reason.
    pub last_reason: String,
}

/// The limiter's state.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// The end of the current interval; `None` when quiet.
    until: Option<Instant>,
    started: Option<Instant>,
    count: u64,
    last: Option<(SocketAddr, String)>,
}

impl RefusalLog {
    /// A refusal of `peer`'s request for `reason` at `now`.
    pub fn refused(&mut self, now: Instant, peer: SocketAddr, reason: &str) -> Report {
        match self.until {
            Some(until) if now < until || self.count > 0 => {
                self.count += 1;
                self.last = Some((peer, reason.to_owned()));
                Report::Counted
            }
            _ => {
                self.until = Some(now + REPORT_INTERVAL);
                self.started = Some(now);
                Report::Now
            }
        }
    }

    /// When [`RefusalLog::on_timeout`] is due; `None` when nothing waits to be reported.
    pub fn poll_at(&self) -> Option<Instant> {
        self.until
    }

    /// The summary of the interval that ended, if it counted anything.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Summary> {
        let until = self.until?;
        if now < until {
            return None;
        }
        if self.count == 0 {
            *self = RefusalLog::default();
            return None;
        }
        let summary = Summary {
            count: self.count,
            over: now.saturating_duration_since(self.started.unwrap_or(now)),
            last_peer: self.last.as_ref().map_or(([0, 0, 0, 0], 0).into(), |l| l.0),
            last_reason: self.last.take().map(|l| l.1).unwrap_or_default(),
        };
        self.count = 0;
        self.started = Some(now);
        self.until = Some(now + REPORT_INTERVAL);
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 9], port))
    }

    const MS: Duration = Duration::from_millis(1);

    /// 100 refusals a second for 5 s, with the timer served as the server does: one report
    /// line per second.
    #[test]
    fn a_flood_costs_one_line_per_second() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let mut lines = Vec::new();
        let mut counted = 0;
        for i in 0..500u32 {
            let now = t0 + 10 * MS * i;
            while let Some(at) = log.poll_at().filter(|at| *at <= now) {
                if let Some(s) = log.on_timeout(at) {
                    lines.push((at, Some(s.count)));
                }
            }
            match log.refused(now, peer(i as u16), "server busy") {
                Report::Now => lines.push((now, None)),
                Report::Counted => counted += 1,
            }
        }
        let end = t0 + 10 * MS * 500;
        while let Some(at) = log.poll_at().filter(|at| *at <= end + REPORT_INTERVAL) {
            if let Some(s) = log.on_timeout(at) {
                lines.push((at, Some(s.count)));
            }
        }
        assert_eq!(lines.first(), Some(&(t0, None)));
        assert_eq!(lines.len(), 6, "{lines:?}");
        let summed: u64 = lines.iter().filter_map(|l| l.1).sum();
        assert_eq!(summed, counted);
        assert_eq!(summed + 1, 500);
        for w in lines.windows(2) {
            assert!(w[1].0 - w[0].0 >= REPORT_INTERVAL, "{lines:?}");
        }
        assert_eq!(log.poll_at(), None, "quiet again");
    }

    #[test]
    fn isolated_refusals_are_each_reported_on_their_own() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        assert_eq!(log.refused(t0, peer(1), "not found"), Report::Now);
        assert_eq!(log.on_timeout(t0 + REPORT_INTERVAL), None);
        assert_eq!(log.poll_at(), None);
        assert_eq!(
            log.refused(t0 + 3 * REPORT_INTERVAL, peer(2), "not found"),
            Report::Now
        );
    }

    #[test]
    fn the_summary_names_the_last_refusal() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        log.refused(t0, peer(1), "a");
        assert_eq!(log.refused(t0 + MS, peer(2), "b"), Report::Counted);
        assert_eq!(log.refused(t0 + 2 * MS, peer(3), "c"), Report::Counted);
        assert_eq!(log.on_timeout(t0 + 500 * MS), None, "not due yet");
        let s = log.on_timeout(t0 + REPORT_INTERVAL).unwrap();
        assert_eq!(
            (s.count, s.last_peer, s.last_reason.as_str()),
            (2, peer(3), "c")
        );
        // A refusal just after a summary is counted, not reported: still one line a second.
        assert_eq!(
            log.refused(t0 + REPORT_INTERVAL + MS, peer(4), "d"),
            Report::Counted
        );
    }
}
