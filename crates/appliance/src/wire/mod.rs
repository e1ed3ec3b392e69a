//! The JSON API's own types: what `/api/v1` sends and the CLI reads. They are made from the
//! store's records (`From`), so the store's encoding can change without breaking clients; times
//! are RFC 3339 strings ([`time`]).

pub mod boots;
pub mod follow;
pub mod logs;
pub mod preflight;
pub mod settings;
pub mod time;

pub use boots::{Attempt, BootState, LastBoot, Stage, SystemReport};
pub use logs::LogLine;
pub use preflight::Preflight;
pub use settings::{DhcpMode, Dns, Reservation, Settings, Wan, WanMode};

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
use flakeboot_store::{
    AuditRecord, BuildRecord, FlakeHostRecord, FlakeRecord, GenerationRecord, LeaseRecord,
    MachineRecord,
};
use serde::{Deserialize, Serialize};

use time::{rfc3339, rfc3339_opt};

/// The appliance's SSH deploy key for `git+ssh://` flakes: its public half only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployKey {
    /// `ssh-ed25519 AAAA... flakeboot@<hostname>`: paste it into the forge.
    pub public_key: String,
    /// `SHA256:...`, as forges and `ssh-keygen -l` show it.
    pub fingerprint: String,
}

impl From<&flakeboot_nix::DeployKey> for DeployKey {
    fn from(k: &flakeboot_nix::DeployKey) -> DeployKey {
        DeployKey {
            public_key: k.public_key.clone(),
            fingerprint: k.fingerprint.clone(),
        }
    }
}

/// A host with an access token for private flakes (`GET /api/v1/access-tokens`): the token
/// itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The forge's host as nix's `access-tokens` names it (`github.com`, `gitlab.example.org`).
    pub host: String,
    /// Where it was set.
    pub source: AccessTokenSource,
}

/// Where an access token was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessTokenSource {
    /// From the UI, the API or the CLI (kept in the state directory).
    Appliance,
    /// From the config file's `[nix] access_tokens_file` (changed there only).
    ConfigFile,
}

/// One entry of the audit log (`GET /api/v1/audit`): who did what, to what, from where and
/// when. It never holds a password, token or key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// A user name, `token <name>` (an API token), `local` (the API socket); `null` when
    /// nobody was signed in (a failed sign-in).
    pub actor: Option<String>,
    /// `login`, `login.failed`, `flake.add`, `machine.forget`, ... (docs/api.md lists them).
    pub action: String,
    /// What it was done to (a flake's name, a MAC, a token's name), or empty.
    pub target: String,
    /// The client's address; `null` over the owner-only API socket.
    pub client: Option<IpAddr>,
    /// The HTTP status it was answered with (2xx and 3xx: done).
    pub status: u16,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> AuditEntry {
        AuditEntry {
            at: r.at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            client: r.client,
            status: r.status,
        }
    }
}

/// A flake: its URL, lock and hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flake {
    pub name: String,
    pub url: String,
    pub locked_url: Option<String>,
    pub revision: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub locked_at: Option<SystemTime>,
    pub hosts: Vec<FlakeHost>,
    pub error: Option<String>,
}

/// One `nixosConfiguration` of a flake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlakeHost {
    pub name: String,
    /// `None` when it can netboot, else why not.
    pub unbootable: Option<String>,
    pub kernel_file: String,
    pub kernel_params: Vec<String>,
}

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl BuildState {
    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, BuildState::Queued | BuildState::Running)
    }
}

/// A build of one host at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: u64,
    pub flake: String,
    pub host: String,
    pub flake_url: String,
    pub locked_url: String,
    pub revision: Option<String>,
    pub state: BuildState,
    #[serde(with = "rfc3339")]
    pub queued_at: SystemTime,
    #[serde(with = "rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    pub error: Option<String>,
    pub interruptions: u32,
    pub generation: Option<u32>,
}

/// A successful build: what machines assigned to the host boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// `<flake>#<host>`.
    pub host: String,
    pub number: u32,
    pub flake_url: String,
    pub locked_url: String,
    pub revision: Option<String>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub init: PathBuf,
    pub store_paths: Vec<PathBuf>,
    pub kernel_params: Vec<String>,
    #[serde(with = "rfc3339")]
    pub built_at: SystemTime,
    pub build_id: u64,
    /// Its pre-flight boot (issue #16).
    #[serde(default)]
    pub preflight: Preflight,
}

/// A machine seen on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub mac: MacAddr,
    #[serde(with = "rfc3339")]
    pub first_seen: SystemTime,
    #[serde(with = "rfc3339")]
    pub last_seen: SystemTime,
    pub firmware: Option<ClientFirmware>,
    pub vendor_class: Option<String>,
    /// The host it boots (`None`: the menu); a config-file pin wins over an assignment.
    pub host: Option<String>,
    pub label: Option<String>,
    /// The config file pins it (`[[machines]]`): its host cannot be changed through the API.
    #[serde(default)]
    pub pinned: bool,
    /// How its newest boot ended (or stands), when the answer includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<LastBoot>,
}

/// One step of a machine's boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub mac: Option<MacAddr>,
    pub peer: Option<IpAddr>,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    pub stage: BootStage,
    pub outcome: Outcome,
    pub firmware: Option<ClientFirmware>,
    pub vendor_class: Option<String>,
    pub detail: String,
    /// When a transfer began (`at` is when it ended).
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub started: Option<SystemTime>,
    /// Bytes a transfer delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// The state of a leased address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    Bound,
    Declined,
}

