//! Sign-in attempts per client address, per user name and in all: a few failures, then a wait.
//!
//! An attempt is counted when it starts, before the slow password hash ([`LoginLimiter::reserve`]),
//! and un-counted only when it succeeds ([`LoginLimiter::succeed`]). Counting after the hash
//! would let a burst of parallel requests all pass the check before the first failure is
//! recorded: each of them would then cost a full argon2 run.
//!
//! Three limits per window:
//! - per address: `per_addr` failures (an IPv6 client by its /64, which one host can hold whole);
//! - per user name: `per_user` failures against one account from all addresses together (every
//!   name that is not an account shares one bucket), which bounds a guesser with many addresses;
//! - in all: `total` failures from every address together, for names and setup codes alike.
//!
//! The last two could let a stranger lock the admin out by typing `admin` from a few addresses.
//! So an address that signed in successfully in the last [`TRUSTED_FOR`] is exempt from them
//! (never from its own per-address limit): a flood from elsewhere does not lock the admin out of
//! the address they use.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How long an address that signed in stays exempt from the limits per user and in all.
pub const TRUSTED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many such addresses are remembered (the oldest sign-in is forgotten first).
const MAX_TRUSTED: usize = 64;

/// More addresses than this: forget those whose attempts are all old.
const MAX_TRACKED: usize = 10_000;

/// Whom the attempts of a user name are counted against: an account, or every name that is
/// not an account (one shared bucket, so made-up names neither escape the limit nor fill memory).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserKey {
    /// An existing account.
    Account(String),
    /// Any name that is not an account.
    Unknown,
}

/// The limits of a [`LoginLimiter`]: failed attempts allowed per window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per client address (an IPv6 /64).
    pub per_addr: usize,
    /// Per user name, from all addresses but trusted ones.
    pub per_user: usize,
    /// From all addresses but trusted ones together.
    pub total: usize,
    /// The window the failures are counted in.
    pub window: Duration,
}

/// One counted attempt, handed back to [`LoginLimiter::succeed`] when it succeeds. Dropping it
/// (a failure, or a request that ended early) leaves it counted.
#[derive(Debug)]
#[must_use = "a successful attempt is un-counted with LoginLimiter::succeed"]
pub struct Attempt {
    addr: Option<IpAddr>,
    /// Counted per user name and in all too (not for a trusted address); the user name, if any.
    untrusted: Option<Option<UserKey>>,
    at: Instant,
}

/// At most [`Limits`] failed attempts within their window, successful ones not counted.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    by_addr: HashMap<Option<IpAddr>, Vec<Instant>>,
    by_user: HashMap<UserKey, Vec<Instant>>,
    all: Vec<Instant>,
    /// Addresses that signed in, and when they last did.
    trusted: HashMap<IpAddr, Instant>,
}

