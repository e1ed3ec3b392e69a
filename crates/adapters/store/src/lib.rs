//! flakeboot's state on disk: machines seen, DHCP leases and boot events, web UI sessions and
//! the audit log of admin actions, in one redb file
//! (`<state dir>/flakeboot.redb`).
//!
//! One daemon owns the file: a second [`Store::open`] of the same directory fails with
//! [`StoreError::AlreadyOpen`]. Every write is one redb transaction, so a crash (power loss,
//! SIGKILL) leaves either the whole write or none of it. [`Store::put_leases`] commits durably
//! (fsync) before it returns: the DHCP server calls it once per batch of requests before it sends
//! the ACKs (group commit). The file carries a schema version; [`Store::open`] migrates older
//! files (see [`migrations`]) and refuses newer ones.
//!
//! The state is the owner's alone: [`Store::open`] creates the state directory 0700 and the
//! database 0600, and tightens them (with a warning) when it finds them looser, since the file
//! holds the admin's password hash and the API tokens' digests.
//!
//! [`Store`] is cheap to clone and blocking: call it from `spawn_blocking` or a writer thread in
//! async code.

mod audit;
mod builds;
mod error;
mod events;
mod eviction;
mod follow;
mod generations;
mod lease_log;
mod leases;
mod logs;
mod machines;
pub mod migrations;
mod preflight;
pub mod schema;
mod sessions;
mod settings;
mod snapshot;
mod users;
mod vpn;

pub use audit::*;
pub use builds::*;
pub use error::StoreError;
pub use events::{Admission, RecordedEvents};
pub use follow::*;
pub use generations::*;
pub use lease_log::journal::JOURNAL_FILE;
pub use leases::{LeaseRecord, LeaseState};
pub use logs::LogRecord;
pub use machines::MachineRecord;
pub use preflight::*;
pub use sessions::*;
pub use settings::*;
pub use users::*;
pub use vpn::*;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flakeboot_catalogue::MacAddr;
use redb::ReadableDatabase;

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "flakeboot.redb";

/// Permissions of the state directory: the owner's only.
pub const STATE_DIR_MODE: u32 = 0o700;

/// Permissions of the database file: the owner may read and write it, nobody else anything.
pub const DB_FILE_MODE: u32 = 0o600;

/// Takes away every permission of `path` beyond `mode` (group and others). `loose_is_news`:
/// the path existed before this start, so finding it looser is worth a warning. A failure (not
/// the owner, a file system without modes) is logged, not fatal: the appliance still starts.
fn restrict(path: &Path, mode: u32, loose_is_news: bool) {
    use std::os::unix::fs::PermissionsExt;
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot check the permissions");
            return;
        }
    };
    if current & !mode == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) if loose_is_news => tracing::warn!(
            path = %path.display(),
            was = format_args!("{current:04o}"),
            now = format_args!("{mode:04o}"),
            "state was readable by others: permissions tightened"
        ),
        Ok(()) => {}
        Err(error) => tracing::warn!(
            path = %path.display(),
            was = format_args!("{current:04o}"),
            %error,
            "state is readable by others and its permissions cannot be tightened"
        ),
    }
}

/// How many boot events are kept by default (oldest dropped first).
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// How many boot events of one machine (one MAC) are kept by default.
pub const DEFAULT_EVENTS_PER_MACHINE: usize = 200;

/// How many events that belong to no machine record are kept by default.
pub const DEFAULT_MAX_UNATTRIBUTED_EVENTS: usize = 1_000;

/// How many log lines of one machine are kept by default.
pub const DEFAULT_LOG_LINES_PER_MACHINE: usize = 2_000;

/// How many log lines are kept in all by default.
pub const DEFAULT_MAX_LOG_LINES: usize = 100_000;

/// How many machine records are kept by default.
pub const DEFAULT_MAX_MACHINES: usize = 4096;

