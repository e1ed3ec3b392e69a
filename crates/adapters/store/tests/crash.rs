//! Crash safety, black-box: a child process (this test binary, re-executed) writes leases in a
//! loop, printing each address after `put_leases` (or the DHCP server's `commit`) returns, and
//! is SIGKILLed mid-way. The file must then open cleanly and hold every lease the child reported
//! as committed (the lease journal's records applied again). The child also stores a boot event
//! after each batch in a commit that does not flush (as the daemon's event writer does) and
//! flushes every few batches: every event before a reported flush must be there too. While the
//! child is alive, a second `Store::open` (another daemon) must fail with `AlreadyOpen`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};
use flakeboot_store::{LeaseRecord, LeaseState, Store, StoreError};

/// The state directory the child writes to; set only for the child.
const CHILD_DIR: &str = "FLAKEBOOT_STORE_CRASH_DIR";
/// The first address number the child writes.
const CHILD_FIRST: &str = "FLAKEBOOT_STORE_CRASH_FIRST";
/// Leases per `put_leases` call in the child (one group commit).
const BATCH: u32 = 8;
/// The child flushes its unflushed boot events after every this many batches.
const FLUSH_EVERY: u32 = 4;
/// SIGKILL's number (9 on every Linux architecture), as `ExitStatus::signal` reports it.
const SIGKILL: i32 = 9;

/// The lease the child writes for address number `n`: everything derives from `n`, so the
/// parent can check contents, not just presence.
fn lease(n: u32) -> LeaseRecord {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n);
    let [a, b, c, d] = n.to_be_bytes();
    LeaseRecord {
        ip,
        mac: MacAddr([0x52, 0x54, a, b, c, d]),
        client_id: Some(n.to_be_bytes().to_vec()),
        hostname: Some(format!("host-{n}")),
        expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + u64::from(n)),
        state: match n % 5 {
            0 => LeaseState::Declined,
            _ => LeaseState::Bound,
        },
    }
}

/// Not a test of its own: the entry point of the child process of
/// `sigkill_mid_write_loses_no_committed_lease`, which re-executes this binary with
/// `--exact crash_child --ignored` and the state directory in the environment. Run any other way
/// (`--include-ignored`) it has no directory to write to and returns.
#[test]
#[ignore = "child process of sigkill_mid_write_loses_no_committed_lease, run by it"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let first: u32 = std::env::var(CHILD_FIRST).unwrap().parse().unwrap();
    let store = Store::open(Path::new(&dir)).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "open").unwrap();
    out.flush().unwrap();
    // Bounded, in case the parent dies without killing us (a closed pipe also ends the loop).
    for batch in 0..100_000 {
        let start = first + batch * BATCH;
        let leases: Vec<LeaseRecord> = (start..start + BATCH).map(lease).collect();
        if batch % 2 == 0 {
            store.put_leases(&leases).unwrap();
        } else {
            // The DHCP server's way: durable in the lease journal, the table a moment later.
            let dhcp: Vec<flakeboot_dhcp::Lease> = leases.iter().cloned().map(Into::into).collect();
            flakeboot_dhcp::LeaseStore::commit(&store, &dhcp, &[]).unwrap();
        }
        for lease in &leases {
            writeln!(out, "committed {}", lease.ip).unwrap();
        }
        // A boot event of a machine of its own (a DHCP event makes the record), not flushed.
        store.record_events_unflushed(&[event_of(start)]).unwrap();
        if batch % FLUSH_EVERY == FLUSH_EVERY - 1 {
            store.flush().unwrap();
            writeln!(out, "flushed {start}").unwrap();
        }
        out.flush().unwrap();
    }
}

/// The boot event the child stores after the batch starting at address number `n`.
fn event_of(n: u32) -> BootEvent {
    let [_, b, c, d] = n.to_be_bytes();
    BootEvent::new(BootStage::Dhcp, Outcome::Ok, format!("batch {n}"))
        .mac(MacAddr([0x52, 0x54, 0xee, b, c, d]))
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// As soon as it has read this many committed addresses.
    AfterCommits(usize),
    /// This long after the first commit, whatever the child is doing.
    AfterDelay(Duration),
}

/// One child per trigger, writing to the same state directory in turn.
const TRIGGERS: [Trigger; 6] = [
    Trigger::AfterCommits(200),
    Trigger::AfterDelay(Duration::from_millis(15)),
    Trigger::AfterCommits(373),
    Trigger::AfterDelay(Duration::from_millis(40)),
    Trigger::AfterCommits(546),
    Trigger::AfterDelay(Duration::from_millis(75)),
];

