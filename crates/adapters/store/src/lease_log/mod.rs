//! Lease changes made durable in a journal of their own, and applied to the database after.
//!
//! A DHCP ACK waits until its lease is on disk. A commit of the database is several pages and a
//! flush, behind whatever other commit (a batch of boot events, a machine record) holds redb's
//! one writer. So a lease change is first appended to a small preallocated file of its own
//! ([`journal`], one `fdatasync` of a page or two), and the caller goes on (the DHCP server
//! sends its ACKs); an applier thread then writes the changes into the `leases` table, in
//! order, with commits that do not flush, and flushes the database at most every
//! [`FLUSH_EVERY`] (and when it has been idle that long). What the database has applied is
//! recorded in the same commits (`lease_journal.applied`), so after a crash the journal's later
//! records are applied again on open. The journal has two halves: when one is full the other,
//! whose records the database has flushed long since, is emptied and written next. It is
//! emptied whole (a "checkpoint") when the store is closed and before a backup's copy.
//!
//! Readers of leases wait until what was appended before them is applied ([`LeaseLog::settle`]),
//! so the table always reads as the DHCP server last decided.

pub(crate) mod journal;
mod ops;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use self::journal::{Journal, Record};
pub(crate) use self::ops::{Op, Ops};
use crate::schema::{LEASE_JOURNAL, LEASES};
use crate::{StoreError, restrict};

/// The applier flushes the database at least this often while it applies, and this long after
/// its last change when idle.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Under load the applier commits at most this often: each commit that does not flush leaves
/// its pages for the next flush to write (redb reuses no page before a flushed commit), so
/// fewer, larger commits make each flush a small write that the journal's `fdatasync` does not
/// queue behind for long. A reader waiting for the applier cuts the wait short.
const GATHER: Duration = Duration::from_millis(20);

/// Keys of [`LEASE_JOURNAL`].
const ID: &str = "id";
const APPLIED: &str = "applied";

/// How lease changes reach the `leases` table.
pub(crate) enum LeaseLog {
    /// Straight into the database, flushed (a store in memory: nothing to journal).
    Direct(Arc<Database>),
    /// Through the journal and the applier thread.
    Journaled(Journaled),
}

pub(crate) struct Journaled {
    db: Arc<Database>,
    path: PathBuf,
    /// The journal and the applier's queue: appended and queued under one lock, so the applier
    /// gets the records in their order.
    writer: Mutex<Writer>,
    progress: Arc<Progress>,
    applier: Mutex<Option<JoinHandle<()>>>,
}

struct Writer {
    journal: Journal,
    queue: Option<mpsc::Sender<(u64, Ops)>>,
}

/// How far the applier got.
#[derive(Default)]
struct Progress {
    state: Mutex<Applied>,
    changed: Condvar,
}

#[derive(Default)]
struct Applied {
    seq: u64,
    /// The last record flushed in the database (at most `seq`).
    flushed: u64,
    /// The database refused a change: nothing more is applied, and the journal is kept (it is
    /// applied again at the next open).
    failed: Option<String>,
    /// Readers waiting in [`Progress::wait`]: the applier does not gather while there are any.
    waiting: usize,
}