impl LoginLimiter {
    /// A limiter allowing `limits`.
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            by_addr: HashMap::new(),
            by_user: HashMap::new(),
            all: Vec::new(),
            trusted: HashMap::new(),
        }
    }

    /// Counts an attempt from `peer` for `user` (none for a setup code) at `now`, before it is
    /// checked; `Err(retry_after)` when the address, or (for an address that has not signed in
    /// lately) the user name or all addresses together, have used up their attempts (nothing is
    /// counted then).
    pub fn reserve(
        &mut self,
        peer: Option<IpAddr>,
        user: Option<UserKey>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let Limits {
            per_addr,
            per_user,
            total,
            window,
        } = self.limits;
        let addr = peer.map(addr_key);
        if self.by_addr.len() > MAX_TRACKED {
            self.by_addr
                .retain(|_, v| v.iter().any(|t| now.saturating_duration_since(*t) < window));
        }
        let trusted = addr
            .and_then(|a| self.trusted.get(&a))
            .is_some_and(|at| now.saturating_duration_since(*at) < TRUSTED_FOR);
        let mut waits = vec![wait(self.by_addr.get_mut(&addr), per_addr, window, now)];
        if !trusted {
            let by_user = user.as_ref().and_then(|u| self.by_user.get_mut(u));
            waits.push(wait(by_user, per_user, window, now));
            waits.push(wait(Some(&mut self.all), total, window, now));
        }
        if let Some(longest) = waits.into_iter().flatten().max() {
            return Err(longest);
        }
        self.by_addr.entry(addr).or_default().push(now);
        if !trusted {
            if let Some(user) = &user {
                self.by_user.entry(user.clone()).or_default().push(now);
            }
            self.all.push(now);
        }
        Ok(Attempt {
            addr,
            untrusted: (!trusted).then_some(user),
            at: now,
        })
    }

    /// The attempt succeeded: it no longer counts, and neither do the address's earlier
    /// failures; the address is trusted (exempt from the limit in all) for [`TRUSTED_FOR`].
    pub fn succeed(&mut self, attempt: Attempt) {
        self.by_addr.remove(&attempt.addr);
        self.forget_in_total(&attempt);
        if let Some(addr) = attempt.addr {
            if self.trusted.len() >= MAX_TRUSTED && !self.trusted.contains_key(&addr) {
                let oldest = self
                    .trusted
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    self.trusted.remove(&oldest);
                }
            }
            self.trusted.insert(addr, attempt.at);
        }
    }

    /// The attempt was never checked (the password checks were all busy): it does not count.
    pub fn cancel(&mut self, attempt: Attempt) {
        if let Some(times) = self.by_addr.get_mut(&attempt.addr) {
            remove_one(times, attempt.at);
        }
        self.forget_in_total(&attempt);
    }

    fn forget_in_total(&mut self, attempt: &Attempt) {
        if let Some(user) = &attempt.untrusted {
            remove_one(&mut self.all, attempt.at);
            if let Some(times) = user.as_ref().and_then(|u| self.by_user.get_mut(u)) {
                remove_one(times, attempt.at);
            }
        }
    }
}

/// Whom an address's attempts count against: an IPv4 address (also written as `::ffff:a.b.c.d`),
/// or an IPv6 address's /64.
fn addr_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

