//! Automatic updates in the API: a flake's follow settings, its update history and its push
//! webhook.

use std::time::{Duration, SystemTime};

use flakeboot_store::{FollowRecord, UpdateRecord};

use crate::follow::DnsStatus;
use serde::{Deserialize, Serialize};

use super::BuildState;
use super::time::{rfc3339, rfc3339_opt};

/// Whether a flake follows its branch, how often it is re-locked, and the TXT record that
/// announces its new revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    pub follow: bool,
    /// `check_every` as the config file writes it: "15m", "1h 30m".
    pub check_every: String,
    /// The same in seconds.
    pub check_every_secs: u64,
    /// The DNS name whose TXT record (`rev=<commit>`) announces new revisions (`null`: none;
    /// the flake is then re-locked every `check_every` while it follows).
    #[serde(default)]
    pub notify_txt: Option<String>,
}

impl From<FollowRecord> for Follow {
    fn from(f: FollowRecord) -> Follow {
        Follow {
            follow: f.follow,
            check_every: format_every(f.check_every),
            check_every_secs: f.check_every.as_secs(),
            notify_txt: f.notify_txt,
        }
    }
}

/// The last check of a flake's `notify_txt` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCheck {
    /// The record's name.
    pub record: String,
    #[serde(with = "rfc3339")]
    pub checked_at: SystemTime,
    /// The revision it named (`null`: it could not be read, see `error`).
    pub rev: Option<String>,
    /// Why it could not be read ("no answer from 192.0.2.53:53 within 3000 ms", "no TXT
    /// record says rev=<commit> ...").
    pub error: Option<String>,
    /// The revision an update was last started for, and when.
    pub acted_on: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub acted_at: Option<SystemTime>,
}

impl From<DnsStatus> for DnsCheck {
    fn from(s: DnsStatus) -> DnsCheck {
        let (acted_on, acted_at) = match s.acted_on {
            Some((rev, at)) => (Some(rev), Some(at)),
            None => (None, None),
        };
        DnsCheck {
            record: s.record,
            checked_at: s.checked_at,
            rev: s.rev,
            error: s.error,
            acted_on,
            acted_at,
        }
    }
}

/// A duration as the config file writes it ("15m", "2s").
pub fn format_every(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// What started an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateTrigger {
    Schedule,
    Hook,
    Manual,
    /// The flake's `notify_txt` record named another revision.
    Dns,
}

/// Where an update is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Its builds are queued or running.
    Building,
    /// The lock did not move: nothing was built.
    Unchanged,
    /// Every build succeeded and is what its host boots now.
    Promoted,
    /// The builds ended, but not every one became current (`reason` says why).
    NotPromoted,
    /// Re-locking or queueing failed: nothing was built.
    Failed,
}

/// One build of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateBuild {
    pub id: u64,
    pub host: String,
    pub state: BuildState,
    pub generation: Option<u32>,
    pub promoted: bool,
}

/// One update of a flake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub seq: u64,
    pub trigger: UpdateTrigger,
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    pub old_revision: Option<String>,
    pub new_revision: Option<String>,
    pub builds: Vec<UpdateBuild>,
    pub state: UpdateState,
    pub promoted: bool,
    pub reason: Option<String>,
}

impl From<UpdateRecord> for Update {
    fn from(r: UpdateRecord) -> Update {
        use flakeboot_store::{UpdateState as S, UpdateTrigger as T};
        Update {
            seq: r.seq,
            trigger: match r.trigger {
                T::Schedule => UpdateTrigger::Schedule,
                T::Hook => UpdateTrigger::Hook,
                T::Manual => UpdateTrigger::Manual,
                T::Dns => UpdateTrigger::Dns,
            },
            started_at: r.started_at,
            finished_at: r.finished_at,
            old_revision: r.old_revision,
            new_revision: r.new_revision,
            builds: r
                .builds
                .into_iter()
                .map(|b| UpdateBuild {
                    id: b.id,
                    host: b.host,
                    state: b.state.into(),
                    generation: b.generation,
                    promoted: b.promoted,
                })
                .collect(),
            state: match r.state {
                S::Building => UpdateState::Building,
                S::Unchanged => UpdateState::Unchanged,
                S::Promoted => UpdateState::Promoted,
                S::NotPromoted => UpdateState::NotPromoted,
                S::Failed => UpdateState::Failed,
            },
            promoted: r.promoted,
            reason: r.reason,
        }
    }
}

/// `GET /api/v1/flakes/{name}/history`: the follow settings and every kept update, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub flake: String,
    #[serde(flatten)]
    pub follow: Follow,
    /// The last check of its `notify_txt` record (`null`: none, or not checked yet).
    #[serde(default)]
    pub dns: Option<DnsCheck>,
    pub updates: Vec<Update>,
}

/// `GET /api/v1/flakes/{name}/hook`: where the forge sends pushes and the secret it signs
/// them with. `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub flake: String,
    /// The webhook's URL (from the address the request came to).
    pub url: String,
    /// The secret: GitHub/Gitea "Secret", GitLab "Secret token".
    pub secret: String,
    pub content_type: String,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("flake", &self.flake)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}
