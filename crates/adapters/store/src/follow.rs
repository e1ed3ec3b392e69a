//! Automatic updates of flakes (issue #16: git is the source of truth).
//!
//! - `flake_follow`: flake name -> JSON [`FollowRecord`] (does it follow its branch, how often
//!   it is re-locked).
//! - `flake_hook_secrets`: flake name -> the push webhook's secret (hex). The database file is
//!   the owner's alone (0600); the secret never reaches a log or a `Debug` output.
//! - `flake_updates`: (flake name, sequence number) -> JSON [`UpdateRecord`], the newest
//!   [`UPDATES_KEPT`] of each flake.
//!
//! These tables are created on first write; readers treat a missing table as empty.

use std::time::{Duration, SystemTime};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{decode, encode, read_table};
use crate::{BuildState, Store, StoreError};

/// Follow settings by flake name -> JSON [`FollowRecord`].
pub const FLAKE_FOLLOW: TableDefinition<&str, &[u8]> = TableDefinition::new("flake_follow");
/// Webhook secrets by flake name.
pub const FLAKE_HOOK_SECRETS: TableDefinition<&str, &str> =
    TableDefinition::new("flake_hook_secrets");
/// Update history by (flake name, sequence number) -> JSON [`UpdateRecord`].
pub const FLAKE_UPDATES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("flake_updates");

/// Update records kept per flake (the oldest are dropped first).
pub const UPDATES_KEPT: usize = 100;

/// How often a following flake is re-locked when nothing else is said.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Whether a flake follows its branch, how often it is re-locked, and the TXT record that
/// announces its new revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowRecord {
    /// Re-locked every `check_every`, and by its push webhook; a new revision is built and
    /// becomes current.
    pub follow: bool,
    /// How often it is re-locked while it follows (with `notify_txt`: how long a revision the
    /// record names, once acted on, is not acted on again).
    pub check_every: Duration,
    /// The DNS name whose TXT record (`rev=<commit>`) announces new revisions; set only while
    /// `follow` is. Such a flake is updated when the record names another revision than the
    /// locked one, instead of on the schedule. Missing in records saved before it existed.
    #[serde(default)]
    pub notify_txt: Option<String>,
}

impl FollowRecord {
    /// Whether the schedule re-locks it every `check_every` (it follows, and no TXT record
    /// announces its revisions).
    pub fn polled(&self) -> bool {
        self.follow && self.notify_txt.is_none()
    }
}

impl Default for FollowRecord {
    fn default() -> Self {
        FollowRecord {
            follow: false,
            check_every: DEFAULT_CHECK_EVERY,
            notify_txt: None,
        }
    }
}

/// What started an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateTrigger {
    /// The flake's `check_every` came round.
    Schedule,
    /// The forge's push webhook.
    Hook,
    /// A user (UI, API, CLI).
    Manual,
    /// The flake's `notify_txt` record named another revision than the locked one.
    Dns,
}

impl UpdateTrigger {
    /// Its name in the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateTrigger::Schedule => "schedule",
            UpdateTrigger::Hook => "hook",
            UpdateTrigger::Manual => "manual",
            UpdateTrigger::Dns => "dns",
        }
    }
}

/// Where an update is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Its builds are queued or running.
    Building,
    /// The lock did not change: nothing was built.
    Unchanged,
    /// Every build succeeded and became current.
    Promoted,
    /// Builds ended, but not every one became current (see `reason` and the builds).
    NotPromoted,
    /// Re-locking or queueing the builds failed: nothing was built.
    Failed,
}

impl UpdateState {
    /// Its name in the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Building => "building",
            UpdateState::Unchanged => "unchanged",
            UpdateState::Promoted => "promoted",
            UpdateState::NotPromoted => "not promoted",
            UpdateState::Failed => "failed",
        }
    }
}

/// One build an update queued, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateBuild {
    /// The build's id.
    pub id: u64,
    /// The host built (its name inside the flake).
    pub host: String,
    /// Its state when last looked at.
    pub state: BuildState,
    /// The generation it made.
    pub generation: Option<u32>,
    /// Whether that generation is what the host boots now.
    pub promoted: bool,
}

