//! The tables of `flakeboot.redb` and how keys are laid out.
//!
//! Keys are fixed-width bytes so the file can be read with any redb tool; values are JSON
//! (`serde_json`) so a record can be inspected by eye. Changing a key layout or a value's meaning
//! needs a new schema version and a step in [`crate::migrations`].

use std::net::Ipv4Addr;

use flakeboot_catalogue::MacAddr;
use redb::TableDefinition;

/// The schema this build writes. `open` migrates older files up to it and refuses newer ones.
pub const SCHEMA_VERSION: u32 = 3;

/// Key of the schema version in [`META`].
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Named settings of the file itself: `schema_version` -> u32. Its key and value types never
/// change, so that every flakeboot can read the version of any file.
pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");

/// Machines by MAC (6 bytes) -> JSON [`crate::MachineRecord`].
pub const MACHINES: TableDefinition<MacKey, &[u8]> = TableDefinition::new("machines");

/// Boot events by sequence number (oldest first) -> JSON [`flakeboot_catalogue::BootEvent`].
/// A bounded ring: the lowest sequence numbers are dropped first.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// Index of [`EVENTS`] by machine: (MAC, sequence number) -> (). Added in schema 1.
pub const EVENTS_BY_MAC: TableDefinition<(MacKey, u64), ()> = TableDefinition::new("events_by_mac");

/// The events that belong to no machine record, by sequence number -> (): events without a MAC
/// and events of a MAC that no DHCP exchange made a machine (a `?mac=` nobody saw on the wire).
/// They share one small budget, so a flood of them cannot push machines' events out of
/// [`EVENTS`]. Created by its first write (schema 2 files without it read as empty).
pub const EVENTS_UNATTRIBUTED: TableDefinition<u64, ()> =
    TableDefinition::new("events_unattributed");

/// The machines' log lines by (MAC, sequence number) -> JSON [`crate::LogRecord`]. Created by
/// its first write (files without it read as empty): no schema change.
pub const LOGS: TableDefinition<(MacKey, u64), &[u8]> = TableDefinition::new("logs");

/// The order of [`LOGS`] across machines: sequence number -> MAC, so the oldest line of anyone
/// is dropped first past the total bound.
pub const LOGS_ORDER: TableDefinition<u64, MacKey> = TableDefinition::new("logs_order");

/// DHCP leases by IPv4 address (4 bytes, network order, so keys sort like addresses) -> JSON
/// [`crate::LeaseRecord`].
pub const LEASES: TableDefinition<IpKey, &[u8]> = TableDefinition::new("leases");

/// The lease journal's marks (`crate::lease_log`): `id` -> the id of the journal this database
/// belongs to, `applied` -> the sequence number of the last journal record in [`LEASES`].
/// Created by its first write (older files read as having no journal): no schema change.
pub const LEASE_JOURNAL: TableDefinition<&str, u64> = TableDefinition::new("lease_journal");

/// A MAC address as a table key.
pub type MacKey = [u8; 6];

/// An IPv4 address as a table key.
pub type IpKey = [u8; 4];

/// The key of a machine.
pub fn mac_key(mac: MacAddr) -> MacKey {
    mac.octets()
}

/// The key of a lease.
pub fn ip_key(ip: Ipv4Addr) -> IpKey {
    ip.octets()
}

/// Just the MAC of a stored boot event: enough to find its index entry without decoding the
/// rest (unknown fields are ignored).
#[derive(serde::Deserialize)]
pub(crate) struct EventMac {
    pub(crate) mac: Option<MacAddr>,
}

/// Encodes a record as JSON for `table`.
pub(crate) fn encode<T: serde::Serialize>(
    table: &'static str,
    value: &T,
) -> Result<Vec<u8>, crate::StoreError> {
    serde_json::to_vec(value).map_err(|source| crate::StoreError::Encode { table, source })
}

/// Decodes a JSON record of `table` stored under `key` (shown in the error).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, crate::StoreError> {
    serde_json::from_slice(bytes).map_err(|source| crate::StoreError::Corrupt {
        table,
        key: key.to_string(),
        source,
    })
}

/// Opens a table for reading; `Ok(None)` when no write has created it yet (tables added after
/// schema 1 are created by their first write, so a missing one reads as empty).
pub(crate) fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, crate::StoreError> {
    match txn.open_table(def) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
