//! A/B updates: installs an update bundle into the slot that is not running (`flakeboot update`).
//!
//! A bundle is an uncompressed tar (`image/build.sh` writes it): `manifest.json` first (version,
//! board, root hash, each file's size and sha256), `manifest.sig` (its ed25519 signature, see
//! [`crate::signing`]), then `root.sqfs`, `verity.img`, `uki-a.efi` and `uki-b.efi`. Nothing is
//! written before the signature verifies with a key the image accepts and the manifest names
//! this board. `apply` streams it once: the other slot's UKI is removed from the ESP first, the
//! root and verity images are written to that slot's partitions while being hashed, and only
//! when every hash matches is the slot's UKI installed as `flakeboot-<n>-<slot>+3.efi` (three
//! tries; systemd-boot prefers the highest `<n>` and falls back when the tries run out;
//! systemd-bless-boot renames it to `flakeboot-<n>-<slot>.efi` once `flakeboot-health` passes).
//!
//! A delta bundle (format 2, `image/build.sh` with `FLAKEBOOT_DELTA_FROM`) carries some payloads
//! as `<name>.delta` files ([`crate::delta`]) against the full bundle the running slot holds,
//! which its manifest names; [`base`] finds and checks that base before anything is written.
//!
//! On the appliance the partitions are `/dev/disk/by-partlabel/{root,verity}-<slot>` and the ESP
//! is mounted at `/efi`. With `--disk IMAGE` the same steps run on a disk image (partitions
//! found in its GPT, the ESP written with mtools), which is how tests prepare a slot offline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::hex;
use crate::signing::{Trust, TrustError};

mod base;
mod disk;

use base::Bases;
pub use base::{BaseImage, DeltaPayload};
use disk::Target;
pub use disk::{Partition, parse_gpt};

/// Tries a freshly installed slot gets before systemd-boot gives up on it.
pub const TRIES: u32 = 3;
const SECTOR: u64 = 512;
/// The newest manifest format this updater reads (2: delta bundles, with `base`).
pub const FORMAT: u32 = 2;

/// Why an update could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(
        "this is not an update bundle: it does not start with a tar header (image/build.sh writes flakeboot-<version>-<board>.bundle.tar)"
    )]
    NotABundle,
    #[error("the bundle does not start with manifest.json (found {found:?})")]
    NoManifest { found: String },
    #[error("manifest.json: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("{name}: sha256 {actual}, the manifest says {expected}")]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("{name}: {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("{name}: {size} bytes do not fit partition {partition} ({capacity} bytes)")]
    TooBig {
        name: String,
        partition: String,
        size: u64,
        capacity: u64,
    },
    #[error("the bundle lacks {0}")]
    Missing(String),
    #[error("cannot tell the running slot: {0}")]
    UnknownSlot(String),
    #[error("disk image: {0}")]
    Gpt(String),
    #[error("{command} failed: {status}")]
    Tool { command: String, status: String },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(
        "the bundle's manifest format {0} is newer than this updater's ({FORMAT}): update in steps"
    )]
    NewerFormat(u32),
    #[error("this is a delta bundle from version {version}, and {why}: install the full bundle")]
    NotTheBase { version: String, why: String },
    #[error("{name}: {source}")]
    Delta {
        name: String,
        source: crate::delta::DeltaError,
    },
}

/// A signature is 64 bytes; a `manifest.sig` entry larger than this is not one.
const MAX_SIG: u64 = 1024;

/// An A/B root slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn letter(self) -> char {
        match self {
            Slot::A => 'a',
            Slot::B => 'b',
        }
    }

    /// The slot that is not `self`.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// The bundle's `manifest.json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    pub board: String,
    pub roothash: String,
    pub files: Vec<ManifestFile>,
    /// A delta bundle's base: the full bundle whose files its deltas are made against.
    #[serde(default)]
    pub base: Option<BaseImage>,
}

/// One payload file of a bundle.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Carried as a delta (the entry `<name>.delta`) instead of whole.
    #[serde(default)]
    pub delta: Option<DeltaPayload>,
}

/// The slot named by `flakeboot.slot=` on a kernel command line.
pub fn slot_from_cmdline(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|arg| match arg.strip_prefix("flakeboot.slot=")? {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        })
}

/// A UKI file name `flakeboot-<n>-<slot>[+tries[-done]].efi`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UkiName {
    pub serial: u32,
    pub slot: Slot,
    /// `None` once blessed (no counter left), else the tries left.
    pub tries_left: Option<u32>,
}

