//! Delta bundles: payloads carried as [`crate::delta`] files against the full bundle the running
//! slot was installed from (its base). The base is found on the running slot (its root partition
//! and its UKI on the ESP) and checked against the signed manifest's sha256s before anything is
//! written; a slot running anything else refuses the bundle.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    Manifest, ManifestFile, Slot, Target, UpdateError, copy_hashed, io_err, parse_uki_name,
};
use crate::delta::{self, FileBase};
use crate::hex;

/// What a delta bundle was made against: the full bundle of `version`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BaseImage {
    pub version: String,
    pub roothash: String,
    /// Its `root.sqfs` and UKIs (sizes and sha256s).
    pub files: Vec<ManifestFile>,
}

/// A payload carried as a delta: the tar entry `<name>.delta`, made against the base's file
/// `base`; the payload's own `size` and `sha256` are what it decodes to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DeltaPayload {
    pub base: String,
    pub size: u64,
    pub sha256: String,
}

/// A base file open on the running slot, its sha256 checked.
#[derive(Debug)]
struct Opened {
    name: String,
    file: File,
    start: u64,
    len: u64,
}

/// The base files the payloads being installed need.
#[derive(Debug, Default)]
pub(super) struct Bases {
    opened: Vec<Opened>,
}

/// Reads through to `inner`, hashing and counting what passes.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// The sha256 of `len` bytes of `file` from `start`.
fn hash_region(mut file: &File, start: u64, len: u64) -> io::Result<String> {
    file.seek(SeekFrom::Start(start))?;
    copy_hashed(&mut file.take(len), &mut io::sink(), len)
}

impl Bases {
    /// Opens and checks the base files that the payloads named in `installing` are made
    /// against. `current` is the running slot; nothing is written.
    pub(super) fn find(
        target: &Target,
        current: Slot,
        manifest: &Manifest,
        installing: &[&str],
        scratch: &Path,
    ) -> Result<Bases, UpdateError> {
        let mut bases = Bases::default();
        let Some(base) = &manifest.base else {
            return Ok(bases);
        };
        let refuse = |why: String| UpdateError::NotTheBase {
            version: base.version.clone(),
            why,
        };
        let running_uki = format!("uki-{}.efi", current.letter());
        for file in manifest
            .files
            .iter()
            .filter(|f| installing.contains(&&*f.name))
        {
            let Some(d) = &file.delta else { continue };
            if bases.opened.iter().any(|o| o.name == d.base) {
                continue;
            }
            let want = base
                .files
                .iter()
                .find(|f| f.name == d.base)
                .ok_or_else(|| {
                    refuse(format!(
                        "the manifest does not describe its base file {}",
                        d.base
                    ))
                })?;
            let opened = if d.base == "root.sqfs" {
                let label = format!("root-{}", current.letter());
                let (file, start, capacity) = target.open_partition(&label, false)?;
                let sum = match want.size <= capacity {
                    true => hash_region(&file, start, want.size).map_err(io_err(&label))?,
                    false => String::new(),
                };
                if sum != want.sha256 {
                    return Err(refuse(format!(
                        "the running slot {}'s root is not its root.sqfs",
                        current.letter()
                    )));
                }
                Opened {
                    name: d.base.clone(),
                    file,
                    start,
                    len: want.size,
                }
            } else if d.base == running_uki {
                let mut found = None;
                for name in target.esp_list()? {
                    if !parse_uki_name(&name).is_some_and(|u| u.slot == current) {
                        continue;
                    }
                    let file = target.esp_open(&name, scratch)?;
                    let len = file.metadata().map_err(io_err(&name))?.len();
                    if len == want.size
                        && hash_region(&file, 0, len).map_err(io_err(&name))? == want.sha256
                    {
                        found = Some(file);
                        break;
                    }
                }
                let file = found.ok_or_else(|| {
                    refuse(format!(
                        "the running slot {}'s boot entry is not its {running_uki}",
                        current.letter()
                    ))
                })?;
                Opened {
                    name: d.base.clone(),
                    file,
                    start: 0,
                    len: want.size,
                }
            } else {
                return Err(refuse(format!(
                    "{} is made against {}, which the running slot {} does not have",
                    file.name,
                    d.base,
                    current.letter()
                )));
            };
            eprintln!(
                "flakeboot: update: delta from {}: {} of the running slot checked",
                base.version, opened.name
            );
            bases.opened.push(opened);
        }
        Ok(bases)
    }

    /// Decodes `entry`, the delta for `file`, into `out`: the result's sha256 (the caller
    /// compares it with the manifest's). The delta's own size and sha256 are checked here.
    pub(super) fn decode(
        &self,
        entry: &mut impl Read,
        file: &ManifestFile,
        d: &DeltaPayload,
        out: &mut impl Write,
    ) -> Result<String, UpdateError> {
        let name = format!("{}.delta", file.name);
        let base = self
            .opened
            .iter()
            .find(|o| o.name == d.base)
            .ok_or_else(|| UpdateError::Missing(d.base.clone()))?;
        let mut reader = Hashing {
            inner: entry.take(d.size),
            hasher: Sha256::new(),
        };
        let source = FileBase {
            file: &base.file,
            start: base.start,
        };
        let result = delta::decode(&mut reader, &source, base.len, out, file.size);
        // A delta that does not match its signed hash is reported as that, whatever it decoded to.
        let _ = io::copy(&mut reader, &mut io::sink());
        let actual = hex(&reader.hasher.finalize());
        if actual != d.sha256 {
            return Err(UpdateError::HashMismatch {
                name,
                expected: d.sha256.clone(),
                actual,
            });
        }
        result.map_err(|source| UpdateError::Delta { name, source })
    }
}
