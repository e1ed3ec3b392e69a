//! Where an update goes: a GPT's partitions by name, and the two kinds of target (the running
//! appliance's devices, or a disk image file written through its GPT and mtools).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{SECTOR, UpdateError, io_err};

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
pub(super) enum Target {
    /// The running appliance: partitions by label, the ESP mounted at a directory.
    Device { esp: PathBuf },
    /// A disk image file: partitions from its GPT, the ESP through mtools.
    Image {
        path: PathBuf,
        parts: Vec<Partition>,
    },
}

impl Target {
    /// Opens the partition `label` for writing (or reading): the file, its start and capacity.
    pub(super) fn open_partition(
        &self,
        label: &str,
        write: bool,
    ) -> Result<(File, u64, u64), UpdateError> {
        match self {
            Target::Device { .. } => {
                let path = format!("/dev/disk/by-partlabel/{label}");
                let mut f = OpenOptions::new()
                    .read(!write)
                    .write(write)
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
                    .read(!write)
                    .write(write)
                    .open(path)
                    .map_err(io_err(path.display().to_string()))?;
                f.seek(SeekFrom::Start(p.offset))
                    .map_err(io_err(path.display().to_string()))?;
                Ok((f, p.offset, p.size))
            }
        }
    }

    pub(super) fn esp_list(&self) -> Result<Vec<String>, UpdateError> {
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

    /// Opens the ESP's `EFI/Linux/<name>` for reading (from a disk image: copied to `scratch`).
    pub(super) fn esp_open(&self, name: &str, scratch: &Path) -> Result<File, UpdateError> {
        let path = match self {
            Target::Device { esp } => esp.join("EFI/Linux").join(name),
            Target::Image { .. } => {
                let copy = scratch.join(format!("base-{name}"));
                let dest = copy.display().to_string();
                self.mtools("mcopy", &["-o", &format!("::EFI/Linux/{name}"), &dest])?;
                copy
            }
        };
        File::open(&path).map_err(io_err(path.display().to_string()))
    }

    pub(super) fn esp_remove(&self, name: &str) -> Result<(), UpdateError> {
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

    pub(super) fn esp_install(&self, src: &Path, name: &str) -> Result<(), UpdateError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

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
}
