//! Boot events flow from the boot services through a bounded channel to one writer task that
//! logs each (within a [`log_budget`]) and stores them in batches (one store transaction per
//! batch). A batch waits until [`GATHER`] after the last commit, so a boot storm's thousands of
//! events a second make about a hundred small commits, and those commits do not flush: the
//! writer flushes the database at most every [`FLUSH_EVERY`], as the lease journal's applier
//! does (and that long after the last unflushed commit when events stop). So the disk sees a
//! few flushes of the database a second, not hundreds, and the flushes that DHCP ACKs wait for
//! (the lease journal's) seldom queue behind one; and no commit holds a core long enough to
//! delay a packet loop beside it (one commit of 50 ms of proxy DISCOVERs did: p99 12 ms). An
//! event is on disk at most about `GATHER + FLUSH_EVERY` after it came; a crash loses at most
//! that much of the timeline (the leases are in their journal).
//!
//! New machines are within a budget ([`NEW_MACHINES_BURST`] at once, [`NEW_MACHINES_PER_SECOND`]
//! after): a machine record costs the store a dozen B-tree changes (and, at `max_machines`,
//! forgetting another), so a stranger inventing MACs at line rate would otherwise spend half
//! the daemon's CPU (proxy mode: 28 us a DISCOVER against dnsmasq's 20) and write the flash
//! thousands of times a second for records that are forgotten a moment later. Past it, the new
//! MACs of a batch get no record and their events are not kept; every one is still answered,
//! logged (within the [`log_budget`]) and counted in `/metrics`
//! (`flakeboot_boot_events_not_recorded_total`), and a warning every ten seconds says how
//! many. A MAC refused once gets its record with a later DHCP exchange once the budget has
//! room (a PXE client asks again within seconds); known machines are never refused. The
//! budget is far above what a LAN's machines need: a thousand powered on at once. Events of no
//! machine (requests from an address no DHCP exchange gave a machine) have a budget of their
//! own ([`UNATTRIBUTED_BURST`], [`UNATTRIBUTED_PER_SECOND`]; the store keeps the newest 1,000 of
//! them anyway): a Range flood made one per request, inserted and trimmed out again at once.
//!
//! Another DHCP server's reply to a client can arrive before this appliance's own DHCP event
//! for that client has made its machine record (both answer the same DISCOVER; the other
//! server may be a few milliseconds quicker). The store does not keep such a reply
//! ([`Store::record_events`] gives it back); the writer offers it again with the following
//! batches for [`HOLD`], so the machine's first exchange shows both servers. Bounded: at most
//! [`HELD`] replies wait, the oldest dropped first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flakeboot_catalogue::BootEvent;
use flakeboot_store::{Admission, RecordedEvents, Store};
use tokio::sync::mpsc;

use crate::metrics::BootCounters;
use bucket::TokenBucket;
use log_budget::LogBudget;

mod bucket;
mod log_budget;

