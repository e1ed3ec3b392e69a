//! How an attempt ended, `now`: the booted system reported up (or failed), a stage failed, no
//! report came in time, or it is still booting. Pure: an attempt, now and the configured
//! report timeout (`[boot] report_timeout`) in; a verdict out.

use std::time::{Duration, SystemTime};

use crate::attempts::fold::{Attempt, Stage};

/// A machine's boot state, as the overview filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BootState {
    /// The booted system reported up.
    Up,
    /// A stage failed or was declined, the system reported a failure, or the boot stopped
    /// (the machine never asked for the next file within the report timeout).
    Failed,
    /// The initrd was delivered but the system did not report within the timeout.
    NoReport,
    /// Under way: the last step was less than the timeout ago.
    Booting,
    /// It reported up, but is gone since: in router mode, it holds no DHCP lease any more (it
    /// stopped renewing, or released it). See [`Verdict::present`].
    Offline,
    /// The boot menu sent it to its local disk (its `local` entry).
    Local,
    /// No boot recorded.
    Never,
}

impl BootState {
    /// Every state, in the order a page lists them.
    pub const ALL: [BootState; 7] = [
        BootState::Up,
        BootState::Booting,
        BootState::Failed,
        BootState::NoReport,
        BootState::Offline,
        BootState::Local,
        BootState::Never,
    ];

    /// Its name in the API and in `?state=`: `up`, `failed`, `no_report`, `booting`, `offline`,
    /// `local`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            BootState::Up => "up",
            BootState::Failed => "failed",
            BootState::NoReport => "no_report",
            BootState::Booting => "booting",
            BootState::Offline => "offline",
            BootState::Local => "local",
            BootState::Never => "never",
        }
    }

    /// Its name on a page.
    pub fn label(self) -> &'static str {
        match self {
            BootState::Up => "up",
            BootState::Failed => "failed",
            BootState::NoReport => "no report",
            BootState::Booting => "booting",
            BootState::Offline => "offline",
            BootState::Local => "local disk",
            BootState::Never => "never booted",
        }
    }

    /// The state named `name` (as [`BootState::as_str`] writes it; `no-report` too).
    pub fn parse(name: &str) -> Option<BootState> {
        BootState::ALL
            .into_iter()
            .find(|s| s.as_str() == name || s.as_str().replace('_', "-") == name)
    }
}

/// How one attempt ended (or stands), `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Its state.
    pub state: BootState,
    /// The host whose kernel or initrd it fetched (`GET /boot/<host>/<version>/...`).
    pub host: Option<String>,
    /// The version label it fetched (`lab.g3`, `static`).
    pub version: Option<String>,
    /// The flake generation of that version (`lab.g3` -> 3).
    pub generation: Option<u32>,
    /// The stage it failed at, or is at while booting; `None` for the system's own report and
    /// for a machine that never booted.
    pub stage: Option<Stage>,
    /// One line: "up (generation 3)", "failed: sshd.service failed", "Stopped at Initrd: ...",
    /// "no report 10 minutes after the initrd", "at Kernel".
    pub detail: String,
    /// When the attempt began.
    pub started: Option<SystemTime>,
    /// When it ended (the report, the failure, the initrd for "no report"); `None` while booting.
    pub ended: Option<SystemTime>,
}

impl Verdict {
    /// A machine with no boot recorded.
    pub fn never() -> Verdict {
        Verdict {
            state: BootState::Never,
            host: None,
            version: None,
            generation: None,
            stage: None,
            detail: "no boot recorded".into(),
            started: None,
            ended: None,
        }
    }

    /// The verdict of a machine's newest attempt (`attempts` newest first), or
    /// [`Verdict::never`].
    pub fn last(attempts: &[Attempt], now: SystemTime, timeout: Duration) -> Verdict {
        attempts
            .first()
            .map_or_else(Verdict::never, |a| Verdict::of(a, now, timeout))
    }

