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
//! On the appliance the partitions are `/dev/disk/by-partlabel/{root,verity}-<slot>` and the ESP
//! is mounted at `/efi`. With `--disk IMAGE` the same steps run on a disk image (partitions
//! found in its GPT, the ESP written with mtools), which is how tests prepare a slot offline.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::signing::{Trust, TrustError};

/// Tries a freshly installed slot gets before systemd-boot gives up on it.
pub const TRIES: u32 = 3;
const SECTOR: u64 = 512;

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
}

/// One payload file of a bundle.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
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

/// A partition found in a GPT: its name and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// Parses a GPT from the first 34 sectors of a disk (512-byte sectors).
pub fn parse_gpt(head: &[u8]) -> Result<Vec<Partition>, UpdateError> {
    let bad = |why: &str| UpdateError::Gpt(why.to_owned());
    let header = head.get(512..604).ok_or_else(|| bad("short header"))?;
    if header.get(..8) != Some(b"EFI PART".as_slice()) {
        return Err(bad("no GPT signature"));
    }
    let u64_at = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let entries_lba = u64_at(header, 72).ok_or_else(|| bad("header"))?;
    let count = u32_at(header, 80).ok_or_else(|| bad("header"))? as usize;
    let entry_size = u32_at(header, 84).ok_or_else(|| bad("header"))? as usize;
    if entry_size < 128 || count > 1024 {
        return Err(bad("implausible partition entry table"));
    }
    let start = entries_lba
        .checked_mul(SECTOR)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| bad("entry table offset"))?;
    let mut parts = Vec::new();
    for i in 0..count {
        let at = start.saturating_add(i.saturating_mul(entry_size));
        let Some(entry) = head.get(at..at.saturating_add(128)) else {
            break;
        };
        if entry.get(..16).is_some_and(|t| t.iter().all(|&b| b == 0)) {
            continue;
        }
        let first = u64_at(entry, 32).ok_or_else(|| bad("entry"))?;
        let last = u64_at(entry, 40).ok_or_else(|| bad("entry"))?;
        let units: Vec<u16> = entry
            .get(56..128)
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|c| Some(u16::from_le_bytes(c.try_into().ok()?)))
            .take_while(|&u| u != 0)
            .collect();
        if last < first {
            return Err(bad("partition ends before it starts"));
        }
        let (Some(offset), Some(size)) = (
            first.checked_mul(SECTOR),
            (last - first)
                .checked_add(1)
                .and_then(|n| n.checked_mul(SECTOR)),
        ) else {
            return Err(bad("partition beyond any disk"));
        };
        parts.push(Partition {
            name: String::from_utf16_lossy(&units),
            offset,
            size,
        });
    }
    Ok(parts)
}

/// Where a slot's partitions and the ESP are.
#[derive(Debug)]
enum Target {
    /// The running appliance: partitions by label, the ESP mounted at a directory.
    Device { esp: PathBuf },
    /// A disk image file: partitions from its GPT, the ESP through mtools.
    Image {
        path: PathBuf,
        parts: Vec<Partition>,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> UpdateError {
    let what = what.into();
    move |source| UpdateError::Io { what, source }
}

impl Target {
    /// Opens the partition `label` for writing: the file, its start and its capacity.
    fn open_partition(&self, label: &str) -> Result<(File, u64, u64), UpdateError> {
        match self {
            Target::Device { .. } => {
                let path = format!("/dev/disk/by-partlabel/{label}");
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                let size = f.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
                f.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
                Ok((f, 0, size))
            }
            Target::Image { path, parts } => {
                let p = parts
                    .iter()
                    .find(|p| p.name == label)
                    .ok_or_else(|| UpdateError::Gpt(format!("no partition named {label}")))?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path.display().to_string()))?;
                f.seek(SeekFrom::Start(p.offset))
                    .map_err(io_err(path.display().to_string()))?;
                Ok((f, p.offset, p.size))
            }
        }
    }

    fn esp_list(&self) -> Result<Vec<String>, UpdateError> {
        match self {
            Target::Device { esp } => {
                let dir = esp.join("EFI/Linux");
                let mut names = Vec::new();
                for entry in std::fs::read_dir(&dir).map_err(io_err(dir.display().to_string()))? {
                    let entry = entry.map_err(io_err(dir.display().to_string()))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                Ok(names)
            }
            Target::Image { .. } => {
                let out = self.mtools("mdir", &["-b", "::EFI/Linux"])?;
                Ok(out
                    .lines()
                    .filter_map(|l| l.rsplit('/').next())
                    .map(str::to_owned)
                    .collect())
            }
        }
    }

    fn esp_remove(&self, name: &str) -> Result<(), UpdateError> {
        match self {
            Target::Device { esp } => {
                let path = esp.join("EFI/Linux").join(name);
                std::fs::remove_file(&path).map_err(io_err(path.display().to_string()))
            }
            Target::Image { .. } => self
                .mtools("mdel", &[&format!("::EFI/Linux/{name}")])
                .map(drop),
        }
    }

    fn esp_install(&self, src: &Path, name: &str) -> Result<(), UpdateError> {
        match self {
            Target::Device { esp } => {
                let tmp = esp.join("EFI/Linux").join(format!("{name}.tmp"));
                std::fs::copy(src, &tmp).map_err(io_err(tmp.display().to_string()))?;
                File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(tmp.display().to_string()))?;
                let dest = esp.join("EFI/Linux").join(name);
                std::fs::rename(&tmp, &dest).map_err(io_err(dest.display().to_string()))
            }
            Target::Image { .. } => {
                let src = src.display().to_string();
                self.mtools("mcopy", &[&src, &format!("::EFI/Linux/{name}")])
                    .map(drop)
            }
        }
    }

