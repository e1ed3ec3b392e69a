//! Boot attempts and machines' last boots on the wire (see docs/api.md, "Boot attempts").

use std::time::SystemTime;

use flakeboot_catalogue::ClientFirmware;
use serde::{Deserialize, Serialize};

use super::Machine;
use super::time::{rfc3339, rfc3339_opt};
use crate::attempts::{self, Attempt as DomainAttempt, StageRun, Verdict};
use crate::overview;

/// A machine's boot state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootState {
    Up,
    Failed,
    NoReport,
    Booting,
    Offline,
    Local,
    Never,
}

impl BootState {
    /// Its name, as `?state=` takes it.
    pub fn as_str(self) -> &'static str {
        attempts::BootState::from(self).as_str()
    }
}

impl From<attempts::BootState> for BootState {
    fn from(s: attempts::BootState) -> BootState {
        use attempts::BootState as S;
        match s {
            S::Up => BootState::Up,
            S::Failed => BootState::Failed,
            S::NoReport => BootState::NoReport,
            S::Booting => BootState::Booting,
            S::Offline => BootState::Offline,
            S::Local => BootState::Local,
            S::Never => BootState::Never,
        }
    }
}

impl From<BootState> for attempts::BootState {
    fn from(s: BootState) -> attempts::BootState {
        use attempts::BootState as S;
        match s {
            BootState::Up => S::Up,
            BootState::Failed => S::Failed,
            BootState::NoReport => S::NoReport,
            BootState::Booting => S::Booting,
            BootState::Offline => S::Offline,
            BootState::Local => S::Local,
            BootState::Never => S::Never,
        }
    }
}

/// How a boot attempt ended (or stands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBoot {
    pub state: BootState,
    /// The host whose kernel it fetched.
    pub host: Option<String>,
    /// The version label it fetched (`web.g3`, `static`).
    pub version: Option<String>,
    pub generation: Option<u32>,
    /// The stage it failed at, or is at while booting (`dhcp` ... `initrd`).
    pub stage: Option<String>,
    /// One line for people: "up (generation 3)", "Stopped at Initrd: ...".
    pub detail: String,
    #[serde(with = "rfc3339_opt")]
    pub started: Option<SystemTime>,
    /// `null` while booting.
    #[serde(with = "rfc3339_opt")]
    pub ended: Option<SystemTime>,
    /// From `started` to `ended`, in milliseconds.
    pub duration_ms: Option<u64>,
}

impl From<&Verdict> for LastBoot {
    fn from(v: &Verdict) -> LastBoot {
        LastBoot {
            state: v.state.into(),
            host: v.host.clone(),
            version: v.version.clone(),
            generation: v.generation,
            stage: v.stage.map(|s| s.as_str().to_owned()),
            detail: v.detail.clone(),
            started: v.started,
            ended: v.ended,
            duration_ms: v
                .duration()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// One stage of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// `dhcp`, `tftp`, `script`, `kernel`, `initrd`.
    pub stage: String,
    /// `ok`, `declined`, `failed`, `skipped`, `not-reached`.
    pub state: String,
    #[serde(with = "rfc3339_opt")]
    pub started: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub ended: Option<SystemTime>,
    /// Bytes its last transfer delivered.
    pub bytes: Option<u64>,
    pub detail: String,
    /// Events it took (retries, size probes).
    pub events: u32,
}

impl From<&StageRun> for Stage {
    fn from(s: &StageRun) -> Stage {
        Stage {
            stage: s.stage.as_str().to_owned(),
            state: s.state.as_str().to_owned(),
            started: s.started,
            ended: s.ended,
            bytes: s.bytes,
            detail: s.detail.clone(),
            events: s.events,
        }
    }
}

/// The booted system's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemReport {
    pub up: bool,
    pub detail: String,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

/// One boot of one machine, from its first DHCP packet to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(with = "rfc3339")]
    pub started: SystemTime,
    /// Its last event.
    #[serde(with = "rfc3339")]
    pub ended: SystemTime,
    pub firmware: Option<ClientFirmware>,
    /// The five stages, in boot order.
    pub stages: Vec<Stage>,
    /// The initrd was delivered, every byte.
    pub complete: bool,
    /// Where and why it stopped, when it did not complete.
    pub stopped: Option<String>,
    /// The booted system's report (its newest), if one came.
    pub system: Option<SystemReport>,
    /// The first line of its console or logs that said it failed (a kernel panic, NixOS stage
    /// 1's error), if one did.
    #[serde(default)]
    pub console: Option<ConsoleFailure>,
    /// Offers other DHCP servers on the LAN made it, as the appliance heard them (oldest first).
    #[serde(default)]
    pub other_offers: Vec<OtherOffer>,
    /// How it ended (or stands) now.
    pub result: LastBoot,
}

/// Another DHCP server's OFFER or ACK to the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherOffer {
    /// The server and what it offered: "offer from 10.77.0.2 (full DHCP): 10.77.0.150, ...".
    pub detail: String,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

/// A line of the machine's console or logs that said the boot failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleFailure {
    pub line: String,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

impl Attempt {
    /// `attempt` with its verdict.
    pub fn new(attempt: &DomainAttempt, verdict: &Verdict) -> Attempt {
        Attempt {
            started: attempt.started,
            ended: attempt.ended,
            firmware: attempt.firmware,
            stages: attempt.stages.iter().map(Stage::from).collect(),
            complete: attempt.complete,
            stopped: attempt.stopped.clone(),
            system: attempt.system.as_ref().map(|r| SystemReport {
                up: r.up,
                detail: r.detail.clone(),
                at: r.at,
            }),
            console: attempt.console.as_ref().map(|c| ConsoleFailure {
                line: c.line.clone(),
                at: c.at,
            }),
            other_offers: attempt
                .other_offers
                .iter()
                .map(|o| OtherOffer {
                    detail: o.detail.clone(),
                    at: o.at,
                })
                .collect(),
            result: verdict.into(),
        }
    }
}

impl From<overview::Row> for Machine {
    fn from(row: overview::Row) -> Machine {
        let last_boot = LastBoot::from(&row.last_boot);
        let mut m = Machine::from(row.machine);
        m.host = row.host;
        m.pinned = row.pinned;
        m.last_boot = Some(last_boot);
        m
    }
}