/// Parses a UKI file name written by the build or by `apply`; other files give `None`.
pub fn parse_uki_name(name: &str) -> Option<UkiName> {
    let stem = name.strip_prefix("flakeboot-")?.strip_suffix(".efi")?;
    let (base, counter) = match stem.split_once('+') {
        Some((base, counter)) => (base, Some(counter)),
        None => (stem, None),
    };
    let (serial, slot) = base.split_once('-')?;
    let slot = match slot {
        "a" => Slot::A,
        "b" => Slot::B,
        _ => return None,
    };
    let tries_left = match counter {
        None => None,
        Some(c) => Some(c.split('-').next()?.parse().ok()?),
    };
    Some(UkiName {
        serial: serial.parse().ok()?,
        slot,
        tries_left,
    })
}

/// The slot systemd-boot boots by default: the newest blessed UKI (offline images have no
/// kernel command line to ask).
pub fn slot_from_esp(names: &[String]) -> Option<Slot> {
    names
        .iter()
        .filter_map(|n| parse_uki_name(n))
        .filter(|u| u.tries_left.is_none())
        .max_by_key(|u| u.serial)
        .map(|u| u.slot)
}

/// The name for the next UKI of `slot`: one serial above every UKI on the ESP, with tries.
pub fn next_uki_name(names: &[String], slot: Slot) -> String {
    let serial = names
        .iter()
        .filter_map(|n| parse_uki_name(n))
        .map(|u| u.serial)
        .max()
        .unwrap_or(0)
        + 1;
    format!("flakeboot-{serial}-{}+{TRIES}.efi", slot.letter())
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> UpdateError {
    let what = what.into();
    move |source| UpdateError::Io { what, source }
}

/// Copies `len` bytes from `from` to `to`, returning their sha256 in hex.
fn copy_hashed(from: &mut impl Read, to: &mut impl Write, len: u64) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = from.read(chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "bundle ends early",
            ));
        }
        let data = chunk.get(..n).unwrap_or_default();
        hasher.update(data);
        to.write_all(data)?;
        left -= n as u64;
    }
    Ok(hex(&hasher.finalize()))
}

fn open_bundle(path: &Path) -> Result<tar::Archive<File>, UpdateError> {
    let f = File::open(path).map_err(io_err(path.display().to_string()))?;
    Ok(tar::Archive::new(f))
}

/// Reads the manifest (the bundle's first entry): it, its sha256 and its bytes.
fn read_manifest<R: Read>(
    entries: &mut tar::Entries<'_, R>,
) -> Result<(Manifest, String, Vec<u8>), UpdateError> {
    // tar's own message quotes the bad header: nothing of a stranger's file goes into it.
    let mut first = entries
        .next()
        .ok_or_else(|| UpdateError::Missing("manifest.json".to_owned()))?
        .map_err(|_| UpdateError::NotABundle)?;
    let name = first
        .path()
        .map_err(io_err("reading the bundle"))?
        .display()
        .to_string();
    if name != "manifest.json" {
        return Err(UpdateError::NoManifest { found: name });
    }
    let mut text = Vec::new();
    first
        .read_to_end(&mut text)
        .map_err(io_err("reading manifest.json"))?;
    let id = hex(&Sha256::digest(&text));
    Ok((serde_json::from_slice(&text)?, id, text))
}

/// Reads the manifest and checks it is signed by a key of `trust` for its board; the next
/// entry is the first payload file.
fn read_trusted<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    trust: &Trust,
) -> Result<(Manifest, String), UpdateError> {
    let (manifest, id, text) = read_manifest(entries)?;
    let mut sig = None;
    if let Some(entry) = entries.next() {
        let mut entry = entry.map_err(io_err("reading the bundle"))?;
        let name = entry.path().map_err(io_err("reading the bundle"))?;
        if name == Path::new("manifest.sig") && entry.size() <= MAX_SIG {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(io_err("reading manifest.sig"))?;
            sig = Some(bytes);
        }
    }
    let key = trust.verify(&text, sig.as_deref())?;
    trust.check_board(&manifest.board)?;
    eprintln!(
        "flakeboot: update: bundle {} ({id}) signed by {key}",
        manifest.version
    );
    Ok((manifest, id))
}

/// Checks `bundle`'s signature and board without writing anything: its manifest and identity.
pub fn verify(bundle: &Path, trust: &Trust) -> Result<(Manifest, String), UpdateError> {
    let mut archive = open_bundle(bundle)?;
    let mut entries = archive.entries().map_err(io_err("reading the bundle"))?;
    read_trusted(&mut entries, trust)
}