fn remove_one(times: &mut Vec<Instant>, at: Instant) {
    if let Some(pos) = times.iter().position(|t| *t == at) {
        times.swap_remove(pos);
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn new_limiter(per_addr: usize, per_user: usize, total: usize) -> LoginLimiter {
        LoginLimiter::new(Limits {
            per_addr,
            per_user,
            total,
            window: Duration::from_secs(300),
        })
    }

    /// One account's failures from many addresses are bounded; other names, and an address that
    /// signed in lately, still get their turn.
    #[test]
    fn a_user_name_is_limited_across_addresses_except_from_a_trusted_address() {
        let t0 = Instant::now();
        let mut limiter = new_limiter(5, 10, 1000);
        let admin = || Some(UserKey::Account("admin".into()));
        let known = ip("10.0.1.10");
        let ok = limiter.reserve(known, admin(), t0).unwrap();
        limiter.succeed(ok);
        let mut failed = 0;
        for i in 0..10u8 {
            while limiter
                .reserve(Some(IpAddr::from([10, 0, 2, i])), admin(), t0)
                .is_ok()
            {
                failed += 1;
            }
        }
        assert_eq!(failed, 10, "ten failures for admin from all addresses");
        let wait = limiter.reserve(ip("10.0.3.1"), admin(), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(300));
        // Another name has its own bucket; made-up names share one.
        let _other = limiter
            .reserve(ip("10.0.3.1"), Some(UserKey::Unknown), t0)
            .unwrap();
        // The admin's usual address is not locked out.
        let ok = limiter.reserve(known, admin(), t0).unwrap();
        limiter.succeed(ok);
        // A success un-counts its own attempt only: the strangers' failures stay.
        assert!(limiter.reserve(ip("10.0.3.2"), admin(), t0).is_err());
    }

    #[test]
    fn the_sixth_attempt_waits_until_the_window_passes() {
        let t0 = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut limiter = new_limiter(5, 1000, 100);
        for i in 0..5 {
            let _failed = limiter
                .reserve(a, None, t0 + Duration::from_secs(i))
                .unwrap();
        }
        let wait = limiter
            .reserve(a, None, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        let ok = limiter.reserve(b, None, t0).unwrap();
        limiter.succeed(ok);
        // The first failure leaves the window at 300 s.
        let ok = limiter
            .reserve(a, None, t0 + Duration::from_secs(300))
            .unwrap();
        limiter.succeed(ok);
        assert!(!limiter.by_addr.contains_key(&a));
    }

    #[test]
    fn attempts_count_before_they_are_checked_so_a_burst_gets_only_the_limit() {
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        let mut limiter = new_limiter(5, 1000, 100);
        // 150 attempts at the same instant, none finished yet: five go ahead.
        let admitted: Vec<Attempt> = (0..150)
            .filter_map(|_| limiter.reserve(a, None, t0).ok())
            .collect();
        assert_eq!(admitted.len(), 5);
        // One is cancelled (never checked): one more may go ahead, no more.
        let mut admitted = admitted;
        limiter.cancel(admitted.remove(0));
        let again = limiter.reserve(a, None, t0).unwrap();
        assert!(limiter.reserve(a, None, t0).is_err());
        assert_eq!(limiter.all.len(), 5, "the cancelled one left the total too");
        // One succeeds: the address may try again.
        limiter.succeed(again);
        let _again = limiter.reserve(a, None, t0).unwrap();
    }

    /// The report's lockout: failures are not counted per user name, so a stranger's failures
    /// do not stop anyone else; only their own address waits.
    #[test]
    fn a_strangers_failures_lock_out_only_the_strangers_address() {
        let t0 = Instant::now();
        let mut limiter = new_limiter(5, 1000, 50);
        let stranger = ip("10.0.0.66");
        while limiter.reserve(stranger, None, t0).is_ok() {}
        assert!(limiter.reserve(stranger, None, t0).is_err());
        let _admin = limiter.reserve(ip("10.0.0.10"), None, t0).unwrap();
    }

    #[test]
    fn all_addresses_together_are_bounded_but_an_address_that_signed_in_may_still_try() {
        let t0 = Instant::now();
        let mut limiter = new_limiter(5, 1000, 20);
        let admin = ip("10.0.1.10");
        let ok = limiter.reserve(admin, None, t0).unwrap();
        limiter.succeed(ok);
        // A guesser with four addresses uses up the 20 in all.
        let mut used = 0;
        for i in 0..10u8 {
            while limiter
                .reserve(Some(IpAddr::from([10, 0, 2, i])), None, t0)
                .is_ok()
            {
                used += 1;
            }
        }
        assert_eq!(used, 20);
        // A new address waits for the window; the address that signed in does not.
        let wait = limiter.reserve(ip("10.0.3.1"), None, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(300));
        let ok = limiter.reserve(admin, None, t0).unwrap();
        limiter.succeed(ok);
        // ... still within its own limit.
        for _ in 0..5 {
            let _failed = limiter.reserve(admin, None, t0).unwrap();
        }
        assert!(limiter.reserve(admin, None, t0).is_err());
        // Trust lasts TRUSTED_FOR from the last sign-in.
        let later = t0 + TRUSTED_FOR + Duration::from_secs(1);
        let mut limiter = new_limiter(5, 1000, 1);
        let ok = limiter.reserve(admin, None, t0).unwrap();
        limiter.succeed(ok);
        let _failed = limiter.reserve(ip("10.0.2.1"), None, later).unwrap();
        assert!(limiter.reserve(admin, None, later).is_err());
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut limiter = new_limiter(2, 1000, 100);
        let _a = limiter.reserve(ip("fd00:1:2:3::1"), None, t0).unwrap();
        let _b = limiter.reserve(ip("fd00:1:2:3:ffff::9"), None, t0).unwrap();
        assert!(limiter.reserve(ip("fd00:1:2:3::abcd"), None, t0).is_err());
        let _other_prefix = limiter.reserve(ip("fd00:1:2:4::1"), None, t0).unwrap();
        let _v4 = limiter.reserve(ip("10.0.0.1"), None, t0).unwrap();
        let _mapped = limiter.reserve(ip("::ffff:10.0.0.1"), None, t0).unwrap();
        assert!(limiter.reserve(ip("10.0.0.1"), None, t0).is_err());
    }

    #[test]
    fn trusted_addresses_are_bounded() {
        let t0 = Instant::now();
        let mut limiter = new_limiter(5, 1000, 100);
        for i in 0..(MAX_TRUSTED as u32 + 10) {
            let ok = limiter
                .reserve(
                    Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + i))),
                    None,
                    t0 + Duration::from_secs(i.into()),
                )
                .unwrap();
            limiter.succeed(ok);
        }
        assert_eq!(limiter.trusted.len(), MAX_TRUSTED);
        assert!(!limiter.trusted.contains_key(&IpAddr::from([10, 0, 0, 0])));
    }
}
