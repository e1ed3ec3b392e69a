//! Rate limits on received lines: a token bucket per source address and one for all sources,
//! so one chatty machine cannot starve the others and a flood of sources cannot outrun the
//! store. Pure: `now` is given. The table of sources is bounded ([`MAX_SOURCES`]): when it is
//! full, sources whose bucket refilled are forgotten, and if none has, the table starts over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Sources remembered, at most.
pub const MAX_SOURCES: usize = 4096;

/// How many lines a second, with bursts of twice that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Lines a second from one source.
    pub per_source: u32,
    /// Lines a second from all sources together.
    pub total: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: burst(rate),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * f64::from(rate)).min(burst(rate));
        self.at = now;
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn burst(rate: u32) -> f64 {
    f64::from(rate.max(1)) * 2.0
}

/// Why a line was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Its source sent more than its rate.
    Source,
    /// All sources together did.
    Total,
}

/// The buckets.
#[derive(Debug)]
pub struct RateLimit {
    rates: Rates,
    sources: HashMap<IpAddr, Bucket>,
    total: Bucket,
}

impl RateLimit {
    pub fn new(rates: Rates, now: Instant) -> RateLimit {
        RateLimit {
            rates,
            sources: HashMap::new(),
            total: Bucket::full(rates.total, now),
        }
    }

    /// May one more line from `src` pass `now`?
    pub fn check(&mut self, src: IpAddr, now: Instant) -> Result<(), Limited> {
        if !self.sources.contains_key(&src) && self.sources.len() >= MAX_SOURCES {
            let rate = self.rates.per_source;
            self.sources.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < burst(rate)
            });
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let bucket = self
            .sources
            .entry(src)
            .or_insert_with(|| Bucket::full(self.rates.per_source, now));
        bucket.refill(self.rates.per_source, now);
        if !bucket.take() {
            return Err(Limited::Source);
        }
        self.total.refill(self.rates.total, now);
        if !self.total.take() {
            return Err(Limited::Total);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATES: Rates = Rates {
        per_source: 10,
        total: 25,
    };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 77, 0, n])
    }

    #[test]
    fn a_source_gets_a_burst_then_its_rate() {
        let t = Instant::now();
        let mut limit = RateLimit::new(RATES, t);
        let passed = (0..100).filter(|_| limit.check(ip(1), t).is_ok()).count();
        assert_eq!(passed, 20, "a burst of twice the rate");
        assert_eq!(limit.check(ip(1), t), Err(Limited::Source));
        // Half a second later: five more.
        let later = t + Duration::from_millis(500);
        let passed = (0..100)
            .filter(|_| limit.check(ip(1), later).is_ok())
            .count();
        assert_eq!(passed, 5);
        // Another source has its own bucket.
        assert_eq!(limit.check(ip(2), later), Ok(()));
    }

    #[test]
    fn all_sources_together_are_capped() {
        let t = Instant::now();
        let mut limit = RateLimit::new(RATES, t);
        let passed = (0..=255u8)
            .filter(|&n| limit.check(ip(n), t).is_ok())
            .count();
        assert_eq!(passed, 50);
        assert_eq!(limit.check(ip(7), t), Err(Limited::Total));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let t = Instant::now();
        let mut limit = RateLimit::new(
            Rates {
                per_source: 1,
                total: u32::MAX,
            },
            t,
        );
        for n in 0..(MAX_SOURCES as u32 + 10) {
            let _ = limit.check(IpAddr::from(n.to_be_bytes()), t);
        }
        assert!(limit.sources.len() <= MAX_SOURCES);
    }
}
