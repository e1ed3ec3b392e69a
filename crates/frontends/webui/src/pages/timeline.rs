//! A machine's boot events folded into boot attempts (DHCP, TFTP, script, kernel, initrd), each
//! saying where a failed boot stopped, and how it ended once the initrd was served: the booted
//! system's own report (`system` events; [`boot_end`](crate::pages::boot_end)). Pure: events
//! in, attempts out.

use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, Outcome};
use maud::{Markup, html};
use serde::Serialize;

use crate::pages::boot_end::{BootEnd, SystemReport};
use crate::pages::layout::timestamp;

/// A silence this long between two events starts a new attempt.
const NEW_ATTEMPT_GAP: Duration = Duration::from_secs(600);

/// The steps of a network boot, as the timeline shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
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

impl Step {
    /// Every step, in boot order.
    pub const ALL: [Step; 5] = [
        Step::Dhcp,
        Step::Tftp,
        Step::Script,
        Step::Kernel,
        Step::Initrd,
    ];

    /// The step of a boot service's event; `None` for the system's own report, which is not a
    /// step the boot server serves but how the attempt ended.
    fn of(stage: BootStage) -> Option<Step> {
        match stage {
            BootStage::Dhcp | BootStage::PxeBootServer => Some(Step::Dhcp),
            BootStage::Tftp | BootStage::HttpIpxe => Some(Step::Tftp),
            BootStage::Script => Some(Step::Script),
            BootStage::Kernel => Some(Step::Kernel),
            BootStage::Initrd => Some(Step::Initrd),
            BootStage::System => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// What the machine asks for in this step.
    pub fn noun(self) -> &'static str {
        match self {
            Step::Dhcp => "DHCP offer",
            Step::Tftp => "iPXE binary over TFTP",
            Step::Script => "iPXE script",
            Step::Kernel => "kernel",
            Step::Initrd => "initrd",
        }
    }

    /// Its name on the page.
    pub fn label(self) -> &'static str {
        match self {
            Step::Dhcp => "DHCP",
            Step::Tftp => "TFTP",
            Step::Script => "Script",
            Step::Kernel => "Kernel",
            Step::Initrd => "Initrd",
        }
    }
}

/// How far one step got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Served.
    Ok,
    /// flakeboot declined it.
    Declined,
    /// It failed.
    Failed,
    /// Not needed (the firmware was iPXE already: no TFTP).
    Skipped,
    /// The machine never asked for it.
    NotReached,
}

/// One step of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// Which step.
    pub step: Step,
    /// How far it got.
    pub state: StepState,
    /// The last event's detail (file served, failure reason).
    pub detail: String,
    /// When its last event happened.
    #[serde(with = "flakeboot_appliance::wire::time::rfc3339_opt")]
    pub at: Option<SystemTime>,
}

/// One boot of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Its first event.
    #[serde(with = "flakeboot_appliance::wire::time::rfc3339")]
    pub started: SystemTime,
    /// Its last event.
    #[serde(with = "flakeboot_appliance::wire::time::rfc3339")]
    pub ended: SystemTime,
    /// The firmware it reported.
    pub firmware: Option<ClientFirmware>,
    /// The five steps.
    pub steps: Vec<StepView>,
    /// True when the initrd was served: the machine got everything it needs.
    pub complete: bool,
    /// Where and why it stopped, when it did not complete.
    pub stopped: Option<String>,
    /// The booted system's report (its newest), if one came.
    pub system: Option<SystemReport>,
}

impl Attempt {
    /// How the boot ended, `now`, when a report is due `report_timeout` after the initrd:
    /// `None` when it stopped before the initrd.
    pub fn end(&self, now: SystemTime, report_timeout: Duration) -> Option<BootEnd> {
        BootEnd::of(self, now, report_timeout)
    }
}

