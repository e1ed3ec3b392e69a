//! The appliance's own firmware: what each A/B slot holds and which one runs, and updates
//! uploaded through the management API (`POST /api/v1/firmware`, the UI's upload, `flakeboot
//! firmware upload`).
//!
//! An upload is streamed to `<state_dir>/firmware/upload.bundle` (owner-only, at most
//! [`MAX_BUNDLE`] bytes), then checked with the image's keys and board
//! ([`flakeboot_board::signing`]) before anything is written, then installed into the slot not
//! running ([`flakeboot_board::update::install`], the same code as `flakeboot update apply`).
//! The uploaded file is removed either way. Every attempt's outcome is kept in
//! `<state_dir>/firmware/last.json` (written to a temporary file, synced and renamed), so the
//! result survives the reboot into the new slot. One update runs at a time.
//!
//! The development mode (`flakeboot.dev=1`: a writable overlay in memory over the read-only
//! root) is the UKIs' second profile; a reboot into it sets systemd-boot's one-shot entry
//! ([`boot_loader`]), so the boot after it is a normal one again.

pub mod boot_loader;

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use flakeboot_board::signing::{BOARD_FILE, KEYS_DIR, Trust, TrustError};
use flakeboot_board::uki;
use flakeboot_board::update::{self, Slot, UpdateError, parse_uki_name, slot_from_cmdline};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::upload::{self, ReceiveError};

/// The largest bundle accepted: the biggest board's root and verity partitions and two UKIs
/// fit with room to spare.
pub const MAX_BUNDLE: u64 = 4 << 30;

/// The kernel command line's word for the development mode (the UKIs' profile 1, `ID=dev`).
pub const DEVELOPMENT_MODE_ARG: &str = "flakeboot.dev=1";

/// Where the running image keeps what this module reads; [`ImagePaths::default`] is the image's
/// layout (`image/build.sh`).
#[derive(Debug, Clone)]
pub struct ImagePaths {
    /// The accepted update keys (`*.pem`).
    pub keys: PathBuf,
    /// The board's name.
    pub board: PathBuf,
    /// The running image's version.
    pub version: PathBuf,
    /// Present on a development build (signed with a development key): one line saying so.
    pub development: PathBuf,
    /// Where the ESP is mounted (`EFI/Linux` holds the slots' UKIs).
    pub esp: PathBuf,
    /// The kernel command line (`flakeboot.slot=`, `flakeboot.dev=1`).
    pub cmdline: PathBuf,
    /// The UEFI variables (efivarfs): the firmware's `SecureBoot`, systemd-boot's entries.
    pub efivars: PathBuf,
    /// The mount table (`/proc/self/mountinfo`): what the root file system is.
    pub mounts: PathBuf,
    /// The command that reboots the machine (program and arguments).
    pub reboot: Vec<OsString>,
}

impl Default for ImagePaths {
    fn default() -> Self {
        ImagePaths {
            keys: KEYS_DIR.into(),
            board: BOARD_FILE.into(),
            version: "/usr/lib/flakeboot/version".into(),
            development: "/usr/lib/flakeboot/development-build".into(),
            esp: "/efi".into(),
            cmdline: "/proc/cmdline".into(),
            efivars: "/sys/firmware/efi/efivars".into(),
            mounts: "/proc/self/mountinfo".into(),
            reboot: ["systemctl", "reboot", "--no-block"]
                .map(OsString::from)
                .to_vec(),
        }
    }
}

impl ImagePaths {
    /// The same layout under `root` (`keys/`, `board`, `version`, `development-build`, `esp/`,
    /// `cmdline`, `efivars/`, `mountinfo`, and `reboot`, the program run to reboot): an image
    /// unpacked somewhere else, or a test's.
    pub fn in_dir(root: &Path) -> ImagePaths {
        ImagePaths {
            keys: root.join("keys"),
            board: root.join("board"),
            version: root.join("version"),
            development: root.join("development-build"),
            esp: root.join("esp"),
            cmdline: root.join("cmdline"),
            efivars: root.join("efivars"),
            mounts: root.join("mountinfo"),
            reboot: vec![root.join("reboot").into()],
        }
    }
}

