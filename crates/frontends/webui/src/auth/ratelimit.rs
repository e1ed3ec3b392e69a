//! Sign-in attempts per client address and per user name: a few failures, then a wait.
//!
//! An attempt is counted when it starts, before the slow password hash ([`LoginLimiter::reserve`]),
//! and un-counted only when it succeeds ([`LoginLimiter::succeed`]). Counting after the hash
//! would let a burst of parallel requests all pass the check before the first failure is
//! recorded: each of them would then cost a full argon2 run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Whom the attempts of a user name are counted against: an account, or every name that is
/// not an account (one shared bucket, so made-up names neither escape the limit nor fill memory).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserKey {
    /// An existing account.
    Account(String),
    /// Any name that is not an account.
    Unknown,
}

/// One counted attempt, handed back to [`LoginLimiter::succeed`] when it succeeds. Dropping it
/// (a failure, or a request that ended early) leaves it counted.
#[derive(Debug)]
#[must_use = "a successful attempt is un-counted with LoginLimiter::succeed"]
pub struct Attempt {
    peer: Option<IpAddr>,
    user: Option<UserKey>,
    at: Instant,
}

/// At most `max_per_addr` attempts per address and `max_per_user` per user name within
/// `window`, successful ones not counted.
#[derive(Debug)]
pub struct LoginLimiter {
    max_per_addr: usize,
    max_per_user: usize,
    window: Duration,
    by_addr: HashMap<Option<IpAddr>, Vec<Instant>>,
    by_user: HashMap<UserKey, Vec<Instant>>,
}

/// More addresses than this: forget those whose attempts are all old.
const MAX_TRACKED: usize = 10_000;

impl LoginLimiter {
    /// A limiter allowing `max_per_addr` failed attempts per address and `max_per_user` per user
    /// name per `window`.
    pub fn new(max_per_addr: usize, max_per_user: usize, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_per_addr,
            max_per_user,
            window,
            by_addr: HashMap::new(),
            by_user: HashMap::new(),
        }
    }

    /// Counts an attempt from `peer` for `user` (`None`: not counted per user, e.g. the setup
    /// code) at `now`, before it is checked; `Err(retry_after)` when the address or the user
    /// name has used up its attempts (nothing is counted then).
    pub fn reserve(
        &mut self,
        peer: Option<IpAddr>,
        user: Option<UserKey>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let window = self.window;
        if self.by_addr.len() > MAX_TRACKED {
            self.by_addr
                .retain(|_, v| v.iter().any(|t| now.saturating_duration_since(*t) < window));
        }
        let addr_wait = wait(self.by_addr.get_mut(&peer), self.max_per_addr, window, now);
        let user_wait = match &user {
            Some(key) => wait(self.by_user.get_mut(key), self.max_per_user, window, now),
            None => None,
        };
        if let Some(longest) = addr_wait.into_iter().chain(user_wait).max() {
            return Err(longest);
        }
        self.by_addr.entry(peer).or_default().push(now);
        if let Some(key) = &user {
            self.by_user.entry(key.clone()).or_default().push(now);
        }
        Ok(Attempt {
            peer,
            user,
            at: now,
        })
    }

    /// The attempt succeeded: it no longer counts, and neither do the address's earlier
    /// failures. The user name's earlier failures stay (others may be guessing it).
    pub fn succeed(&mut self, attempt: Attempt) {
        self.by_addr.remove(&attempt.peer);
        self.forget_user(&attempt);
    }

    /// The attempt was never checked (the password checks were all busy): it does not count.
    pub fn cancel(&mut self, attempt: Attempt) {
        if let Some(times) = self.by_addr.get_mut(&attempt.peer)
            && let Some(pos) = times.iter().position(|t| *t == attempt.at)
        {
            times.swap_remove(pos);
        }
        self.forget_user(&attempt);
    }

    fn forget_user(&mut self, attempt: &Attempt) {
        if let Some(key) = &attempt.user
            && let Some(times) = self.by_user.get_mut(key)
            && let Some(pos) = times.iter().position(|t| *t == attempt.at)
        {
            times.swap_remove(pos);
        }
    }
}

/// How long until one of `times` leaves the window, when `max` of them are in it.
fn wait(
    times: Option<&mut Vec<Instant>>,
    max: usize,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    let times = times?;
    times.retain(|t| now.saturating_duration_since(*t) < window);
    if times.len() < max {
        return None;
    }
    let oldest = times.iter().min().copied().unwrap_or(now);
    Some(window.saturating_sub(now.saturating_duration_since(oldest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Option<UserKey> {
        Some(UserKey::Account("admin".into()))
    }

    #[test]
    fn the_sixth_attempt_waits_until_the_window_passes() {
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let mut limiter = LoginLimiter::new(5, 100, Duration::from_secs(300));
        for i in 0..5 {
            let _failed = limiter
                .reserve(a, admin(), t0 + Duration::from_secs(i))
                .unwrap();
        }
        let wait = limiter
            .reserve(a, admin(), t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        let ok = limiter.reserve(b, admin(), t0).unwrap();
        limiter.succeed(ok);
        // The first failure leaves the window at 300 s.
        let ok = limiter
            .reserve(a, admin(), t0 + Duration::from_secs(300))
            .unwrap();
        limiter.succeed(ok);
        assert!(!limiter.by_addr.contains_key(&a));
    }

    #[test]
    fn attempts_count_before_they_are_checked_so_a_burst_gets_only_the_limit() {
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let mut limiter = LoginLimiter::new(5, 100, Duration::from_secs(300));
        // 150 attempts at the same instant, none finished yet: five go ahead.
        let admitted: Vec<Attempt> = (0..150)
            .filter_map(|_| limiter.reserve(a, admin(), t0).ok())
            .collect();
        assert_eq!(admitted.len(), 5);
        // One is cancelled (never checked): one more may go ahead, no more.
        let mut admitted = admitted;
        limiter.cancel(admitted.remove(0));
        let again = limiter.reserve(a, admin(), t0).unwrap();
        assert!(limiter.reserve(a, admin(), t0).is_err());
        // One succeeds: the address may try again.
        limiter.succeed(again);
        let _again = limiter.reserve(a, admin(), t0).unwrap();
    }

    #[test]
    fn a_user_name_is_limited_across_addresses_and_unknown_names_share_a_bucket() {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(5, 10, Duration::from_secs(300));
        for i in 0..10u8 {
            let _failed = limiter
                .reserve(Some(IpAddr::from([10, 0, 1, i])), admin(), t0)
                .unwrap();
        }
        let other = Some(IpAddr::from([10, 0, 2, 1]));
        assert!(limiter.reserve(other, admin(), t0).is_err());
        let unknown = Some(UserKey::Unknown);
        for i in 0..10u8 {
            let _failed = limiter
                .reserve(Some(IpAddr::from([10, 0, 3, i])), unknown.clone(), t0)
                .unwrap();
        }
        assert!(limiter.reserve(other, unknown, t0).is_err());
        // Without a user name only the address counts.
        let _setup = limiter.reserve(other, None, t0).unwrap();
        assert_eq!(limiter.by_user.len(), 2);
    }
}
