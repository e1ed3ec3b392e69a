//! Machines by MAC: when they were first and last seen, what firmware they run, and what the
//! user assigned them (a host to boot, a label).

use std::time::SystemTime;

use flakeboot_catalogue::{BootEvent, ClientFirmware, MacAddr};
use redb::{ReadableDatabase, ReadableTable, Table};
use serde::{Deserialize, Serialize};

use crate::schema::{MACHINES, MacKey, decode, encode, mac_key};
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

/// Creates or updates the machine of `event` (which has `mac`), inside a write transaction.
///
/// An unreadable record is replaced by a fresh one (and logged): one bad record must not stop
/// every later boot event from being recorded.
pub(crate) fn observe(
    table: &mut Table<MacKey, &[u8]>,
    mac: MacAddr,
    event: &BootEvent,
) -> Result<(), StoreError> {
    let existing = match get(table, mac) {
        Err(StoreError::Corrupt { source, .. }) => {
            tracing::warn!(%mac, error = %source, "unreadable machine record replaced");
            None
        }
        other => other?,
    };
    let mut record = existing.unwrap_or_else(|| MachineRecord::new(mac, event.at));
    record.observe(event);
    put(table, &record)
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

    /// Forgets a machine (its boot events stay until they age out). Returns whether it existed.
    pub fn delete_machine(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(MACHINES)?.remove(mac_key(mac))?.is_some();
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
        assert!(store.delete_machine(other).unwrap());
        assert!(!store.delete_machine(other).unwrap());
        assert_eq!(store.machines().unwrap().len(), 1);
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
