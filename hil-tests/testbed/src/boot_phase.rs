//! Deadlines for each phase of a VM's boots, read from its serial console, so a hang fails in
//! minutes with the console tail instead of at the test runner's terminate-after:
//! - firmware: from power-on (or a restart, panic, or reset) to the next kernel's first line;
//! - kernel: from that line to the boot's verdict (a health line) or the next restart.
//!
//! [`BootPhases::observe`] is pure: it takes the whole console text so far and `now`, and counts
//! boots, restarts and resets that no console line announced (a watchdog or a hard reset).
//! A test that resets a VM whose firmware made no progress ([`BootPhases::stuck_in_firmware`])
//! says so with [`BootPhases::reset_by_test`]; the count is part of every summary.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// How long each phase may take, and the console lines that start or end one.
#[derive(Debug, Clone)]
pub struct PhaseRules {
    /// Power-on or restart to the next kernel's first console line.
    pub firmware: Duration,
    /// A kernel's first line to its verdict or its restart.
    pub kernel: Duration,
    /// A kernel's first console line.
    pub kernel_start: &'static str,
    /// Lines that end a kernel: it restarts (or panics and restarts).
    pub restart: &'static [&'static str],
    /// A line that ends the kernel phase with a verdict (after it the VM just runs).
    pub verdict: &'static str,
}

/// Linux's own lines (Debian's kernel on a serial console).
pub const LINUX_KERNEL_START: &str = "Linux version ";
/// `reboot: Restarting system` / `reboot: machine restart`, and a panic's `Rebooting in 5 seconds..`.
pub const LINUX_RESTART: &[&str] = &[
    "reboot: Restarting system",
    "reboot: machine restart",
    "Rebooting in ",
];

/// Which phase the VM is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Firmware (or a kernel's decompression) after power-on or a restart.
    Firmware,
    /// A kernel is booting, no verdict yet.
    Kernel,
    /// The boot gave its verdict; no deadline until the next restart.
    Running,
}

/// A phase ran past its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub phase: Phase,
    pub limit: Duration,
    /// The boot that hung (1 is the first kernel).
    pub boot: usize,
}

impl fmt::Display for Overdue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            Phase::Firmware => write!(
                f,
                "no kernel started within {:?} of power-on or the last restart (boot {} never came)",
                self.limit, self.boot
            ),
            _ => write!(
                f,
                "kernel {} gave no verdict and did not restart within {:?}",
                self.boot, self.limit
            ),
        }
    }
}

/// The state of one VM's boots.
#[derive(Debug, Clone)]
pub struct BootPhases {
    rules: PhaseRules,
    phase: Phase,
    since: Instant,
    /// How many console bytes were already read.
    seen: usize,
    /// Kernels started.
    pub boots: usize,
    /// Restarts a kernel announced.
    pub restarts: usize,
    /// Kernels that started with no restart announced before them: the VM was reset from
    /// outside the kernel (a watchdog, or a hang after the last console line).
    pub unannounced_resets: usize,
    /// The longest firmware phase after a restart: a restart that hung until the watchdog
    /// reset the machine shows here (the watchdog's delay instead of 10-30 s).
    pub slowest_restart: Duration,
    /// Resets the test made itself because the firmware hung (see [`BootPhases::reset_by_test`]).
    pub test_resets: usize,
    /// The last console lines read (at most [`CONTEXT`]).
    recent: VecDeque<String>,
    /// For each of the first [`CONTEXT_KEPT`] unannounced resets, the console lines before it:
    /// what the summary shows, since nothing else says why the machine went away.
    pub before_unannounced: Vec<Vec<String>>,
}

/// Console lines kept from before an unannounced reset.
const CONTEXT: usize = 12;
/// Unannounced resets whose console lines are kept.
const CONTEXT_KEPT: usize = 3;

impl BootPhases {
    /// A VM powered on at `now`.
    pub fn new(rules: PhaseRules, now: Instant) -> BootPhases {
        BootPhases {
            rules,
            phase: Phase::Firmware,
            since: now,
            seen: 0,
            boots: 0,
            restarts: 0,
            unannounced_resets: 0,
            slowest_restart: Duration::ZERO,
            test_resets: 0,
            recent: VecDeque::new(),
            before_unannounced: Vec::new(),
        }
    }

