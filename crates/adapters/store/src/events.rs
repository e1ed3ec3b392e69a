//! Boot events: a bounded ring of the newest events, indexed by machine.
//!
//! Three bounds keep it small whatever the LAN sends ([`crate::StoreOptions`]): the newest
//! `max_events` in all; the newest `events_per_machine` of each MAC; and the newest
//! `max_unattributed_events` of those that belong to no machine record (no MAC, or a MAC that
//! no DHCP exchange made a machine, such as a made-up `?mac=`). So a flood of requests under
//! invented MACs only churns the unattributed events, and one chatty MAC only its own.

use std::collections::BTreeSet;

use flakeboot_catalogue::{BootEvent, BootStage, MacAddr};
use redb::{
    Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction,
};

use crate::schema::{
    EVENTS, EVENTS_BY_MAC, EVENTS_UNATTRIBUTED, EventMac, MACHINES, MacKey, decode, encode, mac_key,
};
use crate::{Store, StoreError, machines};

const TABLE: &str = "events";

/// One stored event, or `None` for a record this binary cannot read but that is well-formed
/// JSON: a newer version's event (a stage added later, read after an A/B rollback to the older
/// slot) is skipped with a warning instead of failing every read of the machine's timeline.
/// Events are observations; the rest of the timeline stays true without it. Bytes that are not
/// JSON at all are corruption, and an error.
fn readable(seq: u64, bytes: &[u8]) -> Result<Option<BootEvent>, StoreError> {
    match decode(TABLE, seq, bytes) {
        Ok(event) => Ok(Some(event)),
        Err(StoreError::Corrupt { source, .. })
            if source.classify() == serde_json::error::Category::Data =>
        {
            tracing::warn!(seq, error = %source, "a stored boot event this version cannot read: skipped");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The newest `limit` events of `mac` in a read transaction's tables, newest last.
fn newest_of(
    table: &impl ReadableTable<u64, &'static [u8]>,
    index: &impl ReadableTable<(MacKey, u64), ()>,
    mac: MacAddr,
    limit: usize,
) -> Result<Vec<BootEvent>, StoreError> {
    let mac = mac_key(mac);
    let mut out = Vec::new();
    for entry in index.range((mac, 0)..=(mac, u64::MAX))?.rev().take(limit) {
        let (_, seq) = entry?.0.value();
        if let Some(value) = table.get(seq)? {
            out.extend(readable(seq, value.value())?);
        }
    }
    out.reverse();
    Ok(out)
}

/// The event tables of one write transaction, changed together.
pub(crate) struct EventTables<'txn> {
    events: Table<'txn, u64, &'static [u8]>,
    index: Table<'txn, (MacKey, u64), ()>,
    unattributed: Table<'txn, u64, ()>,
}

impl<'txn> EventTables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(EventTables {
            events: txn.open_table(EVENTS)?,
            index: txn.open_table(EVENTS_BY_MAC)?,
            unattributed: txn.open_table(EVENTS_UNATTRIBUTED)?,
        })
    }

    /// Drops one event of `mac` (its index entry is `(mac, seq)`), without reading the event.
    fn remove_of(&mut self, mac: MacAddr, seq: u64) -> Result<(), StoreError> {
        self.events.remove(seq)?;
        self.index.remove((mac_key(mac), seq))?;
        self.unattributed.remove(seq)?;
        Ok(())
    }

    /// Drops one event and its index entries.
    fn remove(&mut self, seq: u64) -> Result<(), StoreError> {
        let mac = self
            .events
            .remove(seq)?
            .and_then(|value| event_mac(value.value()));
        if let Some(mac) = mac {
            self.index.remove((mac_key(mac), seq))?;
        }
        self.unattributed.remove(seq)?;
        Ok(())
    }

    /// The sequence numbers of one MAC's events, oldest first.
    fn of_mac(&self, mac: MacAddr) -> Result<Vec<u64>, StoreError> {
        let key = mac_key(mac);
        let mut seqs = Vec::new();
        for entry in self.index.range((key, 0)..=(key, u64::MAX))? {
            seqs.push(entry?.0.value().1);
        }
        Ok(seqs)
    }

    /// Drops every event of a machine that is being forgotten.
    pub(crate) fn remove_machine(&mut self, mac: MacAddr) -> Result<(), StoreError> {
        for seq in self.of_mac(mac)? {
            self.remove_of(mac, seq)?;
        }
        Ok(())
    }

    /// Keeps only the newest `max` events of `mac`.
    fn trim_machine(&mut self, mac: MacAddr, max: usize) -> Result<(), StoreError> {
        let seqs = self.of_mac(mac)?;
        let excess = seqs.len().saturating_sub(max);
        for seq in seqs.into_iter().take(excess) {
            self.remove_of(mac, seq)?;
        }
        Ok(())
    }

    /// Keeps only the newest `max` events that belong to no machine.
    fn trim_unattributed(&mut self, max: usize) -> Result<(), StoreError> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        while self.unattributed.len()? > max {
            let Some(seq) = self.unattributed.pop_first()?.map(|(key, _)| key.value()) else {
                break;
            };
            self.remove(seq)?;
        }
        Ok(())
    }

    /// Drops the oldest events (and their index entries) until at most `max` remain.
    fn trim_all(&mut self, max: usize) -> Result<(), StoreError> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        while self.events.len()? > max {
            let Some((seq, mac)) = self
                .events
                .pop_first()?
                .map(|(key, value)| (key.value(), event_mac(value.value())))
            else {
                break;
            };
            if let Some(mac) = mac {
                self.index.remove((mac_key(mac), seq))?;
            }
            self.unattributed.remove(seq)?;
        }
        Ok(())
    }
}