    /// The verdict of each of a machine's attempts (newest first): the newest as it stands
    /// `now`, every older one as [`Verdict::superseded`] (a newer boot began, so it is over).
    pub fn all(attempts: &[Attempt], now: SystemTime, timeout: Duration) -> Vec<Verdict> {
        attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i == 0 {
                    Verdict::of(a, now, timeout)
                } else {
                    Verdict::superseded(a, timeout)
                }
            })
            .collect()
    }

    /// The verdict with what the appliance knows of the machine now: in router mode
    /// (`lease_expires`: `Some`, with when the machine's DHCP lease ends, `None` inside when it
    /// holds none), a machine that reported up but whose lease ended before `now` (it stopped
    /// renewing, or released it) is [`BootState::Offline`]. In proxy mode (`None`) the LAN's own
    /// server sees the renewals, flakeboot does not: up stays up.
    pub fn present(self, lease_expires: Option<Option<SystemTime>>, now: SystemTime) -> Verdict {
        let Some(lease) = lease_expires else {
            return self;
        };
        if self.state != BootState::Up || lease.is_some_and(|end| end > now) {
            return self;
        }
        let why = match lease {
            Some(_) => "its DHCP lease ran out",
            None => "it holds no DHCP lease",
        };
        Verdict {
            state: BootState::Offline,
            detail: format!("offline: {why} (last {})", self.detail),
            ..self
        }
    }

    /// How an attempt that a newer boot of the same machine followed ended: it is not waiting
    /// for anything any more (no report came: "no report"; it stopped before the initrd:
    /// "failed", stopped after its last stage).
    pub fn superseded(attempt: &Attempt, timeout: Duration) -> Verdict {
        Verdict::of(attempt, attempt.ended + timeout, timeout)
    }

    /// How `attempt` ended (or stands) `now`, when a report is due `timeout` after the initrd.
    pub fn of(attempt: &Attempt, now: SystemTime, timeout: Duration) -> Verdict {
        let (host, version) = booted(attempt);
        let generation = version.as_deref().and_then(generation_of);
        let mut v = Verdict {
            state: BootState::Booting,
            host,
            version,
            generation,
            stage: attempt.last_stage().map(|s| s.stage),
            detail: String::new(),
            started: Some(attempt.started),
            ended: Some(attempt.ended),
        };
        // A console line that said the boot failed, unless the system reported after it.
        if let Some(console) = attempt
            .console
            .as_ref()
            .filter(|c| attempt.system.as_ref().is_none_or(|r| r.at <= c.at))
        {
            v.state = BootState::Failed;
            v.stage = None;
            v.ended = Some(console.at);
            v.detail = format!("failed: {}", console.line);
            return v;
        }
        if let Some(report) = &attempt.system {
            v.stage = None;
            v.ended = Some(report.at);
            if report.up {
                v.state = BootState::Up;
                v.detail = match (v.generation, &v.version) {
                    (Some(n), _) => format!("up (generation {n})"),
                    (None, Some(version)) => format!("up ({version})"),
                    (None, None) => "up".into(),
                };
            } else {
                v.state = BootState::Failed;
                v.detail = format!("failed: {}", report.detail);
            }
            return v;
        }
        if let Some(at) = attempt.local_disk {
            v.state = BootState::Local;
            v.stage = None;
            v.ended = Some(at);
            // The script's event says what iPXE was given: the machine's own local-disk script,
            // or the menu (whose local entry was then chosen).
            let own = attempt
                .stages
                .iter()
                .any(|s| s.stage == Stage::Script && s.detail.ends_with("200 local disk"));
            v.detail = match own {
                true => "local disk: the machine is set to boot its local disk",
                false => "local disk: the boot menu's local entry",
            }
            .into();
            return v;
        }
        if let Some(bad) = attempt.failed_stage() {
            v.state = BootState::Failed;
            v.stage = Some(bad.stage);
            v.detail = attempt.stopped.clone().unwrap_or_default();
            return v;
        }
        let quiet = now.duration_since(attempt.ended).unwrap_or_default();
        if attempt.complete {
            if quiet >= timeout {
                v.state = BootState::NoReport;
                v.detail = format!("no report {} after the initrd", span(timeout));
            } else {
                v.ended = None;
                v.detail = format!(
                    "waiting for the system's report (due {} after the initrd)",
                    span(timeout)
                );
            }
            return v;
        }
        if quiet >= timeout {
            v.state = BootState::Failed;
            v.detail = attempt.stopped.clone().unwrap_or_default();
        } else {
            v.ended = None;
            v.detail = match attempt.last_stage() {
                Some(s) => format!("at {}", s.stage.label()),
                None => "starting".into(),
            };
        }
        v
    }

    /// From its start to its end (`None` while booting).
    pub fn duration(&self) -> Option<Duration> {
        self.ended?.duration_since(self.started?).ok()
    }
}

/// The host and version label in the attempt's initrd or kernel fetch.
fn booted(attempt: &Attempt) -> (Option<String>, Option<String>) {
    [Stage::Initrd, Stage::Kernel]
        .into_iter()
        .filter_map(|s| attempt.stage(s))
        .find_map(|s| boot_path(&s.detail))
        .map_or((None, None), |(h, v)| {
            (Some(h.to_owned()), Some(v.to_owned()))
        })
}