/// Why a firmware request failed.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error(
        "this is not the appliance image ({0} is missing): firmware updates work on an appliance booted from image/build.sh's image"
    )]
    NotAnImage(PathBuf),
    #[error("another firmware update is being installed; try again when it has finished")]
    Busy,
    #[error("the bundle is larger than {max} bytes: not an update bundle")]
    TooLarge { max: u64 },
    #[error("the upload ended after {got} bytes: {reason}")]
    Upload { got: u64, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// The bundle is not trusted (unsigned, badly signed, for another board, or not a bundle),
    /// or not for this appliance (a delta made against another version, a newer format).
    #[error("refused: {0}")]
    Refused(UpdateError),
    /// Installing failed after the bundle was trusted.
    #[error("installing failed: {0}")]
    Failed(UpdateError),
    #[error("rebooting failed: {0}")]
    Reboot(String),
    #[error("cannot reboot into the development mode: {0}")]
    Development(#[from] boot_loader::BootLoaderError),
}

impl From<ReceiveError> for FirmwareError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::TooLarge { max } => FirmwareError::TooLarge { max },
            ReceiveError::Upload { got, reason } => FirmwareError::Upload { got, reason },
            ReceiveError::Io { what, source } => FirmwareError::Io { what, source },
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FirmwareError {
    let what = what.into();
    move |source| FirmwareError::Io { what, source }
}

/// Whether a kernel command line asks for the development mode.
fn is_development(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|w| w == DEVELOPMENT_MODE_ARG)
}

/// The file system type mounted at `/` last (the one processes see), from a mountinfo table.
fn root_fs(mountinfo: &str) -> Option<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (left.split(' ').nth(4)? == "/").then(|| right.split(' ').next().map(str::to_owned))?
        })
        .next_back()
}

/// One UKI on the ESP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootEntry {
    /// Its file name (`flakeboot-2-b+3.efi`).
    pub name: String,
    /// `"a"` or `"b"`.
    pub slot: String,
    /// The image version its `.osrel` names.
    pub version: Option<String>,
    /// `good` (blessed), `trying` (tries left) or `bad` (no tries left).
    pub state: String,
    /// Tries left while `trying`.
    pub tries_left: Option<u32>,
}

/// One slot: its newest entry on the ESP, if it has one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotView {
    /// `"a"` or `"b"`.
    pub slot: String,
    /// True for the slot running now.
    pub running: bool,
    /// Its newest boot entry (none: empty, or its entry was removed).
    pub entry: Option<BootEntry>,
}

/// The outcome of the last firmware upload (kept across reboots).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastUpdate {
    /// Seconds since the epoch when it ended.
    pub at: u64,
    /// True when it was installed.
    pub ok: bool,
    /// The bundle's version, when its manifest was read.
    pub version: Option<String>,
    /// The slot it was installed into.
    pub slot: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// The firmware as the API and UI show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirmwareStatus {
    /// False when the daemon does not run on the appliance image (no updates then).
    pub image: bool,
    /// The running image's version.
    pub version: Option<String>,
    /// The board.
    pub board: Option<String>,
    /// The development-build notice, on an image signed with a development key.
    pub development: Option<String>,
    /// Whether the firmware enforces UEFI Secure Boot (its `SecureBoot` variable); absent when
    /// the machine did not boot with UEFI or the variable cannot be read.
    pub secure_boot: Option<bool>,
    /// Booted into the development mode (`flakeboot.dev=1`): the root is a writable overlay in
    /// memory, discarded at the next boot.
    pub development_mode: bool,
    /// The root file system's type (`squashfs` normally, `overlay` in the development mode).
    pub root_fs: Option<String>,
    /// The running slot (`"a"` or `"b"`).
    pub running_slot: Option<String>,
    /// Both slots.
    pub slots: Vec<SlotView>,
    /// The last upload's outcome.
    pub last_update: Option<LastUpdate>,
    /// An update is being received or installed now.
    pub busy: bool,
}

/// What an upload installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirmwareInstalled {
    pub version: String,
    /// The slot it went into (`"a"` or `"b"`): booted at the next reboot.
    pub slot: String,
    /// Its boot entry, with its try counter.
    pub uki: String,
    /// The slot running now.
    pub running_slot: String,
    /// The uploaded bundle's size.
    pub bytes: u64,
    /// For a delta bundle, the version it was made against (the one running).
    #[serde(default)]
    pub delta_from: Option<String>,
}

