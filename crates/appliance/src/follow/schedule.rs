//! When each following flake is re-locked next: pure, driven by the time it is given (tests
//! script it), like a protocol state machine with `poll` and `poll_at`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The next check of every following flake.
#[derive(Debug, Default)]
pub struct Schedule {
    next: BTreeMap<String, (Instant, Duration)>,
}

impl Schedule {
    /// The flakes due at `now`, given every flake that follows now with its `check_every`;
    /// their next check moves to `now + check_every`. A flake seen for the first time is due
    /// one `check_every` from now; one whose `check_every` shrank, no later than that from now;
    /// one that no longer follows is forgotten.
    pub fn poll(&mut self, following: &[(String, Duration)], now: Instant) -> Vec<String> {
        self.next
            .retain(|name, _| following.iter().any(|(n, _)| n == name));
        let mut due = Vec::new();
        for (name, every) in following {
            let every = *every;
            let entry = self
                .next
                .entry(name.clone())
                .or_insert((now + every, every));
            if entry.1 != every {
                *entry = (entry.0.min(now + every), every);
            }
            if entry.0 <= now {
                entry.0 = now + every;
                due.push(name.clone());
            }
        }
        due
    }

    /// When the next flake is due (`None`: no flake follows).
    pub fn poll_at(&self) -> Option<Instant> {
        self.next.values().map(|(at, _)| *at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_flake_is_due_every_check_every_from_when_it_was_first_seen() {
        let t0 = Instant::now();
        let mut schedule = Schedule::default();
        let following = vec![("lab".to_owned(), s(10)), ("fleet".to_owned(), s(25))];
        assert!(schedule.poll(&following, t0).is_empty());
        assert_eq!(schedule.poll_at(), Some(t0 + s(10)));
        assert!(schedule.poll(&following, t0 + s(9)).is_empty());
        assert_eq!(schedule.poll(&following, t0 + s(10)), vec!["lab"]);
        assert_eq!(schedule.poll_at(), Some(t0 + s(20)));
        assert_eq!(schedule.poll(&following, t0 + s(20)), vec!["lab"]);
        // Late (the updates took long): due once, then every 10 s from then.
        let both = schedule.poll(&following, t0 + s(31));
        assert_eq!(both, vec!["lab", "fleet"]);
        assert_eq!(schedule.poll_at(), Some(t0 + s(41)));
    }

    #[test]
    fn a_shorter_check_every_takes_effect_and_an_unfollowed_flake_is_forgotten() {
        let t0 = Instant::now();
        let mut schedule = Schedule::default();
        schedule.poll(&[("lab".to_owned(), s(900))], t0);
        assert_eq!(schedule.poll_at(), Some(t0 + s(900)));
        schedule.poll(&[("lab".to_owned(), s(2))], t0 + s(1));
        assert_eq!(schedule.poll_at(), Some(t0 + s(3)));
        assert_eq!(
            schedule.poll(&[("lab".to_owned(), s(2))], t0 + s(3)),
            vec!["lab"]
        );
        assert!(schedule.poll(&[], t0 + s(5)).is_empty());
        assert_eq!(schedule.poll_at(), None);
    }
}
