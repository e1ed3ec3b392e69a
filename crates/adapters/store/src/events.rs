//! Boot events: a bounded ring of the newest events, indexed by machine.

use flakeboot_catalogue::{BootEvent, MacAddr};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

use crate::schema::{EVENTS, EVENTS_BY_MAC, EventMac, MACHINES, MacKey, decode, encode, mac_key};
use crate::{Store, StoreError, machines};

const TABLE: &str = "events";

impl Store {
    /// Appends boot events and updates the machine of each event that has a MAC (first/last
    /// seen, firmware, vendor class), in ONE write transaction. Only the newest `max_events`
    /// events are kept: the oldest are dropped first.
    pub fn record_events(&self, events: &[BootEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(EVENTS)?;
            let mut index = txn.open_table(EVENTS_BY_MAC)?;
            let mut machines = txn.open_table(MACHINES)?;
            let mut seq = match table.last()? {
                Some((key, _)) => key.value().saturating_add(1),
                None => 0,
            };
            for event in events {
                let bytes = encode(TABLE, event)?;
                table.insert(seq, bytes.as_slice())?;
                if let Some(mac) = event.mac {
                    index.insert((mac_key(mac), seq), ())?;
                    machines::observe(&mut machines, mac, event)?;
                }
                seq = seq.saturating_add(1);
            }
            trim(&mut table, &mut index, self.max_events)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The newest `limit` events of one machine, newest last.
    pub fn events_for(&self, mac: MacAddr, limit: usize) -> Result<Vec<BootEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let index = txn.open_table(EVENTS_BY_MAC)?;
        let mac = mac_key(mac);
        let mut out = Vec::new();
        for entry in index.range((mac, 0)..=(mac, u64::MAX))?.rev().take(limit) {
            let (_, seq) = entry?.0.value();
            if let Some(value) = table.get(seq)? {
                out.push(decode(TABLE, seq, value.value())?);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` events of all machines, newest last.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<BootEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (seq, value) = entry?;
            out.push(decode(TABLE, seq.value(), value.value())?);
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

/// Drops the oldest events (and their index entries) until at most `max` remain.
fn trim(
    table: &mut Table<u64, &[u8]>,
    index: &mut Table<(MacKey, u64), ()>,
    max: usize,
) -> Result<(), StoreError> {
    let max = u64::try_from(max).unwrap_or(u64::MAX);
    while table.len()? > max {
        let Some((seq, mac)) = table.pop_first()?.map(|(key, value)| {
            let mac = serde_json::from_slice::<EventMac>(value.value())
                .ok()
                .and_then(|e| e.mac);
            (key.value(), mac)
        }) else {
            break;
        };
        if let Some(mac) = mac {
            index.remove((mac_key(mac), seq))?;
        }
    }
    Ok(())
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

    /// Event number `n`: its detail and time say which it is; machine `n % 3`.
    fn event(n: u64) -> BootEvent {
        let mac = MACS[(n % 3) as usize];
        let mut event = BootEvent::new(BootStage::Tftp, Outcome::Ok, format!("event {n}"))
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
        let store = Store::open(tmp.path()).unwrap();
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
