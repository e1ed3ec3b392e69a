//! Schema versions and the steps between them.
//!
//! The `meta` table holds `schema_version`. [`crate::Store::open`] reads it and runs every step
//! from that version up to [`SCHEMA_VERSION`], in order, in ONE write transaction with the new
//! version: a crash mid-migration leaves the old file untouched. A file from a newer flakeboot is
//! refused rather than guessed at.
//!
//! History:
//! - 0: the pre-release layout: `machines`, `events`, `leases`, no `meta` table and no
//!   `events_by_mac` index.
//! - 1: adds `meta` (with `schema_version`) and the `events_by_mac` index.
//! - 2: API tokens carry a scope (`read_only` or `admin`) and an optional expiry; existing
//!   tokens are rewritten as admin tokens that never expire. The bump also keeps an older
//!   flakeboot, which would ignore the scope and treat a read-only token as an admin one, from
//!   opening the file.
//! - 3: every generation carries its pre-flight boot (issue #16); existing generations are
//!   rewritten as `skipped` ("built before pre-flight existed"), so they stay bootable. The
//!   bump keeps an older flakeboot, which would boot a generation whose pre-flight failed, from
//!   opening the file.
//!
//! To change the layout: bump [`SCHEMA_VERSION`], append a step to [`MIGRATIONS`] (the array's
//! length is the schema version, so the compiler insists), and add a test that opens a file of
//! the previous version.

use redb::{ReadTransaction, ReadableTable, TableHandle, WriteTransaction};

use crate::schema::{
    EVENTS, EVENTS_BY_MAC, EventMac, LEASES, MACHINES, META, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
    decode, encode, mac_key,
};
use crate::{API_TOKENS, ApiTokenRecord, GENERATIONS, GenerationRecord, StoreError};

/// One step from schema `from` to `from + 1`, run inside the transaction of the upgrade.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this step starts from.
    pub from: u32,
    /// What the step does, for the log.
    pub description: &'static str,
    /// The step itself.
    pub run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every step, in order: `MIGRATIONS[n]` goes from schema `n` to `n + 1`.
pub const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [
    Migration {
        from: 0,
        description: "add the meta table and index boot events by machine",
        run: v0_to_v1,
    },
    Migration {
        from: 1,
        description: "give API tokens a scope (existing ones: admin) and an expiry (none)",
        run: v1_to_v2,
    },
    Migration {
        from: 2,
        description: "give every generation a pre-flight record (existing ones: skipped)",
        run: v2_to_v3,
    },
];

/// Brings the file up to [`SCHEMA_VERSION`] (or initialises an empty one) in one transaction.
/// Returns the version the file had (`None` for a new file).
pub(crate) fn upgrade(db: &redb::Database) -> Result<Option<u32>, StoreError> {
    let txn = db.begin_write()?;
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let found = if tables.iter().any(|name| name == META.name()) {
        // A meta table without a version is as old as no meta table.
        let meta = txn.open_table(META)?;
        let version = meta.get(SCHEMA_VERSION_KEY)?.map(|v| v.value());
        Some(version.unwrap_or(0))
    } else if tables.is_empty() {
        None
    } else {
        Some(0)
    };
    let from = found.unwrap_or(SCHEMA_VERSION);
    if from > SCHEMA_VERSION {
        txn.abort()?;
        return Err(StoreError::TooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    for step in MIGRATIONS.iter().skip(from as usize) {
        tracing::info!(
            from = step.from,
            to = step.from + 1,
            "migrating the database: {}",
            step.description
        );
        (step.run)(&txn).map_err(|error| StoreError::Migration {
            from: step.from,
            reason: error.to_string(),
        })?;
    }
    create_tables(&txn)?;
    txn.open_table(META)?
        .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
    txn.commit()?;
    Ok(found)
}

/// The schema version of a file that has been through [`upgrade`].
pub(crate) fn read_version(txn: &ReadTransaction) -> Result<u32, StoreError> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(SCHEMA_VERSION_KEY)?.map_or(0, |v| v.value()))
}

/// Creates every table of the current schema that does not exist yet, so that readers never
/// meet a missing table.
fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(MACHINES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENTS_BY_MAC)?;
    txn.open_table(LEASES)?;
    Ok(())
}

/// 0 -> 1: create `meta` (done by the caller) and build `events_by_mac` from `events`.
fn v0_to_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    let events = txn.open_table(EVENTS)?;
    let mut index = txn.open_table(EVENTS_BY_MAC)?;
    for entry in events.iter()? {
        let (seq, value) = entry?;
        let seq = seq.value();
        match serde_json::from_slice::<EventMac>(value.value()) {
            Ok(EventMac { mac: Some(mac) }) => {
                index.insert((mac_key(mac), seq), ())?;
            }
            Ok(EventMac { mac: None }) => {}
            // An unreadable event stays out of the index; reading it reports it as corrupt.
            Err(error) => tracing::warn!(seq, %error, "boot event not indexed: unreadable"),
        }
    }
    Ok(())
}