/// Folds events (any order) into attempts, newest first.
pub fn attempts(events: &[BootEvent]) -> Vec<Attempt> {
    let mut sorted: Vec<&BootEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.at);
    let mut groups: Vec<Vec<&BootEvent>> = Vec::new();
    let reached = |group: &[&BootEvent], step: Step| {
        group
            .iter()
            .any(|e| Step::of(e.stage).is_some_and(|s| s.index() >= step.index()))
    };
    for event in sorted {
        let step = Step::of(event.stage);
        let start_new = match groups.last() {
            None => true,
            // A system's report ends the boot that fetched a kernel, however long the system
            // took to come up (a later report of the same boot, e.g. up then failed, wins).
            Some(group) if step.is_none() => !reached(group, Step::Kernel),
            Some(group) => {
                let last_at = group.last().map_or(event.at, |e| e.at);
                let gap = event.at.duration_since(last_at).unwrap_or_default();
                (step == Some(Step::Dhcp) && reached(group, Step::Script)) || gap > NEW_ATTEMPT_GAP
            }
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

fn fold(events: &[&BootEvent]) -> Attempt {
    let mut steps: Vec<StepView> = Step::ALL
        .iter()
        .map(|&step| StepView {
            step,
            state: StepState::NotReached,
            detail: String::new(),
            at: None,
        })
        .collect();
    let mut firmware = None;
    let mut system = None;
    for event in events {
        if event.firmware.is_some() {
            firmware = event.firmware;
        }
        let Some(step) = Step::of(event.stage) else {
            system = Some(SystemReport::from_event(event));
            continue;
        };
        if let Some(view) = steps.get_mut(step.index()) {
            view.state = match event.outcome {
                Outcome::Ok => StepState::Ok,
                Outcome::Declined => StepState::Declined,
                Outcome::Failed => StepState::Failed,
            };
            view.detail.clone_from(&event.detail);
            view.at = Some(event.at);
        }
    }
    let reached = |s: Step| {
        steps
            .get(s.index())
            .is_some_and(|v| v.state != StepState::NotReached)
    };
    let later_reached = reached(Step::Script) || reached(Step::Kernel) || reached(Step::Initrd);
    if let Some(tftp) = steps.get_mut(Step::Tftp.index())
        && tftp.state == StepState::NotReached
        && later_reached
    {
        tftp.state = StepState::Skipped;
        tftp.detail = "already iPXE".into();
    }
    let complete = steps
        .get(Step::Initrd.index())
        .is_some_and(|v| v.state == StepState::Ok);
    let stopped = if complete {
        None
    } else if let Some(bad) = steps
        .iter()
        .find(|v| matches!(v.state, StepState::Failed | StepState::Declined))
    {
        let verb = if bad.state == StepState::Failed {
            "failed"
        } else {
            "was declined"
        };
        Some(format!(
            "Stopped at {}: it {verb} ({}).",
            bad.step.label(),
            bad.detail
        ))
    } else {
        let last = steps
            .iter()
            .rev()
            .find(|v| matches!(v.state, StepState::Ok));
        let next = steps.iter().find(|v| v.state == StepState::NotReached);
        match (last, next) {
            (Some(last), Some(next)) => Some(format!(
                "Stopped after {}: the machine never asked for the {}.",
                last.step.label(),
                next.step.noun()
            )),
            _ => Some("No step was served.".into()),
        }
    };
    let first = events.first().map_or(SystemTime::UNIX_EPOCH, |e| e.at);
    let last = events.last().map_or(first, |e| e.at);
    Attempt {
        started: first,
        ended: last,
        firmware,
        steps,
        complete,
        stopped,
        system,
    }
}

fn class(state: StepState) -> &'static str {
    match state {
        StepState::Ok => "ok",
        StepState::Declined => "declined",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
        StepState::NotReached => "missing",
    }
}

fn state_text(state: StepState) -> &'static str {
    match state {
        StepState::Ok => "✓ done",
        StepState::Declined => "declined",
        StepState::Failed => "✗ failed",
        StepState::Skipped => "skipped",
        StepState::NotReached => "not reached",
    }
}

/// One attempt as a row of steps with its verdict; `end` is how it ended
/// ([`Attempt::end`]).
pub fn render(attempt: &Attempt, end: Option<&BootEnd>) -> Markup {
    html! {
        div.attempt {
            div.actions {
                strong { (timestamp(attempt.started)) }
                @if let Some(end) = end {
                    (end.badge())
                } @else if attempt.complete {
                    span.badge.ok { "booted" }
                } @else {
                    span.badge.bad { "stopped" }
                }
                @if let Some(fw) = attempt.firmware { span.muted.small { (fw.as_str()) } }
            }
            ol.timeline {
                @for s in &attempt.steps {
                    li class=(class(s.state)) title=(s.detail) {
                        div.stage { (s.step.label()) }
                        div.small { (state_text(s.state)) }
                        @if !s.detail.is_empty() { div.detail { (s.detail) } }
                    }
                }
            }
            @if let Some(why) = &attempt.stopped {
                p.small.verdict { (why) }
            }
            @if let Some(end) = end {
                p.small.verdict.system { (end.text()) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use flakeboot_catalogue::MacAddr;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn ev(secs: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, detail).mac(MAC);
        e.at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs);
        e
    }

    fn states(a: &Attempt) -> Vec<StepState> {
        a.steps.iter().map(|s| s.state).collect()
    }

    #[test]
    fn a_full_bios_chain_boot_is_one_complete_attempt() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer undionly.kpxe"),
            ev(1, Tftp, Outcome::Ok, "undionly.kpxe"),
            ev(3, Dhcp, Outcome::Ok, "proxy offer script"),
            ev(4, Script, Outcome::Ok, "demo"),
            ev(5, Kernel, Outcome::Ok, "/boot/demo/static/kernel"),
            ev(6, Initrd, Outcome::Ok, "/boot/demo/static/initrd"),
        ];
        let all = attempts(&events);
        assert_eq!(all.len(), 1);
        assert!(all[0].complete);
        assert_eq!(all[0].stopped, None);
        assert_eq!(states(&all[0]), vec![StepState::Ok; 5]);
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
                StepState::Ok,
                StepState::Skipped,
                StepState::Ok,
                StepState::Failed,
                StepState::NotReached
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
        let html = render(oldest, None).into_string();
        assert!(
            html.contains("failed") && html.contains("client aborted"),
            "{html}"
        );
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
}