/// One update of one flake: its trigger, the revisions, the builds and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// The flake's name.
    pub flake: String,
    /// 1, 2, ... per flake; assigned by [`Store::add_update`].
    pub seq: u64,
    /// What started it.
    pub trigger: UpdateTrigger,
    /// When it started.
    pub started_at: SystemTime,
    /// When it ended (`None` while building).
    pub finished_at: Option<SystemTime>,
    /// The locked revision before (`None` for a flake without one, e.g. a path).
    pub old_revision: Option<String>,
    /// The locked revision after re-locking (`None` when re-locking failed).
    pub new_revision: Option<String>,
    /// The builds it queued.
    pub builds: Vec<UpdateBuild>,
    /// Where it is, or how it ended.
    pub state: UpdateState,
    /// Whether a new generation became current.
    pub promoted: bool,
    /// Why, in words: "revision unchanged", "build 7 (alpha) failed: ...".
    pub reason: Option<String>,
}

impl Store {
    /// A flake's follow settings (the defaults when none were saved).
    pub fn flake_follow(&self, name: &str) -> Result<FollowRecord, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKE_FOLLOW)? else {
            return Ok(FollowRecord::default());
        };
        match table.get(name)? {
            Some(v) => decode("flake_follow", name, v.value()),
            None => Ok(FollowRecord::default()),
        }
    }

    /// Every saved follow setting, by flake name.
    pub fn flake_follows(&self) -> Result<Vec<(String, FollowRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKE_FOLLOW)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((
                k.value().to_owned(),
                decode("flake_follow", k.value(), v.value())?,
            ));
        }
        Ok(out)
    }

    /// Saves a flake's follow settings.
    pub fn put_flake_follow(&self, name: &str, follow: &FollowRecord) -> Result<(), StoreError> {
        let bytes = encode("flake_follow", follow)?;
        let txn = self.db.begin_write()?;
        txn.open_table(FLAKE_FOLLOW)?
            .insert(name, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A flake's webhook secret, if one was made.
    pub fn hook_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKE_HOOK_SECRETS)? else {
            return Ok(None);
        };
        Ok(table.get(name)?.map(|v| v.value().to_owned()))
    }

    /// Saves a flake's webhook secret; with `replace` false an existing one is kept. Returns
    /// the secret in force.
    pub fn put_hook_secret(
        &self,
        name: &str,
        secret: &str,
        replace: bool,
    ) -> Result<String, StoreError> {
        // Most asks find one: answer them without a write (and its fsync).
        if !replace && let Some(kept) = self.hook_secret(name)? {
            return Ok(kept);
        }
        let txn = self.db.begin_write()?;
        let kept = {
            let mut table = txn.open_table(FLAKE_HOOK_SECRETS)?;
            let old = table.get(name)?.map(|v| v.value().to_owned());
            match old {
                Some(old) if !replace => old,
                _ => {
                    table.insert(name, secret)?;
                    secret.to_owned()
                }
            }
        };
        txn.commit()?;
        Ok(kept)
    }

    /// Stores a new update of `draft.flake` under its next sequence number (the draft's `seq`
    /// is ignored) and drops the oldest beyond [`UPDATES_KEPT`]. Returns the record stored.
    pub fn add_update(&self, draft: &UpdateRecord) -> Result<UpdateRecord, StoreError> {
        let name = draft.flake.as_str();
        let txn = self.db.begin_write()?;
        let record = {
            let mut table = txn.open_table(FLAKE_UPDATES)?;
            let mut seqs = Vec::new();
            for entry in table.range((name, 0)..=(name, u64::MAX))? {
                seqs.push(entry?.0.value().1);
            }
            let next = seqs.last().map_or(1, |s| s.saturating_add(1));
            let record = UpdateRecord {
                seq: next,
                ..draft.clone()
            };
            table.insert((name, next), encode("flake_updates", &record)?.as_slice())?;
            let excess = (seqs.len() + 1).saturating_sub(UPDATES_KEPT);
            for seq in seqs.iter().take(excess) {
                table.remove((name, *seq))?;
            }
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Replaces a stored update (same flake and sequence number), e.g. when its builds end.
    pub fn put_update(&self, record: &UpdateRecord) -> Result<(), StoreError> {
        let bytes = encode("flake_updates", record)?;
        let txn = self.db.begin_write()?;
        txn.open_table(FLAKE_UPDATES)?
            .insert((record.flake.as_str(), record.seq), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A flake's update history, oldest first.
    pub fn updates(&self, name: &str) -> Result<Vec<UpdateRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKE_UPDATES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.range((name, 0)..=(name, u64::MAX))? {
            let (k, v) = entry?;
            let (_, seq) = k.value();
            out.push(decode(
                "flake_updates",
                format_args!("{name}/{seq}"),
                v.value(),
            )?);
        }
        Ok(out)
    }

    /// Forgets a removed flake's follow settings, webhook secret and update history.
    pub fn remove_flake_follow(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(FLAKE_FOLLOW)?.remove(name)?;
            txn.open_table(FLAKE_HOOK_SECRETS)?.remove(name)?;
            let mut updates = txn.open_table(FLAKE_UPDATES)?;
            let mut seqs = Vec::new();
            for entry in updates.range((name, 0)..=(name, u64::MAX))? {
                seqs.push(entry?.0.value().1);
            }
            for seq in seqs {
                updates.remove((name, seq))?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn draft(flake: &str) -> UpdateRecord {
        UpdateRecord {
            flake: flake.into(),
            seq: 0,
            trigger: UpdateTrigger::Schedule,
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: None,
            old_revision: Some("a".into()),
            new_revision: Some("a".into()),
            builds: Vec::new(),
            state: UpdateState::Unchanged,
            promoted: false,
            reason: Some("revision unchanged".into()),
        }
    }

    #[test]
    fn follow_settings_default_until_saved() {
        let (_dir, store) = store();
        assert_eq!(store.flake_follow("lab").unwrap(), FollowRecord::default());
        let saved = FollowRecord {
            follow: true,
            check_every: Duration::from_secs(2),
            notify_txt: Some("_flakeboot.example.org".into()),
        };
        store.put_flake_follow("lab", &saved).unwrap();
        assert_eq!(store.flake_follow("lab").unwrap(), saved);
        assert!(!saved.polled());
        assert_eq!(
            store.flake_follows().unwrap(),
            vec![("lab".into(), saved.clone())]
        );
    }

    #[test]
    fn follow_records_saved_before_notify_txt_still_read() {
        let old: FollowRecord =
            serde_json::from_str(r#"{"follow":true,"check_every":{"secs":900,"nanos":0}}"#)
                .unwrap();
        assert_eq!(old.notify_txt, None);
        assert!(old.polled());
    }

    #[test]
    fn a_secret_is_kept_unless_replaced() {
        let (_dir, store) = store();
        assert_eq!(store.hook_secret("lab").unwrap(), None);
        assert_eq!(store.put_hook_secret("lab", "one", false).unwrap(), "one");
        assert_eq!(store.put_hook_secret("lab", "two", false).unwrap(), "one");
        assert_eq!(
            store.put_hook_secret("lab", "three", true).unwrap(),
            "three"
        );
        assert_eq!(store.hook_secret("lab").unwrap().as_deref(), Some("three"));
    }

    #[test]
    fn history_is_numbered_per_flake_and_bounded() {
        let (_dir, store) = store();
        for _ in 0..UPDATES_KEPT + 5 {
            store.add_update(&draft("lab")).unwrap();
        }
        let other = store.add_update(&draft("lab2")).unwrap();
        assert_eq!(other.seq, 1);
        let kept = store.updates("lab").unwrap();
        assert_eq!(kept.len(), UPDATES_KEPT);
        assert_eq!(kept.first().unwrap().seq, 6);
        assert_eq!(kept.last().unwrap().seq, (UPDATES_KEPT + 5) as u64);
        let mut last = kept.last().unwrap().clone();
        last.state = UpdateState::Promoted;
        store.put_update(&last).unwrap();
        assert_eq!(
            store.updates("lab").unwrap().last().unwrap().state,
            UpdateState::Promoted
        );
        store.put_hook_secret("lab", "s", false).unwrap();
        store.remove_flake_follow("lab").unwrap();
        assert!(store.updates("lab").unwrap().is_empty());
        assert_eq!(store.hook_secret("lab").unwrap(), None);
        assert_eq!(store.updates("lab2").unwrap().len(), 1);
    }
}
