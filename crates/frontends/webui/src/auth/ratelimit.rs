//! Login attempts per client address: a few failures, then a wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most `max_failures` failed attempts per address within `window`.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: HashMap<Option<IpAddr>, Vec<Instant>>,
}

impl LoginLimiter {
    /// A limiter allowing `max_failures` failures per `window`.
    pub fn new(max_failures: usize, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures,
            window,
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after)` when `peer` has used up its attempts at `now`.
    pub fn check(&mut self, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let window = self.window;
        let Some(times) = self.failures.get_mut(&peer) else {
            return Ok(());
        };
        times.retain(|t| now.saturating_duration_since(*t) < window);
        if times.len() < self.max_failures {
            return Ok(());
        }
        let oldest = times.iter().min().copied().unwrap_or(now);
        Err(window.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Counts a failed attempt.
    pub fn fail(&mut self, peer: Option<IpAddr>, now: Instant) {
        let window = self.window;
        // Bound memory: forget addresses whose failures are all old.
        if self.failures.len() > 10_000 {
            self.failures
                .retain(|_, v| v.iter().any(|t| now.saturating_duration_since(*t) < window));
        }
        self.failures.entry(peer).or_default().push(now);
    }

    /// A successful login clears the address's failures.
    pub fn succeed(&mut self, peer: Option<IpAddr>) {
        self.failures.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_waits_until_the_window_passes() {
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let mut limiter = LoginLimiter::new(5, Duration::from_secs(300));
        for i in 0..5 {
            limiter.check(a, t0 + Duration::from_secs(i)).unwrap();
            limiter.fail(a, t0 + Duration::from_secs(i));
        }
        let wait = limiter.check(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        limiter.check(b, t0).unwrap();
        // The first failure leaves the window at 300 s.
        limiter.check(a, t0 + Duration::from_secs(300)).unwrap();
        limiter.succeed(a);
        assert!(!limiter.failures.contains_key(&a));
    }
}
