//! Builds (written by `flakeboot-nix`'s build queue): `builds`: build id -> JSON
//! [`BuildRecord`]. Queued and running builds survive a restart:
//! [`Store::requeue_interrupted_builds`] turns the running ones into queued ones.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::read_table;
use crate::schema::{decode, encode};
use crate::{Store, StoreError};

/// Builds by id (ascending = queue order) -> JSON [`BuildRecord`].
pub const BUILDS: TableDefinition<u64, &[u8]> = TableDefinition::new("builds");

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    /// Waiting for a free build slot.
    Queued,
    /// nix is running.
    Running,
    /// Done: a generation was made.
    Succeeded,
    /// nix failed (see `error`).
    Failed,
    /// The user cancelled it.
    Cancelled,
    /// It ran longer than `[nix] build_timeout`.
    TimedOut,
}

impl BuildState {
    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, BuildState::Queued | BuildState::Running)
    }
}

/// One build of one host at one locked revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Assigned by [`Store::insert_build`]; ascending.
    pub id: u64,
    /// The flake's name.
    pub flake: String,
    /// The configuration's name inside the flake.
    pub host: String,
    /// The flake reference as the user gave it.
    pub flake_url: String,
    /// The locked reference that is built (never the moving one).
    pub locked_url: String,
    /// The locked revision, if any.
    pub revision: Option<String>,
    /// `kernelFile` from discovery.
    pub kernel_file: String,
    /// `boot.kernelParams` from discovery.
    pub kernel_params: Vec<String>,
    /// Its state.
    pub state: BuildState,
    /// When it was asked for.
    pub queued_at: SystemTime,
    /// When nix last started on it.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Why it failed, was cancelled or timed out; or a note that a restart interrupted it.
    pub error: Option<String>,
    /// How often a restart interrupted it while running (it is requeued each time).
    pub interruptions: u32,
    /// The generation it made.
    pub generation: Option<u32>,
    /// Its log file (human lines, appended while it runs).
    pub log: PathBuf,
}

impl BuildRecord {
    /// `<flake>#<host>`: the name generations are kept under.
    pub fn qualified_host(&self) -> String {
        format!("{}#{}", self.flake, self.host)
    }
}

impl Store {
    /// Stores a new build under the next id and returns it: the record's `id` is ignored and
    /// its `log` becomes `<log_dir>/<id>.log`.
    pub fn insert_build(
        &self,
        build: &BuildRecord,
        log_dir: &Path,
    ) -> Result<BuildRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut table = txn.open_table(BUILDS)?;
            let next = table.last()?.map_or(1, |(k, _)| k.value() + 1);
            let record = BuildRecord {
                id: next,
                log: log_dir.join(format!("{next}.log")),
                ..build.clone()
            };
            table.insert(next, encode("builds", &record)?.as_slice())?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Replaces a build's record (same id).
    pub fn put_build(&self, build: &BuildRecord) -> Result<(), StoreError> {
        let bytes = encode("builds", build)?;
        let txn = self.db.begin_write()?;
        txn.open_table(BUILDS)?.insert(build.id, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The build with this id.
    pub fn build(&self, id: u64) -> Result<Option<BuildRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, BUILDS)? else {
            return Ok(None);
        };
        match table.get(id)? {
            Some(v) => Ok(Some(decode("builds", id, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every build, oldest first.
    pub fn builds(&self) -> Result<Vec<BuildRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, BUILDS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode("builds", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// After a restart: every build that was running is marked interrupted and queued again.
    /// Returns the queue (every queued build, oldest first).
    pub fn requeue_interrupted_builds(&self) -> Result<Vec<BuildRecord>, StoreError> {
        let mut queue = Vec::new();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BUILDS)?;
            let mut changed = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                let mut build: BuildRecord = decode("builds", k.value(), v.value())?;
                match build.state {
                    BuildState::Running => {
                        build.state = BuildState::Queued;
                        build.interruptions += 1;
                        build.error =
                            Some("interrupted by a restart of flakeboot; requeued".into());
                        changed.push(build.clone());
                        queue.push(build);
                    }
                    BuildState::Queued => queue.push(build),
                    _ => {}
                }
            }
            for build in changed {
                table.insert(build.id, encode("builds", &build)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    fn build(host: &str) -> BuildRecord {
        BuildRecord {
            id: 0,
            flake: "fleet".into(),
            host: host.into(),
            flake_url: "github:acme/fleet".into(),
            locked_url: "github:acme/fleet/abc".into(),
            revision: Some("abc".into()),
            kernel_file: "bzImage".into(),
            kernel_params: vec!["console=ttyS0".into()],
            state: BuildState::Queued,
            queued_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            started_at: None,
            finished_at: None,
            error: None,
            interruptions: 0,
            generation: None,
            log: "/var/lib/flakeboot/build-logs/1.log".into(),
        }
    }

    #[test]
    fn running_builds_are_requeued_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            let a = store.insert_build(&build("a"), Path::new("/logs")).unwrap();
            let b = store.insert_build(&build("b"), Path::new("/logs")).unwrap();
            let c = store.insert_build(&build("c"), Path::new("/logs")).unwrap();
            assert_eq!((a.id, b.id, c.id), (1, 2, 3));
            assert_eq!(c.log, Path::new("/logs/3.log"));
            store
                .put_build(&BuildRecord {
                    state: BuildState::Running,
                    ..a
                })
                .unwrap();
            store
                .put_build(&BuildRecord {
                    state: BuildState::Failed,
                    ..c
                })
                .unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        let queue = store.requeue_interrupted_builds().unwrap();
        let ids: Vec<u64> = queue.iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let a = store.build(1).unwrap().unwrap();
        assert_eq!(a.state, BuildState::Queued);
        assert_eq!(a.interruptions, 1);
        assert!(a.error.unwrap().contains("interrupted"));
        assert_eq!(store.build(3).unwrap().unwrap().state, BuildState::Failed);
    }
}
