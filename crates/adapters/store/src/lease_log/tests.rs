use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};

use flakeboot_catalogue::MacAddr;
use flakeboot_dhcp::LeaseStore;

use super::journal::{JOURNAL_FILE, Journal};
use super::{Op, Ops};
use crate::schema::{encode, ip_key};
use crate::{LeaseRecord, LeaseState, Store};

fn lease(n: u8) -> LeaseRecord {
    LeaseRecord {
        ip: Ipv4Addr::new(10, 9, 0, n),
        mac: MacAddr([0x52, 0x54, 0, 0, 9, n]),
        client_id: None,
        hostname: Some(format!("h{n}")),
        expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + u64::from(n)),
        state: LeaseState::Bound,
    }
}

fn put(n: u8) -> Op {
    Op::Put(ip_key(lease(n).ip), encode("leases", &lease(n)).unwrap())
}

fn ips(store: &Store) -> Vec<u8> {
    store
        .leases()
        .unwrap()
        .iter()
        .map(|l| l.ip.octets()[3])
        .collect()
}

#[test]
fn the_dhcp_servers_commits_read_back_at_once_and_after_a_clean_close_the_journal_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for n in 1..=50 {
        LeaseStore::commit(&store, &[lease(n).into()], &[]).unwrap();
    }
    LeaseStore::commit(&store, &[lease(51).into()], &[lease(7).ip]).unwrap();
    // A reader waits for what was logged before it.
    assert_eq!(ips(&store).len(), 50);
    assert!(!ips(&store).contains(&7));
    drop(store);
    let (_, records) = Journal::open(&dir.path().join(JOURNAL_FILE))
        .unwrap()
        .unwrap();
    assert!(records.is_empty(), "a clean close checkpoints: {records:?}");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ips(&store).len(), 50);
    assert_eq!(store.lease(lease(51).ip).unwrap(), Some(lease(51)));
}

/// What a crash leaves: records in the journal after the database's mark. (The SIGKILL test in
/// tests/crash.rs makes the same happen for real.)
#[test]
fn records_after_the_databases_mark_are_applied_at_open_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_leases(&[lease(1), lease(2)]).unwrap();
    drop(store);
    let path = dir.path().join(JOURNAL_FILE);
    let (mut journal, _) = Journal::open(&path).unwrap().unwrap();
    journal.append(&Ops(vec![put(3), put(4)]).encode()).unwrap();
    journal
        .append(&Ops(vec![Op::Delete(ip_key(lease(1).ip)), put(5)]).encode())
        .unwrap();
    drop(journal);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ips(&store), [2, 3, 4, 5]);
    // Applied once: a second open has nothing to apply (a lease put back by hand stays).
    store.put_leases(&[lease(1)]).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ips(&store), [1, 2, 3, 4, 5]);
}

#[test]
fn a_journal_of_another_database_or_with_a_gap_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    // A journal left by another database (say, the state directory restored over it).
    let mut foreign = Journal::create(&path, 42, 1).unwrap();
    foreign.append(&Ops(vec![put(9)]).encode()).unwrap();
    drop(foreign);
    let store = Store::open(dir.path()).unwrap();
    assert!(ips(&store).is_empty());
    store.put_leases(&[lease(1)]).unwrap();
    drop(store);
    // This database's journal, but its records start after a gap.
    let (journal, _) = Journal::open(&path).unwrap().unwrap();
    let id = journal.id;
    let next = journal.next_seq;
    drop(journal);
    let mut gapped = Journal::create(&path, id, next + 5).unwrap();
    gapped.append(&Ops(vec![put(8)]).encode()).unwrap();
    drop(gapped);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ips(&store), [1]);
}

#[test]
fn a_snapshot_holds_the_leases_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for n in 1..=20 {
        LeaseStore::commit(&store, &[lease(n).into()], &[]).unwrap();
    }
    let mut copy = Vec::new();
    store.snapshot(&mut copy).unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(crate::DB_FILE), &copy).unwrap();
    let restored = Store::open(other.path()).unwrap();
    assert_eq!(ips(&restored).len(), 20);
}

