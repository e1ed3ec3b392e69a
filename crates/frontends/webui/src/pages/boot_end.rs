//! How a boot ended after the initrd: the booted system reported up (or failed), or no report
//! came in time. Pure: an attempt, now and the configured timeout in; a verdict out.

use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, Outcome};
use maud::{Markup, html};
use serde::Serialize;

use crate::pages::timeline::{Attempt, Step};

/// A booted system's report (`POST /boot/report`), as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemReport {
    /// `stage=up` (else `stage=failed`).
    pub up: bool,
    /// "up", or the failure's detail.
    pub detail: String,
    /// When it came.
    pub at: SystemTime,
}

impl SystemReport {
    /// The report a `system` event records.
    pub fn from_event(event: &BootEvent) -> SystemReport {
        SystemReport {
            up: event.outcome == Outcome::Ok,
            detail: event.detail.clone(),
            at: event.at,
        }
    }
}

/// How a boot that got its initrd ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// The system reported up; `version` is the generation label it booted (`lab.g3`,
    /// `static`), when the attempt's kernel or initrd fetch names it.
    Up { version: Option<String> },
    /// The system reported a failure.
    Failed { detail: String },
    /// The timeout passed after the initrd without a report.
    NoReport { after: Duration },
    /// The initrd was served less than the timeout ago: the report may still come.
    Waiting { due: Duration },
}

impl BootEnd {
    /// How `attempt` ended, `now`; `None` when it stopped before the initrd (and the system
    /// never reported).
    pub fn of(attempt: &Attempt, now: SystemTime, timeout: Duration) -> Option<BootEnd> {
        if let Some(report) = &attempt.system {
            return Some(if report.up {
                BootEnd::Up {
                    version: booted_version(attempt),
                }
            } else {
                BootEnd::Failed {
                    detail: report.detail.clone(),
                }
            });
        }
        if !attempt.complete {
            return None;
        }
        let initrd_at = attempt
            .steps
            .iter()
            .find(|s| s.step == Step::Initrd)
            .and_then(|s| s.at)?;
        let waited = now.duration_since(initrd_at).unwrap_or_default();
        Some(if waited >= timeout {
            BootEnd::NoReport { after: timeout }
        } else {
            BootEnd::Waiting { due: timeout }
        })
    }

    /// Whether the system reported up.
    pub fn is_up(&self) -> bool {
        matches!(self, BootEnd::Up { .. })
    }

    /// One line: "up (generation 3)", "failed: <detail>", "no report 10 minutes after the
    /// initrd".
    pub fn text(&self) -> String {
        match self {
            BootEnd::Up { version: None } => "up".into(),
            BootEnd::Up {
                version: Some(version),
            } => match generation(version) {
                Some(n) => format!("up (generation {n})"),
                None => format!("up ({version})"),
            },
            BootEnd::Failed { detail } => format!("failed: {detail}"),
            BootEnd::NoReport { after } => format!("no report {} after the initrd", span(*after)),
            BootEnd::Waiting { due } => format!(
                "waiting for the system's report (due {} after the initrd)",
                span(*due)
            ),
        }
    }

    /// Its badge.
    pub fn badge(&self) -> Markup {
        match self {
            BootEnd::Up { .. } => html! { span.badge.ok { "up" } },
            BootEnd::Failed { .. } => html! { span.badge.bad { "failed" } },
            BootEnd::NoReport { .. } => html! { span.badge.warn { "no report" } },
            BootEnd::Waiting { .. } => html! { span.badge.run { "booting" } },
        }
    }
}

/// The version label in the attempt's kernel or initrd fetch (`GET /boot/<host>/<version>/...`).
fn booted_version(attempt: &Attempt) -> Option<String> {
    attempt
        .steps
        .iter()
        .filter(|s| matches!(s.step, Step::Initrd | Step::Kernel))
        .find_map(|s| version_in(&s.detail))
        .map(str::to_owned)
}

