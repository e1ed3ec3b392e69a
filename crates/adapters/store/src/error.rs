//! What can go wrong with the store, in words an operator can act on.

use std::path::PathBuf;

/// An error from [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another `Store` in this one) holds the database open.
    #[error("another flakeboot is already using {}: stop it first", path.display())]
    AlreadyOpen {
        /// The state directory.
        path: PathBuf,
    },

    /// The state directory could not be created.
    #[error("cannot create the state directory {}: {source}", path.display())]
    CreateDir {
        /// The state directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The database file exists but could not be opened (unreadable, not a redb file, ...).
    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why, as redb reports it.
        source: redb::DatabaseError,
    },

    /// The file was written by a newer flakeboot with a schema this build does not know.
    #[error(
        "the database was created by a newer flakeboot (schema {found}); this build knows up to {known}: \
         upgrade flakeboot or move the state directory away"
    )]
    TooNew {
        /// The schema version in the file.
        found: u32,
        /// The newest schema version this build knows.
        known: u32,
    },

    /// A record could not be decoded.
    #[error("corrupt record in table `{table}` at key {key}: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key, in human form (a MAC, an IP address, a sequence number).
        key: String,
        /// The decoding error.
        source: serde_json::Error,
    },

    /// A record could not be encoded (cannot happen with the record types of this crate).
    #[error("cannot encode a record for table `{table}`: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The encoding error.
        source: serde_json::Error,
    },

    /// The lease journal could not be read or written.
    #[error("lease journal {}: {source}", path.display())]
    LeaseJournal {
        /// The journal file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// Lease changes are safe in the journal but the database refused them; they are applied
    /// again at the next start.
    #[error(
        "leases could not be written to the database ({0}); restart flakeboot to apply them from the journal"
    )]
    LeasesNotApplied(String),

    /// The database file could not be copied for a backup.
    #[error("cannot copy the database {}: {source}", path.display())]
    Snapshot {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A migration step failed.
    #[error("cannot migrate the database from schema {from} to {}: {reason}", from + 1)]
    Migration {
        /// The schema version the step starts from.
        from: u32,
        /// Why.
        reason: String,
    },

    /// The database engine failed (I/O error, full disk, ...).
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        StoreError::Db(e.into())
    }
}