/// The MAC of a stored event, without decoding the rest (an unreadable one has none).
fn event_mac(bytes: &[u8]) -> Option<MacAddr> {
    serde_json::from_slice::<EventMac>(bytes)
        .ok()
        .and_then(|e| e.mac)
}

/// How much of a batch [`Store::record_events_within`] may keep: the caller's budgets, so a
/// flood a stranger makes (invented MACs, requests from addresses no machine holds) costs the
/// store a lookup per event, not records and events made and dropped again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Most machine records made: the new MACs past it (in the order the batch shows them)
    /// get none, and none of their events are kept.
    pub new_machines: usize,
    /// Most events of no machine kept (no MAC, or a MAC with no record); the rest are not.
    pub unattributed: usize,
}

impl Admission {
    /// No budget: every event as [`Store::record_events`] keeps it.
    pub const ALL: Admission = Admission {
        new_machines: usize::MAX,
        unattributed: usize::MAX,
    };
}

/// What one batch of boot events did ([`Store::record_events_within`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecordedEvents {
    /// Other servers' replies to MACs with no record, not kept (see [`Store::record_events`]).
    pub unknown: Vec<BootEvent>,
    /// Machine records made.
    pub new_machines: usize,
    /// New MACs past the batch's [`Admission::new_machines`]: no record made.
    pub refused_machines: usize,
    /// Their events, not kept.
    pub refused_events: usize,
    /// Events of no machine kept.
    pub unattributed: usize,
    /// Events of no machine past the batch's budget, not kept.
    pub refused_unattributed: usize,
}

