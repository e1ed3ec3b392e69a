//! Server-side sessions. The browser holds a random 256-bit id; the server keeps only its
//! SHA-256, so a leaked memory dump or log cannot be replayed as a cookie. Sessions end after
//! an idle time and after an absolute lifetime, whichever comes first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::auth::secret::{RandomError, random_token, sha256_hex};

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(2 * 3600),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The per-session CSRF token every state-changing form must carry.
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

/// Every live session, by the SHA-256 of its id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: HashMap<String, Session>,
    limits: SessionLimits,
}

impl Sessions {
    /// No sessions yet.
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            by_hash: HashMap::new(),
            limits,
        }
    }

    /// Logs `user` in at `now`: returns the cookie value (the only copy of the id).
    pub fn create(&mut self, user: &str, now: Instant) -> Result<String, RandomError> {
        self.expire(now);
        let id = random_token()?;
        let session = Session {
            user: user.to_owned(),
            csrf: random_token()?,
            created: now,
            last_used: now,
        };
        self.by_hash.insert(sha256_hex(&id), session);
        Ok(id)
    }

    /// The session of a cookie value at `now`, refreshing its idle time; `None` when unknown or
    /// expired (an expired one is dropped).
    pub fn touch(&mut self, id: &str, now: Instant) -> Option<Session> {
        let key = sha256_hex(id);
        let session = self.by_hash.get_mut(&key)?;
        let idle = now.saturating_duration_since(session.last_used);
        let age = now.saturating_duration_since(session.created);
        if idle >= self.limits.idle || age >= self.limits.absolute {
            self.by_hash.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Logs a cookie value out.
    pub fn remove(&mut self, id: &str) {
        self.by_hash.remove(&sha256_hex(id));
    }

    /// Ends every session of a user (after a password change), but `keep` (a cookie value).
    pub fn remove_user(&mut self, user: &str, keep: Option<&str>) {
        let keep = keep.map(sha256_hex);
        self.by_hash
            .retain(|k, s| s.user != user || keep.as_deref() == Some(k.as_str()));
    }

    /// Drops every expired session.
    pub fn expire(&mut self, now: Instant) {
        let limits = self.limits;
        self.by_hash.retain(|_, s| {
            now.saturating_duration_since(s.last_used) < limits.idle
                && now.saturating_duration_since(s.created) < limits.absolute
        });
    }

    /// How many sessions are live (expired ones may still count until the next `expire`).
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_only_and_refreshed_by_use() {
        let t0 = Instant::now();
        let mut sessions = Sessions::new(limits());
        let id = sessions.create("admin", t0).unwrap();
        assert_eq!(id.len(), 64);
        assert!(
            !sessions.by_hash.contains_key(&id),
            "the id itself is not kept"
        );
        let s = sessions.touch(&id, t0 + Duration::from_secs(50)).unwrap();
        assert_eq!(s.user, "admin");
        assert_eq!(s.csrf.len(), 64);
        // Used at 50 s: still alive at 100 s (idle 50 s).
        assert!(sessions.touch(&id, t0 + Duration::from_secs(100)).is_some());
        assert!(sessions.touch("0".repeat(64).as_str(), t0).is_none());
    }

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let t0 = Instant::now();
        let mut sessions = Sessions::new(limits());
        let idle = sessions.create("admin", t0).unwrap();
        assert!(
            sessions
                .touch(&idle, t0 + Duration::from_secs(61))
                .is_none()
        );
        assert!(sessions.touch(&idle, t0).is_none(), "dropped once expired");

        let busy = sessions.create("admin", t0).unwrap();
        for s in (30..300).step_by(30) {
            assert!(sessions.touch(&busy, t0 + Duration::from_secs(s)).is_some());
        }
        assert!(
            sessions
                .touch(&busy, t0 + Duration::from_secs(300))
                .is_none()
        );
    }

    #[test]
    fn logout_and_password_change_end_sessions() {
        let t0 = Instant::now();
        let mut sessions = Sessions::new(limits());
        let a = sessions.create("admin", t0).unwrap();
        let b = sessions.create("admin", t0).unwrap();
        let c = sessions.create("admin", t0).unwrap();
        sessions.remove(&a);
        assert!(sessions.touch(&a, t0).is_none());
        sessions.remove_user("admin", Some(&b));
        assert!(sessions.touch(&b, t0).is_some());
        assert!(sessions.touch(&c, t0).is_none());
        sessions.expire(t0 + Duration::from_secs(1000));
        assert!(sessions.is_empty());
    }
}
