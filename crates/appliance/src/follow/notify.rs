//! What a flake's `notify_txt` record asks for, decided per check: pure, driven by the time it
//! is given.
//!
//! - The record names the locked revision: nothing to do.
//! - It names another: update (trigger `dns`), and remember that revision. An update re-locks
//!   the branch; when the push has not reached the git server yet (or the record names an old
//!   commit), the lock does not move and the record still differs: the same revision is acted
//!   on again only `check_every` after the last time (never every minute). A record naming yet
//!   another revision is acted on at once.
//! - It cannot be read (no answer, no `rev=`, garbage): nothing is updated; the failure is in
//!   the flake's DNS status, and logged as a warning when it is new or changed, and then at
//!   most every [`WARN_EVERY`] while it lasts (at debug otherwise).
//!
//! The memory is the process's: after a restart a differing record is acted on once more.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// While the same failure lasts, it is logged as a warning this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10 * 60);

/// What to do after one check of one flake's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The record names the locked revision.
    Current,
    /// The record names another revision: update the flake.
    Update,
    /// The record names the revision acted on last, less than `check_every` ago: not yet.
    Wait,
    /// The record could not be read; `warn`: log it as a warning (else at debug).
    Failed {
        /// Whether this failure is new, changed, or has lasted another [`WARN_EVERY`].
        warn: bool,
    },
}

/// One flake's DNS notification as the API shows it: the last check and the last revision
/// acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsStatus {
    /// The record's name.
    pub record: String,
    /// When it was last asked.
    pub checked_at: SystemTime,
    /// The revision it named then (`None`: it could not be read).
    pub rev: Option<String>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// The revision an update was last started for, and when.
    pub acted_on: Option<(String, SystemTime)>,
}

#[derive(Debug, Default)]
struct Memory {
    /// The revision acted on last: when (monotonic, for the wait) and when (wall clock, shown).
    acted: Option<(String, Instant, SystemTime)>,
    /// The failure warned about last, and when.
    warned: Option<(String, Instant)>,
}

/// What the checks remember, per flake.
#[derive(Debug, Default)]
pub struct Notices {
    flakes: HashMap<String, Memory>,
}

impl Notices {
    /// Forgets flakes not in `watched` (removed, or no longer notified).
    pub fn retain(&mut self, watched: &[String]) {
        self.flakes.retain(|name, _| watched.contains(name));
    }

    /// Judges one check of `flake`'s record: `read` is the revision it names or why it could
    /// not be read, `locked` the flake's locked revision, `retry` its `check_every`.
    pub fn judge(
        &mut self,
        flake: &str,
        read: Result<&str, &str>,
        locked: Option<&str>,
        retry: Duration,
        now: Instant,
        wall: SystemTime,
    ) -> Action {
        let memory = self.flakes.entry(flake.to_owned()).or_default();
        let rev = match read {
            Ok(rev) => rev,
            Err(why) => {
                let warn = match &memory.warned {
                    Some((last, at)) => {
                        last != why || now.saturating_duration_since(*at) >= WARN_EVERY
                    }
                    None => true,
                };
                if warn {
                    memory.warned = Some((why.to_owned(), now));
                }
                return Action::Failed { warn };
            }
        };
        memory.warned = None;
        if locked.is_some_and(|l| l.eq_ignore_ascii_case(rev)) {
            return Action::Current;
        }
        if let Some((last, at, _)) = &memory.acted
            && last == rev
            && now.saturating_duration_since(*at) < retry
        {
            return Action::Wait;
        }
        memory.acted = Some((rev.to_owned(), now, wall));
        Action::Update
    }

    /// The revision last acted on for `flake`, and when.
    pub fn acted_on(&self, flake: &str) -> Option<(String, SystemTime)> {
        let (rev, _, wall) = self.flakes.get(flake)?.acted.as_ref()?;
        Some((rev.clone(), *wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";
    const NEWER: &str = "3333333333333333333333333333333333333333";

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_new_revision_is_acted_on_once_per_check_every() {
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let mut n = Notices::default();
        let retry = s(900);
        let upper = NEW.to_uppercase();
        let mut judge = |read, locked, at: u64| n.judge("lab", read, locked, retry, t0 + s(at), w0);
        assert_eq!(judge(Ok(OLD), Some(OLD), 0), Action::Current);
        assert_eq!(judge(Ok(&upper), Some(NEW), 1), Action::Current);
        assert_eq!(judge(Ok(NEW), Some(OLD), 60), Action::Update);
        // The lock did not move (the push is not on the git server yet): wait, then again.
        assert_eq!(judge(Ok(NEW), Some(OLD), 120), Action::Wait);
        assert_eq!(judge(Ok(NEW), Some(OLD), 959), Action::Wait);
        assert_eq!(judge(Ok(NEW), Some(OLD), 960), Action::Update);
        // Yet another revision: at once.
        assert_eq!(judge(Ok(NEWER), Some(OLD), 961), Action::Update);
        // Moved: nothing more.
        assert_eq!(judge(Ok(NEWER), Some(NEWER), 1020), Action::Current);
        // No locked revision (a path flake) differs from any record: NEWER was acted on at
        // 961, so it waits like the others.
        assert_eq!(judge(Ok(NEWER), None, 1080), Action::Wait);
        assert_eq!(n.acted_on("lab"), Some((NEWER.to_owned(), w0)));
        assert_eq!(n.acted_on("fleet"), None);
        n.retain(&[]);
        assert_eq!(n.acted_on("lab"), None);
    }

    #[test]
    fn failures_warn_when_new_or_changed_and_then_rarely() {
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let mut n = Notices::default();
        let mut judge = |read, at: u64| n.judge("lab", read, Some(OLD), s(900), t0 + s(at), w0);
        assert_eq!(judge(Err("timeout"), 0), Action::Failed { warn: true });
        assert_eq!(judge(Err("timeout"), 60), Action::Failed { warn: false });
        assert_eq!(judge(Err("no rev"), 120), Action::Failed { warn: true });
        assert_eq!(judge(Err("no rev"), 719), Action::Failed { warn: false });
        assert_eq!(judge(Err("no rev"), 720), Action::Failed { warn: true });
        // Readable again, then failing again: warned at once.
        assert_eq!(judge(Ok(OLD), 780), Action::Current);
        assert_eq!(judge(Err("no rev"), 840), Action::Failed { warn: true });
        // A failure never acts.
        assert_eq!(n.acted_on("lab"), None);
    }
}