impl Store {
    /// Appends boot events and updates the machines they belong to (first/last seen, firmware,
    /// vendor class), in ONE write transaction.
    ///
    /// Only a DHCP event (stages `dhcp` and `pxe-boot-server`: a MAC seen on the wire) creates a
    /// machine record; at `max_machines`, the least recently seen machine nobody configured
    /// makes room. Other events update the machine of their MAC if it has a record; if not,
    /// they are kept (and listed under their MAC) as events of no machine. A MAC that is not a
    /// machine's own (zero, broadcast, multicast) is dropped from the event. Then the oldest
    /// events are dropped past each bound of [`crate::StoreOptions`].
    ///
    /// Another server's reply (`other-dhcp`) is kept only for a machine with a record. Those
    /// for a station MAC with none are returned, not stored: that server may have answered the
    /// client's DISCOVER before this appliance's own DHCP event made its record, and the caller
    /// may offer them again with a later batch ([`crate::Store`] never holds them).
    pub fn record_events(&self, events: &[BootEvent]) -> Result<Vec<BootEvent>, StoreError> {
        Ok(self
            .record_events_within(events, true, Admission::ALL)?
            .unknown)
    }

    /// [`Store::record_events`] in a commit that does not flush: the events are read back at
    /// once, and are on disk after the next flushed commit ([`Store::flush`], or any other
    /// write that flushes). A crash before it loses them, so the caller flushes soon (the boot
    /// event writer does within half a second): many small commits spread the work, and the
    /// disk sees a few flushes a second instead of one per batch.
    pub fn record_events_unflushed(
        &self,
        events: &[BootEvent],
    ) -> Result<Vec<BootEvent>, StoreError> {
        Ok(self
            .record_events_within(events, false, Admission::ALL)?
            .unknown)
    }

    /// [`Store::record_events`] (`flush`) or [`Store::record_events_unflushed`], keeping what
    /// `admission` allows: at most that many new machine records (the new MACs past it get
    /// none, and none of their events are kept) and events of no machine.
    pub fn record_events_within(
        &self,
        events: &[BootEvent],
        flush: bool,
        admission: Admission,
    ) -> Result<RecordedEvents, StoreError> {
        let mut recorded = RecordedEvents::default();
        if events.is_empty() {
            return Ok(recorded);
        }
        let limits = &self.limits;
        let mut txn = self.db.begin_write()?;
        let durability = match flush {
            true => Durability::Immediate,
            false => Durability::None,
        };
        txn.set_durability(durability).map_err(redb::Error::from)?;
        {
            let mut tables = EventTables::open(&txn)?;
            let mut machines = txn.open_table(MACHINES)?;
            let mut records = machines::Touched::default();
            let admitted = machines::admit(
                &txn,
                &mut machines,
                &mut tables,
                events,
                self,
                admission.new_machines,
                &mut records,
            )?;
            recorded.new_machines = admitted.made;
            recorded.refused_machines = admitted.refused.len();
            let mut seq = match tables.events.last()? {
                Some((key, _)) => key.value().saturating_add(1),
                None => 0,
            };
            let mut touched = BTreeSet::new();
            for event in events {
                let mac = event.mac.filter(MacAddr::is_station);
                if mac.is_some_and(|m| admitted.refused.contains(&m)) {
                    recorded.refused_events += 1;
                    continue;
                }
                let known = match mac {
                    Some(m) => records.known(&machines, m, event.at)?,
                    None => false,
                };
                if event.stage == BootStage::OtherDhcp && !known {
                    // Another server's reply to a machine this appliance does not know (a
                    // phone, a forged packet, or one whose own DHCP event is still on its way):
                    // not kept, so such packets cannot fill it.
                    if mac.is_some() {
                        recorded.unknown.push(event.clone());
                    }
                    continue;
                }
                if !known {
                    if recorded.unattributed >= admission.unattributed {
                        recorded.refused_unattributed += 1;
                        continue;
                    }
                    recorded.unattributed += 1;
                }
                let bytes = if mac.is_none() && event.mac.is_some() {
                    let mut anonymous = event.clone();
                    anonymous.mac = None;
                    encode(TABLE, &anonymous)?
                } else {
                    encode(TABLE, event)?
                };
                tables.events.insert(seq, bytes.as_slice())?;
                if let Some(mac) = mac {
                    tables.index.insert((mac_key(mac), seq), ())?;
                    touched.insert(mac);
                    records.observe(&machines, mac, event)?;
                }
                if !known {
                    tables.unattributed.insert(seq, ())?;
                }
                seq = seq.saturating_add(1);
            }
            records.write(&mut machines)?;
            for mac in touched {
                tables.trim_machine(mac, limits.events_per_machine)?;
            }
            tables.trim_unattributed(limits.max_unattributed_events)?;
            tables.trim_all(limits.max_events)?;
        }
        txn.commit()?;
        Ok(recorded)
    }