/// Firmware status and updates; cheap to clone.
#[derive(Debug, Clone)]
pub struct Firmware {
    paths: Arc<ImagePaths>,
    dir: PathBuf,
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl Firmware {
    /// Firmware of the image laid out as `paths`, its uploads and results under
    /// `<state_dir>/firmware`.
    pub fn new(state_dir: &Path, paths: ImagePaths) -> Firmware {
        Firmware {
            paths: Arc::new(paths),
            dir: state_dir.join("firmware"),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn read(path: &Path) -> Option<String> {
        fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// The development-build notice of an image signed with a development key.
    pub fn development(&self) -> Option<String> {
        Self::read(&self.paths.development)
    }

    /// Whether this boot is the development mode (`flakeboot.dev=1` on the kernel's command
    /// line): cheap, for every page.
    pub fn development_mode(&self) -> bool {
        Self::read(&self.paths.cmdline).is_some_and(|c| is_development(&c))
    }

    /// The root file system's type (`squashfs`; `overlay` in the development mode).
    pub fn root_fs(&self) -> Option<String> {
        fs::read_to_string(&self.paths.mounts)
            .ok()
            .and_then(|m| root_fs(&m))
    }

    /// The slots, the running one, the image's version and the last upload's outcome.
    pub fn status(&self) -> FirmwareStatus {
        let p = &self.paths;
        let board = Self::read(&p.board);
        let cmdline = Self::read(&p.cmdline);
        let running = cmdline.as_deref().and_then(slot_from_cmdline);
        let development_mode = cmdline.as_deref().is_some_and(is_development);
        let entries = self.entries();
        let slots = [Slot::A, Slot::B]
            .into_iter()
            .map(|slot| SlotView {
                slot: slot.letter().to_string(),
                running: running == Some(slot),
                entry: entries
                    .iter()
                    .filter(|(_, e)| e.slot == slot.letter().to_string())
                    .max_by_key(|(serial, _)| *serial)
                    .map(|(_, e)| e.clone()),
            })
            .collect();
        FirmwareStatus {
            image: board.is_some(),
            version: Self::read(&p.version),
            board,
            development: self.development(),
            secure_boot: boot_loader::secure_boot(&p.efivars),
            development_mode,
            root_fs: self.root_fs(),
            running_slot: running.map(|s| s.letter().to_string()),
            slots,
            last_update: self.last(),
            busy: self.busy.try_lock().is_err(),
        }
    }

    /// The UKIs on the ESP with their serials.
    fn entries(&self) -> Vec<(u32, BootEntry)> {
        let dir = self.paths.esp.join("EFI/Linux");
        let Ok(list) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        list.filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let parsed = parse_uki_name(&name)?;
                let osrel = uki::osrel(&e.path());
                let version = osrel
                    .as_deref()
                    .and_then(|o| uki::osrel_value(o, "VERSION_ID"))
                    .map(str::to_owned);
                let state = match parsed.tries_left {
                    None => "good",
                    Some(0) => "bad",
                    Some(_) => "trying",
                };
                Some((
                    parsed.serial,
                    BootEntry {
                        name,
                        slot: parsed.slot.letter().to_string(),
                        version,
                        state: state.to_owned(),
                        tries_left: parsed.tries_left,
                    },
                ))
            })
            .collect()
    }

    fn last(&self) -> Option<LastUpdate> {
        let text = fs::read(self.dir.join("last.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn save_last(&self, last: &LastUpdate) -> Result<(), FirmwareError> {
        let path = self.dir.join("last.json");
        let tmp = self.dir.join("last.json.tmp");
        let bytes = serde_json::to_vec_pretty(last).map_err(|e| FirmwareError::Io {
            what: path.display().to_string(),
            source: io::Error::other(e),
        })?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(tmp.display().to_string()))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_err(tmp.display().to_string()))?;
        fs::rename(&tmp, &path).map_err(io_err(path.display().to_string()))
    }

    /// Receives a bundle from `body`, checks it and installs it into the slot not running.
    pub async fn upload(
        &self,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<FirmwareInstalled, FirmwareError> {
        if !self.paths.board.exists() {
            return Err(FirmwareError::NotAnImage(self.paths.board.clone()));
        }
        let _held = self.busy.try_lock().map_err(|_| FirmwareError::Busy)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err(self.dir.display().to_string()))?;
        let path = self.dir.join("upload.bundle");
        let received = upload::receive(&mut body, &path, MAX_BUNDLE)
            .await
            .map_err(|e| (FirmwareError::from(e), None));
        let result = match received {
            Ok(bytes) => {
                let paths = Arc::clone(&self.paths);
                let bundle = path.clone();
                tokio::task::spawn_blocking(move || check_and_install(&paths, &bundle, bytes))
                    .await
                    .unwrap_or_else(|e| {
                        let source = io::Error::other(e.to_string());
                        let what = "installing".into();
                        Err((FirmwareError::Io { what, source }, None))
                    })
            }
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&path);
        let last = match &result {
            Ok(done) => LastUpdate {
                at: now(),
                ok: true,
                version: Some(done.version.clone()),
                slot: Some(done.slot.clone()),
                message: format!(
                    "installed {}{} in slot {}; reboot to start it",
                    done.version,
                    done.delta_from
                        .as_ref()
                        .map(|from| format!(" (a delta of {} bytes from {from})", done.bytes))
                        .unwrap_or_default(),
                    done.slot
                ),
            },
            Err((e, version)) => LastUpdate {
                at: now(),
                ok: false,
                version: version.clone(),
                slot: None,
                message: e.to_string(),
            },
        };
        match &result {
            Ok(_) => tracing::info!(message = %last.message, "firmware update"),
            Err(_) => tracing::warn!(message = %last.message, "firmware update failed"),
        }
        if let Err(e) = self.save_last(&last) {
            tracing::warn!(error = %e, "cannot record the firmware update's result");
        }
        result.map_err(|(e, _)| e)
    }

    /// Reboots the appliance (into the newly installed slot, if there is one). With
    /// `development`, the next boot (only that one) is the running slot's development mode.
    pub fn reboot(&self, development: bool) -> Result<(), FirmwareError> {
        if !self.paths.board.exists() {
            return Err(FirmwareError::NotAnImage(self.paths.board.clone()));
        }
        if development {
            let entry = boot_loader::development_entry(&self.paths.efivars)?;
            boot_loader::set_one_shot(&self.paths.efivars, &entry)?;
            tracing::warn!(%entry, "rebooting the appliance into the development mode (requested through the API)");
        } else {
            tracing::warn!("rebooting the appliance (requested through the API)");
        }
        let Some((program, args)) = self.paths.reboot.split_first() else {
            return Err(FirmwareError::Reboot("no reboot command".into()));
        };
        let shown = program.to_string_lossy().into_owned();
        std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|e| FirmwareError::Reboot(format!("{shown}: {e}")))
            .and_then(|s| match s.success() {
                true => Ok(()),
                false => Err(FirmwareError::Reboot(format!("{shown}: {s}"))),
            })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// An update's outcome; a failure carries the bundle's version when its manifest was read.
type Attempt<T> = Result<T, (FirmwareError, Option<String>)>;

/// Checks the bundle at `path` against the image's keys and board, then installs it.
fn check_and_install(paths: &ImagePaths, path: &Path, bytes: u64) -> Attempt<FirmwareInstalled> {
    let board = fs::read_to_string(&paths.board)
        .map_err(|e| (io_err(paths.board.display().to_string())(e), None))?;
    let trust = Trust::load(&paths.keys, board.trim())
        .map_err(|e| (FirmwareError::Refused(UpdateError::Trust(e)), None))?;
    // Anything wrong before the signature verifies (not a tar, no manifest) is a refusal too.
    let (manifest, _) =
        update::verify(path, &trust).map_err(|e| (FirmwareError::Refused(e), None))?;
    let version = Some(manifest.version.clone());
    let done = update::install(path, None, paths.esp.clone(), &trust)
        .map_err(|e| (classify(e), version.clone()))?;
    Ok(FirmwareInstalled {
        version: done.version,
        slot: done.slot.letter().to_string(),
        uki: done.uki,
        running_slot: done.running.letter().to_string(),
        bytes,
        delta_from: done.delta_from,
    })
}

/// A trust error found while installing is still a refusal, and so is a bundle this appliance
/// cannot take (a delta for another version, a newer format); anything else is a failure.
fn classify(e: UpdateError) -> FirmwareError {
    match e {
        e @ (UpdateError::Trust(TrustError::Unsigned | TrustError::BadSignature { .. })
        | UpdateError::NotTheBase { .. }
        | UpdateError::NewerFormat(_)) => FirmwareError::Refused(e),
        e => FirmwareError::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_file_system_is_the_last_mount_at_slash() {
        let normal = "22 1 253:0 / / ro,relatime shared:1 - squashfs /dev/mapper/root ro\n\
                      23 22 0:21 / /proc rw shared:2 - proc proc rw\n";
        assert_eq!(root_fs(normal).as_deref(), Some("squashfs"));
        let overlay = "22 1 0:30 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/run/x\n\
                       24 22 0:21 / /proc rw shared:2 - proc proc rw\n";
        assert_eq!(root_fs(overlay).as_deref(), Some("overlay"));
        let stacked = "1 0 8:1 / / ro - ext4 /dev/sda1 ro\n2 1 0:30 / / rw - overlay overlay rw\n";
        assert_eq!(root_fs(stacked).as_deref(), Some("overlay"));
        assert_eq!(root_fs(""), None);
        assert_eq!(root_fs("garbage\n1 2 3\n - \n"), None);
    }
}
