//! Events in, attempts out. Where one attempt ends and the next begins:
//! - a DHCP packet after the attempt reached the script, failed a stage, or got the system's
//!   report: the machine started over (a new DHCP DISCOVER after an end);
//! - any other stage after the system's report, or a stage earlier than one already reached
//!   (a script fetched after the initrd): a new boot whose DHCP flakeboot did not see;
//! - a silence longer than [`NEW_ATTEMPT_GAP`].
//!
//! A system's report belongs to the attempt that fetched a kernel, however long the system
//! took to come up.

use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, Outcome};

/// A silence this long between two events starts a new attempt.
pub const NEW_ATTEMPT_GAP: Duration = Duration::from_secs(600);

/// The stages of a network boot that flakeboot serves, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// DHCP (and the PXE boot server).
    Dhcp,
    /// The iPXE binary (TFTP, or HTTP for UEFI HTTP boot).
    Tftp,
    /// The iPXE script.
    Script,
    /// The kernel.
    Kernel,
    /// The initrd.
    Initrd,
}

impl Stage {
    /// Every stage, in boot order.
    pub const ALL: [Stage; 5] = [
        Stage::Dhcp,
        Stage::Tftp,
        Stage::Script,
        Stage::Kernel,
        Stage::Initrd,
    ];

    /// The stage of a boot service's event; `None` for the system's own report, which is not a
    /// stage flakeboot serves but how the attempt ended.
    pub fn of(stage: BootStage) -> Option<Stage> {
        match stage {
            BootStage::Dhcp | BootStage::PxeBootServer => Some(Stage::Dhcp),
            BootStage::Tftp | BootStage::HttpIpxe => Some(Stage::Tftp),
            BootStage::Script => Some(Stage::Script),
            BootStage::Kernel => Some(Stage::Kernel),
            BootStage::Initrd => Some(Stage::Initrd),
            BootStage::System | BootStage::Local | BootStage::Console | BootStage::OtherDhcp => {
                None
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Its name in the API: `dhcp`, `tftp`, `script`, `kernel`, `initrd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dhcp => "dhcp",
            Stage::Tftp => "tftp",
            Stage::Script => "script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
        }
    }

    /// Its name on a page.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Dhcp => "DHCP",
            Stage::Tftp => "TFTP",
            Stage::Script => "Script",
            Stage::Kernel => "Kernel",
            Stage::Initrd => "Initrd",
        }
    }

    /// What the machine asks for in this stage.
    pub fn noun(self) -> &'static str {
        match self {
            Stage::Dhcp => "DHCP offer",
            Stage::Tftp => "iPXE binary over TFTP",
            Stage::Script => "iPXE script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
        }
    }
}

/// How far one stage got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    /// Served (a transfer: every byte sent).
    Ok,
    /// flakeboot declined it.
    Declined,
    /// It failed (a transfer cut off, a timeout, a missing file).
    Failed,
    /// Not needed (the firmware was iPXE already: no TFTP).
    Skipped,
    /// The machine never asked for it.
    NotReached,
}

impl StageState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Ok => "ok",
            StageState::Declined => "declined",
            StageState::Failed => "failed",
            StageState::Skipped => "skipped",
            StageState::NotReached => "not-reached",
        }
    }
}

/// One stage of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRun {
    /// Which stage.
    pub stage: Stage,
    /// How far it got: the outcome of its last event (a retry that worked wins).
    pub state: StageState,
    /// When it began: its first event's start (a transfer's event says when it began), else
    /// its first event.
    pub started: Option<SystemTime>,
    /// When its last event happened.
    pub ended: Option<SystemTime>,
    /// Bytes its last transfer delivered, when it is a transfer.
    pub bytes: Option<u64>,
    /// The last event's detail (file served, failure reason).
    pub detail: String,
    /// How many events it took (retries, the PXE size probe).
    pub events: u32,
}

impl StageRun {
    fn new(stage: Stage) -> StageRun {
        StageRun {
            stage,
            state: StageState::NotReached,
            started: None,
            ended: None,
            bytes: None,
            detail: String::new(),
            events: 0,
        }
    }

    fn reached(&self) -> bool {
        self.events > 0
    }

    /// How long it took, when it ran.
    pub fn duration(&self) -> Option<Duration> {
        self.ended?.duration_since(self.started?).ok()
    }
}

/// A booted system's report (`POST /boot/report`), as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemReport {
    /// `stage=up` (else `stage=failed`).
    pub up: bool,
    /// "up", or the failure's detail.
    pub detail: String,
    /// When it came.
    pub at: SystemTime,
}

/// A line of the machine's console or logs that says its boot failed (a kernel panic, NixOS
/// stage 1's error): a [`BootStage::Console`] event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFailure {
    /// The line.
    pub line: String,
    /// When it came.
    pub at: SystemTime,
}

/// One boot of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When its first stage began.
    pub started: SystemTime,
    /// Its last event.
    pub ended: SystemTime,
    /// The firmware it reported (its newest).
    pub firmware: Option<ClientFirmware>,
    /// The five stages, in boot order.
    pub stages: Vec<StageRun>,
    /// True when the initrd was delivered: the machine got everything it needs.
    pub complete: bool,
    /// Where and why it stopped, when it did not complete.
    pub stopped: Option<String>,
    /// The booted system's report (its newest), if one came.
    pub system: Option<SystemReport>,
    /// When the boot menu's `local` entry sent it to its local disk, if it did.
    pub local_disk: Option<SystemTime>,
    /// The first line of its console or logs that said it failed, if one did.
    pub console: Option<ConsoleFailure>,
    /// Offers other DHCP servers on the LAN made it, as the appliance heard them (oldest
    /// first).
    pub other_offers: Vec<OtherOffer>,
}

/// Another DHCP server's OFFER or ACK to the machine: a [`BootStage::OtherDhcp`] event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherOffer {
    /// What the server offered, as recorded ("offer from 10.77.0.2 (full): 10.77.0.150").
    pub detail: String,
    pub at: SystemTime,
}

impl Attempt {
    /// One stage of it.
    pub fn stage(&self, stage: Stage) -> Option<&StageRun> {
        self.stages.get(stage.index())
    }

    /// The stage that failed or was declined, if one did.
    pub fn failed_stage(&self) -> Option<&StageRun> {
        self.stages
            .iter()
            .find(|s| matches!(s.state, StageState::Failed | StageState::Declined))
    }

    /// The furthest stage it reached.
    pub fn last_stage(&self) -> Option<&StageRun> {
        self.stages.iter().rev().find(|s| s.reached())
    }
}

/// Folds one machine's events (any order) into attempts, newest first.
pub fn attempts(events: &[BootEvent]) -> Vec<Attempt> {
    let mut sorted: Vec<&BootEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.at);
    let mut groups: Vec<Vec<&BootEvent>> = Vec::new();
    for event in sorted {
        let start_new = match groups.last() {
            None => true,
            Some(group) => starts_new_attempt(group, event),
        };
        if start_new {
            groups.push(Vec::new());
        }
        if let Some(group) = groups.last_mut() {
            group.push(event);
        }
    }
    let mut out: Vec<Attempt> = groups.iter().map(|g| fold(g)).collect();
    out.reverse();
    out
}

/// Does `event` begin a new attempt after `group` (the current attempt, oldest first)?
fn starts_new_attempt(group: &[&BootEvent], event: &BootEvent) -> bool {
    let furthest = group
        .iter()
        .filter_map(|e| Stage::of(e.stage))
        .max()
        .map(Stage::index);
    let reported = group.iter().any(|e| {
        matches!(
            e.stage,
            BootStage::System | BootStage::Local | BootStage::Console
        )
    });
    if matches!(event.stage, BootStage::Console | BootStage::OtherDhcp) {
        // A console line belongs to the boot under way, however long it ran (a panic after
        // an hour up is that boot's end); another server's offer answers the DHCP packet that
        // began it.
        return false;
    }
    let Some(stage) = Stage::of(event.stage) else {
        // A report ends the boot that fetched a kernel (a later report of the same boot, e.g.
        // up then failed, wins); one with no kernel before it stands alone. The menu's local
        // entry ends the boot that fetched the script.
        let ends = if event.stage == BootStage::Local {
            Stage::Script
        } else {
            Stage::Kernel
        };
        return furthest.is_none_or(|f| f < ends.index());
    };
    let last_at = group.last().map_or(event.at, |e| e.at);
    if event.at.duration_since(last_at).unwrap_or_default() > NEW_ATTEMPT_GAP || reported {
        return true;
    }
    let failed = group
        .iter()
        .any(|e| Stage::of(e.stage).is_some() && e.outcome != Outcome::Ok);
    if stage == Stage::Dhcp {
        return failed || furthest.is_some_and(|f| f >= Stage::Script.index());
    }
    // The iPXE binary or the script after a later stage: a new boot whose DHCP flakeboot did
    // not see. (The same stage again is a retry; kernel and initrd may come in either order.)
    stage <= Stage::Script && furthest.is_some_and(|f| stage.index() < f)
}

fn fold(events: &[&BootEvent]) -> Attempt {
    let mut stages: Vec<StageRun> = Stage::ALL.iter().map(|&s| StageRun::new(s)).collect();
    let mut firmware = None;
    let mut system = None;
    let mut local_disk = None;
    let mut console = None;
    let mut other_offers = Vec::new();
    for event in events {
        if event.firmware.is_some() {
            firmware = event.firmware;
        }
        if event.stage == BootStage::Local {
            local_disk = Some(event.at);
            continue;
        }
        if event.stage == BootStage::OtherDhcp {
            other_offers.push(OtherOffer {
                detail: event.detail.clone(),
                at: event.at,
            });
            continue;
        }
        if event.stage == BootStage::Console {
            console.get_or_insert_with(|| ConsoleFailure {
                line: event.detail.clone(),
                at: event.at,
            });
            continue;
        }
        let Some(stage) = Stage::of(event.stage) else {
            system = Some(SystemReport {
                up: event.outcome == Outcome::Ok,
                detail: event.detail.clone(),
                at: event.at,
            });
            continue;
        };
        if let Some(run) = stages.get_mut(stage.index()) {
            let began = event.started.unwrap_or(event.at).min(event.at);
            run.started = Some(run.started.map_or(began, |s| s.min(began)));
            run.ended = Some(event.at);
            run.state = match event.outcome {
                Outcome::Ok => StageState::Ok,
                Outcome::Declined => StageState::Declined,
                Outcome::Failed => StageState::Failed,
            };
            run.bytes = event.bytes;
            run.detail.clone_from(&event.detail);
            run.events = run.events.saturating_add(1);
        }
    }
    let later_reached = stages
        .iter()
        .any(|s| s.stage >= Stage::Script && s.reached());
    if let Some(tftp) = stages.get_mut(Stage::Tftp.index())
        && !tftp.reached()
        && later_reached
    {
        tftp.state = StageState::Skipped;
        tftp.detail = "already iPXE".into();
    }
    let complete = stages
        .get(Stage::Initrd.index())
        .is_some_and(|s| s.state == StageState::Ok);
    let stopped = (!complete && local_disk.is_none()).then(|| stopped_text(&stages));
    let started = events
        .iter()
        .map(|e| e.started.unwrap_or(e.at).min(e.at))
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let ended = events.iter().map(|e| e.at).max().unwrap_or(started);
    Attempt {
        started,
        ended,
        firmware,
        stages,
        complete,
        stopped,
        system,
        local_disk,
        console,
        other_offers,
    }
}

/// "Stopped at Kernel: it failed (...)." or "Stopped after DHCP: the machine never asked for
/// the iPXE binary over TFTP."
fn stopped_text(stages: &[StageRun]) -> String {
    if let Some(bad) = stages
        .iter()
        .find(|s| matches!(s.state, StageState::Failed | StageState::Declined))
    {
        let verb = if bad.state == StageState::Failed {
            "failed"
        } else {
            "was declined"
        };
        return format!(
            "Stopped at {}: it {verb} ({}).",
            bad.stage.label(),
            bad.detail
        );
    }
    let last = stages.iter().rev().find(|s| s.state == StageState::Ok);
    let next = stages.iter().find(|s| s.state == StageState::NotReached);
    match (last, next) {
        (Some(last), Some(next)) => format!(
            "Stopped after {}: the machine never asked for the {}.",
            last.stage.label(),
            next.stage.noun()
        ),
        _ => "No stage was served.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use flakeboot_catalogue::MacAddr;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ev(secs: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, detail).mac(MAC);
        e.at = at(secs);
        e
    }

    /// A transfer that began at `from` and ended at `to`, having sent `bytes`.
    fn transfer(from: u64, to: u64, stage: BootStage, outcome: Outcome, bytes: u64) -> BootEvent {
        ev(to, stage, outcome, "GET /boot/alpha/lab.g3/initrd 200")
            .started(at(from))
            .bytes(bytes)
    }

    fn states(a: &Attempt) -> Vec<StageState> {
        a.stages.iter().map(|s| s.state).collect()
    }

    #[test]
    fn a_full_bios_chain_boot_is_one_complete_attempt_with_times_and_bytes() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer: undionly.kpxe"),
            ev(
                1,
                Tftp,
                Outcome::Ok,
                "undionly.kpxe: aborted by client after OACK",
            ),
            transfer(1, 2, Tftp, Outcome::Ok, 70_000),
            ev(3, Dhcp, Outcome::Ok, "proxy offer: script"),
            ev(4, Script, Outcome::Ok, "GET /boot.ipxe 200"),
            transfer(4, 6, Kernel, Outcome::Ok, 10_000_000),
            transfer(6, 26, Initrd, Outcome::Ok, 200_000_000),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 1, "{all:#?}");
        let a = &all[0];
        assert!(a.complete);
        assert_eq!(a.stopped, None);
        assert_eq!(states(a), vec![StageState::Ok; 5]);
        assert_eq!((a.started, a.ended), (at(0), at(26)));
        let tftp = a.stage(Stage::Tftp).unwrap();
        assert_eq!(
            (tftp.started, tftp.ended, tftp.events),
            (Some(at(1)), Some(at(2)), 2)
        );
        assert_eq!(tftp.bytes, Some(70_000));
        let initrd = a.stage(Stage::Initrd).unwrap();
        assert_eq!(initrd.duration(), Some(Duration::from_secs(20)));
        assert_eq!(initrd.bytes, Some(200_000_000));
        // The DHCP stage spans both exchanges (firmware, then iPXE).
        assert_eq!(a.stage(Stage::Dhcp).unwrap().ended, Some(at(3)));
    }

    #[test]
    fn a_cut_off_initrd_is_a_failed_stage_not_a_complete_boot() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200"),
            transfer(1, 2, Kernel, Outcome::Ok, 10),
            transfer(2, 9, Initrd, Outcome::Failed, 1_200_000),
        ];
        let a = &attempts(&events)[0];
        assert!(!a.complete);
        let initrd = a.stage(Stage::Initrd).unwrap();
        assert_eq!(
            (initrd.state, initrd.bytes),
            (StageState::Failed, Some(1_200_000))
        );
        assert_eq!(a.failed_stage().map(|s| s.stage), Some(Stage::Initrd));
    }

    #[test]
    fn a_failed_step_says_where_the_boot_stopped_and_a_new_dhcp_starts_a_new_attempt() {
        use BootStage::*;
        let events = vec![
            ev(100, Dhcp, Outcome::Ok, "offer"),
            ev(101, Script, Outcome::Ok, "demo"),
            ev(102, Kernel, Outcome::Failed, "client aborted after 3 MB"),
            // Rebooted: a new attempt that got no further than DHCP.
            ev(200, Dhcp, Outcome::Ok, "offer"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 2);
        let (newest, oldest) = (&all[0], &all[1]);
        assert_eq!(
            states(oldest),
            vec![
                StageState::Ok,
                StageState::Skipped,
                StageState::Ok,
                StageState::Failed,
                StageState::NotReached
            ]
        );
        assert_eq!(
            oldest.stopped.as_deref(),
            Some("Stopped at Kernel: it failed (client aborted after 3 MB).")
        );
        assert_eq!(
            newest.stopped.as_deref(),
            Some("Stopped after DHCP: the machine never asked for the iPXE binary over TFTP.")
        );
    }

    #[test]
    fn a_dhcp_retry_after_a_failed_tftp_is_a_new_attempt_but_a_chain_dhcp_is_not() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer: ipxe.efi"),
            ev(1, Tftp, Outcome::Failed, "ipxe.efi: timeout"),
            ev(5, Dhcp, Outcome::Ok, "proxy offer: ipxe.efi"),
            ev(6, Tftp, Outcome::Ok, "ipxe.efi: 1000 bytes"),
            // iPXE's own DHCP: the same attempt.
            ev(7, Dhcp, Outcome::Ok, "proxy offer: script"),
            ev(8, Script, Outcome::Ok, "GET /boot.ipxe 200"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(all[1].failed_stage().map(|s| s.stage), Some(Stage::Tftp));
        assert_eq!(all[0].stage(Stage::Dhcp).unwrap().events, 2);
        assert_eq!(all[0].last_stage().map(|s| s.stage), Some(Stage::Script));
    }

    #[test]
    fn a_later_failure_is_not_merged_into_a_booted_attempt() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200"),
            ev(2, Kernel, Outcome::Ok, "k"),
            ev(3, Initrd, Outcome::Ok, "i"),
            // No DHCP seen, but a script after the initrd is another boot.
            ev(120, Script, Outcome::Failed, "GET /boot.ipxe 500"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert!(all[1].complete);
        assert_eq!(all[0].failed_stage().map(|s| s.stage), Some(Stage::Script));
        // After a report, any stage is a new boot too.
        let mut events = events[..4].to_vec();
        events.push(ev(60, System, Outcome::Ok, "up"));
        events.push(ev(90, Kernel, Outcome::Failed, "k"));
        let all = attempts(&events);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert!(all[1].system.is_some() && all[0].system.is_none());
    }

    #[test]
    fn a_new_dhcp_discover_after_a_report_starts_a_new_attempt_even_seconds_later() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "s"),
            ev(2, Kernel, Outcome::Ok, "k"),
            ev(3, Initrd, Outcome::Ok, "i"),
            ev(30, System, Outcome::Ok, "up"),
            ev(31, Dhcp, Outcome::Ok, "proxy offer"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].started, at(31));
        assert_eq!(all[1].system.as_ref().map(|r| r.up), Some(true));
    }

    #[test]
    fn a_long_silence_splits_attempts_and_order_of_arrival_does_not_matter() {
        use BootStage::*;
        let events = vec![
            ev(2000, Tftp, Outcome::Failed, "timeout"),
            ev(0, Dhcp, Outcome::Declined, "unknown architecture"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1].stopped.as_deref(),
            Some("Stopped at DHCP: it was declined (unknown architecture).")
        );
        assert!(attempts(&[]).is_empty());
    }

    #[test]
    fn a_report_long_after_the_kernel_still_ends_that_boot() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "offer"),
            ev(1, Script, Outcome::Ok, "s"),
            ev(2, Kernel, Outcome::Ok, "k"),
            ev(3, Initrd, Outcome::Ok, "i"),
            ev(1500, System, Outcome::Ok, "up"),
            ev(4000, System, Outcome::Failed, "disk full"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].system.as_ref().map(|r| r.up), Some(false));
        // A report with no boot before it stands alone.
        let all = attempts(&[ev(0, System, Outcome::Ok, "up")]);
        assert_eq!(all.len(), 1);
        assert!(!all[0].complete);
    }
}