/// Installs `bundle` into the slot that is not `current`. Returns the manifest and the UKI name.
fn apply(
    bundle: &Path,
    target: &Target,
    current: Slot,
    scratch: &Path,
    trust: &Trust,
) -> Result<(Manifest, String), UpdateError> {
    let slot = current.other();
    let mut archive = open_bundle(bundle)?;
    let mut entries = archive.entries().map_err(io_err("reading the bundle"))?;
    let (manifest, _) = read_trusted(&mut entries, trust)?;
    if manifest.format > FORMAT {
        return Err(UpdateError::NewerFormat(manifest.format));
    }
    let uki_file = format!("uki-{}.efi", slot.letter());
    let installing = ["root.sqfs", "verity.img", uki_file.as_str()];
    for needed in installing {
        if !manifest.files.iter().any(|f| f.name == needed) {
            return Err(UpdateError::Missing(needed.to_owned()));
        }
    }
    // A delta bundle's base is checked on the running slot before anything changes.
    let bases = Bases::find(target, current, &manifest, &installing, scratch)?;
    // Never leave a bootable entry pointing at a half-written slot.
    for name in target.esp_list()? {
        if parse_uki_name(&name).is_some_and(|u| u.slot == slot) {
            eprintln!(
                "flakeboot: update: removing the old slot {} entry {name}",
                slot.letter()
            );
            target.esp_remove(&name)?;
        }
    }
    let uki_tmp = scratch.join(&uki_file);
    let mut verified = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(io_err("reading the bundle"))?;
        let name = entry
            .path()
            .map_err(io_err("reading the bundle"))?
            .display()
            .to_string();
        // `<name>` carries the file whole, `<name>.delta` as a delta; the manifest says which.
        let Some((expected, delta)) = manifest.files.iter().find_map(|f| match &f.delta {
            None => (f.name == name).then_some((f, None)),
            Some(d) => (name.strip_suffix(".delta") == Some(&f.name)).then_some((f, Some(d))),
        }) else {
            continue;
        };
        let size = entry.size();
        let want = delta.map_or(expected.size, |d| d.size);
        if size != want {
            return Err(UpdateError::SizeMismatch {
                name,
                expected: want,
                actual: size,
            });
        }
        let partition = match expected.name.as_str() {
            "root.sqfs" => Some(format!("root-{}", slot.letter())),
            "verity.img" => Some(format!("verity-{}", slot.letter())),
            _ => None,
        };
        let mut payload = |out: &mut dyn Write| match delta {
            None => copy_hashed(&mut entry, &mut &mut *out, size).map_err(io_err(&name)),
            Some(d) => bases.decode(&mut entry, expected, d, &mut &mut *out),
        };
        let actual = if let Some(partition) = partition {
            let (mut f, _, capacity) = target.open_partition(&partition, true)?;
            if expected.size > capacity {
                return Err(UpdateError::TooBig {
                    name: expected.name.clone(),
                    partition,
                    size: expected.size,
                    capacity,
                });
            }
            eprintln!(
                "flakeboot: update: writing {} ({} bytes{}) to {partition}",
                expected.name,
                expected.size,
                if delta.is_some() { " from a delta" } else { "" }
            );
            let sum = payload(&mut f)?;
            f.sync_all().map_err(io_err(&partition))?;
            sum
        } else if expected.name == uki_file {
            let mut f = File::create(&uki_tmp).map_err(io_err(uki_tmp.display().to_string()))?;
            payload(&mut f)?
        } else {
            // Not installed (the other slot's UKI): only its bytes are checked.
            let sum = copy_hashed(&mut entry, &mut io::sink(), size).map_err(io_err(&name))?;
            let signed = delta.map_or(&expected.sha256, |d| &d.sha256);
            if sum != *signed {
                return Err(UpdateError::HashMismatch {
                    name,
                    expected: signed.clone(),
                    actual: sum,
                });
            }
            verified.push(expected.name.clone());
            continue;
        };
        if actual != expected.sha256 {
            return Err(UpdateError::HashMismatch {
                name: expected.name.clone(),
                expected: expected.sha256.clone(),
                actual,
            });
        }
        verified.push(expected.name.clone());
    }
    for needed in ["root.sqfs", "verity.img", uki_file.as_str()] {
        if !verified.iter().any(|v| v == needed) {
            return Err(UpdateError::Missing(needed.to_owned()));
        }
    }
    let uki_name = next_uki_name(&target.esp_list()?, slot);
    target.esp_install(&uki_tmp, &uki_name)?;
    Ok((manifest, uki_name))
}

