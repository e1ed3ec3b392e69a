//! A generation's pre-flight boot as the API shows it (`preflight` on each generation).

use std::time::SystemTime;

use flakeboot_store::{PreflightRecord, PreflightState};
use serde::{Deserialize, Serialize};

use super::time::rfc3339_opt;

/// A generation's pre-flight: `queued`, `running`, `passed`, `failed` or `skipped`, when it
/// ran, how long, why it failed or was skipped, and whether there is a console log
/// (`GET /api/v1/generations/preflight-log?host=&number=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub state: PreflightState,
    #[serde(default, with = "rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(default, with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    /// Whole seconds from start to end (to now while it runs).
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether the VM's serial console log can be fetched.
    #[serde(default)]
    pub has_log: bool,
}

impl Default for Preflight {
    fn default() -> Preflight {
        Preflight::from_record(PreflightRecord::before_preflight(), SystemTime::now())
    }
}

impl Preflight {
    /// The API's view of a stored record at `now`.
    pub fn from_record(r: PreflightRecord, now: SystemTime) -> Preflight {
        Preflight {
            state: r.state,
            duration_secs: r.duration(now).map(|d| d.as_secs()),
            started_at: r.started_at,
            finished_at: r.finished_at,
            reason: r.reason,
            has_log: r.log.is_some(),
        }
    }

    /// `passed in 42 s`, `failed after 300 s: no report`, `running for 12 s`, `queued`,
    /// `skipped`: one phrase for tables and pages.
    pub fn summary(&self) -> String {
        let secs = self.duration_secs.unwrap_or(0);
        match self.state {
            PreflightState::Queued => "queued".into(),
            PreflightState::Running => format!("running for {secs} s"),
            PreflightState::Passed => format!("passed in {secs} s"),
            PreflightState::Failed => match &self.reason {
                Some(why) => format!("failed after {secs} s: {why}"),
                None => format!("failed after {secs} s"),
            },
            PreflightState::Skipped => "skipped".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn summaries_say_state_duration_and_reason() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut r = PreflightRecord::queued();
        assert_eq!(Preflight::from_record(r.clone(), t0).summary(), "queued");
        r.state = PreflightState::Running;
        r.started_at = Some(t0);
        let p = Preflight::from_record(r.clone(), t0 + Duration::from_secs(12));
        assert_eq!(p.summary(), "running for 12 s");
        r.state = PreflightState::Failed;
        r.finished_at = Some(t0 + Duration::from_secs(312));
        r.reason = Some("no report".into());
        r.log = Some("/var/lib/flakeboot/preflight/x.log".into());
        let p = Preflight::from_record(r, t0 + Duration::from_secs(999));
        assert_eq!(p.summary(), "failed after 312 s: no report");
        assert!(p.has_log);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["state"], "failed");
        assert_eq!(json["duration_secs"], 312);
        assert_eq!(Preflight::default().summary(), "skipped");
    }
}
