//! Machines by MAC: when they were first and last seen, what firmware they run, and what the
//! user assigned them (a host to boot, a label).
//!
//! A record is created by a DHCP exchange (the MAC seen on the wire) or by the user (assigning
//! or labelling a MAC), never by a request that merely names a MAC. The records are capped
//! (`StoreOptions::max_machines`): at the cap, the least recently seen machine nobody
//! configured is forgotten.

use std::collections::HashSet;
use std::collections::hash_map::{Entry, HashMap};
use std::time::SystemTime;

use flakeboot_catalogue::{BootEvent, ClientFirmware, MacAddr};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::events::EventTables;
use crate::schema::{MACHINES, MacKey, decode, encode, mac_key};
use crate::settings::MACHINE_OPTIONS;
use crate::{Store, StoreError};

const TABLE: &str = "machines";

/// What flakeboot knows about one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// The machine's MAC address (its identity).
    pub mac: MacAddr,
    /// The earliest boot event of the machine (or when it was first assigned, if never seen).
    pub first_seen: SystemTime,
    /// The latest boot event of the machine.
    pub last_seen: SystemTime,
    /// The firmware of its most recent event that told one.
    pub firmware: Option<ClientFirmware>,
    /// The DHCP vendor class (option 60) of its most recent event that carried one.
    pub vendor_class: Option<String>,
    /// The host (a `[[hosts]]` name) the machine boots, when assigned.
    pub host: Option<String>,
    /// A free-form name the user gave the machine.
    pub label: Option<String>,
}

impl MachineRecord {
    /// A machine never seen before, known since `at`.
    pub fn new(mac: MacAddr, at: SystemTime) -> Self {
        MachineRecord {
            mac,
            first_seen: at,
            last_seen: at,
            firmware: None,
            vendor_class: None,
            host: None,
            label: None,
        }
    }

    /// Folds one boot event of this machine into the record. Events may arrive out of order:
    /// the seen times widen, and firmware and vendor class come from the newest event so far.
    pub fn observe(&mut self, event: &BootEvent) {
        let newest = event.at >= self.last_seen;
        self.first_seen = self.first_seen.min(event.at);
        self.last_seen = self.last_seen.max(event.at);
        if event.firmware.is_some() && (newest || self.firmware.is_none()) {
            self.firmware = event.firmware;
        }
        if event.vendor_class.is_some() && (newest || self.vendor_class.is_none()) {
            self.vendor_class.clone_from(&event.vendor_class);
        }
    }
}

/// Reads one machine from an open table.
fn get<T: ReadableTable<MacKey, &'static [u8]>>(
    table: &T,
    mac: MacAddr,
) -> Result<Option<MachineRecord>, StoreError> {
    match table.get(mac_key(mac))? {
        Some(value) => Ok(Some(decode(TABLE, mac, value.value())?)),
        None => Ok(None),
    }
}

/// Writes one machine into an open table.
fn put(table: &mut Table<MacKey, &[u8]>, record: &MachineRecord) -> Result<(), StoreError> {
    let bytes = encode(TABLE, record)?;
    table.insert(mac_key(record.mac), bytes.as_slice())?;
    Ok(())
}

/// The machine records one batch of boot events touches: each read at most once and written
/// once at the end ([`Touched::write`]), however many of the batch's events it has.
///
/// An unreadable record is replaced by a fresh one (and logged): one bad record must not stop
/// every later boot event from being recorded.
#[derive(Default)]
pub(crate) struct Touched {
    /// `None`: the MAC has no record.
    records: HashMap<MacAddr, Option<MachineRecord>>,
}

impl Touched {
    /// A record [`admit`] just made (not yet in the table).
    fn made(&mut self, record: MachineRecord) {
        self.records.insert(record.mac, Some(record));
    }