/// `GET /boot/<host>/<version>/<kernel|initrd> ...` -> (host, version).
fn boot_path(detail: &str) -> Option<(&str, &str)> {
    let rest = detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix("/boot/"))?;
    let mut parts = rest.split('/');
    let (host, version, kind) = (parts.next()?, parts.next()?, parts.next()?);
    let kind = kind.trim_end_matches(':');
    matches!(kind, "kernel" | "initrd").then_some((host, version))
}

/// The generation number of a flake version label (`lab.g3` -> 3).
pub fn generation_of(version: &str) -> Option<u32> {
    version.rsplit_once(".g")?.1.parse().ok()
}

/// "10 minutes", "1 minute", "90 seconds".
fn span(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (1, 0) => "1 minute".into(),
        (m, 0) if m > 0 => format!("{m} minutes"),
        _ if secs == 1 => "1 second".into(),
        _ => format!("{secs} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempts::attempts;
    use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const TEN_MIN: Duration = Duration::from_secs(600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ev(secs: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, detail).mac(MAC);
        e.at = at(secs);
        e
    }

    /// Up, then gone: in router mode a machine whose DHCP lease ended (or that holds none) is
    /// offline, with its last generation kept; while the lease runs it is up; in proxy mode
    /// (no lease data) up stays up; only an up machine goes offline; its next boot is booting.
    #[test]
    fn an_up_machine_whose_lease_ended_is_offline() {
        use BootStage::*;
        let mut events = vec![
            ev(0, Dhcp, Outcome::Ok, "router ack"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200"),
            ev(2, Kernel, Outcome::Ok, "GET /boot/web/lab.g3/kernel 200"),
            ev(3, Initrd, Outcome::Ok, "GET /boot/web/lab.g3/initrd 200"),
            ev(9, System, Outcome::Ok, "up"),
        ];
        let last = |events: &[BootEvent], now| Verdict::last(&attempts(events), now, TEN_MIN);
        let up = |now| last(&events, now);
        let lease_end = Some(at(3600));
        // The lease runs: up.
        for now in [at(10), at(3599)] {
            assert_eq!(up(now).present(Some(lease_end), now).state, BootState::Up);
        }
        // It ran out (the machine stopped renewing): offline, the generation kept.
        for now in [at(3600), at(90_000)] {
            let v = up(now).present(Some(lease_end), now);
            assert_eq!(v.state, BootState::Offline, "{v:?}");
            assert_eq!(
                v.detail,
                "offline: its DHCP lease ran out (last up (generation 3))"
            );
            assert_eq!((v.generation, v.ended), (Some(3), Some(at(9))));
            assert_eq!(v.state.as_str(), "offline");
            assert_eq!(BootState::parse("offline"), Some(BootState::Offline));
        }
        let v = up(at(20)).present(Some(None), at(20));
        assert_eq!(v.state, BootState::Offline);
        assert_eq!(
            v.detail,
            "offline: it holds no DHCP lease (last up (generation 3))"
        );
        // Proxy mode: flakeboot cannot tell, up stays up.
        assert_eq!(
            up(at(90_000)).present(None, at(90_000)).state,
            BootState::Up
        );
        // Only "up" goes offline: booting, failed and never stay as they are.
        assert_eq!(
            Verdict::never().present(Some(None), at(5)).state,
            BootState::Never
        );
        let booting = Verdict::last(&attempts(&events[..3]), at(4), TEN_MIN);
        assert_eq!(booting.state, BootState::Booting);
        assert_eq!(booting.present(Some(None), at(4)).state, BootState::Booting);
        // Its next boot is a new attempt: booting again, whatever the lease.
        events.push(ev(100_000, Dhcp, Outcome::Ok, "router ack"));
        let v = last(&events, at(100_001)).present(Some(lease_end), at(100_001));
        assert_eq!(v.state, BootState::Booting, "{v:?}");
    }

    /// The menu's local entry ends the attempt at once: "local disk", not "booting" until
    /// the timeout and then "stopped after the script"; the next boot is a new attempt.
    #[test]
    fn the_menus_local_entry_ends_the_attempt_as_local_disk() {
        use BootStage::*;
        let mut events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200 menu of 2 hosts"),
            ev(4, Local, Outcome::Ok, "GET /boot/local 200"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(all[0].stopped, None);
        for now in [at(5), at(5000)] {
            let v = Verdict::last(&all, now, TEN_MIN);
            assert_eq!(v.state, BootState::Local, "{v:?}");
            assert_eq!(v.stage, None);
            assert_eq!(v.ended, Some(at(4)));
            assert_eq!(v.detail, "local disk: the boot menu's local entry");
            assert_eq!(v.state.as_str(), "local");
        }
        // The machine's next network boot is a new attempt, booting.
        events.push(ev(7000, Dhcp, Outcome::Ok, "proxy offer"));
        events.push(ev(7001, Script, Outcome::Ok, "GET /boot.ipxe 200 menu"));
        let all = attempts(&events);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(
            Verdict::last(&all, at(7002), TEN_MIN).state,
            BootState::Booting
        );
        assert_eq!(BootState::parse("local"), Some(BootState::Local));
        // A machine set to its local disk got that script, not the menu.
        let own = [
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200 local disk"),
            ev(2, Local, Outcome::Ok, "GET /boot/local 200"),
        ];
        let v = Verdict::last(&attempts(&own), at(3), TEN_MIN);
        assert_eq!(
            (v.state, v.detail.as_str()),
            (
                BootState::Local,
                "local disk: the machine is set to boot its local disk"
            )
        );
    }

    /// A kernel panic (or stage 1's error) on the console is the reason the boot failed: at
    /// once, not after the report timeout; a report after it wins, one before it does not.
    #[test]
    fn a_console_failure_fails_the_boot_with_its_line() {
        let panic =
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)";
        let mut events = boot("lab.g3");
        events.push(ev(9, BootStage::Console, Outcome::Failed, panic));
        events.push(ev(
            10,
            BootStage::Console,
            Outcome::Failed,
            "Kernel panic - not syncing: Attempted to kill init!",
        ));
        let all = attempts(&events);
        assert_eq!(all.len(), 1, "{all:#?}");
        let v = Verdict::last(&all, at(11), TEN_MIN);
        assert_eq!(v.state, BootState::Failed);
        assert_eq!(v.detail, format!("failed: {panic}"));
        assert_eq!((v.stage, v.ended), (None, Some(at(9))));
        assert_eq!(v.generation, Some(3));
        // An up report before the panic: the panic is the news.
        let mut up_then_panic = boot("lab.g3");
        up_then_panic.push(ev(45, BootStage::System, Outcome::Ok, "up"));
        up_then_panic.push(ev(4000, BootStage::Console, Outcome::Failed, panic));
        let v = verdict(&up_then_panic, 4001);
        assert_eq!(v.state, BootState::Failed, "{v:?}");
        // A report after it (the line was from an earlier moment the system survived): up.
        let mut panic_then_up = boot("lab.g3");
        panic_then_up.push(ev(
            5,
            BootStage::Console,
            Outcome::Failed,
            "An error occurred in stage 1 of the boot process",
        ));
        panic_then_up.push(ev(45, BootStage::System, Outcome::Ok, "up"));
        assert_eq!(verdict(&panic_then_up, 50).state, BootState::Up);
        // The machine reboots after the panic: its next DHCP is a new attempt, booting.
        events.push(ev(20, BootStage::Dhcp, Outcome::Ok, "proxy offer"));
        let all = attempts(&events);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(
            Verdict::last(&all, at(21), TEN_MIN).state,
            BootState::Booting
        );
        assert_eq!(
            Verdict::all(&all, at(21), TEN_MIN)[1].state,
            BootState::Failed
        );
        // A DHCP-only attempt with a panic: failed.
        let dhcp_only = vec![
            ev(0, BootStage::Dhcp, Outcome::Ok, "router offer"),
            ev(3, BootStage::Console, Outcome::Failed, panic),
        ];
        assert_eq!(verdict(&dhcp_only, 4).detail, format!("failed: {panic}"));
    }

    fn boot(version: &str) -> Vec<BootEvent> {
        use BootStage::*;
        vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200 host alpha"),
            ev(
                2,
                Kernel,
                Outcome::Ok,
                &format!("GET /boot/alpha/{version}/kernel 200 bytes 0-9/10"),
            ),
            ev(
                3,
                Initrd,
                Outcome::Ok,
                &format!("GET /boot/alpha/{version}/initrd 200 bytes 0-9/10"),
            ),
        ]
    }

    fn verdict(events: &[BootEvent], now: u64) -> Verdict {
        Verdict::last(&attempts(events), at(now), TEN_MIN)
    }

    #[test]
    fn an_up_report_names_host_generation_and_duration() {
        let mut events = boot("lab.g3");
        events.push(ev(45, BootStage::System, Outcome::Ok, "up"));
        let v = verdict(&events, 2000);
        assert_eq!(v.state, BootState::Up);
        assert_eq!(v.detail, "up (generation 3)");
        assert_eq!((v.host.as_deref(), v.generation), (Some("alpha"), Some(3)));
        assert_eq!(v.duration(), Some(Duration::from_secs(45)));
        let mut events = boot("static");
        events.push(ev(60, BootStage::System, Outcome::Ok, "up"));
        assert_eq!(verdict(&events, 100).detail, "up (static)");
    }

    #[test]
    fn a_failed_report_or_stage_is_failed_with_where() {
        let mut events = boot("lab.g3");
        events.push(ev(
            90,
            BootStage::System,
            Outcome::Failed,
            "sshd.service failed",
        ));
        let v = verdict(&events, 100);
        assert_eq!((v.state, v.stage), (BootState::Failed, None));
        assert_eq!(v.detail, "failed: sshd.service failed");

        let mut events = boot("lab.g3");
        events.truncate(3);
        events.push(ev(
            9,
            BootStage::Initrd,
            Outcome::Failed,
            "cut off after 1 of 2 bytes",
        ));
        let v = verdict(&events, 10);
        assert_eq!((v.state, v.stage), (BootState::Failed, Some(Stage::Initrd)));
        assert!(v.detail.starts_with("Stopped at Initrd"), "{}", v.detail);
        assert_eq!(v.ended, Some(at(9)));
    }

    #[test]
    fn no_report_after_the_timeout_and_booting_before_it() {
        let events = boot("lab.g3");
        let v = verdict(&events, 3 + 599);
        assert_eq!(
            (v.state, v.stage, v.ended),
            (BootState::Booting, Some(Stage::Initrd), None)
        );
        assert_eq!(
            v.detail,
            "waiting for the system's report (due 10 minutes after the initrd)"
        );
        let v = verdict(&events, 3 + 600);
        assert_eq!(v.state, BootState::NoReport);
        assert_eq!(v.detail, "no report 10 minutes after the initrd");
        assert_eq!(v.ended, Some(at(3)));
    }

    #[test]
    fn a_boot_under_way_is_booting_at_its_stage_until_it_goes_quiet() {
        let events = boot("lab.g3");
        let v = verdict(&events[..2], 30);
        assert_eq!(
            (v.state, v.stage),
            (BootState::Booting, Some(Stage::Script))
        );
        assert_eq!(v.detail, "at Script");
        let v = verdict(&events[..2], 1 + 600);
        assert_eq!(v.state, BootState::Failed);
        assert_eq!(
            v.detail,
            "Stopped after Script: the machine never asked for the kernel."
        );
        assert_eq!(verdict(&[], 0).state, BootState::Never);
    }

    /// A boot that stopped after the menu and the one after it, a minute later: the older is
    /// over ("failed", stopped after its script), not "booting", while the newer boots on.
    #[test]
    fn an_attempt_a_newer_boot_followed_is_over() {
        let mut events = boot("lab.g3")[..2].to_vec();
        events.extend(boot("lab.g3").into_iter().map(|mut e| {
            e.at += Duration::from_secs(60);
            e
        }));
        let list = attempts(&events);
        assert_eq!(list.len(), 2);
        let all = Verdict::all(&list, at(70), TEN_MIN);
        assert_eq!(all[0].state, BootState::Booting);
        assert_eq!(all[1].state, BootState::Failed);
        assert_eq!(
            all[1].detail,
            "Stopped after Script: the machine never asked for the kernel."
        );
    }

    #[test]
    fn states_parse_and_spans_read_naturally() {
        for s in BootState::ALL {
            assert_eq!(BootState::parse(s.as_str()), Some(s));
        }
        assert_eq!(BootState::parse("no-report"), Some(BootState::NoReport));
        assert_eq!(BootState::parse("down"), None);
        assert_eq!(span(Duration::from_secs(600)), "10 minutes");
        assert_eq!(span(Duration::from_secs(60)), "1 minute");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
        assert_eq!(
            boot_path("GET /boot/a/lab.g12/initrd 206"),
            Some(("a", "lab.g12"))
        );
        assert_eq!(
            boot_path("GET /boot/a/lab.g12/initrd: cut off"),
            Some(("a", "lab.g12"))
        );
        assert_eq!(boot_path("GET /boot.ipxe 200"), None);
        assert_eq!(generation_of("my.gadgets.g7"), Some(7));
        assert_eq!(generation_of("static"), None);
    }
}
