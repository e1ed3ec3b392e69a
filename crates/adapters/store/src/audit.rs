//! The audit log: who did what to the appliance, from where and when (sign-ins, settings,
//! flakes, machines, tokens, the VPN, ...). Written by the web UI and API; never holds a
//! password, token or key, only names of things.
//!
//! - `audit`: sequence number (oldest first) -> JSON [`AuditRecord`]; a bounded ring of the
//!   newest [`MAX_AUDIT`].
//! - `audit_anonymous`: the sequence numbers of entries nobody signed in made (failed sign-ins
//!   and setup codes) -> (). They share the newest [`MAX_ANONYMOUS_AUDIT`], so strangers
//!   guessing passwords cannot push the admin's actions out of the ring.
//!
//! Both tables are created by their first write; a file without them reads as empty.

use std::net::IpAddr;
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{decode, encode, read_table};
use crate::{Store, StoreError};

/// Audit entries by sequence number (oldest first) -> JSON [`AuditRecord`].
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// The entries of [`AUDIT`] made by nobody signed in, by sequence number -> ().
pub const AUDIT_ANONYMOUS: TableDefinition<u64, ()> = TableDefinition::new("audit_anonymous");

const TABLE: &str = "audit";

/// How many audit entries are kept (the oldest are dropped first).
pub const MAX_AUDIT: usize = 10_000;

/// How many of them may be made by nobody signed in (failed sign-ins).
pub const MAX_ANONYMOUS_AUDIT: usize = 1_000;

/// One action of an administrator (or an attempt at one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened (wall clock).
    pub at: SystemTime,
    /// Who: a user name, `token <name>` for an API token, `local` for the owner on the API
    /// socket; `None` when nobody was signed in (a failed sign-in).
    pub actor: Option<String>,
    /// What, as a dotted name: `login`, `login.failed`, `flake.add`, `machine.forget`, ...
    pub action: String,
    /// What it was done to (a flake's name, a MAC, a token's name), or empty.
    pub target: String,
    /// The client's address; `None` over the owner-only API socket.
    pub client: Option<IpAddr>,
    /// The HTTP status it was answered with (2xx and 3xx: done).
    pub status: u16,
}

impl Store {
    /// Appends an entry to the audit log, dropping the oldest beyond [`MAX_AUDIT`] (and the
    /// oldest anonymous ones beyond [`MAX_ANONYMOUS_AUDIT`]).
    pub fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        self.append_audit_within(entry, MAX_AUDIT, MAX_ANONYMOUS_AUDIT)
    }

    fn append_audit_within(
        &self,
        entry: &AuditRecord,
        max: usize,
        max_anonymous: usize,
    ) -> Result<(), StoreError> {
        let bytes = encode(TABLE, entry)?;
        let txn = self.db.begin_write()?;
        {
            let mut log = txn.open_table(AUDIT)?;
            let mut anonymous = txn.open_table(AUDIT_ANONYMOUS)?;
            let seq = log.last()?.map_or(0, |(k, _)| k.value().saturating_add(1));
            log.insert(seq, bytes.as_slice())?;
            if entry.actor.is_none() {
                anonymous.insert(seq, ())?;
                while anonymous.len()? > max_anonymous as u64 {
                    let Some(old) = anonymous.pop_first()?.map(|(k, _)| k.value()) else {
                        break;
                    };
                    log.remove(old)?;
                }
            }
            while log.len()? > max as u64 {
                let Some(old) = log.pop_first()?.map(|(k, _)| k.value()) else {
                    break;
                };
                anonymous.remove(old)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, AUDIT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (seq, value) = entry?;
            out.push(decode(TABLE, seq.value(), value.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn entry(n: u64, actor: Option<&str>) -> AuditRecord {
        AuditRecord {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n),
            actor: actor.map(str::to_owned),
            action: if actor.is_some() {
                "flake.add"
            } else {
                "login.failed"
            }
            .into(),
            target: format!("t{n}"),
            client: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))),
            status: 303,
        }
    }

    fn targets(store: &Store) -> Vec<String> {
        let all = store.recent_audit(usize::MAX).unwrap();
        all.into_iter().map(|e| e.target).collect()
    }

    #[test]
    fn entries_read_newest_first_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            assert!(store.recent_audit(10).unwrap().is_empty(), "no table yet");
            for n in 0..3 {
                store.append_audit(&entry(n, Some("admin"))).unwrap();
            }
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(targets(&store), vec!["t2", "t1", "t0"]);
        assert_eq!(
            store.recent_audit(1).unwrap(),
            vec![entry(2, Some("admin"))]
        );
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let store = Store::in_memory().unwrap();
        for n in 0..7 {
            store
                .append_audit_within(&entry(n, Some("admin")), 4, 2)
                .unwrap();
        }
        assert_eq!(targets(&store), vec!["t6", "t5", "t4", "t3"]);
    }

    #[test]
    fn failed_sign_ins_cannot_push_the_admins_actions_out() {
        let store = Store::in_memory().unwrap();
        store
            .append_audit_within(&entry(0, Some("admin")), 4, 2)
            .unwrap();
        store
            .append_audit_within(&entry(1, Some("admin")), 4, 2)
            .unwrap();
        for n in 2..50 {
            store.append_audit_within(&entry(n, None), 4, 2).unwrap();
        }
        assert_eq!(targets(&store), vec!["t49", "t48", "t1", "t0"]);
        // Admin actions push anonymous ones out like any other, and their index with them.
        for n in 50..53 {
            store
                .append_audit_within(&entry(n, Some("admin")), 4, 2)
                .unwrap();
        }
        assert_eq!(targets(&store), vec!["t52", "t51", "t50", "t49"]);
        store.append_audit_within(&entry(53, None), 4, 2).unwrap();
        store.append_audit_within(&entry(54, None), 4, 2).unwrap();
        assert_eq!(targets(&store), vec!["t54", "t53", "t52", "t51"]);
    }
}
