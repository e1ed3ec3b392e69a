//! DHCP leases (router mode), by IPv4 address. A lease is durable before `put_leases` (or the
//! DHCP server's `commit`) returns: in the lease journal first, then in the table
//! (`crate::lease_log`).
//!
//! [`Store`] is the DHCP server's [`flakeboot_dhcp::LeaseStore`]: the server's
//! [`flakeboot_dhcp::Lease`] is converted to and from this crate's [`LeaseRecord`] (the JSON
//! stored on disk) at this boundary.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use flakeboot_catalogue::MacAddr;
use flakeboot_dhcp::{Lease, LeaseStore, LeaseStoreError};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::lease_log::{Op, Ops};
use crate::schema::{LEASES, decode, encode, ip_key};
use crate::{Store, StoreError};

const TABLE: &str = "leases";

/// One address handed out (or quarantined) by the DHCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The leased address (the key).
    pub ip: Ipv4Addr,
    /// The client's hardware address.
    pub mac: MacAddr,
    /// The client identifier (option 61), when the client sent one.
    pub client_id: Option<Vec<u8>>,
    /// The host name the client sent (option 12).
    pub hostname: Option<String>,
    /// When the lease (or the quarantine) ends.
    pub expires: SystemTime,
    /// Whether the address is leased or quarantined.
    pub state: LeaseState,
}

/// The state of a leased address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Leased to `mac` until `expires`.
    Bound,
    /// A client declined it (DHCPDECLINE: someone else uses it): quarantined until `expires`.
    Declined,
}

impl Store {
    /// Inserts or replaces leases (by address): when this returns, the whole batch is on disk
    /// and in the table.
    pub fn put_leases(&self, leases: &[LeaseRecord]) -> Result<(), StoreError> {
        let seq = self.log_leases(leases, &[])?;
        self.lease_log.settle(seq)
    }

    /// Removes the leases of these addresses (absent ones are ignored): on disk and out of the
    /// table when this returns.
    pub fn delete_leases(&self, ips: &[Ipv4Addr]) -> Result<(), StoreError> {
        let seq = self.log_leases(&[], ips)?;
        self.lease_log.settle(seq)
    }

    /// Writes and deletes leases as one change, durable when this returns (in the lease
    /// journal); the table shows it a moment later (readers wait for it). Its sequence number.
    pub(crate) fn log_leases(
        &self,
        put: &[LeaseRecord],
        delete: &[Ipv4Addr],
    ) -> Result<u64, StoreError> {
        let mut ops = Vec::with_capacity(put.len() + delete.len());
        for lease in put {
            ops.push(Op::Put(ip_key(lease.ip), encode(TABLE, lease)?));
        }
        ops.extend(delete.iter().map(|ip| Op::Delete(ip_key(*ip))));
        let ops = Ops(ops);
        if ops.is_empty() {
            return Ok(0);
        }
        self.lease_log.log(ops)
    }

    /// Removes the bound leases of `mac` in one durable transaction; returns their addresses.
    /// (Declined addresses stay quarantined.) What `flakeboot lease release` does when no
    /// router-mode DHCP server holds the pool in memory.
    pub fn release_leases_of(&self, mac: MacAddr) -> Result<Vec<Ipv4Addr>, StoreError> {
        let released: Vec<Ipv4Addr> = self
            .leases()?
            .into_iter()
            .filter(|l| l.mac == mac && l.state == LeaseState::Bound)
            .map(|l| l.ip)
            .collect();
        self.delete_leases(&released)?;
        Ok(released)
    }

    /// The lease of one address, as the DHCP server last decided (waits for the lease
    /// journal's applier to catch up: normally well under a millisecond, longer behind a flush).
    pub fn lease(&self, ip: Ipv4Addr) -> Result<Option<LeaseRecord>, StoreError> {
        self.lease_log.settle_all()?;
        self.lease_applied(ip)
    }

    /// The lease of one address as the table has it now, without waiting: a change the DHCP
    /// server made in the last few milliseconds may not be in it yet. For lookups on the boot
    /// services' threads, which must not wait for a disk: a machine that sends a request or a
    /// report from an address got its lease well before.
    pub fn lease_applied(&self, ip: Ipv4Addr) -> Result<Option<LeaseRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LEASES)?;
        match table.get(ip_key(ip))? {
            Some(value) => Ok(Some(decode(TABLE, ip, value.value())?)),
            None => Ok(None),
        }
    }

    /// Every lease, ordered by address.
    pub fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        self.lease_log.settle_all()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LEASES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let ip = Ipv4Addr::from(key.value());
            out.push(decode(TABLE, ip, value.value())?);
        }
        Ok(out)
    }
}

impl From<flakeboot_dhcp::LeaseState> for LeaseState {
    fn from(state: flakeboot_dhcp::LeaseState) -> Self {
        match state {
            flakeboot_dhcp::LeaseState::Bound => LeaseState::Bound,
            flakeboot_dhcp::LeaseState::Declined => LeaseState::Declined,
        }
    }
}

impl From<LeaseState> for flakeboot_dhcp::LeaseState {
    fn from(state: LeaseState) -> Self {
        match state {
            LeaseState::Bound => flakeboot_dhcp::LeaseState::Bound,
            LeaseState::Declined => flakeboot_dhcp::LeaseState::Declined,
        }
    }
}

