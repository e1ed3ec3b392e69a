//! A consistent copy of the open database, for backups.
//!
//! The file on disk holds the last flushed commit. Every commit of this store is flushed but the
//! lease journal's (`crate::lease_log`), so a snapshot first checkpoints the journal (its
//! changes applied, then one flushed commit). While a write transaction is open no other
//! commit can happen, so copying the file then copies exactly that commit. The copy is a
//! file redb opens as after a crash (it checks and repairs its allocator state), which
//! [`crate::Store::open`] does on restore.

use std::io::Write;

use crate::{DB_FILE, Store, StoreError};

impl Store {
    /// Writes a consistent copy of the database to `out`: its length. Writers wait while it is
    /// copied; readers do not.
    pub fn snapshot(&self, out: &mut impl Write) -> Result<u64, StoreError> {
        let path = self.dir.join(DB_FILE);
        let io = |source| StoreError::Snapshot {
            path: path.clone(),
            source,
        };
        self.lease_log.checkpoint()?;
        let txn = self.db.begin_write()?;
        let copied = std::fs::File::open(&path)
            .and_then(|mut f| std::io::copy(&mut f, out))
            .map_err(io);
        txn.abort()?;
        copied
    }
}

#[cfg(test)]
mod tests {
    use flakeboot_catalogue::MacAddr;

    use crate::Store;

    #[test]
    fn a_snapshot_opens_with_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a")).unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        store.set_machine_label(mac, Some("kept".into())).unwrap();
        // A reader open during the copy does not matter.
        let _reading = store.machines().unwrap();
        let copy = dir.path().join("b");
        std::fs::create_dir_all(&copy).unwrap();
        let mut file = std::fs::File::create(copy.join(crate::DB_FILE)).unwrap();
        let len = store.snapshot(&mut file).unwrap();
        assert!(len > 0);
        drop(file);
        store.set_machine_label(mac, Some("after".into())).unwrap();
        let restored = Store::open(&copy).unwrap();
        let m = restored.machine(mac).unwrap().unwrap();
        assert_eq!(m.label.as_deref(), Some("kept"));
    }

    #[test]
    fn an_in_memory_store_has_no_file_to_copy() {
        let store = Store::in_memory().unwrap();
        assert!(store.snapshot(&mut Vec::new()).is_err());
    }
}