/// Most events written in one transaction.
const BATCH: usize = 512;
/// Least time between two commits: a batch that comes sooner waits, gathering more.
const GATHER: Duration = Duration::from_millis(10);
/// Least time between two flushed commits, and the longest an unflushed one waits for a flush.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long another server's reply waits for its client's record.
const HOLD: Duration = Duration::from_secs(5);
/// Most replies waiting at once.
const HELD: usize = 128;
/// New machine records made at once after a quiet spell.
pub const NEW_MACHINES_BURST: u32 = 1_000;
/// New machine records a second after the burst.
pub const NEW_MACHINES_PER_SECOND: u32 = 100;
/// Events of no machine kept at once after a quiet spell (the store keeps this many of them).
pub const UNATTRIBUTED_BURST: u32 = 1_000;
/// Events of no machine kept a second after the burst.
pub const UNATTRIBUTED_PER_SECOND: u32 = 200;
/// Least time between two warnings about what the budgets refused.
const REFUSED_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Runs until every sender is gone (the daemon drops its catalogue at shutdown), so the last
/// events are stored and flushed before the process exits. Events not kept (past the budgets of
/// new machines and of events of no machine) are counted in `counters`.
pub async fn run(mut rx: mpsc::Receiver<BootEvent>, store: Store, counters: Arc<BootCounters>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut held = Held::default();
    let mut last_commit: Option<Instant> = None;
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    let mut budget = LogBudget::new(Instant::now());
    let mut refused = Refused::new(Instant::now());
    loop {
        let received = if unflushed {
            let due = tokio::time::Instant::from_std(last_flush + FLUSH_EVERY);
            match tokio::time::timeout_at(due, rx.recv_many(&mut batch, BATCH)).await {
                Ok(received) => received,
                Err(_) => {
                    // Quiet since an unflushed commit: flush it now.
                    store_blocking(&store, |store| store.flush()).await;
                    last_flush = Instant::now();
                    unflushed = false;
                    continue;
                }
            }
        } else {
            rx.recv_many(&mut batch, BATCH).await
        };
        if received == 0 {
            break;
        }
        if let Some(last) = last_commit {
            let wait = GATHER.saturating_sub(last.elapsed());
            if !wait.is_zero() && batch.len() < BATCH {
                tokio::time::sleep(wait).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
            }
        }
        let now = Instant::now();
        last_commit = Some(now);
        for ev in &batch {
            if !budget.allow(now) {
                continue;
            }
            tracing::info!(
                mac = ev.mac.map(|m| m.to_string()).unwrap_or_default(),
                peer = ev.peer.map(|p| p.to_string()).unwrap_or_default(),
                stage = ev.stage.as_str(),
                outcome = ?ev.outcome,
                firmware = ev.firmware.map(|f| f.as_str()).unwrap_or(""),
                detail = %ev.detail,
                "boot event"
            );
        }
        if let Some(skipped) = budget.report(now) {
            tracing::info!(
                skipped,
                "boot events not logged (more than {} a second)",
                log_budget::PER_SECOND
            );
        }
        let mut events = held.take(SystemTime::now());
        events.append(&mut batch);
        let flush = last_flush.elapsed() >= FLUSH_EVERY;
        let admission = refused.admission(now);
        let stored = store_blocking(&store, move |store| {
            store.record_events_within(&events, flush, admission)
        })
        .await;
        if let Some(recorded) = stored {
            refused.count(&recorded, &counters, Instant::now());
            held.hold(recorded.unknown);
        }
        if flush {
            last_flush = Instant::now();
        }
        unflushed = !flush;
    }
    if unflushed {
        store_blocking(&store, |store| store.flush()).await;
    }
}

/// Runs `write` on the blocking pool; its result, or `None` with the error logged.
async fn store_blocking<T: Send + 'static>(
    store: &Store,
    write: impl FnOnce(&Store) -> Result<T, flakeboot_store::StoreError> + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || write(&store)).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "could not store boot events");
            None
        }
        Err(err) => {
            tracing::error!(error = %err, "boot event writer task failed");
            None
        }
    }
}

/// The budgets of new machine records and of events of no machine, and the counts of what
/// they refused since the last warning.
#[derive(Debug)]
struct Refused {
    machines: TokenBucket,
    unattributed: TokenBucket,
    /// New MACs refused, their events, and events of no machine refused.
    since_report: (u64, u64, u64),
    /// The last warning (none yet: the first refusal warns at once).
    reported: Option<Instant>,
}

impl Refused {
    fn new(now: Instant) -> Self {
        Refused {
            machines: TokenBucket::new(NEW_MACHINES_BURST, NEW_MACHINES_PER_SECOND, now),
            unattributed: TokenBucket::new(UNATTRIBUTED_BURST, UNATTRIBUTED_PER_SECOND, now),
            since_report: (0, 0, 0),
            reported: None,
        }
    }

    /// What the next batch may keep, at `now`.
    fn admission(&mut self, now: Instant) -> Admission {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Admission {
            new_machines: size(self.machines.available(now)),
            unattributed: size(self.unattributed.available(now)),
        }
    }

    /// Spends what the batch kept, counts what it refused, and warns at most every
    /// [`REFUSED_REPORT_EVERY`].
    fn count(&mut self, recorded: &RecordedEvents, counters: &BootCounters, now: Instant) {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.machines.take(as_u64(recorded.new_machines));
        self.unattributed.take(as_u64(recorded.unattributed));
        counters.not_recorded("new_machine", as_u64(recorded.refused_events));
        counters.not_recorded("no_machine", as_u64(recorded.refused_unattributed));
        let (machines, events, nobodys) = &mut self.since_report;
        *machines = machines.saturating_add(as_u64(recorded.refused_machines));
        *events = events.saturating_add(as_u64(recorded.refused_events));
        *nobodys = nobodys.saturating_add(as_u64(recorded.refused_unattributed));
        let due = self
            .reported
            .is_none_or(|last| now.saturating_duration_since(last) >= REFUSED_REPORT_EVERY);
        if !due {
            return;
        }
        if *machines > 0 {
            tracing::warn!(
                machines = *machines,
                events = *events,
                "new MACs past the budget of {NEW_MACHINES_PER_SECOND} new machines a second \
                 (a flood of invented MACs?): answered, but no record made and their boot \
                 events not kept"
            );
        }
        if *nobodys > 0 {
            tracing::warn!(
                events = *nobodys,
                "boot events of no machine past the budget of {UNATTRIBUTED_PER_SECOND} a \
                 second (requests from addresses no DHCP exchange gave a machine): served, \
                 but not kept"
            );
        }
        if *machines > 0 || *nobodys > 0 {
            self.since_report = (0, 0, 0);
            self.reported = Some(now);
        }
    }
}