fn scratch_dir() -> Result<PathBuf, UpdateError> {
    let dir = std::env::temp_dir().join(format!("flakeboot-update-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io_err(dir.display().to_string()))?;
    Ok(dir)
}

/// What [`install`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The bundle's version.
    pub version: String,
    /// The slot now holding it (the one not running).
    pub slot: Slot,
    /// The slot running.
    pub running: Slot,
    /// The UKI's name on the ESP (with its try counter).
    pub uki: String,
    /// True on the running appliance (a reboot starts the new slot); false for a disk image.
    pub on_device: bool,
    /// For a delta bundle, the version it was made against (the one that was running).
    pub delta_from: Option<String>,
}

/// A bundle's identity (its manifest's sha256) and version.
pub fn bundle_id(bundle: &Path) -> Result<(String, String), UpdateError> {
    let mut archive = open_bundle(bundle)?;
    let mut entries = archive.entries().map_err(io_err("reading the bundle"))?;
    let (manifest, id, _) = read_manifest(&mut entries)?;
    Ok((id, manifest.version))
}

/// Installs `bundle`, once it verifies with `trust`, into the slot that is not running: on the
/// appliance (ESP at `esp`), or, with `disk`, on a disk image.
pub fn install(
    bundle: &Path,
    disk: Option<PathBuf>,
    esp: PathBuf,
    trust: &Trust,
) -> Result<Installed, UpdateError> {
    let (target, current) = match disk {
        Some(path) => {
            let mut head = vec![0u8; 34 * SECTOR as usize];
            File::open(&path)
                .and_then(|mut f| f.read_exact(&mut head))
                .map_err(io_err(path.display().to_string()))?;
            let target = Target::Image {
                parts: parse_gpt(&head)?,
                path,
            };
            let current = slot_from_esp(&target.esp_list()?)
                .ok_or_else(|| UpdateError::UnknownSlot("no blessed UKI on the ESP".to_owned()))?;
            (target, current)
        }
        None => {
            let cmdline =
                std::fs::read_to_string("/proc/cmdline").map_err(io_err("/proc/cmdline"))?;
            let current = slot_from_cmdline(&cmdline).ok_or_else(|| {
                UpdateError::UnknownSlot(format!("no flakeboot.slot= in {cmdline:?}"))
            })?;
            (Target::Device { esp }, current)
        }
    };
    let scratch = scratch_dir()?;
    let result = apply(bundle, &target, current, &scratch, trust);
    let _ = std::fs::remove_dir_all(&scratch);
    let (manifest, uki) = result?;
    Ok(Installed {
        delta_from: manifest.base.map(|b| b.version),
        version: manifest.version,
        slot: current.other(),
        running: current,
        uki,
        on_device: matches!(target, Target::Device { .. }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn slot_comes_from_the_kernel_command_line() {
        let cmdline = "root=/dev/mapper/root ro flakeboot.slot=b console=ttyS0,115200\n";
        assert_eq!(slot_from_cmdline(cmdline), Some(Slot::B));
        assert_eq!(slot_from_cmdline("flakeboot.slot=c"), None);
        assert_eq!(slot_from_cmdline("quiet"), None);
    }

    #[test]
    fn uki_names_with_and_without_counters() {
        let blessed = parse_uki_name("flakeboot-1-a.efi");
        assert_eq!(
            blessed,
            Some(UkiName {
                serial: 1,
                slot: Slot::A,
                tries_left: None
            })
        );
        assert_eq!(
            parse_uki_name("flakeboot-2-b+3.efi").and_then(|u| u.tries_left),
            Some(3)
        );
        assert_eq!(
            parse_uki_name("flakeboot-2-b+0-3.efi").and_then(|u| u.tries_left),
            Some(0)
        );
        assert_eq!(parse_uki_name("flakeboot-2-c.efi"), None);
        assert_eq!(parse_uki_name("BOOTX64.EFI"), None);
    }

    #[test]
    fn next_name_outranks_every_entry_and_has_tries() {
        let esp = names(&["flakeboot-1-a.efi", "flakeboot-9-b+0-3.efi"]);
        assert_eq!(next_uki_name(&esp, Slot::B), "flakeboot-10-b+3.efi");
        assert_eq!(next_uki_name(&[], Slot::A), "flakeboot-1-a+3.efi");
    }

    #[test]
    fn offline_current_slot_is_the_newest_blessed_entry() {
        let esp = names(&["flakeboot-1-a.efi", "flakeboot-2-b+0-3.efi"]);
        assert_eq!(slot_from_esp(&esp), Some(Slot::A));
        let esp = names(&["flakeboot-1-a.efi", "flakeboot-2-b.efi"]);
        assert_eq!(slot_from_esp(&esp), Some(Slot::B));
        assert_eq!(slot_from_esp(&names(&["flakeboot-3-a+2-1.efi"])), None);
    }

    #[test]
    fn copy_hashed_hashes_what_it_copies() {
        let mut out = Vec::new();
        let sum = copy_hashed(&mut &b"abc"[..], &mut out, 3).unwrap();
        assert_eq!(out, b"abc");
        assert_eq!(
            sum,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(copy_hashed(&mut &b"ab"[..], &mut Vec::new(), 3).is_err());
    }
}