/// A DHCP lease (router mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub hostname: Option<String>,
    #[serde(with = "rfc3339")]
    pub expires: SystemTime,
    pub state: LeaseState,
}

impl From<FlakeRecord> for Flake {
    fn from(r: FlakeRecord) -> Flake {
        Flake {
            name: r.name,
            url: r.url,
            locked_url: r.locked_url,
            revision: r.revision,
            locked_at: r.locked_at,
            hosts: r.hosts.into_iter().map(FlakeHost::from).collect(),
            error: r.error,
        }
    }
}

impl From<FlakeHostRecord> for FlakeHost {
    fn from(r: FlakeHostRecord) -> FlakeHost {
        FlakeHost {
            name: r.name,
            unbootable: r.unbootable,
            kernel_file: r.kernel_file,
            kernel_params: r.kernel_params,
        }
    }
}

impl From<flakeboot_store::BuildState> for BuildState {
    fn from(s: flakeboot_store::BuildState) -> BuildState {
        use flakeboot_store::BuildState as S;
        match s {
            S::Queued => BuildState::Queued,
            S::Running => BuildState::Running,
            S::Succeeded => BuildState::Succeeded,
            S::Failed => BuildState::Failed,
            S::Cancelled => BuildState::Cancelled,
            S::TimedOut => BuildState::TimedOut,
        }
    }
}

impl From<BuildRecord> for Build {
    fn from(r: BuildRecord) -> Build {
        Build {
            id: r.id,
            flake: r.flake,
            host: r.host,
            flake_url: r.flake_url,
            locked_url: r.locked_url,
            revision: r.revision,
            state: r.state.into(),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            interruptions: r.interruptions,
            generation: r.generation,
        }
    }
}

impl From<GenerationRecord> for Generation {
    fn from(r: GenerationRecord) -> Generation {
        Generation {
            host: r.host,
            number: r.number,
            flake_url: r.flake_url,
            locked_url: r.locked_url,
            revision: r.revision,
            kernel: r.kernel,
            initrd: r.initrd,
            init: r.init,
            store_paths: r.store_paths,
            kernel_params: r.kernel_params,
            built_at: r.built_at,
            build_id: r.build_id,
            preflight: Preflight::from_record(r.preflight, SystemTime::now()),
        }
    }
}

impl From<MachineRecord> for Machine {
    fn from(r: MachineRecord) -> Machine {
        Machine {
            mac: r.mac,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            firmware: r.firmware,
            vendor_class: r.vendor_class,
            host: r.host,
            label: r.label,
            pinned: false,
            last_boot: None,
        }
    }
}

impl From<BootEvent> for Event {
    fn from(e: BootEvent) -> Event {
        Event {
            mac: e.mac,
            peer: e.peer,
            at: e.at,
            stage: e.stage,
            outcome: e.outcome,
            firmware: e.firmware,
            vendor_class: e.vendor_class,
            detail: e.detail,
            started: e.started,
            bytes: e.bytes,
        }
    }
}

impl From<LeaseRecord> for Lease {
    fn from(r: LeaseRecord) -> Lease {
        Lease {
            ip: r.ip,
            mac: r.mac,
            hostname: r.hostname,
            expires: r.expires,
            state: match r.state {
                flakeboot_store::LeaseState::Bound => LeaseState::Bound,
                flakeboot_store::LeaseState::Declined => LeaseState::Declined,
            },
        }
    }
}

/// Every item of `list` in its wire form.
pub fn all<R, W: From<R>>(list: Vec<R>) -> Vec<W> {
    list.into_iter().map(W::from).collect()
}

/// A machine's boot-time settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineOptions {
    pub hostname: Option<String>,
    pub kernel_params: String,
    /// The host its next boot gets once (then it boots its own choice again), if set.
    pub boot_once: Option<String>,
}

impl From<flakeboot_store::MachineOptions> for MachineOptions {
    fn from(o: flakeboot_store::MachineOptions) -> MachineOptions {
        MachineOptions {
            hostname: o.hostname,
            kernel_params: o.kernel_params,
            boot_once: o.boot_once,
        }
    }
}

/// The nix store's disk (`/api/v1/status` `storage`): space now, `[nix] min_free` and `gc`, and
/// what the last garbage collection freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Size of the store's file system in bytes (`None` when it cannot be measured).
    pub total_bytes: Option<u64>,
    /// Bytes free there.
    pub free_bytes: Option<u64>,
    /// `[nix] min_free`: builds are refused below it.
    pub min_free_bytes: Option<u64>,
    /// `[nix] gc`: garbage is collected after builds and daily.
    pub gc: bool,
    /// The last collection since the daemon started.
    pub last_gc: Option<GcRun>,
}

/// One garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRun {
    /// When it ended.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Store paths deleted.
    pub paths: u64,
    /// "after a build", "daily" or "below min_free".
    pub reason: String,
}

impl From<flakeboot_nix::StorageReport> for Storage {
    fn from(r: flakeboot_nix::StorageReport) -> Storage {
        Storage {
            total_bytes: r.usage.map(|u| u.total),
            free_bytes: r.usage.map(|u| u.free),
            min_free_bytes: r.min_free,
            gc: r.gc,
            last_gc: r.last_gc.map(|g| GcRun {
                at: g.at,
                freed_bytes: g.freed,
                paths: g.paths,
                reason: g.reason,
            }),
        }
    }
}