/// Other servers' replies waiting for their client's record.
#[derive(Debug, Default)]
struct Held(VecDeque<BootEvent>);

impl Held {
    /// The replies still young enough to offer again (in the order they came), at `now`.
    fn take(&mut self, now: SystemTime) -> Vec<BootEvent> {
        let young = |e: &BootEvent| now.duration_since(e.at).map_or(true, |age| age < HOLD);
        self.0.drain(..).filter(young).collect()
    }

    /// Keep `unknown` for the next batch, the oldest making room past [`HELD`].
    fn hold(&mut self, unknown: Vec<BootEvent>) {
        self.0.extend(unknown);
        while self.0.len() > HELD {
            self.0.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flakeboot_catalogue::{BootStage, MacAddr, Outcome};

    const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn event(stage: BootStage, at: SystemTime) -> BootEvent {
        let mut e = BootEvent::new(stage, Outcome::Ok, "x").mac(CLIENT);
        e.at = at;
        e
    }

    /// The LAN's server answered the DISCOVER before the appliance's own DHCP event came: the
    /// reply is in the machine's events once the record exists, written once.
    #[tokio::test]
    async fn a_reply_quicker_than_the_clients_record_reaches_its_timeline() {
        let store = Store::in_memory().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let writer = tokio::spawn(run(rx, store.clone(), Arc::default()));
        let now = SystemTime::now();
        tx.send(event(BootStage::OtherDhcp, now)).await.unwrap();
        // Its own batch: wait until the writer has taken it.
        while tx.capacity() < 16 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.events_for(CLIENT, 10).unwrap().is_empty());
        tx.send(event(BootStage::Dhcp, now + Duration::from_millis(9)))
            .await
            .unwrap();
        drop(tx);
        writer.await.unwrap();
        let stages: Vec<_> = store
            .events_for(CLIENT, 10)
            .unwrap()
            .iter()
            .map(|e| e.stage)
            .collect();
        assert_eq!(stages, [BootStage::OtherDhcp, BootStage::Dhcp]);
    }

    /// What a crash would leave: a copy of the database file opened on its own has only what
    /// was flushed.
    fn details_on_disk(dir: &std::path::Path) -> Vec<String> {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.join("flakeboot.redb"),
            copy.path().join("flakeboot.redb"),
        )
        .unwrap();
        let store = Store::open(copy.path()).unwrap();
        store
            .events_for(CLIENT, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect()
    }

    /// Events stored in commits that do not flush are flushed once the events stop, and the
    /// last ones when the writer ends.
    #[tokio::test]
    async fn a_burst_of_events_is_on_disk_soon_after_it_stops_and_the_last_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tx, rx) = mpsc::channel(64);
        let writer = tokio::spawn(run(rx, store.clone(), Arc::default()));
        let send = |i: usize| {
            let mut e = event(BootStage::Dhcp, SystemTime::now());
            e.detail = format!("event {i}");
            tx.try_send(e).unwrap();
        };
        // A burst of 30 events over about 60 ms: several commits, most of them not flushed.
        for i in 0..30 {
            send(i);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let expected: Vec<String> = (0..30).map(|i| format!("event {i}")).collect();
        while store.events_for(CLIENT, 100).unwrap().len() < 30 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Due FLUSH_EVERY after the last flush; a loaded machine may take longer.
        let deadline = Instant::now() + Duration::from_secs(5);
        while details_on_disk(dir.path()) != expected && Instant::now() < deadline {
            tokio::time::sleep(FLUSH_EVERY).await;
        }
        assert_eq!(details_on_disk(dir.path()), expected, "flushed when quiet");

        // One more (flushed: the last flush is long ago), one in its wake (not flushed), and
        // the senders go at once (the daemon's shutdown).
        for i in 30..32 {
            send(i);
            while store.events_for(CLIENT, 100).unwrap().len() <= i {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        drop(tx);
        writer.await.unwrap();
        let expected: Vec<String> = (0..32).map(|i| format!("event {i}")).collect();
        assert_eq!(details_on_disk(dir.path()), expected, "flushed at the end");
    }

    /// A flood of new MACs: the first NEW_MACHINES_BURST (and what the budget earns while the
    /// flood lasts) get records; the rest are counted, not kept; a known machine's events are
    /// all kept.
    #[tokio::test]
    async fn new_machines_past_the_budget_are_counted_and_not_kept() {
        let store = Store::in_memory().unwrap();
        let counters = Arc::new(BootCounters::default());
        let (tx, rx) = mpsc::channel(4096);
        let writer = tokio::spawn(run(rx, store.clone(), counters.clone()));
        let start = Instant::now();
        const FLOOD: u32 = NEW_MACHINES_BURST + 500;
        for i in 0..FLOOD {
            let [a, b, c, d] = i.to_be_bytes();
            let mut e = event(BootStage::Dhcp, SystemTime::now());
            e.mac = Some(MacAddr([0x02, a, b, c, d, 1]));
            tx.send(e).await.unwrap();
            // The known machine, every tenth event.
            if i % 10 == 0 {
                tx.send(event(BootStage::Dhcp, SystemTime::now()))
                    .await
                    .unwrap();
            }
        }
        drop(tx);
        writer.await.unwrap();
        let took = start.elapsed().as_secs_f64();
        let machines = store.machines().unwrap().len();
        let earned = (took * f64::from(NEW_MACHINES_PER_SECOND)).ceil() as usize;
        let burst = NEW_MACHINES_BURST as usize;
        assert!(
            (burst + 1..=burst + 1 + earned).contains(&machines),
            "{machines} machines in {took:.2} s"
        );
        assert_eq!(store.events_for(CLIENT, 1000).unwrap().len(), 150);
        let refused = FLOOD as usize + 1 - machines;
        assert_eq!(
            counters.snapshot().not_recorded.get("new_machine").copied(),
            Some(refused as u64)
        );
        assert_eq!(store.event_count().unwrap(), 150 + machines as u64 - 1);
    }

    /// A flood of requests from addresses no machine holds (events of no MAC): the burst and
    /// what the budget earns are kept, the rest counted.
    #[tokio::test]
    async fn events_of_no_machine_past_the_budget_are_counted_and_not_kept() {
        let store = Store::in_memory().unwrap();
        let counters = Arc::new(BootCounters::default());
        let (tx, rx) = mpsc::channel(4096);
        let writer = tokio::spawn(run(rx, store.clone(), counters.clone()));
        let start = Instant::now();
        const FLOOD: u32 = UNATTRIBUTED_BURST + 500;
        for _ in 0..FLOOD {
            let mut e = event(BootStage::Initrd, SystemTime::now());
            e.mac = None;
            tx.send(e).await.unwrap();
        }
        drop(tx);
        writer.await.unwrap();
        let earned = (start.elapsed().as_secs_f64() * f64::from(UNATTRIBUTED_PER_SECOND)).ceil();
        let refused = counters.snapshot().not_recorded.get("no_machine").copied();
        let refused = refused.unwrap_or_default() as f64;
        assert!(
            (500.0 - earned..=500.0).contains(&refused),
            "{refused} refused, {earned} earned"
        );
        // The store's own ring of them keeps the newest 1,000 of those kept.
        let kept = (f64::from(FLOOD) - refused).min(1_000.0);
        assert_eq!(store.event_count().unwrap() as f64, kept);
    }

    #[test]
    fn held_replies_age_out_and_are_bounded() {
        let now = SystemTime::now();
        let mut held = Held::default();
        held.hold(vec![event(BootStage::OtherDhcp, now - HOLD)]);
        assert!(held.take(now).is_empty(), "older than HOLD: dropped");
        let many: Vec<_> = (0..HELD as u64 + 10)
            .map(|i| event(BootStage::OtherDhcp, now + Duration::from_millis(i)))
            .collect();
        held.hold(many.clone());
        let kept = held.take(now);
        assert_eq!(kept.len(), HELD);
        assert_eq!(kept[0], many[10], "the oldest made room");
        assert!(held.take(now).is_empty(), "taken once");
    }
}