fn version_in(detail: &str) -> Option<&str> {
    let rest = detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix("/boot/"))?;
    let mut parts = rest.split('/');
    let (_host, version, kind) = (parts.next()?, parts.next()?, parts.next()?);
    matches!(kind, "kernel" | "initrd").then_some(version)
}

/// The generation number of a flake version label (`lab.g3` -> 3).
fn generation(version: &str) -> Option<u32> {
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
    use crate::pages::timeline::attempts;
    use flakeboot_catalogue::{BootStage, MacAddr};

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

    fn end_of(events: &[BootEvent], now: u64) -> Option<BootEnd> {
        let all = attempts(events);
        assert_eq!(all.len(), 1, "{all:#?}");
        all[0].end(at(now), TEN_MIN)
    }

    #[test]
    fn an_up_report_names_the_generation_even_after_a_long_boot() {
        let mut events = boot("lab.g3");
        // Longer than the gap that splits attempts: still this boot's report.
        events.push(ev(1500, BootStage::System, Outcome::Ok, "up"));
        let end = end_of(&events, 2000).unwrap();
        assert!(end.is_up());
        assert_eq!(end.text(), "up (generation 3)");
        let mut events = boot("static");
        events.push(ev(60, BootStage::System, Outcome::Ok, "up"));
        assert_eq!(end_of(&events, 100).unwrap().text(), "up (static)");
    }

    #[test]
    fn the_newest_report_of_a_boot_wins() {
        let mut events = boot("lab.g3");
        events.push(ev(60, BootStage::System, Outcome::Ok, "up"));
        events.push(ev(4000, BootStage::System, Outcome::Failed, "disk full"));
        assert_eq!(end_of(&events, 5000).unwrap().text(), "failed: disk full");
    }

    #[test]
    fn a_failed_report_shows_its_detail() {
        let mut events = boot("lab.g3");
        events.push(ev(
            90,
            BootStage::System,
            Outcome::Failed,
            "sshd.service failed",
        ));
        let end = end_of(&events, 100).unwrap();
        assert_eq!(end.text(), "failed: sshd.service failed");
        assert!(!end.is_up());
    }

    #[test]
    fn no_report_after_the_timeout_and_waiting_before_it() {
        let events = boot("lab.g3");
        assert_eq!(
            end_of(&events, 3 + 599).unwrap().text(),
            "waiting for the system's report (due 10 minutes after the initrd)"
        );
        assert_eq!(
            end_of(&events, 3 + 600).unwrap().text(),
            "no report 10 minutes after the initrd"
        );
        // A boot that stopped before the initrd has no end of this kind.
        assert_eq!(end_of(&events[..3], 5000), None);
    }

    #[test]
    fn a_new_boot_after_a_report_is_a_new_attempt() {
        let mut events = boot("lab.g3");
        events.push(ev(60, BootStage::System, Outcome::Ok, "up"));
        let mut again: Vec<BootEvent> = boot("lab.g4")
            .into_iter()
            .map(|mut e| {
                e.at += Duration::from_secs(3600);
                e
            })
            .collect();
        events.append(&mut again);
        let all = attempts(&events);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].end(at(3600 + 10), TEN_MIN).unwrap().text(),
            "waiting for the system's report (due 10 minutes after the initrd)"
        );
        assert_eq!(
            all[1].end(at(4000), TEN_MIN).unwrap().text(),
            "up (generation 3)"
        );
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(Duration::from_secs(600)), "10 minutes");
        assert_eq!(span(Duration::from_secs(60)), "1 minute");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
        assert_eq!(
            version_in("GET /boot/a/lab.g12/initrd 206"),
            Some("lab.g12")
        );
        assert_eq!(version_in("GET /boot.ipxe 200"), None);
        assert_eq!(generation("my.gadgets.g7"), Some(7));
        assert_eq!(generation("static"), None);
    }
}
