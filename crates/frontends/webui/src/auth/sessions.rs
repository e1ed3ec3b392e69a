//! Server-side sessions, kept in the store so that a sign-in survives a daemon restart. The
//! browser holds a random 256-bit id; the store keeps only its SHA-256, so the database file,
//! a memory dump or a log cannot be replayed as a cookie. Sessions end after an idle time and
//! after an absolute lifetime, whichever comes first, measured on the wall clock (an instant
//! means nothing after a restart); a clock that went back ends them too.
//!
//! Expired sessions are dropped when the UI starts ([`Sessions::new`]), at every sign-in and
//! periodically ([`crate::serve::expire_sessions_every`]). At most [`SessionLimits::max`]
//! are kept: a sign-in beyond ends the least recently used one.
//!
//! Each use refreshes the session's idle time; the store is written at most every
//! [`Sessions::touch_every`] per session (a few seconds), not on every request.
//!
//! Every call is blocking (the store): from async code through `spawn_blocking`
//! (`WebState`'s session methods do).

use std::time::{Duration, SystemTime};

use flakeboot_store::{DEFAULT_MAX_SESSIONS, SessionRecord, Store, StoreError};

use crate::auth::secret::{RandomError, random_token, sha256_hex};

/// How long sessions last, and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
    /// At most this many sessions (all users); a sign-in beyond ends the least recently used.
    pub max: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(2 * 3600),
            absolute: Duration::from_secs(12 * 3600),
            max: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Why a session could not be made or found.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No random bytes for the id or the CSRF token.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One logged-in browser.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The per-session CSRF token every state-changing form must carry.
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The sessions in the store, with their limits.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    limits: SessionLimits,
}

impl Sessions {
    /// The sessions kept in `store`; those expired at `now` are dropped.
    pub fn new(
        store: Store,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Sessions, StoreError> {
        let sessions = Sessions { store, limits };
        let dropped = sessions.expire(now)?;
        if dropped > 0 {
            tracing::info!(dropped, "expired sessions dropped");
        }
        Ok(sessions)
    }

    /// How stale a session's stored last use may get before a use writes it: a tenth of the
    /// idle time, at most a minute.
    pub fn touch_every(&self) -> Duration {
        (self.limits.idle / 10).min(Duration::from_secs(60))
    }

    /// Logs `user` in at `now`: returns the cookie value (the only copy of the id).
    pub fn create(&self, user: &str, now: SystemTime) -> Result<String, SessionError> {
        self.expire(now)?;
        let id = random_token()?;
        let session = SessionRecord {
            user: user.to_owned(),
            csrf: random_token()?,
            created: now,
            last_used: now,
        };
        let evicted = self
            .store
            .put_session(&sha256_hex(&id), &session, self.limits.max)?;
        if evicted > 0 {
            tracing::info!(
                evicted,
                max = self.limits.max,
                "too many sessions: the least recently used ended"
            );
        }
        Ok(id)
    }

    /// The session of a cookie value at `now`, refreshing its idle time; `None` when unknown or
    /// expired (an expired one is dropped).
    pub fn touch(&self, id: &str, now: SystemTime) -> Result<Option<Session>, StoreError> {
        let key = sha256_hex(id);
        let Some(record) = self.store.session(&key)? else {
            return Ok(None);
        };
        if record.expired(now, self.limits.idle, self.limits.absolute) {
            self.store.remove_session(&key)?;
            return Ok(None);
        }
        let stale = now
            .duration_since(record.last_used)
            .is_ok_and(|d| d >= self.touch_every());
        // A logout in between wins: the touch does not bring the session back.
        if stale && !self.store.touch_session(&key, now)? {
            return Ok(None);
        }
        Ok(Some(Session {
            user: record.user,
            csrf: record.csrf,
        }))
    }

    /// Logs a cookie value out.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.store.remove_session(&sha256_hex(id))?;
        Ok(())
    }

    /// Ends every session of a user (after a password change), but `keep` (a cookie value).
    pub fn remove_user(&self, user: &str, keep: Option<&str>) -> Result<usize, StoreError> {
        let keep = keep.map(sha256_hex);
        self.store.remove_user_sessions(user, keep.as_deref())
    }

    /// Drops every session expired at `now`; returns how many.
    pub fn expire(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.store
            .expire_sessions(now, self.limits.idle, self.limits.absolute)
    }

    /// How many sessions are kept (expired ones may still count until the next `expire`).
    pub fn len(&self) -> Result<usize, StoreError> {
        Ok(self.store.sessions()?.len())
    }