/// 1 -> 2: rewrite every API token with its scope and expiry spelled out (admin, never), so
/// the file says what each token may do rather than relying on a default.
fn v1_to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(API_TOKENS)?;
    let mut rewritten = Vec::new();
    for entry in table.iter()? {
        let (id, value) = entry?;
        let id = id.value();
        match decode::<ApiTokenRecord>("api_tokens", id, value.value()) {
            Ok(record) => rewritten.push((id, encode("api_tokens", &record)?)),
            // An unreadable token stays as it is; reading it reports it as corrupt.
            Err(error) => tracing::warn!(id, %error, "API token not migrated: unreadable"),
        }
    }
    for (id, bytes) in rewritten {
        table.insert(id, bytes.as_slice())?;
    }
    Ok(())
}

/// 2 -> 3: rewrite every generation with its pre-flight spelled out (`skipped`, built before
/// pre-flight existed), so what the host boots does not change with the upgrade.
fn v2_to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(GENERATIONS)?;
    let mut rewritten = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let (host, number) = key.value();
        match decode::<GenerationRecord>("generations", format!("{host}/{number}"), value.value()) {
            Ok(record) => {
                rewritten.push(((host.to_owned(), number), encode("generations", &record)?))
            }
            // An unreadable generation stays as it is; reading it reports it as corrupt.
            Err(error) => {
                tracing::warn!(host, number, %error, "generation not migrated: unreadable")
            }
        }
    }
    for ((host, number), bytes) in rewritten {
        table.insert((host.as_str(), number), bytes.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    use crate::{DB_FILE, LeaseRecord, LeaseState, MachineRecord, Store};

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    // The version-0 layout, spelled out here as it was, independent of `schema`.
    const V0_MACHINES: TableDefinition<[u8; 6], &[u8]> = TableDefinition::new("machines");
    const V0_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
    const V0_LEASES: TableDefinition<[u8; 4], &[u8]> = TableDefinition::new("leases");

    fn event(n: u64, mac: Option<MacAddr>) -> BootEvent {
        let mut event = BootEvent::new(BootStage::Dhcp, Outcome::Ok, format!("event {n}"));
        event.mac = mac;
        event.at = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n);
        event.firmware = Some(ClientFirmware::BiosPxe);
        event
    }

    /// A version-0 file, written with redb directly: no meta table, no event index.
    fn write_v0(dir: &Path) -> (MachineRecord, Vec<BootEvent>, LeaseRecord) {
        let db = redb::Database::create(dir.join(DB_FILE)).unwrap();
        let mut machine = MachineRecord::new(MAC, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        machine.label = Some("old".into());
        let events = vec![event(0, Some(MAC)), event(1, None), event(2, Some(MAC))];
        let lease = LeaseRecord {
            ip: Ipv4Addr::new(10, 77, 0, 100),
            mac: MAC,
            client_id: None,
            hostname: Some("pc".into()),
            expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            state: LeaseState::Bound,
        };
        let txn = db.begin_write().unwrap();
        {
            let json = serde_json::to_vec(&machine).unwrap();
            txn.open_table(V0_MACHINES)
                .unwrap()
                .insert(MAC.octets(), json.as_slice())
                .unwrap();
            let mut table = txn.open_table(V0_EVENTS).unwrap();
            for (seq, event) in (10u64..).zip(&events) {
                table
                    .insert(seq, serde_json::to_vec(event).unwrap().as_slice())
                    .unwrap();
            }
            table.insert(13, b"garbage".as_slice()).unwrap();
            let json = serde_json::to_vec(&lease).unwrap();
            txn.open_table(V0_LEASES)
                .unwrap()
                .insert(lease.ip.octets(), json.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        (machine, events, lease)
    }

    #[test]
    fn every_step_starts_where_the_previous_one_ended() {
        for (n, step) in MIGRATIONS.iter().enumerate() {
            assert_eq!(step.from as usize, n, "{}", step.description);
        }
        assert_eq!(MIGRATIONS.len() as u32, SCHEMA_VERSION);
    }

    #[test]
    fn a_version_0_file_is_migrated_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let (machine, events, lease) = write_v0(tmp.path());

        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.machines().unwrap(), vec![machine]);
        assert_eq!(store.leases().unwrap(), vec![lease]);
        // The index was built from the old events (the unreadable one is left out).
        assert_eq!(
            store.events_for(MAC, 10).unwrap(),
            vec![events[0].clone(), events[2].clone()]
        );
        // New events continue after the old sequence numbers.
        store.record_events(&[event(3, Some(MAC))]).unwrap();
        let mine = store.events_for(MAC, 10).unwrap();
        assert_eq!(mine.len(), 3);
        assert_eq!(mine[2].detail, "event 3");
        drop(store);

        // Opening again is a no-op: still the current version, index not duplicated.
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.events_for(MAC, 10).unwrap().len(), 3);
    }

    #[test]
    fn version_1_tokens_become_admin_tokens_that_never_expire() {
        let tmp = tempfile::tempdir().unwrap();
        {
            // A version-1 file with one token as schema 1 wrote it (no scope, no expiry) and
            // one unreadable record.
            let db = redb::Database::create(tmp.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_VERSION_KEY, 1)
                .unwrap();
            let v1: TableDefinition<u64, &[u8]> = TableDefinition::new("api_tokens");
            let mut table = txn.open_table(v1).unwrap();
            let old = br#"{"id":1,"name":"ci","token_sha256":"abcd","created":{"secs_since_epoch":1700000000,"nanos_since_epoch":0}}"#;
            table.insert(1, old.as_slice()).unwrap();
            table.insert(2, b"garbage".as_slice()).unwrap();
            drop(table);
            txn.commit().unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        // The unreadable record is still reported, not dropped silently.
        assert!(matches!(
            store.api_tokens(),
            Err(StoreError::Corrupt {
                table: "api_tokens",
                ..
            })
        ));
        assert!(store.remove_api_token(2).unwrap());
        let tokens = store.api_tokens().unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].name, "ci");
        assert_eq!(tokens[0].scope, crate::TokenScope::Admin);
        assert_eq!(tokens[0].expires, None);
        drop(store);
        // The record on disk spells the scope out.
        let db = redb::Database::open(tmp.path().join(DB_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(API_TOKENS).unwrap();
        let raw = String::from_utf8(table.get(1).unwrap().unwrap().value().to_vec()).unwrap();
        assert!(raw.contains(r#""scope":"admin""#), "{raw}");
        assert!(raw.contains(r#""expires":null"#), "{raw}");
    }

    /// A version-2 file's generations (no pre-flight field) become `skipped`: the host keeps
    /// booting its newest, and the record on disk says so.
    #[test]
    fn version_2_generations_become_skipped_and_stay_current() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(tmp.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_VERSION_KEY, 2)
                .unwrap();
            let v2: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("generations");
            let mut table = txn.open_table(v2).unwrap();
            for n in [1u32, 2] {
                let old = format!(
                    r#"{{"host":"lab#a","number":{n},"flake_url":"path:/f","locked_url":"path:/f","revision":null,"kernel":"/k","initrd":"/i","init":"/t/init","store_paths":[],"kernel_params":[],"built_at":{{"secs_since_epoch":1700000000,"nanos_since_epoch":0}},"build_id":{n},"log":"/l","gc_roots":[]}}"#
                );
                table.insert(("lab#a", n), old.as_bytes()).unwrap();
            }
            drop(table);
            txn.commit().unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let all = store.generations("lab#a").unwrap();
        assert_eq!(all.len(), 2);
        for g in &all {
            assert_eq!(g.preflight.state, crate::PreflightState::Skipped);
            assert_eq!(
                g.preflight.reason.as_deref(),
                Some("built before pre-flight existed")
            );
        }
        assert_eq!(
            store.current_generation("lab#a").unwrap().unwrap().number,
            2
        );
        drop(store);
        let db = redb::Database::open(tmp.path().join(DB_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(GENERATIONS).unwrap();
        let raw =
            String::from_utf8(table.get(("lab#a", 1)).unwrap().unwrap().value().to_vec()).unwrap();
        assert!(raw.contains(r#""state":"skipped""#), "{raw}");
    }

    #[test]
    fn a_failed_step_says_which_and_leaves_the_file_alone() {
        let tmp = tempfile::tempdir().unwrap();
        {
            // Not a version-0 layout: `events` keyed by strings.
            let db = redb::Database::create(tmp.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            let odd: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
            txn.open_table(odd)
                .unwrap()
                .insert("x", b"{}".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { from: 0, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("cannot migrate the database from schema 0 to 1: "),
            "{err}"
        );
        let db = redb::Database::open(tmp.path().join(DB_FILE)).unwrap();
        let names: Vec<String> = db
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert_eq!(names, ["events"]);
    }

    #[test]
    fn an_empty_file_is_a_new_store_not_a_version_0_one() {
        let tmp = tempfile::tempdir().unwrap();
        let db = redb::Database::create(tmp.path().join(DB_FILE)).unwrap();
        drop(db);
        let found = upgrade(&redb::Database::open(tmp.path().join(DB_FILE)).unwrap()).unwrap();
        assert_eq!(found, None);
        let found = upgrade(&redb::Database::open(tmp.path().join(DB_FILE)).unwrap()).unwrap();
        assert_eq!(found, Some(SCHEMA_VERSION));
    }

    #[test]
    fn a_file_from_a_newer_flakeboot_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(tmp.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_VERSION_KEY, 7)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooNew {
                    found: 7,
                    known: SCHEMA_VERSION
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("created by a newer flakeboot (schema 7); this build knows up to 3"),
            "{err}"
        );
        // Nothing was written: no table of ours was created.
        let db = redb::Database::open(tmp.path().join(DB_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        assert_eq!(txn.list_tables().unwrap().count(), 1);
        assert_eq!(txn.open_table(META).unwrap().len().unwrap(), 1);
    }
}