/// Tuning for [`Store::open_with`]; [`Store::open`] uses the defaults.
///
/// Everything anyone on the LAN can make the store keep is bounded here: boot events (in all,
/// per machine, and those of no machine) and machine records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Keep at most this many boot events; the oldest are dropped first.
    pub max_events: usize,
    /// Keep at most this many boot events of one MAC; its oldest are dropped first.
    pub events_per_machine: usize,
    /// Keep at most this many events that belong to no machine record (no MAC, or a MAC no DHCP
    /// exchange made a machine); the oldest of them are dropped first.
    pub max_unattributed_events: usize,
    /// At most this many machine records. Only a DHCP exchange creates one; at the cap, the
    /// least recently seen machine that nobody configured (no host, label, boot options or
    /// reservation, not in `pinned_machines`) is forgotten to make room, with its events.
    pub max_machines: usize,
    /// Machines the config file names (`[[machines]]`, reservations): never forgotten.
    pub pinned_machines: Vec<MacAddr>,
    /// Keep at most this many log lines of one machine (`[logs] lines_per_machine`).
    pub log_lines_per_machine: usize,
    /// Keep at most this many log lines in all (`[logs] max_lines`).
    pub max_log_lines: usize,
    /// Page cache of the database, in bytes (redb's default of 1 GiB is far too much for an
    /// appliance).
    pub cache_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_events: DEFAULT_MAX_EVENTS,
            events_per_machine: DEFAULT_EVENTS_PER_MACHINE,
            max_unattributed_events: DEFAULT_MAX_UNATTRIBUTED_EVENTS,
            max_machines: DEFAULT_MAX_MACHINES,
            pinned_machines: Vec::new(),
            log_lines_per_machine: DEFAULT_LOG_LINES_PER_MACHINE,
            max_log_lines: DEFAULT_MAX_LOG_LINES,
            cache_size: 16 * 1024 * 1024,
        }
    }
}

/// The bounds a [`Store`] keeps (from [`StoreOptions`]).
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) max_events: usize,
    pub(crate) events_per_machine: usize,
    pub(crate) max_unattributed_events: usize,
    pub(crate) max_machines: usize,
    pub(crate) pinned_machines: HashSet<MacAddr>,
    pub(crate) log_lines_per_machine: usize,
    pub(crate) max_log_lines: usize,
}

impl Limits {
    fn new(options: &StoreOptions) -> Limits {
        Limits {
            max_events: options.max_events,
            events_per_machine: options.events_per_machine,
            max_unattributed_events: options.max_unattributed_events,
            max_machines: options.max_machines,
            pinned_machines: options.pinned_machines.iter().copied().collect(),
            log_lines_per_machine: options.log_lines_per_machine,
            max_log_lines: options.max_log_lines,
        }
    }
}

/// Where lease changes are journaled.
enum Journal {
    /// In [`lease_log::journal::JOURNAL_FILE`] beside the database.
    Beside,
    /// Nowhere: a store in memory.
    None,
}