    /// The record of `mac`, read from `table` the first time (`at`: since when a replaced
    /// unreadable record knows the machine).
    fn record(
        &mut self,
        table: &Table<MacKey, &[u8]>,
        mac: MacAddr,
        at: SystemTime,
    ) -> Result<Option<&mut MachineRecord>, StoreError> {
        let slot = match self.records.entry(mac) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => slot.insert(match get(table, mac) {
                Err(StoreError::Corrupt { source, .. }) => {
                    tracing::warn!(%mac, error = %source, "unreadable machine record replaced");
                    Some(MachineRecord::new(mac, at))
                }
                other => other?,
            }),
        };
        Ok(slot.as_mut())
    }

    /// Whether `mac` has a record.
    pub(crate) fn known(
        &mut self,
        table: &Table<MacKey, &[u8]>,
        mac: MacAddr,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        Ok(self.record(table, mac, at)?.is_some())
    }

    /// Folds `event` (which has `mac`) into the machine's record if it has one; whether it had.
    pub(crate) fn observe(
        &mut self,
        table: &Table<MacKey, &[u8]>,
        mac: MacAddr,
        event: &BootEvent,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.record(table, mac, event.at)? else {
            return Ok(false);
        };
        record.observe(event);
        Ok(true)
    }

    /// Writes every record read or made (each was observed, or replaced an unreadable one).
    pub(crate) fn write(self, table: &mut Table<MacKey, &[u8]>) -> Result<(), StoreError> {
        for record in self.records.into_values().flatten() {
            put(table, &record)?;
        }
        Ok(())
    }
}

/// Whether a boot event shows its MAC on the wire in a DHCP packet from that client: only
/// these create machine records (an HTTP `?mac=`, a TFTP request or a report can name any MAC).
fn seen_in_dhcp(event: &BootEvent) -> bool {
    event.stage.mac_from_wire()
}

/// What [`admit`] decided for a batch's new MACs.
pub(crate) struct Admitted {
    /// Records made (in [`Touched`], for the caller to write).
    pub(crate) made: usize,
    /// New MACs past the caller's `max_new`: no record, and their events are not kept.
    pub(crate) refused: HashSet<MacAddr>,
}

/// A record (in `records`) for each MAC that `events` show in DHCP and that has none yet, the
/// first `max_new` of them (in the order the batch shows them; the rest are refused). Each MAC
/// is looked up once, by `records`, which keeps what it read for the batch's events. At
/// `max_machines`, the least recently seen machines that nobody configured are forgotten (with
/// their events) to make room ([`crate::eviction::Evictions`]); when there are none, the new
/// MAC gets no record (its events are kept as events of no machine) and that is logged.
pub(crate) fn admit(
    txn: &WriteTransaction,
    machines: &mut Table<MacKey, &[u8]>,
    tables: &mut EventTables<'_>,
    events: &[BootEvent],
    store: &Store,
    max_new: usize,
    records: &mut Touched,
) -> Result<Admitted, StoreError> {
    let (limits, evictions) = (&store.limits, &store.evictions);
    let mut new: Vec<(MacAddr, SystemTime)> = Vec::new();
    for event in events.iter().filter(|e| seen_in_dhcp(e)) {
        let Some(mac) = event.mac.filter(MacAddr::is_station) else {
            continue;
        };
        if let Some(entry) = new.iter_mut().find(|(m, _)| *m == mac) {
            entry.1 = entry.1.min(event.at);
        } else if !records.known(machines, mac, event.at)? {
            new.push((mac, event.at));
        }
    }
    let refused = new
        .split_off(max_new.min(new.len()))
        .into_iter()
        .map(|(mac, _)| mac)
        .collect();
    if new.is_empty() {
        return Ok(Admitted { made: 0, refused });
    }
    let count = usize::try_from(machines.len()?).unwrap_or(usize::MAX);
    let room = limits.max_machines.saturating_sub(count);
    let mut admitted = room.min(new.len());
    if new.len() > room {
        let in_batch: HashSet<MacAddr> = events.iter().filter_map(|e| e.mac).collect();
        // Past the cap (a lowered max_machines) evict down to it as well.
        let over = count.saturating_sub(limits.max_machines);
        let wanted = new.len() - room + over;
        let evict = evictions.choose(txn, machines, limits, &in_batch, wanted)?;
        for &mac in &evict {
            machines.remove(mac_key(mac))?;
            tables.remove_machine(mac)?;
        }
        crate::logs::remove_machines(txn, &evict)?;
        admitted = (room + evict.len()).saturating_sub(over).min(new.len());
        if admitted < new.len() {
            tracing::warn!(
                refused = new.len() - admitted,
                max_machines = limits.max_machines,
                "machine records at their cap and every one is configured: new MACs get no record"
            );
        }
    }
    for (mac, at) in new.into_iter().take(admitted) {
        records.made(MachineRecord::new(mac, at));
    }
    Ok(Admitted {
        made: admitted,
        refused,
    })
}