impl From<Lease> for LeaseRecord {
    fn from(lease: Lease) -> Self {
        let Lease {
            ip,
            mac,
            client_id,
            hostname,
            expires,
            state,
        } = lease;
        LeaseRecord {
            ip,
            mac,
            client_id,
            hostname,
            expires,
            state: state.into(),
        }
    }
}

impl From<LeaseRecord> for Lease {
    fn from(record: LeaseRecord) -> Self {
        let LeaseRecord {
            ip,
            mac,
            client_id,
            hostname,
            expires,
            state,
        } = record;
        Lease {
            ip,
            mac,
            client_id,
            hostname,
            expires,
            state: state.into(),
        }
    }
}

/// The DHCP server's leases: [`Store::leases`] to load, and a batch's writes and deletes
/// committed as one record of the lease journal (one `fdatasync` of a page or two; the table
/// follows). Blocking, like every `Store` method.
impl LeaseStore for Store {
    fn load(&self) -> Result<Vec<Lease>, LeaseStoreError> {
        let records = self.leases().map_err(|e| LeaseStoreError::Load {
            source: Box::new(e),
        })?;
        Ok(records.into_iter().map(Lease::from).collect())
    }

    fn commit(&self, write: &[Lease], delete: &[Ipv4Addr]) -> Result<(), LeaseStoreError> {
        let records: Vec<LeaseRecord> = write.iter().cloned().map(LeaseRecord::from).collect();
        self.log_leases(&records, delete)
            .map(drop)
            .map_err(|e| LeaseStoreError::Commit {
                written: write.len(),
                deleted: delete.len(),
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    fn lease(ip: [u8; 4], mac: u8, state: LeaseState) -> LeaseRecord {
        LeaseRecord {
            ip: Ipv4Addr::from(ip),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            client_id: None,
            hostname: None,
            expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + u64::from(mac)),
            state,
        }
    }

    #[test]
    fn put_upserts_by_address_and_lists_in_address_order() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let high = lease([10, 77, 0, 200], 1, LeaseState::Bound);
        let low = lease([10, 77, 0, 9], 2, LeaseState::Bound);
        store.put_leases(&[high.clone(), low.clone()]).unwrap();
        assert_eq!(store.leases().unwrap(), vec![low.clone(), high.clone()]);

        // Same address, new owner and state: replaced, not duplicated.
        let declined = lease([10, 77, 0, 200], 3, LeaseState::Declined);
        store.put_leases(std::slice::from_ref(&declined)).unwrap();
        assert_eq!(store.leases().unwrap(), vec![low.clone(), declined.clone()]);
        assert_eq!(store.lease(declined.ip).unwrap(), Some(declined));
        assert_eq!(store.lease(Ipv4Addr::new(10, 77, 0, 1)).unwrap(), None);
    }

    #[test]
    fn delete_removes_only_the_given_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let a = lease([10, 0, 0, 1], 1, LeaseState::Bound);
        let b = lease([10, 0, 0, 2], 2, LeaseState::Bound);
        let c = lease([10, 0, 0, 3], 3, LeaseState::Declined);
        store.put_leases(&[a.clone(), b, c.clone()]).unwrap();
        store
            .delete_leases(&[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 99)])
            .unwrap();
        assert_eq!(store.leases().unwrap(), vec![a, c]);
        store.delete_leases(&[]).unwrap();
        store.put_leases(&[]).unwrap();
        assert_eq!(store.leases().unwrap().len(), 2);
    }

    #[test]
    fn releasing_a_mac_removes_only_its_bound_leases() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let a = lease([10, 0, 0, 1], 1, LeaseState::Bound);
        let b = lease([10, 0, 0, 2], 2, LeaseState::Bound);
        let quarantined = lease([10, 0, 0, 3], 1, LeaseState::Declined);
        store
            .put_leases(&[a.clone(), b.clone(), quarantined.clone()])
            .unwrap();
        assert_eq!(store.release_leases_of(a.mac).unwrap(), vec![a.ip]);
        assert_eq!(store.leases().unwrap(), vec![b, quarantined]);
        assert!(store.release_leases_of(a.mac).unwrap().is_empty());
    }

    #[test]
    fn a_lease_is_stored_as_readable_json() {
        let mut record = lease([192, 168, 1, 5], 0xab, LeaseState::Declined);
        record.client_id = Some(vec![1, 2]);
        record.hostname = Some("pc".into());
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["ip"], "192.168.1.5");
        assert_eq!(json["mac"], "52:54:00:00:00:ab");
        assert_eq!(json["state"], "declined");
        assert_eq!(json["hostname"], "pc");
        assert_eq!(serde_json::from_value::<LeaseRecord>(json).unwrap(), record);
    }

    #[test]
    fn a_corrupt_lease_is_reported_with_its_address() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(LEASES)
            .unwrap()
            .insert([10, 0, 0, 7], b"{not json".as_slice())
            .unwrap();
        txn.commit().unwrap();
        let err = store.leases().unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { table: "leases", key, .. } if key == "10.0.0.7"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("`leases` at key 10.0.0.7"),
            "{err}"
        );
    }
}