impl Progress {
    /// Waits until `until`, or until a reader waits for the applier.
    fn gather_until(&self, until: Instant) {
        let mut state = lock(&self.state);
        loop {
            let now = Instant::now();
            if state.waiting > 0 || now >= until {
                return;
            }
            state = match self.changed.wait_timeout(state, until - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits until the records up to `seq` are applied, or the applier has failed.
    fn wait(&self, seq: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.seq < seq && state.failed.is_none() {
            state.waiting += 1;
            self.changed.notify_all();
            while state.seq < seq && state.failed.is_none() {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.waiting -= 1;
        }
        match &state.failed {
            Some(reason) => Err(StoreError::LeasesNotApplied(reason.clone())),
            None => Ok(()),
        }
    }
}

/// Held by the applier thread: should it panic, readers waiting for it get an error instead of
/// waiting for ever (the journal keeps what it did not apply, for the next open).
struct PanicGuard<'a>(&'a Progress);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = lock(&self.0.state);
            state
                .failed
                .get_or_insert_with(|| "the lease applier stopped (a panic)".to_owned());
            self.0.changed.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn journal_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::LeaseJournal {
        path: path.to_owned(),
        source,
    }
}

impl LeaseLog {
    /// Opens (or makes) the journal beside the database in `dir`, applies what it holds that
    /// the database has not, and starts the applier.
    pub(crate) fn open(db: Arc<Database>, dir: &Path) -> Result<LeaseLog, StoreError> {
        let path = dir.join(journal::JOURNAL_FILE);
        let (id, applied) = read_marks(&db)?;
        let found = Journal::open(&path).map_err(|e| journal_error(&path, e))?;
        let journal = match found {
            Some((mut journal, records)) if Some(journal.id) == id => {
                restrict(&path, crate::DB_FILE_MODE, true);
                let last = replay(&db, &path, applied, records)?;
                journal.next_seq = journal.next_seq.max(last + 1);
                journal.reset().map_err(|e| journal_error(&path, e))?;
                journal
            }
            found => {
                if let Some((_, records)) = found
                    && !records.is_empty()
                {
                    tracing::warn!(
                        path = %path.display(),
                        records = records.len(),
                        "the lease journal belongs to another database: not applied"
                    );
                }
                let id = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                let journal =
                    Journal::create(&path, id, applied + 1).map_err(|e| journal_error(&path, e))?;
                name_journal(&db, id, applied)?;
                journal
            }
        };
        let progress = Arc::new(Progress::default());
        {
            let mut state = lock(&progress.state);
            state.seq = journal.next_seq - 1;
            state.flushed = state.seq;
        }
        let (tx, rx) = mpsc::channel();
        let applier = {
            let (db, progress) = (Arc::clone(&db), Arc::clone(&progress));
            std::thread::Builder::new()
                .name("lease-applier".into())
                .spawn(move || {
                    let _guard = PanicGuard(&progress);
                    apply_loop(&db, &rx, &progress);
                })
                .map_err(|e| journal_error(&path, e))?
        };
        Ok(LeaseLog::Journaled(Journaled {
            db,
            path,
            writer: Mutex::new(Writer {
                journal,
                queue: Some(tx),
            }),
            progress,
            applier: Mutex::new(Some(applier)),
        }))
    }

    /// Makes `ops` durable: when this returns they survive a crash. Its sequence number, for
    /// [`LeaseLog::settle`]. With the journal, the `leases` table shows them a moment later.
    pub(crate) fn log(&self, ops: Ops) -> Result<u64, StoreError> {
        let j = match self {
            LeaseLog::Direct(db) => {
                apply(db, &[(0, ops)], Durability::Immediate, false)?;
                return Ok(0);
            }
            LeaseLog::Journaled(j) => j,
        };
        let payload = ops.encode();
        let mut w = lock(&j.writer);
        if payload.len() > journal::MAX_PAYLOAD {
            // More than half the journal holds (thousands of leases at once): straight in.
            j.checkpoint(&mut w)?;
            apply(&j.db, &[(0, ops)], Durability::Immediate, false)?;
            return Ok(w.journal.next_seq - 1);
        }
        if !w.journal.fits(payload.len()) {
            if let Some(last) = w.journal.other_last() {
                // Only if the database is a whole half behind.
                j.flushed_up_to(last)?;
            }
            w.journal.switch().map_err(|e| journal_error(&j.path, e))?;
        }
        let seq = w
            .journal
            .append(&payload)
            .map_err(|e| journal_error(&j.path, e))?;
        if let Some(queue) = &w.queue {
            // The applier ends only when this sender is dropped.
            let _ = queue.send((seq, ops));
        }
        Ok(seq)
    }

    /// Waits until every change logged up to `seq` is in the `leases` table.
    pub(crate) fn settle(&self, seq: u64) -> Result<(), StoreError> {
        match self {
            LeaseLog::Direct(_) => Ok(()),
            LeaseLog::Journaled(j) => j.wait_applied(seq),
        }
    }

    /// Waits until every change logged so far is in the `leases` table.
    pub(crate) fn settle_all(&self) -> Result<(), StoreError> {
        match self {
            LeaseLog::Direct(_) => Ok(()),
            LeaseLog::Journaled(j) => {
                let last = lock(&j.writer).journal.next_seq - 1;
                j.wait_applied(last)
            }
        }
    }

    /// Applies everything, flushes the database and empties the journal.
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        match self {
            LeaseLog::Direct(_) => Ok(()),
            LeaseLog::Journaled(j) => {
                let mut w = lock(&j.writer);
                j.checkpoint(&mut w)
            }
        }
    }
}

impl Journaled {
    fn wait_applied(&self, seq: u64) -> Result<(), StoreError> {
        self.progress.wait(seq)
    }

    /// Waits until the records up to `seq` are applied, and flushes the database unless the
    /// applier already has.
    fn flushed_up_to(&self, seq: u64) -> Result<(), StoreError> {
        self.wait_applied(seq)?;
        if lock(&self.progress.state).flushed >= seq {
            return Ok(());
        }
        let flushed = flush(&self.db)?;
        let mut state = lock(&self.progress.state);
        state.flushed = state.flushed.max(flushed);
        Ok(())
    }