impl Store {
    /// The machine with this MAC, if it was ever seen or assigned.
    pub fn machine(&self, mac: MacAddr) -> Result<Option<MachineRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        get(&txn.open_table(MACHINES)?, mac)
    }

    /// Every machine, ordered by MAC.
    pub fn machines(&self) -> Result<Vec<MachineRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MACHINES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let mac = MacAddr(key.value());
            out.push(decode(TABLE, mac, value.value())?);
        }
        Ok(out)
    }

    /// Assigns the machine to a host (`None`: unassign). Creates the machine if unseen.
    pub fn set_machine_host(&self, mac: MacAddr, host: Option<String>) -> Result<(), StoreError> {
        self.update_machine(mac, |record| record.host = host)
    }

    /// Names the machine (`None`: remove the label). Creates the machine if unseen.
    pub fn set_machine_label(&self, mac: MacAddr, label: Option<String>) -> Result<(), StoreError> {
        self.update_machine(mac, |record| record.label = label)
    }

    /// Forgets a machine in one transaction: its record, its boot options and its boot events
    /// (as eviction does). Returns whether it had a record. Its next DHCP exchange makes it anew.
    pub fn delete_machine(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = {
            let existed = txn.open_table(MACHINES)?.remove(mac_key(mac))?.is_some();
            txn.open_table(MACHINE_OPTIONS)?.remove(mac_key(mac))?;
            EventTables::open(&txn)?.remove_machine(mac)?;
            crate::logs::remove_machines(&txn, &[mac])?;
            existed
        };
        txn.commit()?;
        Ok(existed)
    }

    /// Read-modify-write of one machine in one transaction; an unseen machine is created as
    /// known since now.
    fn update_machine(
        &self,
        mac: MacAddr,
        change: impl FnOnce(&mut MachineRecord),
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MACHINES)?;
            let mut record =
                get(&table, mac)?.unwrap_or_else(|| MachineRecord::new(mac, SystemTime::now()));
            change(&mut record);
            put(&mut table, &record)?;
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    use flakeboot_catalogue::{BootStage, Outcome};

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn event(secs: u64, firmware: Option<ClientFirmware>, vendor: Option<&str>) -> BootEvent {
        let mut event = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "test").mac(MAC);
        event.at = at(secs);
        event.firmware = firmware;
        event.vendor_class = vendor.map(str::to_owned);
        event
    }

    #[test]
    fn observe_widens_seen_times_and_keeps_the_newest_firmware() {
        let mut record = MachineRecord::new(MAC, at(10));
        record.observe(&event(
            10,
            Some(ClientFirmware::BiosPxe),
            Some("PXEClient:Arch:00000"),
        ));
        record.observe(&event(20, Some(ClientFirmware::IpxeBios), None));
        // An older event arriving late: widens first_seen, does not override newer facts.
        record.observe(&event(5, Some(ClientFirmware::UefiX64Pxe), Some("old")));
        // A newer event without firmware keeps what is known.
        record.observe(&event(30, None, None));
        assert_eq!(record.first_seen, at(5));
        assert_eq!(record.last_seen, at(30));
        assert_eq!(record.firmware, Some(ClientFirmware::IpxeBios));
        assert_eq!(record.vendor_class.as_deref(), Some("PXEClient:Arch:00000"));
    }

    #[test]
    fn host_and_label_create_an_unseen_machine_and_survive_events() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.machine(MAC).unwrap(), None);

        let before = SystemTime::now();
        store.set_machine_host(MAC, Some("demo".into())).unwrap();
        let created = store.machine(MAC).unwrap().unwrap();
        assert_eq!(created.host.as_deref(), Some("demo"));
        assert!(created.first_seen >= before && created.first_seen == created.last_seen);
        assert_eq!(created.firmware, None);

        store.set_machine_label(MAC, Some("rack 3".into())).unwrap();
        store
            .record_events(&[event(
                0,
                Some(ClientFirmware::UefiX64Pxe),
                Some("PXEClient"),
            )])
            .unwrap();
        let seen = store.machine(MAC).unwrap().unwrap();
        assert_eq!(seen.host.as_deref(), Some("demo"));
        assert_eq!(seen.label.as_deref(), Some("rack 3"));
        assert_eq!(seen.firmware, Some(ClientFirmware::UefiX64Pxe));
        assert_eq!(seen.vendor_class.as_deref(), Some("PXEClient"));
        assert_eq!(seen.first_seen, at(0));

        store.set_machine_host(MAC, None).unwrap();
        store.set_machine_label(MAC, None).unwrap();
        let cleared = store.machine(MAC).unwrap().unwrap();
        assert_eq!((cleared.host, cleared.label), (None, None));
        assert_eq!(cleared.firmware, Some(ClientFirmware::UefiX64Pxe));
    }

    #[test]
    fn machines_lists_by_mac_and_delete_forgets() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let other = MacAddr([0x02, 0, 0, 0, 0, 1]);
        store.set_machine_label(MAC, Some("b".into())).unwrap();
        store.set_machine_label(other, Some("a".into())).unwrap();
        let macs: Vec<MacAddr> = store.machines().unwrap().iter().map(|m| m.mac).collect();
        assert_eq!(macs, vec![other, MAC]);
        let options = crate::MachineOptions {
            hostname: Some("node1".into()),
            ..crate::MachineOptions::default()
        };
        store.set_machine_options(other, &options).unwrap();
        store
            .record_events(&[seen(other, 5), seen(MAC, 6)])
            .unwrap();
        assert!(store.delete_machine(other).unwrap());
        assert!(!store.delete_machine(other).unwrap());
        assert_eq!(store.machines().unwrap().len(), 1);
        // Its boot options and events went with it; the other machine's stay.
        assert!(store.machine_options(other).unwrap().is_empty());
        assert!(store.events_for(other, 10).unwrap().is_empty());
        assert_eq!(store.events_for(MAC, 10).unwrap().len(), 1);
    }

    fn seen(mac: MacAddr, secs: u64) -> BootEvent {
        let mut event = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "offer").mac(mac);
        event.at = at(secs);
        event
    }

    fn macs(store: &Store) -> Vec<u8> {
        let mut last: Vec<u8> = store
            .machines()
            .unwrap()
            .iter()
            .map(|m| m.mac.0[5])
            .collect();
        last.sort_unstable();
        last
    }

    /// At the cap, a new MAC seen in DHCP makes room by forgetting the least recently seen
    /// machine nobody configured, with its events; configured machines are never forgotten.
    #[test]
    fn at_the_cap_the_least_recently_seen_unconfigured_machine_makes_room() {
        use crate::{ApplianceSettings, MachineOptions, ReservationSetting, StoreOptions};
        let m = |n: u8| MacAddr([0x52, 0x54, 0, 0, 0, n]);
        let options = StoreOptions {
            max_machines: 7,
            pinned_machines: vec![m(5)],
            ..StoreOptions::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), options).unwrap();
        // 1 and 2 are merely seen (1 longest ago); 3 has a host, 4 a label, 5 is in the config
        // file, 6 has boot options, 7 a reservation.
        store
            .record_events(&[seen(m(2), 20), seen(m(1), 10), seen(m(5), 1)])
            .unwrap();
        store.set_machine_host(m(3), Some("demo".into())).unwrap();
        store.set_machine_label(m(4), Some("rack".into())).unwrap();
        store
            .record_events(&[seen(m(6), 2), seen(m(7), 3)])
            .unwrap();
        store
            .set_machine_options(
                m(6),
                &MachineOptions {
                    hostname: Some("six".into()),
                    ..MachineOptions::default()
                },
            )
            .unwrap();
        store
            .put_appliance_settings(&ApplianceSettings {
                reservations: vec![ReservationSetting {
                    mac: m(7),
                    address: std::net::Ipv4Addr::new(10, 0, 0, 7),
                    hostname: None,
                }],
                ..ApplianceSettings::default()
            })
            .unwrap();
        assert_eq!(macs(&store), [1, 2, 3, 4, 5, 6, 7]);

        // 8 arrives: 1, seen longest ago, goes, with its events.
        store.record_events(&[seen(m(8), 30)]).unwrap();
        assert_eq!(macs(&store), [2, 3, 4, 5, 6, 7, 8]);
        assert!(store.events_for(m(1), 10).unwrap().is_empty());
        assert_eq!(store.events_for(m(2), 10).unwrap().len(), 1);
        // 9, 10 and 11 in one batch: only 2 and 8 may go, so 11 gets no record (its event is
        // kept as nobody's).
        store
            .record_events(&[seen(m(9), 40), seen(m(10), 41), seen(m(11), 42)])
            .unwrap();
        assert_eq!(macs(&store), [3, 4, 5, 6, 7, 9, 10]);
        assert!(store.events_for(m(8), 10).unwrap().is_empty());
        assert_eq!(store.events_for(m(11), 10).unwrap().len(), 1);
        // Everything left is configured but 9 and 10, which are in this batch: 12 gets none.
        store
            .record_events(&[seen(m(9), 50), seen(m(10), 51), seen(m(12), 52)])
            .unwrap();
        assert_eq!(macs(&store), [3, 4, 5, 6, 7, 9, 10]);
        // A machine with a record is never refused by its own event.
        store.record_events(&[seen(m(3), 60)]).unwrap();
        assert_eq!(store.machine(m(3)).unwrap().unwrap().first_seen, at(60));
        assert_eq!(macs(&store), [3, 4, 5, 6, 7, 9, 10]);
    }

    /// At the cap, one pass over the records lists every evictable machine, and the evictions
    /// after it take that list in order: a cap's worth of new machines, one batch each, costs
    /// one pass, the store stays at its cap, and the least recently seen go first. A listed
    /// machine seen, labelled or given boot options since the pass is skipped, not forgotten.
    #[test]
    fn one_pass_serves_the_evictions_after_it_in_order() {
        use crate::{MachineOptions, StoreOptions};
        let m = |n: u16| MacAddr([0x52, 0x54, 0, 0, (n >> 8) as u8, n as u8]);
        let options = StoreOptions {
            max_machines: 640,
            ..StoreOptions::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), options).unwrap();
        let first: Vec<BootEvent> = (0..640).map(|n| seen(m(n), u64::from(n))).collect();
        store.record_events(&first).unwrap();
        assert_eq!(store.evictions.passes(), 0, "below the cap: no pass");

        // 1000 arrives: one pass, and 0 (seen longest ago) makes room for it alone.
        store.record_events(&[seen(m(1000), 2000)]).unwrap();
        assert_eq!(store.evictions.passes(), 1);
        let left: Vec<MacAddr> = store.machines().unwrap().iter().map(|r| r.mac).collect();
        assert_eq!(left.len(), 640);
        assert!(!left.contains(&m(0)) && left.contains(&m(1000)));

        // Since the pass: 1 is seen again, 2 labelled, 3 given boot options.
        store.record_events(&[seen(m(1), 2001)]).unwrap();
        store.set_machine_label(m(2), Some("rack".into())).unwrap();
        store
            .set_machine_options(
                m(3),
                &MachineOptions {
                    hostname: Some("three".into()),
                    ..MachineOptions::default()
                },
            )
            .unwrap();
        // 600 new machines, one batch each: the list serves them all, no second pass.
        for n in 0..600 {
            store
                .record_events(&[seen(m(1001 + n), 3000 + u64::from(n))])
                .unwrap();
        }
        assert_eq!(store.evictions.passes(), 1, "one pass for 601 evictions");
        let left: Vec<MacAddr> = store.machines().unwrap().iter().map(|r| r.mac).collect();
        assert_eq!(left.len(), 640);
        // 1, 2 and 3 were skipped; 4..=603 went, oldest first; 604.. stayed.
        assert!([1, 2, 3].iter().all(|&n| left.contains(&m(n))), "{left:?}");
        assert!((4..=603).all(|n| !left.contains(&m(n))));
        assert!((604..640).all(|n| left.contains(&m(n))));
        assert!((1000..1601).all(|n| left.contains(&m(n))));
        assert!(store.events_for(m(4), 10).unwrap().is_empty());

        // The list runs out after 639: the 37th needs a second pass, whose least recently seen
        // is 1000 (seen at 2000; 1 at 2001).
        for n in 0..37 {
            store
                .record_events(&[seen(m(2000 + n), 5000 + u64::from(n))])
                .unwrap();
        }
        assert_eq!(store.evictions.passes(), 2);
        let left: Vec<MacAddr> = store.machines().unwrap().iter().map(|r| r.mac).collect();
        assert!((604..640).all(|n| !left.contains(&m(n))));
        assert!(!left.contains(&m(1000)) && left.contains(&m(1)));
        assert_eq!(left.len(), 640);
    }

    #[test]
    fn a_lowered_cap_is_reached_by_the_next_new_machine() {
        use crate::StoreOptions;
        let m = |n: u8| MacAddr([0x52, 0x54, 0, 0, 0, n]);
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            let events: Vec<BootEvent> = (1..=10).map(|n| seen(m(n), u64::from(n))).collect();
            store.record_events(&events).unwrap();
        }
        let options = StoreOptions {
            max_machines: 4,
            ..StoreOptions::default()
        };
        let store = Store::open_with(tmp.path(), options).unwrap();
        store.record_events(&[seen(m(11), 11)]).unwrap();
        assert_eq!(macs(&store), [8, 9, 10, 11]);
    }

    #[test]
    fn a_corrupt_machine_is_reported_with_its_mac_and_replaced_by_the_next_event() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(MACHINES)
            .unwrap()
            .insert(MAC.octets(), b"[]".as_slice())
            .unwrap();
        txn.commit().unwrap();
        let err = store.machine(MAC).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { table: "machines", key, .. } if key == "52:54:00:12:34:56"),
            "{err:?}"
        );
        assert!(matches!(store.machines(), Err(StoreError::Corrupt { .. })));

        // A boot event of that machine replaces the unreadable record instead of failing.
        store
            .record_events(&[event(7, Some(ClientFirmware::BiosPxe), None)])
            .unwrap();
        let fresh = store.machine(MAC).unwrap().unwrap();
        assert_eq!((fresh.first_seen, fresh.last_seen), (at(7), at(7)));
        assert_eq!(fresh.firmware, Some(ClientFirmware::BiosPxe));
    }
}
