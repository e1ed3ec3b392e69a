//! What the lease machine keeps ([`Lease`]) and the one seam to durable storage
//! ([`LeaseStore`]). This crate knows no database: the daemon hands the server a `LeaseStore`
//! (flakeboot-store implements it for its redb `Store`).

use std::error::Error;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use flakeboot_catalogue::MacAddr;

/// One address handed out (or quarantined) by the router-mode pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// The client's hardware address.
    pub mac: MacAddr,
    /// The client identifier (option 61), when the client sent one.
    pub client_id: Option<Vec<u8>>,
    /// The host name the client sent (option 12), or its reservation's name.
    pub hostname: Option<String>,
    /// When the lease (or the quarantine) ends.
    pub expires: SystemTime,
    /// Whether the address is leased or quarantined.
    pub state: LeaseState,
}

/// The state of a leased address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Leased to `mac` until `expires`.
    Bound,
    /// A client declined it (DHCPDECLINE: someone else uses it): quarantined until `expires`.
    Declined,
}

/// Where router mode keeps its leases across restarts.
///
/// Both methods block (disk I/O, fsync): the server calls them once at start-up and from
/// `spawn_blocking` for each batch.
pub trait LeaseStore: Send + Sync + 'static {
    /// Every stored lease, bound or declined, expired ones included.
    fn load(&self) -> Result<Vec<Lease>, LeaseStoreError>;

    /// Make one batch of lease changes durable: each of `write` replaces any lease of its
    /// address, and the leases of `delete` are removed (absent ones ignored; the router never
    /// names an address in both). When this returns `Ok`, the whole batch is on disk, so the
    /// server may send the ACKs that depend on it: an ACK never leaves before its lease.
    fn commit(&self, write: &[Lease], delete: &[Ipv4Addr]) -> Result<(), LeaseStoreError>;
}

/// The cause of a [`LeaseStoreError`], as the implementation reports it.
pub type StorageFailure = Box<dyn Error + Send + Sync + 'static>;

/// A [`LeaseStore`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseStoreError {
    /// The stored leases could not be read.
    #[error("cannot load the stored leases: {source}")]
    Load {
        /// Why, as the storage reports it.
        #[source]
        source: StorageFailure,
    },
    /// A batch did not become durable (none of its ACKs may be sent).
    #[error("cannot store {written} lease(s) and delete {deleted}: {source}")]
    Commit {
        /// Leases the batch writes.
        written: usize,
        /// Addresses the batch deletes.
        deleted: usize,
        /// Why, as the storage reports it.
        #[source]
        source: StorageFailure,
    },
}