/// Kills the child on drop (by its PID), so a failing assertion leaves no writer behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_mid_write_loses_no_committed_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let mut committed: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut unreported_before = 0;
    for (round, trigger) in TRIGGERS.into_iter().enumerate() {
        let stderr = std::fs::File::create(tmp.path().join(format!("child-{round}.log"))).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env(CHILD_DIR, &dir)
            .env(CHILD_FIRST, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut child = ChildGuard(child);
        let child_log = || std::fs::read_to_string(tmp.path().join(format!("child-{round}.log")));
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();

        // Wait until the child has the store open, then play the second daemon.
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("child exited: {:?}", child_log()));
            if line.unwrap() == "open" {
                break;
            }
        }
        let err = Store::open(&dir).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err:?}");
        assert!(err.to_string().contains("stop it first"), "{err}");

        // Let it commit for a while, then kill it wherever it is: right after reading a
        // commit line (the child is then usually inside the next commit), or after a delay.
        let started = Instant::now();
        let mut this_round = Vec::new();
        let mut flushed = Vec::new();
        let mut next_commit = |flushed: &mut Vec<u32>| {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("child exited early: {:?}", child_log()))
                .unwrap();
            flushed.extend(
                line.strip_prefix("flushed ")
                    .map(|n| n.parse::<u32>().unwrap()),
            );
            line.strip_prefix("committed ")
                .map(|ip| ip.parse::<Ipv4Addr>().unwrap())
        };
        match trigger {
            Trigger::AfterCommits(target) => {
                while this_round.len() < target {
                    this_round.extend(next_commit(&mut flushed));
                }
            }
            Trigger::AfterDelay(delay) => {
                while this_round.is_empty() {
                    this_round.extend(next_commit(&mut flushed));
                }
                std::thread::sleep(delay);
            }
        }
        child.0.kill().unwrap(); // SIGKILL
        let status = child.0.wait().unwrap();
        assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");
        // Lines the child printed before it died are still in the pipe: all committed.
        for line in lines {
            let line = line.unwrap();
            if let Some(ip) = line.strip_prefix("committed ") {
                this_round.push(ip.parse().unwrap());
            }
            flushed.extend(
                line.strip_prefix("flushed ")
                    .map(|n| n.parse::<u32>().unwrap()),
            );
        }
        let elapsed = started.elapsed();
        assert!(
            this_round.len() < 100_000 * BATCH as usize,
            "the child finished before it was killed"
        );
        let reported = this_round.len();
        committed.extend(this_round);

        let store = Store::open(&dir).unwrap();
        let stored = store.leases().unwrap();
        let stored_ips: BTreeSet<Ipv4Addr> = stored.iter().map(|l| l.ip).collect();
        let missing: Vec<_> = committed.difference(&stored_ips).collect();
        assert!(
            missing.is_empty(),
            "round {round}: committed but lost: {missing:?}"
        );
        // At most the batch in flight per kill may be on disk without having been reported.
        let extra = stored_ips.difference(&committed).count();
        assert!(
            extra <= (round + 1) * BATCH as usize,
            "round {round}: {extra} leases nobody wrote"
        );
        eprintln!(
            "round {round}: {reported} leases reported in {elapsed:?} before SIGKILL; \
             {} committed but not yet printed when killed",
            extra - unreported_before
        );
        unreported_before = extra;
        for record in &stored {
            let n = u32::from(record.ip) - u32::from(Ipv4Addr::new(10, 0, 0, 0));
            assert_eq!(record, &lease(n), "round {round}");
        }
        // Every event stored before the last reported flush is there (the events of the
        // batches since then may or may not be).
        let first = u32::try_from(round * 1_000_000).unwrap();
        let last_flush = flushed.iter().max().copied();
        let events_lost: Vec<u32> = match last_flush {
            Some(last) => (first..=last)
                .step_by(BATCH as usize)
                .filter(|&n| {
                    let event = event_of(n);
                    let stored = store.events_for(event.mac.unwrap(), 1).unwrap();
                    stored.iter().map(|e| &e.detail).ne([&event.detail])
                })
                .collect(),
            None => Vec::new(),
        };
        assert!(
            events_lost.is_empty(),
            "round {round}: events flushed but lost (their batches): {events_lost:?}"
        );
        eprintln!(
            "round {round}: events of {} batches flushed before SIGKILL",
            last_flush.map_or(0, |last| (last - first) / BATCH + 1)
        );
    }
}