    fn mtools(&self, tool: &str, args: &[&str]) -> Result<String, UpdateError> {
        let Target::Image { path, parts } = self else {
            return Err(UpdateError::Gpt("mtools on a device target".to_owned()));
        };
        let esp = parts
            .iter()
            .find(|p| p.name == "esp")
            .ok_or_else(|| UpdateError::Gpt("no partition named esp".to_owned()))?;
        let image = format!("{}@@{}", path.display(), esp.offset);
        let out = Command::new(tool)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&image)
            .args(args)
            .output()
            .map_err(io_err(format!("running {tool} (install mtools)")))?;
        if !out.status.success() {
            return Err(UpdateError::Tool {
                command: format!("{tool} {}", args.join(" ")),
                status: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let uki_file = format!("uki-{}.efi", slot.letter());
    for needed in ["root.sqfs", "verity.img", uki_file.as_str()] {
        if !manifest.files.iter().any(|f| f.name == needed) {
            return Err(UpdateError::Missing(needed.to_owned()));
        }
    }
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
        let Some(expected) = manifest.files.iter().find(|f| f.name == name) else {
            continue;
        };
        let size = entry.size();
        if size != expected.size {
            return Err(UpdateError::SizeMismatch {
                name,
                expected: expected.size,
                actual: size,
            });
        }
        let partition = match name.as_str() {
            "root.sqfs" => Some(format!("root-{}", slot.letter())),
            "verity.img" => Some(format!("verity-{}", slot.letter())),
            _ => None,
        };
        let actual = if let Some(partition) = partition {
            let (mut f, _, capacity) = target.open_partition(&partition)?;
            if size > capacity {
                return Err(UpdateError::TooBig {
                    name,
                    partition,
                    size,
                    capacity,
                });
            }
            eprintln!("flakeboot: update: writing {name} ({size} bytes) to {partition}");
            let sum = copy_hashed(&mut entry, &mut f, size).map_err(io_err(&partition))?;
            f.sync_all().map_err(io_err(&partition))?;
            sum
        } else if name == uki_file {
            let mut f = File::create(&uki_tmp).map_err(io_err(uki_tmp.display().to_string()))?;
            copy_hashed(&mut entry, &mut f, size).map_err(io_err(&name))?
        } else {
            copy_hashed(&mut entry, &mut io::sink(), size).map_err(io_err(&name))?
        };
        if actual != expected.sha256 {
            return Err(UpdateError::HashMismatch {
                name,
                expected: expected.sha256.clone(),
                actual,
            });
        }
        verified.push(name);
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

    fn gpt_with(parts: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut disk = vec![0u8; 34 * 512];
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, (name, first, last)) in parts.iter().enumerate() {
            let e = 1024 + i * 128;
            disk[e] = 0xaf; // any non-zero type GUID
            disk[e + 32..e + 40].copy_from_slice(&first.to_le_bytes());
            disk[e + 40..e + 48].copy_from_slice(&last.to_le_bytes());
            for (j, u) in name.encode_utf16().enumerate() {
                disk[e + 56 + 2 * j..e + 58 + 2 * j].copy_from_slice(&u.to_le_bytes());
            }
        }
        disk
    }

    #[test]
    fn gpt_partitions_by_name() {
        let disk = gpt_with(&[("esp", 2048, 4095), ("root-b", 4096, 8191)]);
        let parts = parse_gpt(&disk).unwrap();
        assert_eq!(
            parts,
            vec![
                Partition {
                    name: "esp".to_owned(),
                    offset: 2048 * 512,
                    size: 2048 * 512
                },
                Partition {
                    name: "root-b".to_owned(),
                    offset: 4096 * 512,
                    size: 4096 * 512
                },
            ]
        );
    }

    #[test]
    fn garbage_is_not_a_gpt_and_never_panics() {
        assert!(parse_gpt(&[0u8; 100]).is_err());
        assert!(parse_gpt(&vec![0u8; 34 * 512]).is_err());
        let mut disk = gpt_with(&[("x", 10, 5)]);
        assert!(parse_gpt(&disk).is_err());
        disk[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_gpt(&disk).is_err());
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