/// flakeboot's database. Clones share one open file.
#[derive(Clone)]
pub struct Store {
    db: Arc<redb::Database>,
    dir: PathBuf,
    limits: Arc<Limits>,
    /// The machines that make room at the cap, from the last pass over them ([`eviction`]).
    evictions: Arc<eviction::Evictions>,
    /// Lease changes: journaled, then applied ([`lease_log`]). Dropped after `db`: the last
    /// clone's drop applies and checkpoints what is left before the file closes.
    lease_log: Arc<lease_log::LeaseLog>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates `<dir>/flakeboot.redb` (creating `dir`), migrating an older schema.
    ///
    /// A second open of the same directory while one is open (another daemon) fails with
    /// [`StoreError::AlreadyOpen`]; a file from a newer flakeboot fails with
    /// [`StoreError::TooNew`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let dir_existed = dir.is_dir();
        // Parents get the usual modes; the state directory itself is made private while it is
        // still empty.
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        restrict(dir, STATE_DIR_MODE, dir_existed);
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        if existed {
            // Before redb reads it: no window in which a loose file is in use.
            restrict(&path, DB_FILE_MODE, true);
        }
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size)
            .create(&path)
            .map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
                    path: dir.to_owned(),
                },
                source => StoreError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        if !existed {
            // redb created it with the process's umask.
            restrict(&path, DB_FILE_MODE, false);
        }
        Store::ready(db, dir.to_owned(), &options, Journal::Beside)
    }

    /// A store in memory, for tests of code that uses a store: nothing touches the disk and
    /// nothing survives the last clone.
    pub fn in_memory() -> Result<Store, StoreError> {
        let options = StoreOptions::default();
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(":memory:"),
                source,
            })?;
        Store::ready(db, PathBuf::new(), &options, Journal::None)
    }

    /// One flushed commit: whatever was committed without a flush before it (boot events of
    /// [`Store::record_events_unflushed`], leases the journal's applier wrote) is on disk when it
    /// returns.
    pub fn flush(&self) -> Result<(), StoreError> {
        lease_log::flush(&self.db).map(drop)
    }

    /// Brings a just-opened database up to the current schema and wraps it.
    fn ready(
        db: redb::Database,
        dir: PathBuf,
        options: &StoreOptions,
        journal: Journal,
    ) -> Result<Store, StoreError> {
        if let Some(from) = migrations::upgrade(&db)? {
            tracing::debug!(dir = %dir.display(), from, "opened the store");
        } else {
            tracing::info!(dir = %dir.display(), "created a new store");
        }
        let db = Arc::new(db);
        let lease_log = match journal {
            Journal::Beside => lease_log::LeaseLog::open(Arc::clone(&db), &dir)?,
            Journal::None => lease_log::LeaseLog::Direct(Arc::clone(&db)),
        };
        Ok(Store {
            db,
            dir,
            limits: Arc::new(Limits::new(options)),
            evictions: Arc::default(),
            lease_log: Arc::new(lease_log),
        })
    }

    /// The state directory this store lives in (empty for [`Store::in_memory`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema version of the open file (always [`schema::SCHEMA_VERSION`] after `open`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let txn = self.db.begin_read()?;
        migrations::read_version(&txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;
    use std::time::{Duration, UNIX_EPOCH};

    use flakeboot_catalogue::MacAddr;

    fn lease(ip: [u8; 4], mac: u8) -> LeaseRecord {
        LeaseRecord {
            ip: Ipv4Addr::from(ip),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            client_id: Some(vec![1, 0x52, 0x54, 0, 0, 0, mac]),
            hostname: Some(format!("pc{mac}")),
            expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            state: LeaseState::Bound,
        }
    }

    #[test]
    fn open_creates_the_directory_and_the_current_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/lib/flakeboot");
        let store = Store::open(&dir).unwrap();
        assert!(dir.join(DB_FILE).is_file());
        assert_eq!(store.dir(), dir);
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert!(store.machines().unwrap().is_empty());
        assert!(store.leases().unwrap().is_empty());
        assert!(store.recent_events(10).unwrap().is_empty());
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_store_is_the_owners_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
        drop(store);
    }

    #[test]
    fn loose_permissions_are_tightened_at_open() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        drop(Store::open(&dir).unwrap());
        // As an older flakeboot left them: a world-readable file in a world-readable directory.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
        // The data is still there.
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
    }

    #[test]
    fn second_open_fails_while_the_first_is_alive_and_succeeds_after() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Store::open(tmp.path()).unwrap();
        let clone = first.clone();
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyOpen { path } if path == tmp.path()),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "another flakeboot is already using {}: stop it first",
                tmp.path().display()
            )
        );
        drop(first);
        // A clone keeps the file open.
        assert!(matches!(
            Store::open(tmp.path()),
            Err(StoreError::AlreadyOpen { .. })
        ));
        drop(clone);
        Store::open(tmp.path()).unwrap();
    }

    #[test]
    fn leases_survive_close_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = vec![lease([10, 77, 0, 100], 1), lease([10, 77, 0, 101], 2)];
        {
            let store = Store::open(tmp.path()).unwrap();
            store.put_leases(&leases).unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.leases().unwrap(), leases);
    }

    #[test]
    fn an_unreadable_file_is_an_open_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(DB_FILE), b"this is not a redb file at all").unwrap();
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(&err, StoreError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(DB_FILE), "{err}");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_a_create_dir_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        std::fs::write(&dir, b"").unwrap();
        let err = Store::open(&dir).unwrap_err();
        assert!(matches!(&err, StoreError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("state directory"), "{err}");
    }

    #[test]
    fn an_in_memory_store_works_and_clones_share_it() {
        let store = Store::in_memory().unwrap();
        let clone = store.clone();
        store.put_leases(&[lease([10, 0, 0, 1], 1)]).unwrap();
        assert_eq!(clone.leases().unwrap(), vec![lease([10, 0, 0, 1], 1)]);
        assert_eq!(clone.schema_version().unwrap(), schema::SCHEMA_VERSION);
        // Each in-memory store is its own.
        assert!(Store::in_memory().unwrap().leases().unwrap().is_empty());
    }

    #[test]
    fn errors_are_send_and_sync_for_anyhow() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StoreError>();
        check::<Store>();
    }
}
