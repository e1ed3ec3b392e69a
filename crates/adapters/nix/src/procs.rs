//! Ending nix and everything it started.
//!
//! nix runs in its own process group, but its builders call `setsid()` and leave that group: a
//! signal to the group alone would orphan a running builder (measured with nix 2.8). So a kill
//! first walks `/proc` for every descendant of nix (by parent PID), then signals the group and
//! each descendant by PID, checking each process's start time so a reused PID is never hit.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tracing::debug;

/// One process, identified so that a reused PID is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProcId {
    pub(crate) pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub(crate) start_time: u64,
}

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    pub(crate) start_time: u64,
}

/// Parse `/proc/<pid>/stat`. The command name is in parentheses and may contain anything,
/// including `)` and spaces: fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is rest[n - 3].
    Some(Stat {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

fn all_processes() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let name = entry.file_name();
        let name = name.to_str()?;
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parse_stat(&std::fs::read_to_string(entry.path().join("stat")).ok()?)
    })
    .collect()
}

/// Every process in group `pgid` and every descendant of those (whatever their group).
pub(crate) fn tree_of_group(pgid: i32) -> BTreeSet<ProcId> {
    descendants_in(&all_processes(), |s| s.pgrp == pgid)
}

/// Pure part of [`tree_of_group`]: the processes matching `root` and their descendants.
pub(crate) fn descendants_in(procs: &[Stat], root: impl Fn(&Stat) -> bool) -> BTreeSet<ProcId> {
    let mut pids: BTreeSet<i32> = procs.iter().filter(|s| root(s)).map(|s| s.pid).collect();
    loop {
        let before = pids.len();
        for s in procs {
            if pids.contains(&s.ppid) {
                pids.insert(s.pid);
            }
        }
        if pids.len() == before {
            break;
        }
    }
    procs
        .iter()
        .filter(|s| pids.contains(&s.pid))
        .map(|s| ProcId {
            pid: s.pid,
            start_time: s.start_time,
        })
        .collect()
}

/// The processes of `known` that still run (same PID, same start time).
pub(crate) fn still_running(known: &BTreeSet<ProcId>) -> BTreeSet<ProcId> {
    let now: BTreeSet<ProcId> = all_processes()
        .iter()
        .map(|s| ProcId {
            pid: s.pid,
            start_time: s.start_time,
        })
        .collect();
    known.intersection(&now).copied().collect()
}

/// A running nix's process group. Dropping it kills the whole tree (SIGKILL): a runner that is
/// dropped mid-build leaves nothing behind.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: i32,
    armed: bool,
}

impl ProcessGroup {
    /// The group led by `pid` (a child spawned with `process_group(0)`).
    pub(crate) fn new(pid: u32) -> ProcessGroup {
        ProcessGroup {
            pgid: i32::try_from(pid).unwrap_or(0),
            armed: pid != 0,
        }
    }

    /// The leader exited by itself and took its builders with it: nothing to kill on drop.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Ask nix to stop (SIGTERM: it interrupts its builders and cleans up), wait up to `grace`
    /// for `exited` to resolve, then SIGKILL whatever of the tree is left.
    pub(crate) async fn terminate(
        &mut self,
        grace: Duration,
        exited: impl std::future::Future<Output = ()>,
    ) {
        if !self.armed {
            return;
        }
        let tree = tree_of_group(self.pgid);
        signal_group(self.pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, exited).await.is_err() {
            debug!(
                pgid = self.pgid,
                "nix did not stop within {grace:?}: killing it"
            );
        }
        self.kill_now(tree);
    }

    /// SIGKILL the group, every process known to be in the tree, and their descendants.
    fn kill_now(&mut self, mut known: BTreeSet<ProcId>) {
        known.extend(tree_of_group(self.pgid));
        signal_group(self.pgid, Signal::SIGKILL);
        let known_pids: BTreeSet<i32> = known.iter().map(|p| p.pid).collect();
        // Children a builder started after the snapshot.
        known.extend(descendants_in(&all_processes(), |s| {
            known_pids.contains(&s.pid)
        }));
        for p in still_running(&known) {
            if let Err(e) = kill(Pid::from_raw(p.pid), Signal::SIGKILL) {
                debug!(pid = p.pid, "cannot kill a process nix started: {e}");
            }
        }
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.kill_now(BTreeSet::new());
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), signal) {
        debug!(pgid, "killpg {signal}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (sh -c ) x) S 4000 4100 4100 0 -1 4194560 95 0 0 0 0 0 0 0 20 0 1 0 123456 2342912 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pid: 4242,
                ppid: 4000,
                pgrp: 4100,
                start_time: 123456
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (init) S 0"), None);
    }

    #[test]
    fn descendants_follow_parents_across_sessions() {
        let p = |pid, ppid, pgrp| Stat {
            pid,
            ppid,
            pgrp,
            start_time: 1,
        };
        // nix (10, group 10) -> builder (11, own session 11) -> sleep (12); unrelated 20.
        let procs = [p(12, 11, 11), p(11, 10, 11), p(10, 1, 10), p(20, 1, 20)];
        let tree: Vec<i32> = descendants_in(&procs, |s| s.pgrp == 10)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(tree, vec![10, 11, 12]);
    }

    #[test]
    fn this_process_is_found_in_its_own_group() {
        let me = i32::try_from(std::process::id()).unwrap();
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert_eq!(stat.pid, me);
        assert!(tree_of_group(stat.pgrp).iter().any(|p| p.pid == me));
    }
}