#[test]
fn the_halves_take_turns_and_the_changes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Batches of 16 leases, about 4 KB a record: 2,000 fill each 2 MiB half twice.
    let commits = 2_000u32;
    for round in 0..commits {
        let batch: Vec<flakeboot_dhcp::Lease> = (0..16u32)
            .map(|k| {
                let n = ((round * 16 + k) % 250) as u8 + 1;
                let mut l = lease(n);
                l.expires += Duration::from_secs(u64::from(round));
                l.into()
            })
            .collect();
        LeaseStore::commit(&store, &batch, &[]).unwrap();
    }
    let (journal, records) = Journal::open(&dir.path().join(JOURNAL_FILE))
        .unwrap()
        .unwrap();
    assert_eq!(journal.next_seq - 1, u64::from(commits));
    assert!(
        !records.is_empty() && records.len() < commits as usize,
        "{} records: no half was ever emptied",
        records.len()
    );
    assert_eq!(ips(&store).len(), 250);
    let last = store.lease(lease(250).ip).unwrap().unwrap();
    assert!(last.expires >= lease(250).expires + Duration::from_secs(1_990));
}

#[test]
fn a_store_in_memory_writes_leases_straight_into_the_table() {
    let store = Store::in_memory().unwrap();
    LeaseStore::commit(&store, &[lease(1).into(), lease(2).into()], &[]).unwrap();
    store.delete_leases(&[lease(1).ip]).unwrap();
    assert_eq!(ips(&store), [2]);
}

#[test]
fn the_applier_flushes_the_database_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.log_leases(&[lease(1)], &[]).unwrap();
    let super::LeaseLog::Journaled(j) = &*store.lease_log else {
        panic!("a store on disk journals its leases");
    };
    let flushed = || super::lock(&j.progress.state).flushed;
    let start = std::time::Instant::now();
    while flushed() < seq {
        assert!(
            start.elapsed() < super::FLUSH_EVERY * 6,
            "not flushed after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        start.elapsed() >= super::FLUSH_EVERY / 2,
        "flushed before it was idle"
    );
}

/// A panic in the applier fails the readers waiting for it; they do not wait for ever.
#[test]
fn readers_of_a_panicked_applier_get_an_error() {
    let progress = std::sync::Arc::new(super::Progress::default());
    let thread = {
        let progress = std::sync::Arc::clone(&progress);
        std::thread::spawn(move || {
            let _guard = super::PanicGuard(&progress);
            panic!("a bug in the applier");
        })
    };
    assert!(thread.join().is_err());
    let err = progress.wait(1).unwrap_err();
    assert!(err.to_string().contains("a panic"), "{err}");
    // A guard on a thread that ends normally changes nothing.
    let progress = super::Progress::default();
    drop(super::PanicGuard(&progress));
    assert!(super::lock(&progress.state).failed.is_none());
}

/// The applier's gathering ends as soon as a reader waits for it, and lasts its time otherwise.
#[test]
fn a_waiting_reader_cuts_the_appliers_gathering_short() {
    use std::time::Instant;
    let progress = std::sync::Arc::new(super::Progress::default());
    let started = Instant::now();
    progress.gather_until(started + Duration::from_millis(50));
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "no reader: the whole time"
    );
    let reader = {
        let progress = std::sync::Arc::clone(&progress);
        std::thread::spawn(move || progress.wait(1))
    };
    let started = Instant::now();
    progress.gather_until(started + Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a reader waits: cut short"
    );
    {
        let mut state = super::lock(&progress.state);
        state.seq = 1;
        progress.changed.notify_all();
    }
    reader.join().unwrap().unwrap();
    assert_eq!(super::lock(&progress.state).waiting, 0);
}
