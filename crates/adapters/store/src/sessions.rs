//! Web UI sessions, so that a sign-in survives a daemon restart.
//!
//! - `sessions`: lower-case hex SHA-256 of the cookie's id -> JSON [`SessionRecord`].
//!
//! Only the digest of the id is kept: the file (or a copy of it) cannot be replayed as a
//! cookie. Times are wall-clock ([`SystemTime`]), since a monotonic instant means nothing after
//! a restart. The table is created by its first write; a file without it reads as empty. How
//! long a session lives is the caller's policy ([`SessionRecord::expired`] applies it); how
//! many are kept is bounded by [`Store::put_session`].

use std::fmt;
use std::time::{Duration, SystemTime};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{decode, encode, read_table};
use crate::{Store, StoreError};

/// Sessions by the SHA-256 (hex) of their id -> JSON [`SessionRecord`].
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

const TABLE: &str = "sessions";

/// How many sessions are kept at most by default (sign-ins beyond end the least recently used).
pub const DEFAULT_MAX_SESSIONS: usize = 256;

/// One signed-in browser. `Debug` leaves the CSRF token out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The user.
    pub user: String,
    /// The per-session CSRF token every state-changing form must carry.
    pub csrf: String,
    /// When the user signed in.
    pub created: SystemTime,
    /// When the session was last used (written at most once a minute per session, see the
    /// web UI's sessions: a restart may take up to that much from its idle time).
    pub last_used: SystemTime,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user", &self.user)
            .field("created", &self.created)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// True when the session has ended at `now`: unused for `idle`, or signed in `absolute`
    /// ago. A session that seems to start or be used after `now` (the clock went back, as on a
    /// board without a real-time clock) has ended too: its age cannot be told.
    pub fn expired(&self, now: SystemTime, idle: Duration, absolute: Duration) -> bool {
        let (Ok(unused), Ok(age)) = (
            now.duration_since(self.last_used),
            now.duration_since(self.created),
        ) else {
            return true;
        };
        unused >= idle || age >= absolute
    }
}

