//! The machines' console and log lines (syslog, netconsole): bounded per machine and in all.
//!
//! Lines are kept only for a MAC with a machine record (the receiver attributes a line by its
//! source address; a MAC without a record is dropped and counted by the caller). Two bounds
//! ([`crate::StoreOptions`]): the newest `log_lines_per_machine` of each machine and the newest
//! `max_log_lines` in all. A forgotten machine's lines go with it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::SystemTime;

use flakeboot_catalogue::MacAddr;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::schema::{LOGS, LOGS_ORDER, MACHINES, MacKey, decode, encode, mac_key, read_table};
use crate::{Store, StoreError};

const TABLE: &str = "logs";

/// One line of a machine's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub mac: MacAddr,
    /// The address it came from.
    pub peer: IpAddr,
    /// When it arrived.
    pub at: SystemTime,
    /// `rfc5424`, `rfc3164` or `netconsole`.
    pub proto: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<u8>,
    /// The host name the line names (a claim; the line is attributed by its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The program that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub text: String,
    /// The text was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Drops every line of each of `macs` (the machines are forgotten).
pub(crate) fn remove_machines(txn: &WriteTransaction, macs: &[MacAddr]) -> Result<(), StoreError> {
    if macs.is_empty() {
        return Ok(());
    }
    let mut lines = txn.open_table(LOGS)?;
    let mut order = txn.open_table(LOGS_ORDER)?;
    for &mac in macs {
        let key = mac_key(mac);
        for seq in seqs_of(&lines, key)? {
            lines.remove((key, seq))?;
            order.remove(seq)?;
        }
    }
    Ok(())
}

fn seqs_of(
    lines: &impl ReadableTable<(MacKey, u64), &'static [u8]>,
    key: MacKey,
) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for entry in lines.range((key, 0)..=(key, u64::MAX))? {
        seqs.push(entry?.0.value().1);
    }
    Ok(seqs)
}

impl Store {
    /// Appends lines of machines in ONE write transaction, then drops the oldest past each
    /// bound. A line whose MAC has no machine record is not kept: returns how many were not.
    pub fn record_logs(&self, records: &[LogRecord]) -> Result<usize, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let limits = &self.limits;
        let txn = self.db.begin_write()?;
        let mut refused = 0;
        {
            let machines = txn.open_table(MACHINES)?;
            let mut lines = txn.open_table(LOGS)?;
            let mut order = txn.open_table(LOGS_ORDER)?;
            let mut seq = match order.last()? {
                Some((key, _)) => key.value().saturating_add(1),
                None => 0,
            };
            let mut touched = BTreeSet::new();
            for record in records {
                let key = mac_key(record.mac);
                if machines.get(key)?.is_none() {
                    refused += 1;
                    continue;
                }
                let bytes = encode(TABLE, record)?;
                lines.insert((key, seq), bytes.as_slice())?;
                order.insert(seq, key)?;
                touched.insert(key);
                seq = seq.saturating_add(1);
            }
            for key in touched {
                let seqs = seqs_of(&lines, key)?;
                let excess = seqs.len().saturating_sub(limits.log_lines_per_machine);
                for seq in seqs.into_iter().take(excess) {
                    lines.remove((key, seq))?;
                    order.remove(seq)?;
                }
            }
            let max = u64::try_from(limits.max_log_lines).unwrap_or(u64::MAX);
            while order.len()? > max {
                let Some((seq, key)) = order.pop_first()?.map(|(s, k)| (s.value(), k.value()))
                else {
                    break;
                };
                lines.remove((key, seq))?;
            }
        }
        txn.commit()?;
        Ok(refused)
    }

    /// The newest `limit` lines of `mac`, oldest first.
    pub fn logs_for(&self, mac: MacAddr, limit: usize) -> Result<Vec<LogRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(lines) = read_table(&txn, LOGS)? else {
            return Ok(Vec::new());
        };
        let key = mac_key(mac);
        let mut out = Vec::new();
        for entry in lines.range((key, 0)..=(key, u64::MAX))?.rev().take(limit) {
            let (k, value) = entry?;
            out.push(decode(TABLE, k.value().1, value.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// How many lines are kept in all.
    pub fn log_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        match read_table(&txn, LOGS_ORDER)? {
            Some(order) => Ok(order.len()?),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::time::Duration;

    use flakeboot_catalogue::{BootEvent, BootStage, Outcome};

    use super::*;
    use crate::StoreOptions;

    const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
    const STRANGER: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 9]);

    fn line(mac: MacAddr, n: u64) -> LogRecord {
        LogRecord {
            mac,
            peer: IpAddr::from([10, 77, 0, 100]),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + n),
            proto: "rfc5424".into(),
            severity: Some(6),
            facility: Some(1),
            hostname: None,
            app: Some("app".into()),
            text: format!("line {n}"),
            truncated: false,
        }
    }

    fn store(per_machine: usize, total: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            StoreOptions {
                log_lines_per_machine: per_machine,
                max_log_lines: total,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        for mac in [A, B] {
            let mut dhcp = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "offer");
            dhcp.mac = Some(mac);
            store.record_events(&[dhcp]).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn an_empty_store_has_no_lines() {
        let (_dir, store) = store(10, 100);
        assert!(store.logs_for(A, 10).unwrap().is_empty());
        assert_eq!(store.log_count().unwrap(), 0);
    }

    #[test]
    fn lines_are_kept_per_machine_newest_last_and_bounded() {
        let (_dir, store) = store(5, 100);
        let batch: Vec<LogRecord> = (0..8).map(|n| line(A, n)).chain([line(B, 100)]).collect();
        assert_eq!(store.record_logs(&batch).unwrap(), 0);
        let a = store.logs_for(A, 100).unwrap();
        let texts: Vec<&str> = a.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["line 3", "line 4", "line 5", "line 6", "line 7"]);
        assert_eq!(store.logs_for(A, 2).unwrap()[1].text, "line 7");
        assert_eq!(store.logs_for(B, 10).unwrap(), vec![line(B, 100)]);
        assert_eq!(store.log_count().unwrap(), 6);
    }

    #[test]
    fn the_total_bound_drops_the_oldest_of_anyone() {
        let (_dir, store) = store(100, 10);
        let a: Vec<LogRecord> = (0..8).map(|n| line(A, n)).collect();
        store.record_logs(&a).unwrap();
        let b: Vec<LogRecord> = (0..6).map(|n| line(B, n)).collect();
        store.record_logs(&b).unwrap();
        assert_eq!(store.log_count().unwrap(), 10);
        assert_eq!(store.logs_for(A, 100).unwrap().len(), 4);
        assert_eq!(store.logs_for(A, 100).unwrap()[0].text, "line 4");
        assert_eq!(store.logs_for(B, 100).unwrap().len(), 6);
    }

    #[test]
    fn lines_of_a_mac_without_a_machine_are_not_kept() {
        let (_dir, store) = store(10, 100);
        let refused = store.record_logs(&[line(STRANGER, 1), line(A, 2)]).unwrap();
        assert_eq!(refused, 1);
        assert!(store.logs_for(STRANGER, 10).unwrap().is_empty());
        assert_eq!(store.log_count().unwrap(), 1);
    }

    #[test]
    fn a_forgotten_machine_takes_its_lines() {
        let (_dir, store) = store(10, 100);
        store.record_logs(&[line(A, 1), line(B, 2)]).unwrap();
        assert!(store.delete_machine(A).unwrap());
        assert!(store.logs_for(A, 10).unwrap().is_empty());
        assert_eq!(store.log_count().unwrap(), 1);
    }
}