    fn checkpoint(&self, w: &mut Writer) -> Result<(), StoreError> {
        self.flushed_up_to(w.journal.next_seq - 1)?;
        w.journal.reset().map_err(|e| journal_error(&self.path, e))
    }
}

impl Drop for Journaled {
    /// Applies what is queued, then empties the journal (a clean close needs no replay).
    fn drop(&mut self) {
        let mut w = lock(&self.writer);
        w.queue = None;
        if let Some(applier) = lock(&self.applier).take() {
            let _ = applier.join();
        }
        if let Err(error) = self.checkpoint(&mut w) {
            tracing::warn!(%error, "lease journal kept for the next start");
        }
    }
}

/// The applier: takes what was logged, in order, and applies it in commits at most every
/// [`GATHER`] that flush only every [`FLUSH_EVERY`], and once more when it has been idle that
/// long.
fn apply_loop(db: &Database, rx: &mpsc::Receiver<(u64, Ops)>, progress: &Progress) {
    let mut last_flush = Instant::now();
    let mut last_commit: Option<Instant> = None;
    loop {
        let first = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let behind = {
                    let state = lock(&progress.state);
                    state.flushed < state.seq && state.failed.is_none()
                };
                if behind {
                    let flushed = flush(db);
                    if !record(progress, flushed.map(|seq| (seq, seq, true))) {
                        return;
                    }
                    last_flush = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if let Some(last) = last_commit {
            progress.gather_until(last + GATHER);
        }
        let mut batch = vec![first];
        while batch.len() < 1024
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        let last = batch.last().map_or(0, |(seq, _)| *seq);
        let flush_now = last_flush.elapsed() >= FLUSH_EVERY;
        let durability = if flush_now {
            Durability::Immediate
        } else {
            Durability::None
        };
        let result = apply(db, &batch, durability, true);
        last_commit = Some(Instant::now());
        if flush_now {
            last_flush = Instant::now();
        }
        if !record(progress, result.map(|()| (last, last, flush_now))) {
            return;
        }
    }
}

/// Records the applier's progress (applied, flushed up to, whether flushed) or its failure;
/// whether it may go on.
fn record(progress: &Progress, result: Result<(u64, u64, bool), StoreError>) -> bool {
    let mut state = lock(&progress.state);
    let ok = match result {
        Ok((applied, flushed, did_flush)) => {
            state.seq = state.seq.max(applied);
            if did_flush {
                state.flushed = state.flushed.max(flushed);
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "leases not applied to the database: the journal keeps them");
            state.failed = Some(error.to_string());
            false
        }
    };
    progress.changed.notify_all();
    ok
}

/// One flushed commit of the database (what the journal's applier wrote since the last one
/// becomes durable): the last record applied, as the database has it.
pub(crate) fn flush(db: &Database) -> Result<u64, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)
        .map_err(redb::Error::from)?;
    let applied = {
        let mut table = txn.open_table(LEASE_JOURNAL)?;
        let applied = table.get(APPLIED)?.map_or(0, |v| v.value());
        // A commit with a change, so redb writes it: the mark as it is.
        table.insert(APPLIED, applied)?;
        applied
    };
    txn.commit()?;
    Ok(applied)
}

/// Writes `batch` into the `leases` table in one commit (and, with `mark`, the last sequence
/// number as applied).
fn apply(
    db: &Database,
    batch: &[(u64, Ops)],
    durability: Durability,
    mark: bool,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability).map_err(redb::Error::from)?;
    {
        let mut table = txn.open_table(LEASES)?;
        for (_, ops) in batch {
            ops.apply(&mut table)?;
        }
        if mark && let Some((seq, _)) = batch.last() {
            txn.open_table(LEASE_JOURNAL)?.insert(APPLIED, *seq)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Applies the journal's records after `applied` (the database's mark) in one flushed commit:
/// the last sequence number applied.
fn replay(
    db: &Database,
    path: &Path,
    applied: u64,
    records: Vec<Record>,
) -> Result<u64, StoreError> {
    let later: Vec<Record> = records.into_iter().filter(|r| r.seq > applied).collect();
    let Some(first) = later.first() else {
        return Ok(applied);
    };
    if first.seq != applied + 1 {
        tracing::warn!(
            path = %path.display(),
            applied,
            first = first.seq,
            "the lease journal does not continue the database: not applied"
        );
        return Ok(applied);
    }
    let mut batch = Vec::with_capacity(later.len());
    for r in later {
        let ops = Ops::decode(&r.payload).map_err(|reason| StoreError::LeaseJournal {
            path: path.to_owned(),
            source: std::io::Error::other(format!("record {}: {reason}", r.seq)),
        })?;
        batch.push((r.seq, ops));
    }
    let last = batch.last().map_or(applied, |(seq, _)| *seq);
    apply(db, &batch, Durability::Immediate, true)?;
    tracing::info!(
        path = %path.display(),
        records = batch.len(),
        "lease changes applied from the journal after an unclean stop"
    );
    Ok(last)
}

/// The journal's id and the last record applied, as the database has them.
fn read_marks(db: &Database) -> Result<(Option<u64>, u64), StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(LEASE_JOURNAL) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((None, 0)),
        Err(e) => return Err(e.into()),
    };
    let id = table.get(ID)?.map(|v| v.value());
    let applied = table.get(APPLIED)?.map_or(0, |v| v.value());
    Ok((id, applied))
}

/// Names the journal `id` as this database's, its records continuing after `applied`: one
/// flushed commit.
fn name_journal(db: &Database, id: u64, applied: u64) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)
        .map_err(redb::Error::from)?;
    {
        let mut table = txn.open_table(LEASE_JOURNAL)?;
        table.insert(ID, id)?;
        table.insert(APPLIED, applied)?;
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
