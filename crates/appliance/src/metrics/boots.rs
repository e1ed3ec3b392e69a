//! Boots as the metrics see them: every boot event by stage and outcome (and the bytes it
//! moved), and how long a boot took from its machine's DHCP exchange to the booted system's
//! report. Fed by `BootPolicy::record` with each event after it is attributed, so events the
//! store's writer drops are still counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};

/// Boot-duration buckets in seconds (`le`): 5 s to 30 min.
pub const DURATION_BUCKETS: [f64; 9] = [5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// A DHCP exchange older than this starts a new boot (the last one never reported).
const BOOT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Bound on machines whose boot is in progress; the map is cleared when it is reached.
const MAX_BOOTING: usize = 4096;

/// Boot counters (one lock: an event is a few map updates).
#[derive(Debug, Default)]
pub struct BootCounters {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<(&'static str, &'static str), u64>,
    bytes: BTreeMap<&'static str, u64>,
    /// Each booting machine's first DHCP exchange of this boot.
    booting: HashMap<MacAddr, SystemTime>,
    durations: Durations,
    /// Events the timeline did not keep, by reason (the writer's budgets).
    not_recorded: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Durations {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A copy of [`BootCounters`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootsSnapshot {
    /// Events by (stage, outcome).
    pub events: BTreeMap<(&'static str, &'static str), u64>,
    /// Bytes served by stage (TFTP and HTTP files).
    pub bytes: BTreeMap<&'static str, u64>,
    /// Cumulative boot durations per bound of [`DURATION_BUCKETS`].
    pub durations_cumulative: [u64; DURATION_BUCKETS.len()],
    pub durations_count: u64,
    pub durations_sum: f64,
    /// Events the timeline did not keep, by reason: `new_machine` (their MAC was a new machine
    /// past the boot event writer's budget of new machines), `no_machine` (events of no machine
    /// past its budget of those).
    pub not_recorded: BTreeMap<&'static str, u64>,
}

fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Declined => "declined",
        Outcome::Failed => "failed",
    }
}

impl BootCounters {
    /// Count one event (its MAC already attributed).
    pub fn observe(&self, event: &BootEvent) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let stage = event.stage.as_str();
        *inner
            .events
            .entry((stage, outcome_str(event.outcome)))
            .or_default() += 1;
        if let Some(bytes) = event.bytes {
            *inner.bytes.entry(stage).or_default() += bytes;
        }
        let Some(mac) = event.mac else { return };
        match event.stage {
            BootStage::Dhcp | BootStage::PxeBootServer if event.outcome == Outcome::Ok => {
                if inner.booting.len() >= MAX_BOOTING && !inner.booting.contains_key(&mac) {
                    inner.booting.clear();
                }
                let start = inner.booting.entry(mac).or_insert(event.at);
                let stale = event
                    .at
                    .duration_since(*start)
                    .is_ok_and(|d| d > BOOT_TIMEOUT);
                if stale {
                    *start = event.at;
                }
            }
            BootStage::System => {
                let start = inner.booting.remove(&mac);
                if let (Some(start), Outcome::Ok) = (start, event.outcome)
                    && let Ok(took) = event.at.duration_since(start)
                {
                    inner.durations.observe(took);
                }
            }
            // Left for the local disk: not a network boot to time.
            BootStage::Local => {
                inner.booting.remove(&mac);
            }
            _ => {}
        }
    }

    /// The current values.
    /// Count events the timeline did not keep, and why (`new_machine`, `no_machine`).
    pub fn not_recorded(&self, reason: &'static str, events: u64) {
        if events == 0 {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            let count = inner.not_recorded.entry(reason).or_default();
            *count = count.saturating_add(events);
        }
    }

    pub fn snapshot(&self) -> BootsSnapshot {
        let Ok(inner) = self.inner.lock() else {
            return BootsSnapshot::default();
        };
        let mut cumulative = [0; DURATION_BUCKETS.len()];
        let mut running = 0;
        for (c, b) in cumulative.iter_mut().zip(inner.durations.buckets) {
            running += b;
            *c = running;
        }
        BootsSnapshot {
            events: inner.events.clone(),
            bytes: inner.bytes.clone(),
            durations_cumulative: cumulative,
            durations_count: inner.durations.count,
            durations_sum: inner.durations.sum,
            not_recorded: inner.not_recorded.clone(),
        }
    }
}

impl Durations {
    fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b)
            && let Some(b) = self.buckets.get_mut(i)
        {
            *b += 1;
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn event(stage: BootStage, outcome: Outcome, mac: u8, t: u64) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, "").mac(MacAddr([0x52, 0, 0, 0, 0, mac]));
        e.at = at(t);
        e
    }

    #[test]
    fn a_boot_is_timed_from_its_first_dhcp_exchange_to_its_report() {
        let c = BootCounters::default();
        c.observe(&event(BootStage::Dhcp, Outcome::Ok, 1, 0));
        c.observe(&event(BootStage::Dhcp, Outcome::Ok, 1, 2));
        c.observe(&event(BootStage::Tftp, Outcome::Ok, 1, 3).bytes(1000));
        c.observe(&event(BootStage::Kernel, Outcome::Ok, 1, 5).bytes(24));
        c.observe(&event(BootStage::System, Outcome::Ok, 1, 25));
        // Another machine's failed boot is counted, not timed.
        c.observe(&event(BootStage::Dhcp, Outcome::Ok, 2, 0));
        c.observe(&event(BootStage::System, Outcome::Failed, 2, 9));
        // A report without a DHCP exchange is not timed either.
        c.observe(&event(BootStage::System, Outcome::Ok, 3, 9));
        let s = c.snapshot();
        assert_eq!(s.events.get(&("dhcp", "ok")), Some(&3));
        assert_eq!(s.events.get(&("system", "ok")), Some(&2));
        assert_eq!(s.events.get(&("system", "failed")), Some(&1));
        assert_eq!(s.bytes.get("tftp"), Some(&1000));
        assert_eq!(s.bytes.get("kernel"), Some(&24));
        assert_eq!(s.durations_count, 1);
        assert_eq!(s.durations_sum, 25.0);
        assert_eq!(s.durations_cumulative, [0, 0, 0, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn a_boot_that_never_reported_does_not_stretch_the_next() {
        let c = BootCounters::default();
        c.observe(&event(BootStage::Dhcp, Outcome::Ok, 1, 0));
        c.observe(&event(BootStage::Dhcp, Outcome::Ok, 1, 7200));
        c.observe(&event(BootStage::System, Outcome::Ok, 1, 7210));
        assert_eq!(c.snapshot().durations_sum, 10.0);
    }
}