    /// The newest `limit` events of one machine, newest last.
    pub fn events_for(&self, mac: MacAddr, limit: usize) -> Result<Vec<BootEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let index = txn.open_table(EVENTS_BY_MAC)?;
        newest_of(&table, &index, mac, limit)
    }

    /// [`Store::events_for`] of each of `macs`, in that order, read in one transaction (the
    /// overview's state filter judges every machine).
    pub fn events_for_each(
        &self,
        macs: &[MacAddr],
        limit: usize,
    ) -> Result<Vec<Vec<BootEvent>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let index = txn.open_table(EVENTS_BY_MAC)?;
        macs.iter()
            .map(|&mac| newest_of(&table, &index, mac, limit))
            .collect()
    }

    /// The newest `limit` events of all machines, newest last.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<BootEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (seq, value) = entry?;
            out.extend(readable(seq.value(), value.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// How many boot events are stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(EVENTS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use flakeboot_catalogue::{BootStage, ClientFirmware, Outcome};

    use crate::StoreOptions;

    const MACS: [MacAddr; 3] = [
        MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        MacAddr([0x52, 0x54, 0, 0, 0, 2]),
        MacAddr([0x52, 0x54, 0, 0, 0, 3]),
    ];

    fn at(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n)
    }

    /// Event number `n`: its detail and time say which it is; machine `n % 3`, seen in DHCP.
    fn event(n: u64) -> BootEvent {
        let mac = MACS[(n % 3) as usize];
        let mut event = BootEvent::new(BootStage::Dhcp, Outcome::Ok, format!("event {n}"))
            .mac(mac)
            .peer(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
            .firmware(match n % 2 {
                0 => ClientFirmware::BiosPxe,
                _ => ClientFirmware::IpxeBios,
            });
        event.at = at(n);
        event
    }

    fn details(events: &[BootEvent]) -> Vec<String> {
        events.iter().map(|e| e.detail.clone()).collect()
    }

    #[test]
    fn events_round_trip_newest_last() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let events: Vec<BootEvent> = (0..7).map(event).collect();
        store.record_events(&events[..4]).unwrap();
        store.record_events(&events[4..]).unwrap();
        store.record_events(&[]).unwrap();
        assert_eq!(store.recent_events(100).unwrap(), events);
        assert_eq!(store.recent_events(2).unwrap(), events[5..].to_vec());
        assert_eq!(
            details(&store.events_for(MACS[0], 100).unwrap()),
            ["event 0", "event 3", "event 6"]
        );
        assert_eq!(details(&store.events_for(MACS[1], 1).unwrap()), ["event 4"]);
        assert!(store.events_for(MacAddr([9; 6]), 10).unwrap().is_empty());
        assert!(store.recent_events(0).unwrap().is_empty());
    }

    /// A record a newer version wrote (a stage this one does not know) is skipped, not an error
    /// for every read of the timeline (an A/B rollback reads the newer slot's store).
    #[test]
    fn an_event_this_version_cannot_read_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let events: Vec<BootEvent> = (0..4).map(event).collect();
        store.record_events(&events).unwrap();
        let txn = store.db.begin_write().unwrap();
        {
            let mut table = txn.open_table(EVENTS).unwrap();
            let (seq, newer) = {
                let (k, v) = table.iter().unwrap().nth(3).unwrap().unwrap();
                let text = String::from_utf8(v.value().to_vec()).unwrap();
                (
                    k.value(),
                    text.replace("\"dhcp\"", "\"from-a-newer-version\""),
                )
            };
            assert!(newer.contains("from-a-newer-version"), "{newer}");
            table.insert(seq, newer.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
        assert_eq!(store.recent_events(10).unwrap(), events[..3].to_vec());
        // event 3 was machine 0's newest.
        assert_eq!(
            details(&store.events_for(MACS[0], 10).unwrap()),
            ["event 0"]
        );
    }

    #[test]
    fn events_without_a_mac_are_kept_but_make_no_machine() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut anonymous = event(1);
        anonymous.mac = None;
        store.record_events(&[anonymous.clone(), event(2)]).unwrap();
        assert_eq!(store.recent_events(10).unwrap(), vec![anonymous, event(2)]);
        let machines = store.machines().unwrap();
        assert_eq!(machines.len(), 1);
        assert_eq!(machines[0].mac, MACS[2]);
    }

    #[test]
    fn the_ring_keeps_the_newest_ten_thousand_and_machines_stay_current() {
        const EXTRA: u64 = 1_234;
        let tmp = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            events_per_machine: usize::MAX,
            ..StoreOptions::default()
        };
        let store = Store::open_with(tmp.path(), options).unwrap();
        let total = crate::DEFAULT_MAX_EVENTS as u64 + EXTRA;
        let all: Vec<BootEvent> = (0..total).map(event).collect();
        for batch in all.chunks(500) {
            store.record_events(batch).unwrap();
        }

        assert_eq!(
            store.event_count().unwrap(),
            crate::DEFAULT_MAX_EVENTS as u64
        );
        let kept = store.recent_events(usize::MAX).unwrap();
        assert_eq!(kept.len(), crate::DEFAULT_MAX_EVENTS);
        // The oldest are gone, the newest are all there, in order.
        assert_eq!(kept.first().unwrap().detail, format!("event {EXTRA}"));
        assert_eq!(kept.last().unwrap().detail, format!("event {}", total - 1));
        assert_eq!(kept, all[EXTRA as usize..].to_vec());

        // The per-machine index lost exactly the dropped events.
        let mut indexed = 0;
        for (i, mac) in MACS.iter().enumerate() {
            let mine = store.events_for(*mac, usize::MAX).unwrap();
            let expected: Vec<BootEvent> = all[EXTRA as usize..]
                .iter()
                .filter(|e| e.mac == Some(*mac))
                .cloned()
                .collect();
            assert_eq!(mine, expected, "machine {i}");
            indexed += mine.len();
        }
        assert_eq!(indexed, crate::DEFAULT_MAX_EVENTS);
        let txn = store.db.begin_read().unwrap();
        let index_len = txn.open_table(EVENTS_BY_MAC).unwrap().len().unwrap();
        assert_eq!(index_len, crate::DEFAULT_MAX_EVENTS as u64);

        // Machine records outlive the events they were built from.
        for (i, mac) in MACS.iter().enumerate() {
            let record = store.machine(*mac).unwrap().unwrap();
            let last = (0..total).rev().find(|n| n % 3 == i as u64).unwrap();
            assert_eq!(record.first_seen, at(i as u64), "machine {i}");
            assert_eq!(record.last_seen, at(last), "machine {i}");
            assert_eq!(record.firmware, event(last).firmware, "machine {i}");
        }
    }

    #[test]
    fn a_smaller_ring_trims_on_the_next_write_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            store
                .record_events(&(0..50).map(event).collect::<Vec<_>>())
                .unwrap();
        }
        let options = StoreOptions {
            max_events: 10,
            ..StoreOptions::default()
        };
        let store = Store::open_with(tmp.path(), options).unwrap();
        assert_eq!(store.event_count().unwrap(), 50);
        store.record_events(&[event(50)]).unwrap();
        let kept = store.recent_events(usize::MAX).unwrap();
        assert_eq!(kept, (41..=50).map(event).collect::<Vec<_>>());
        // Machine 2 (n % 3 == 2) keeps events 41, 44, 47 and 50.
        assert_eq!(store.events_for(MACS[2], 100).unwrap().len(), 4);
    }

    fn named(stage: BootStage, mac: Option<MacAddr>, n: u64) -> BootEvent {
        let mut event = BootEvent::new(stage, Outcome::Ok, format!("event {n}"));
        event.mac = mac;
        event.at = at(n);
        event
    }

    /// The store's index of events that belong to no machine, for checks.
    fn unattributed(store: &Store) -> Vec<u64> {
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(EVENTS_UNATTRIBUTED).unwrap();
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect()
    }

    /// Past the caller's `Admission::new_machines`, a batch's further new MACs get no record and none of their
    /// events are kept; known machines and events of no MAC are kept as ever.
    #[test]
    fn new_machines_past_the_batchs_budget_are_counted_not_kept() {
        let store = Store::in_memory().unwrap();
        store
            .record_events(&[named(BootStage::Dhcp, Some(MACS[0]), 0)])
            .unwrap();
        let strangers: Vec<MacAddr> = (1..=4).map(|i| MacAddr([0x02, 0xcc, 0, 0, 0, i])).collect();
        let mut batch: Vec<BootEvent> = strangers
            .iter()
            .zip(1..)
            .map(|(mac, n)| named(BootStage::Dhcp, Some(*mac), n))
            .collect();
        batch.push(named(BootStage::Dhcp, Some(MACS[0]), 5));
        batch.push(named(BootStage::Tftp, Some(strangers[3]), 6));
        batch.push(named(BootStage::Tftp, None, 7));
        let admission = Admission {
            new_machines: 2,
            unattributed: 5,
        };
        let recorded = store
            .record_events_within(&batch, false, admission)
            .unwrap();
        assert_eq!(
            recorded,
            RecordedEvents {
                unknown: Vec::new(),
                new_machines: 2,
                refused_machines: 2,
                refused_events: 3,
                unattributed: 1,
                refused_unattributed: 0,
            }
        );
        let mut macs: Vec<MacAddr> = store.machines().unwrap().iter().map(|m| m.mac).collect();
        macs.sort();
        let mut expected = vec![MACS[0], strangers[0], strangers[1]];
        expected.sort();
        assert_eq!(macs, expected, "the first two new MACs of the batch");
        assert!(store.events_for(strangers[2], 10).unwrap().is_empty());
        assert!(store.events_for(strangers[3], 10).unwrap().is_empty());
        assert_eq!(store.events_for(MACS[0], 10).unwrap().len(), 2);
        assert_eq!(
            details(&store.recent_events(10).unwrap()),
            ["event 0", "event 1", "event 2", "event 5", "event 7"]
        );
        // A later batch with room makes the refused MAC's record.
        let recorded = store
            .record_events_within(
                &[named(BootStage::Dhcp, Some(strangers[2]), 8)],
                true,
                Admission {
                    new_machines: 1,
                    unattributed: 0,
                },
            )
            .unwrap();
        assert_eq!((recorded.new_machines, recorded.refused_events), (1, 0));
        assert!(store.machine(strangers[2]).unwrap().is_some());
    }

    /// Past the batch's budget of events of no machine, the rest of them (no MAC, or a MAC
    /// with no record) are counted, not kept; a machine's events are kept whatever the budget.
    #[test]
    fn events_of_no_machine_past_the_batchs_budget_are_counted_not_kept() {
        let store = Store::in_memory().unwrap();
        store
            .record_events(&[named(BootStage::Dhcp, Some(MACS[0]), 0)])
            .unwrap();
        let stranger = MacAddr([0x02, 0xdd, 0, 0, 0, 1]);
        let batch = [
            named(BootStage::Initrd, None, 1),
            named(BootStage::Initrd, Some(stranger), 2),
            named(BootStage::Initrd, Some(MACS[0]), 3),
            named(BootStage::Initrd, None, 4),
            named(BootStage::Initrd, Some(stranger), 5),
        ];
        let admission = Admission {
            new_machines: usize::MAX,
            unattributed: 2,
        };
        let recorded = store.record_events_within(&batch, true, admission).unwrap();
        assert_eq!(
            (recorded.unattributed, recorded.refused_unattributed),
            (2, 2)
        );
        assert_eq!(
            details(&store.recent_events(10).unwrap()),
            ["event 0", "event 1", "event 2", "event 3"]
        );
        assert_eq!(unattributed(&store).len(), 2);
        assert_eq!(store.events_for(stranger, 10).unwrap().len(), 1);
    }

    /// Another server's reply is kept for a machine the store has, in that machine's events,
    /// and not at all for any other MAC (no record, no event of nobody).
    #[test]
    fn other_servers_replies_are_kept_only_for_known_machines() {
        let store = Store::in_memory().unwrap();
        let stranger = MacAddr([0x02, 0xbb, 0, 0, 0, 1]);
        let unknown = store
            .record_events(&[
                named(BootStage::OtherDhcp, Some(stranger), 1),
                named(BootStage::OtherDhcp, None, 2),
                named(BootStage::Dhcp, Some(MACS[0]), 3),
                named(BootStage::OtherDhcp, Some(MACS[0]), 4),
            ])
            .unwrap();
        // Given back to the caller: the stranger's only (no MAC: nobody's, ever).
        assert_eq!(
            unknown,
            vec![named(BootStage::OtherDhcp, Some(stranger), 1)]
        );
        assert!(store.events_for(stranger, 10).unwrap().is_empty());
        assert_eq!(store.machines().unwrap().len(), 1);
        assert!(
            unattributed(&store).is_empty(),
            "{:?}",
            unattributed(&store)
        );
        let own = store.events_for(MACS[0], 10).unwrap();
        assert_eq!(own.len(), 2);
        assert_eq!(own[1].stage, BootStage::OtherDhcp);
        assert_eq!(store.recent_events(10).unwrap().len(), 2);
    }

    #[test]
    fn only_a_dhcp_event_makes_a_machine_and_group_macs_are_nobodys() {
        let store = Store::in_memory().unwrap();
        let named_only = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
        // A script fetch, a TFTP transfer and a report naming a MAC never seen in DHCP.
        store
            .record_events(&[
                named(BootStage::Script, Some(named_only), 1),
                named(BootStage::Tftp, Some(named_only), 2),
                named(BootStage::System, Some(named_only), 3),
            ])
            .unwrap();
        assert!(store.machines().unwrap().is_empty());
        // The events are kept, under their MAC, as events of no machine.
        assert_eq!(store.events_for(named_only, 10).unwrap().len(), 3);
        assert_eq!(unattributed(&store), [0, 1, 2]);

        // Zero, broadcast and multicast MACs make no machine even in DHCP, and no index entry.
        for group in [[0; 6], [0xff; 6], [0x01, 0, 0x5e, 0, 0, 1]] {
            store
                .record_events(&[named(BootStage::Dhcp, Some(MacAddr(group)), 4)])
                .unwrap();
            assert!(store.events_for(MacAddr(group), 10).unwrap().is_empty());
        }
        assert!(store.machines().unwrap().is_empty());
        let stored = store.recent_events(3).unwrap();
        assert!(stored.iter().all(|e| e.mac.is_none()), "{stored:?}");

        // Seen in DHCP (also the PXE boot server on 4011): a machine; later events are its own.
        store
            .record_events(&[
                named(BootStage::Script, Some(MACS[0]), 10),
                named(BootStage::Dhcp, Some(MACS[0]), 11),
                named(BootStage::PxeBootServer, Some(MACS[1]), 12),
            ])
            .unwrap();
        store
            .record_events(&[named(BootStage::Kernel, Some(MACS[0]), 13)])
            .unwrap();
        let machines = store.machines().unwrap();
        assert_eq!(
            machines.iter().map(|m| m.mac).collect::<Vec<_>>(),
            [MACS[0], MACS[1]]
        );
        assert_eq!(machines[0].first_seen, at(10), "the batch's earlier script");
        assert_eq!(machines[0].last_seen, at(13));
        assert_eq!(unattributed(&store).len(), 6, "no new ones");
    }

    #[test]
    fn each_machine_keeps_only_its_newest_events() {
        let options = StoreOptions {
            events_per_machine: 5,
            ..StoreOptions::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), options).unwrap();
        let (chatty, quiet) = (MACS[0], MACS[1]);
        store
            .record_events(&[named(BootStage::Dhcp, Some(quiet), 0)])
            .unwrap();
        for n in 1..=40 {
            store
                .record_events(&[named(BootStage::Dhcp, Some(chatty), n)])
                .unwrap();
        }
        // One batch larger than the bound, too.
        let batch: Vec<BootEvent> = (41..60)
            .map(|n| named(BootStage::Script, Some(chatty), n))
            .collect();
        store.record_events(&batch).unwrap();
        assert_eq!(
            details(&store.events_for(chatty, 100).unwrap()),
            ["event 55", "event 56", "event 57", "event 58", "event 59"]
        );
        assert_eq!(details(&store.events_for(quiet, 100).unwrap()), ["event 0"]);
        assert_eq!(store.event_count().unwrap(), 6);
        let txn = store.db.begin_read().unwrap();
        assert_eq!(txn.open_table(EVENTS_BY_MAC).unwrap().len().unwrap(), 6);
    }

    /// A flood of requests under invented MACs (and without one) churns only the events of no
    /// machine: every event of a real machine stays.
    #[test]
    fn a_flood_of_nobodys_events_leaves_machines_events_alone() {
        let options = StoreOptions {
            max_events: 100,
            max_unattributed_events: 20,
            ..StoreOptions::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), options).unwrap();
        let mine: Vec<BootEvent> = (0..30)
            .map(|n| named(BootStage::Dhcp, Some(MACS[0]), n))
            .collect();
        store.record_events(&mine).unwrap();
        for n in 0..2_000u64 {
            let invented = MacAddr([0x02, 0xee, 0, 0, (n >> 8) as u8, n as u8]);
            let mac = (n % 4 != 0).then_some(invented);
            store
                .record_events(&[named(BootStage::Script, mac, 100 + n)])
                .unwrap();
        }
        assert_eq!(store.events_for(MACS[0], 100).unwrap(), mine);
        assert_eq!(store.event_count().unwrap(), 30 + 20);
        assert_eq!(unattributed(&store).len(), 20);
        assert_eq!(store.machines().unwrap().len(), 1);
        // The newest of the flood are the ones kept.
        assert_eq!(
            store.recent_events(1).unwrap()[0].detail,
            format!("event {}", 100 + 1_999)
        );
        let txn = store.db.begin_read().unwrap();
        let index_len = txn.open_table(EVENTS_BY_MAC).unwrap().len().unwrap();
        assert_eq!(index_len, 30 + 15, "the flood's kept events with a MAC");
    }

    #[test]
    fn a_corrupt_event_is_reported_with_its_sequence_number() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.record_events(&[event(0)]).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(EVENTS)
            .unwrap()
            .insert(1, b"\xff".as_slice())
            .unwrap();
        txn.commit().unwrap();
        let err = store.recent_events(10).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { table: "events", key, .. } if key == "1"),
            "{err:?}"
        );
        // The ring still trims past it.
        let options = StoreOptions {
            max_events: 1,
            ..StoreOptions::default()
        };
        drop(store);
        let store = Store::open_with(tmp.path(), options).unwrap();
        store.record_events(&[event(2)]).unwrap();
        assert_eq!(store.recent_events(10).unwrap(), vec![event(2)]);
    }
}