    /// Whether the VM has been in the firmware phase (power-on or a restart, no kernel yet)
    /// for longer than `limit`.
    pub fn stuck_in_firmware(&self, now: Instant, limit: Duration) -> bool {
        self.phase == Phase::Firmware && now.saturating_duration_since(self.since) > limit
    }

    /// The test reset the VM at `now` (as a person would press reset on a board whose firmware
    /// hung): the firmware phase and its deadline start again, and the reset is counted.
    pub fn reset_by_test(&mut self, now: Instant) {
        self.test_resets += 1;
        self.enter(Phase::Firmware, now);
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Reads the console's new complete lines, then checks the current phase's deadline.
    pub fn observe(&mut self, console: &str, now: Instant) -> Result<(), Overdue> {
        let Some(fresh) = console.get(self.seen..) else {
            return self.check(now);
        };
        // Only complete lines: a marker may still be arriving.
        let complete = fresh.rfind('\n').map_or(0, |i| i + 1);
        for line in fresh[..complete].lines() {
            self.line(line, now);
        }
        self.seen += complete;
        self.check(now)
    }

    fn line(&mut self, line: &str, now: Instant) {
        self.remember(line);
        if line.contains(self.rules.kernel_start) {
            if self.phase != Phase::Firmware && self.boots > 0 {
                self.unannounced_resets += 1;
                if self.before_unannounced.len() < CONTEXT_KEPT {
                    self.before_unannounced
                        .push(self.recent.iter().cloned().collect());
                }
            }
            if self.boots > 0 && self.phase == Phase::Firmware {
                let took = now.saturating_duration_since(self.since);
                self.slowest_restart = self.slowest_restart.max(took);
            }
            self.boots += 1;
            self.enter(Phase::Kernel, now);
        } else if self.rules.restart.iter().any(|r| line.contains(r)) {
            // A panic prints "Rebooting in" after its own lines; one restart per kernel.
            if self.phase != Phase::Firmware {
                self.restarts += 1;
                self.enter(Phase::Firmware, now);
            }
        } else if line.contains(self.rules.verdict) && self.phase == Phase::Kernel {
            self.enter(Phase::Running, now);
        }
    }

    /// Keeps `line` among the last [`CONTEXT`] (the current one is kept only after it is read).
    fn remember(&mut self, line: &str) {
        if line.contains(self.rules.kernel_start) {
            return;
        }
        if self.recent.len() == CONTEXT {
            self.recent.pop_front();
        }
        self.recent.push_back(line.chars().take(200).collect());
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
    }

    fn check(&self, now: Instant) -> Result<(), Overdue> {
        let limit = match self.phase {
            Phase::Firmware => self.rules.firmware,
            Phase::Kernel => self.rules.kernel,
            Phase::Running => return Ok(()),
        };
        if now.saturating_duration_since(self.since) > limit {
            let boot = self.boots + usize::from(self.phase == Phase::Firmware);
            return Err(Overdue {
                phase: self.phase,
                limit,
                boot,
            });
        }
        Ok(())
    }
}

impl fmt::Display for BootPhases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} boots, {} announced restarts, {} resets with no restart announced, \
             slowest restart to the next kernel {:.0}s, {} firmware hangs reset by the test",
            self.boots,
            self.restarts,
            self.unannounced_resets,
            self.slowest_restart.as_secs_f64(),
            self.test_resets
        )?;
        for (n, lines) in self.before_unannounced.iter().enumerate() {
            write!(f, "\n  console before unannounced reset {}:", n + 1)?;
            for l in lines {
                write!(f, "\n    {l}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PhaseRules {
        PhaseRules {
            firmware: Duration::from_secs(240),
            kernel: Duration::from_secs(300),
            kernel_start: LINUX_KERNEL_START,
            restart: LINUX_RESTART,
            verdict: "health: ",
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_boot_that_reaches_its_verdict_has_no_deadline_after_it() {
        let t0 = Instant::now();
        let mut p = BootPhases::new(rules(), t0);
        assert_eq!(p.observe("BdsDxe: loading\n", t0 + S(10)), Ok(()));
        let c = "BdsDxe: loading\n[    0.0] Linux version 6.12\n";
        assert_eq!(p.observe(c, t0 + S(60)), Ok(()));
        assert_eq!(p.phase(), Phase::Kernel);
        let c = format!("{c}health: healthy after 3s\n");
        assert_eq!(p.observe(&c, t0 + S(300)), Ok(()));
        assert_eq!(p.phase(), Phase::Running);
        assert_eq!(p.observe(&c, t0 + S(5000)), Ok(()));
        assert_eq!((p.boots, p.restarts, p.unannounced_resets), (1, 0, 0));
    }

    #[test]
    fn a_restart_that_never_reaches_a_kernel_is_overdue_as_the_next_boot() {
        let t0 = Instant::now();
        let mut p = BootPhases::new(rules(), t0);
        let c = "Linux version 6.12\nhealth: healthy\nreboot: machine restart\n";
        assert_eq!(p.observe(c, t0 + S(100)), Ok(()));
        assert_eq!(p.observe(c, t0 + S(340)), Ok(()));
        let err = p.observe(c, t0 + S(341)).err();
        assert_eq!(
            err,
            Some(Overdue {
                phase: Phase::Firmware,
                limit: S(240),
                boot: 2
            })
        );
    }

    #[test]
    fn a_kernel_with_no_verdict_is_overdue_and_a_partial_line_is_not_read_yet() {
        let t0 = Instant::now();
        let mut p = BootPhases::new(rules(), t0);
        assert_eq!(p.observe("Linux vers", t0 + S(1)), Ok(()));
        assert_eq!(p.phase(), Phase::Firmware);
        assert_eq!(p.observe("Linux version 6.12\n", t0 + S(2)), Ok(()));
        let err = p.observe("Linux version 6.12\n", t0 + S(303));
        assert_eq!(err.map_err(|e| e.phase), Err(Phase::Kernel));
    }

    #[test]
    fn a_panic_counts_one_restart_and_a_silent_reset_is_counted_apart() {
        let t0 = Instant::now();
        let mut p = BootPhases::new(rules(), t0);
        let c = "Linux version 6.12\nKernel panic - not syncing\nRebooting in 5 seconds..\n\
                 reboot: machine restart\nLinux version 6.12\nhealth: ok\nLinux version 6.12\n";
        assert_eq!(p.observe(c, t0 + S(1)), Ok(()));
        assert_eq!((p.boots, p.restarts, p.unannounced_resets), (3, 1, 1));
        // What the console said before the silent reset is kept for the summary.
        let before = vec![
            "Kernel panic - not syncing".to_owned(),
            "Rebooting in 5 seconds..".to_owned(),
            "reboot: machine restart".to_owned(),
            "health: ok".to_owned(),
        ];
        assert_eq!(p.before_unannounced, vec![before]);
        let c2 = format!("{c}reboot: machine restart\n");
        assert_eq!(p.observe(&c2, t0 + S(2)), Ok(()));
        let c3 = format!("{c2}Linux version 6.12\n");
        assert_eq!(p.observe(&c3, t0 + S(151)), Ok(()));
        assert_eq!(
            p.to_string(),
            "4 boots, 2 announced restarts, 1 resets with no restart announced, \
             slowest restart to the next kernel 149s, 0 firmware hangs reset by the test\n  \
             console before unannounced reset 1:\n    Kernel panic - not syncing\n    \
             Rebooting in 5 seconds..\n    reboot: machine restart\n    health: ok"
        );
    }

    #[test]
    fn a_firmware_reset_by_the_test_restarts_the_firmware_deadline_and_is_counted() {
        let t0 = Instant::now();
        let mut p = BootPhases::new(rules(), t0);
        let c = "Linux version 6.12\nhealth: healthy\nreboot: machine restart\n";
        assert_eq!(p.observe(c, t0 + S(100)), Ok(()));
        assert!(!p.stuck_in_firmware(t0 + S(250), S(150)));
        assert!(p.stuck_in_firmware(t0 + S(251), S(150)));
        p.reset_by_test(t0 + S(251));
        assert!(!p.stuck_in_firmware(t0 + S(300), S(150)));
        // The deadline counts from the reset: 240 s after it, not after the restart.
        assert_eq!(p.observe(c, t0 + S(480)), Ok(()));
        let c = format!("{c}Linux version 6.12\n");
        assert_eq!(p.observe(&c, t0 + S(490)), Ok(()));
        assert_eq!(p.phase(), Phase::Kernel);
        assert!(!p.stuck_in_firmware(t0 + S(1000), S(150)));
        assert_eq!((p.boots, p.restarts, p.unannounced_resets), (2, 1, 0));
        assert!(
            p.to_string().ends_with(
                "slowest restart to the next kernel 239s, 1 firmware hangs reset by the test"
            ),
            "{p}"
        );
    }
}