    /// True when no session is kept.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            max: 8,
        }
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn sessions() -> Sessions {
        Sessions::new(Store::in_memory().unwrap(), limits(), t0()).unwrap()
    }

    #[test]
    fn a_session_is_found_by_its_id_only_and_refreshed_by_use() {
        let t0 = t0();
        let sessions = sessions();
        let id = sessions.create("admin", t0).unwrap();
        assert_eq!(id.len(), 64);
        let stored = sessions.store.sessions().unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].0, id, "the id itself is not kept");
        assert_eq!(stored[0].0, sha256_hex(&id));
        let s = sessions
            .touch(&id, t0 + Duration::from_secs(50))
            .unwrap()
            .unwrap();
        assert_eq!(s.user, "admin");
        assert_eq!(s.csrf.len(), 64);
        // Used at 50 s: still alive at 100 s (idle 50 s).
        assert!(
            sessions
                .touch(&id, t0 + Duration::from_secs(100))
                .unwrap()
                .is_some()
        );
        assert!(
            sessions
                .touch("0".repeat(64).as_str(), t0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let t0 = t0();
        let sessions = sessions();
        let idle = sessions.create("admin", t0).unwrap();
        assert!(
            sessions
                .touch(&idle, t0 + Duration::from_secs(61))
                .unwrap()
                .is_none()
        );
        assert!(
            sessions.touch(&idle, t0).unwrap().is_none(),
            "dropped once expired"
        );

        let busy = sessions.create("admin", t0).unwrap();
        for s in (30..300).step_by(30) {
            assert!(
                sessions
                    .touch(&busy, t0 + Duration::from_secs(s))
                    .unwrap()
                    .is_some()
            );
        }
        assert!(
            sessions
                .touch(&busy, t0 + Duration::from_secs(300))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn uses_close_together_write_the_store_once() {
        let t0 = t0();
        let sessions = sessions();
        assert_eq!(sessions.touch_every(), Duration::from_secs(6));
        let id = sessions.create("admin", t0).unwrap();
        let last_used = || sessions.store.sessions().unwrap()[0].1.last_used;
        sessions.touch(&id, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(last_used(), t0, "5 s later: not written");
        sessions.touch(&id, t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(last_used(), t0 + Duration::from_secs(6));
    }

    #[test]
    fn logout_and_password_change_end_sessions() {
        let t0 = t0();
        let sessions = sessions();
        let a = sessions.create("admin", t0).unwrap();
        let b = sessions.create("admin", t0).unwrap();
        let c = sessions.create("admin", t0).unwrap();
        sessions.remove(&a).unwrap();
        assert!(sessions.touch(&a, t0).unwrap().is_none());
        assert_eq!(sessions.remove_user("admin", Some(&b)).unwrap(), 1);
        assert!(sessions.touch(&b, t0).unwrap().is_some());
        assert!(sessions.touch(&c, t0).unwrap().is_none());
        sessions.expire(t0 + Duration::from_secs(1000)).unwrap();
        assert!(sessions.is_empty().unwrap());
    }

    #[test]
    fn sessions_survive_a_restart_and_expired_ones_are_dropped_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = t0();
        let (kept, stale) = {
            let store = Store::open(tmp.path()).unwrap();
            let sessions = Sessions::new(store, limits(), t0).unwrap();
            let stale = sessions.create("admin", t0).unwrap();
            let kept = sessions
                .create("admin", t0 + Duration::from_secs(30))
                .unwrap();
            (kept, stale)
        };
        let store = Store::open(tmp.path()).unwrap();
        let sessions = Sessions::new(store, limits(), t0 + Duration::from_secs(70)).unwrap();
        assert_eq!(
            sessions.len().unwrap(),
            1,
            "the idle one was dropped at start"
        );
        let s = sessions
            .touch(&kept, t0 + Duration::from_secs(70))
            .unwrap()
            .unwrap();
        assert_eq!(s.user, "admin");
        assert!(sessions.touch(&stale, t0).unwrap().is_none());
    }

    #[test]
    fn sign_ins_beyond_the_cap_end_the_least_recently_used() {
        let t0 = t0();
        let sessions = sessions();
        let ids: Vec<String> = (0..8)
            .map(|i| {
                sessions
                    .create("admin", t0 + Duration::from_secs(i))
                    .unwrap()
            })
            .collect();
        // The first is used, so the second is now the least recently used.
        sessions
            .touch(&ids[0], t0 + Duration::from_secs(20))
            .unwrap();
        sessions
            .create("admin", t0 + Duration::from_secs(21))
            .unwrap();
        assert_eq!(sessions.len().unwrap(), 8);
        assert!(
            sessions
                .touch(&ids[1], t0 + Duration::from_secs(22))
                .unwrap()
                .is_none()
        );
        assert!(
            sessions
                .touch(&ids[0], t0 + Duration::from_secs(22))
                .unwrap()
                .is_some()
        );
    }
}