impl Store {
    /// The session with this id digest.
    pub fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, SESSIONS)? else {
            return Ok(None);
        };
        match table.get(hash)? {
            Some(v) => Ok(Some(decode(TABLE, hash, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every session with its id digest.
    pub fn sessions(&self) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, SESSIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), decode(TABLE, k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Stores a new session, keeping at most `max` (at least this one): beyond, the least
    /// recently used others end. Returns how many ended to make room.
    pub fn put_session(
        &self,
        hash: &str,
        session: &SessionRecord,
        max: usize,
    ) -> Result<usize, StoreError> {
        let bytes = encode(TABLE, session)?;
        let txn = self.db.begin_write()?;
        let evicted = {
            let mut table = txn.open_table(SESSIONS)?;
            table.insert(hash, bytes.as_slice())?;
            let len = usize::try_from(table.len()?).unwrap_or(usize::MAX);
            let excess = len.saturating_sub(max.max(1));
            if excess > 0 {
                let mut others = Vec::new();
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    if k.value() == hash {
                        continue;
                    }
                    // An unreadable record is the first to go.
                    let used = decode::<SessionRecord>(TABLE, k.value(), v.value())
                        .map_or(SystemTime::UNIX_EPOCH, |s| s.last_used);
                    others.push((used, k.value().to_owned()));
                }
                others.sort();
                for (_, key) in others.iter().take(excess) {
                    table.remove(key.as_str())?;
                }
            }
            excess
        };
        txn.commit()?;
        Ok(evicted)
    }

    /// Records that a session was used at `at`. Never brings back a session that has been
    /// removed meanwhile; returns whether it still exists.
    pub fn touch_session(&self, hash: &str, at: SystemTime) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut table = txn.open_table(SESSIONS)?;
            let record = match table.get(hash)? {
                Some(v) => Some(decode::<SessionRecord>(TABLE, hash, v.value())?),
                None => None,
            };
            match record {
                Some(mut record) => {
                    record.last_used = record.last_used.max(at);
                    table.insert(hash, encode(TABLE, &record)?.as_slice())?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(found)
    }

    /// Ends one session (logout). Returns whether it existed.
    pub fn remove_session(&self, hash: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(SESSIONS)?.remove(hash)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// Ends every session of `user` but the one with digest `keep` (a password change).
    /// Returns how many ended.
    pub fn remove_user_sessions(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.remove_sessions_where(|hash, record| {
            // An unreadable record belongs to nobody we can tell: it goes too.
            record.is_none_or(|r| r.user == user) && Some(hash) != keep
        })
    }

    /// Ends every session that has expired at `now` (see [`SessionRecord::expired`]), and
    /// every unreadable one. Returns how many ended.
    pub fn expire_sessions(
        &self,
        now: SystemTime,
        idle: Duration,
        absolute: Duration,
    ) -> Result<usize, StoreError> {
        self.remove_sessions_where(|_, record| {
            record.is_none_or(|r| r.expired(now, idle, absolute))
        })
    }

    fn remove_sessions_where(
        &self,
        mut doomed: impl FnMut(&str, Option<&SessionRecord>) -> bool,
    ) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut table = txn.open_table(SESSIONS)?;
            let mut keys = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                let record = decode::<SessionRecord>(TABLE, k.value(), v.value()).ok();
                if doomed(k.value(), record.as_ref()) {
                    keys.push(k.value().to_owned());
                }
            }
            for key in &keys {
                table.remove(key.as_str())?;
            }
            keys.len()
        };
        txn.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const ABSOLUTE: Duration = Duration::from_secs(300);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn session(user: &str, created: u64, used: u64) -> SessionRecord {
        SessionRecord {
            user: user.into(),
            csrf: "c".repeat(64),
            created: at(created),
            last_used: at(used),
        }
    }

    #[test]
    fn sessions_survive_close_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            assert!(store.sessions().unwrap().is_empty(), "no table yet");
            assert_eq!(store.session("ab").unwrap(), None);
            store.put_session("ab", &session("admin", 0, 0), 8).unwrap();
            assert!(store.touch_session("ab", at(30)).unwrap());
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.session("ab").unwrap(), Some(session("admin", 0, 30)));
    }

    #[test]
    fn a_removed_session_is_not_brought_back_by_a_late_touch() {
        let store = Store::in_memory().unwrap();
        store.put_session("ab", &session("admin", 0, 0), 8).unwrap();
        assert!(store.remove_session("ab").unwrap());
        assert!(!store.remove_session("ab").unwrap());
        assert!(!store.touch_session("ab", at(5)).unwrap());
        assert_eq!(store.session("ab").unwrap(), None);
        // A touch never moves last use backwards.
        store
            .put_session("cd", &session("admin", 0, 50), 8)
            .unwrap();
        store.touch_session("cd", at(10)).unwrap();
        assert_eq!(store.session("cd").unwrap().unwrap().last_used, at(50));
    }

    #[test]
    fn expiry_ends_idle_old_and_future_sessions() {
        let store = Store::in_memory().unwrap();
        store
            .put_session("fresh", &session("admin", 0, 100), 8)
            .unwrap();
        store
            .put_session("idle", &session("admin", 0, 39), 8)
            .unwrap();
        store
            .put_session("old", &session("admin", 0, 100), 8)
            .unwrap();
        store
            .put_session("future", &session("admin", 200, 200), 8)
            .unwrap();
        // At 100 s: "idle" was unused 61 s; "future" starts later than now.
        assert_eq!(store.expire_sessions(at(100), IDLE, ABSOLUTE).unwrap(), 2);
        let left: Vec<String> = store
            .sessions()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, vec!["fresh".to_owned(), "old".to_owned()]);
        // At 300 s both are too old, used or not.
        assert!(!session("admin", 0, 299).expired(at(299), IDLE, ABSOLUTE));
        assert!(session("admin", 0, 299).expired(at(300), IDLE, ABSOLUTE));
        assert_eq!(store.expire_sessions(at(300), IDLE, ABSOLUTE).unwrap(), 2);
        assert!(store.sessions().unwrap().is_empty());
    }

    #[test]
    fn sessions_are_capped_by_ending_the_least_recently_used() {
        let store = Store::in_memory().unwrap();
        for (i, used) in [(1, 40), (2, 10), (3, 30)] {
            let evicted = store
                .put_session(&format!("s{i}"), &session("admin", 0, used), 3)
                .unwrap();
            assert_eq!(evicted, 0);
        }
        // The newest sign-in stays even if its clock reading is the oldest.
        assert_eq!(
            store.put_session("s4", &session("admin", 0, 0), 3).unwrap(),
            1
        );
        let left: Vec<String> = store
            .sessions()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, vec!["s1", "s3", "s4"]);
        // A cap of 0 still keeps the one just made.
        assert_eq!(
            store
                .put_session("s5", &session("admin", 0, 50), 0)
                .unwrap(),
            3
        );
        assert_eq!(store.sessions().unwrap().len(), 1);
    }

    #[test]
    fn a_password_change_ends_the_users_other_sessions() {
        let store = Store::in_memory().unwrap();
        store.put_session("a", &session("admin", 0, 0), 8).unwrap();
        store.put_session("b", &session("admin", 0, 0), 8).unwrap();
        store.put_session("c", &session("other", 0, 0), 8).unwrap();
        assert_eq!(store.remove_user_sessions("admin", Some("b")).unwrap(), 1);
        let left: Vec<String> = store
            .sessions()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, vec!["b", "c"]);
        assert_eq!(store.remove_user_sessions("admin", None).unwrap(), 1);
    }

    #[test]
    fn debug_leaves_the_csrf_token_out() {
        let shown = format!("{:?}", session("admin", 0, 0));
        assert!(!shown.contains("cccc"), "{shown}");
        assert!(shown.contains("admin"), "{shown}");
    }
}
