//! Which machine records make room at the cap: the least recently seen that nobody configured.
//!
//! Finding them reads every record (a view of it: `last_seen`, `host`, `label`). One such pass
//! lists every evictable machine, least recently seen first, and [`Evictions`] keeps the list
//! for the evictions after it: each takes the list's head once it has checked, in the
//! transaction, that the machine is still evictable as listed (its record there and unchanged
//! since: not seen, assigned or named since, which a hash of the record's bytes tells without
//! decoding it; no boot options or reservation since). A flood of new MACs at the cap (proxy
//! mode on a busy LAN, or a stranger inventing MACs) so costs one pass per list's worth of
//! evictions, not one per batch, and the store stays at its cap instead of making room ahead.
//! The list is a cache, never the truth: a failed transaction, a restore or another writer can
//! only make it skip entries.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use flakeboot_catalogue::MacAddr;
use redb::{ReadableTable, Table, WriteTransaction};
use serde::Deserialize;

use crate::schema::{MacKey, decode, mac_key};
use crate::settings::{self, MACHINE_OPTIONS};
use crate::{Limits, StoreError};

const TABLE: &str = "machines";

/// What eviction reads of a machine record: when it was last seen and whether a user assigned or
/// named it. The other fields are skipped, not decoded (no strings allocated, no MAC parsed).
#[derive(Deserialize)]
struct EvictionView {
    last_seen: SystemTime,
    #[serde(default)]
    host: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    label: Option<serde::de::IgnoredAny>,
}

/// When an evictable record was last seen (an unreadable one: the epoch, so it goes first);
/// `None` when a user assigned or named the machine.
fn last_seen(mac: MacAddr, bytes: &[u8]) -> Option<SystemTime> {
    match decode::<EvictionView>(TABLE, mac, bytes) {
        Ok(view) if view.host.is_some() || view.label.is_some() => None,
        Ok(view) => Some(view.last_seen),
        Err(_) => Some(SystemTime::UNIX_EPOCH),
    }
}

/// A hash of a record's bytes: the same record as when it was listed.
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// The evictable machines of the last pass, least recently seen first, with a
/// [`fingerprint`] of each record then. Shared by a store's clones.
#[derive(Debug, Default)]
pub(crate) struct Evictions {
    queue: Mutex<VecDeque<(MacAddr, u64)>>,
    /// Passes over every record so far (for tests and the log).
    passes: std::sync::atomic::AtomicU64,
}

/// What makes a machine not evictable besides its record: the config file pins it, a
/// reservation names it, it has boot options, or it is in the batch being admitted.
struct Kept<'a, 'txn> {
    limits: &'a Limits,
    in_batch: &'a HashSet<MacAddr>,
    reserved: HashSet<MacAddr>,
    options: Table<'txn, MacKey, &'static [u8]>,
}

impl Kept<'_, '_> {
    fn kept(&self, mac: MacAddr) -> Result<bool, StoreError> {
        Ok(self.in_batch.contains(&mac)
            || self.limits.pinned_machines.contains(&mac)
            || self.reserved.contains(&mac)
            || self.options.get(mac_key(mac))?.is_some())
    }
}

impl Evictions {
    /// Up to `wanted` machines to forget, least recently seen first, none of `in_batch`. Reads
    /// every record only when the list from the last pass runs out.
    pub(crate) fn choose(
        &self,
        txn: &WriteTransaction,
        machines: &Table<MacKey, &[u8]>,
        limits: &Limits,
        in_batch: &HashSet<MacAddr>,
        wanted: usize,
    ) -> Result<Vec<MacAddr>, StoreError> {
        let kept = Kept {
            limits,
            in_batch,
            reserved: settings::reserved_macs(txn)?,
            options: txn.open_table(MACHINE_OPTIONS)?,
        };
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut chosen = Vec::new();
        let mut taken = HashSet::new();
        let mut passed = false;
        while chosen.len() < wanted {
            let Some((mac, listed)) = queue.pop_front() else {
                if passed {
                    break;
                }
                *queue = pass(machines, &kept)?;
                passed = true;
                let passes = self
                    .passes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    evictable = queue.len(),
                    passes = passes.saturating_add(1),
                    max_machines = limits.max_machines,
                    "machine records at their cap: the least recently seen unconfigured ones make room"
                );
                continue;
            };
            if taken.contains(&mac) || kept.kept(mac)? {
                continue;
            }
            let still = match machines.get(mac_key(mac))? {
                Some(value) => fingerprint(value.value()) == listed,
                None => false,
            };
            if still {
                taken.insert(mac);
                chosen.push(mac);
            }
        }
        Ok(chosen)
    }

    /// How many passes over every record were made.
    #[cfg(test)]
    pub(crate) fn passes(&self) -> u64 {
        self.passes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Every evictable machine with its record's [`fingerprint`], least recently seen first (an
/// unreadable record first of all).
fn pass(
    machines: &Table<MacKey, &[u8]>,
    kept: &Kept<'_, '_>,
) -> Result<VecDeque<(MacAddr, u64)>, StoreError> {
    let mut candidates = Vec::new();
    for entry in machines.iter()? {
        let (key, value) = entry?;
        let mac = MacAddr(key.value());
        if kept.kept(mac)? {
            continue;
        }
        if let Some(seen) = last_seen(mac, value.value()) {
            candidates.push((seen, mac, fingerprint(value.value())));
        }
    }
    candidates.sort();
    Ok(candidates
        .into_iter()
        .map(|(_, mac, listed)| (mac, listed))
        .collect())
}
