//! What a unified kernel image says about itself: its `.osrel` section (os-release lines,
//! `image/build.sh` writes `VERSION_ID`), read from the PE section table without loading the
//! kernel and initrd it also holds.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// An `.osrel` larger than this is not one.
const MAX_OSREL: u32 = 64 * 1024;
/// More sections than this is not a UKI.
const MAX_SECTIONS: u16 = 96;

/// The `.osrel` section of the UKI at `path`, or `None` when it has none or is no PE file. In a
/// multi-profile UKI that is the first one, the base profile's (image/build.sh gives the
/// development profile one of its own after it).
pub fn osrel(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut dos = [0u8; 64];
    f.read_exact(&mut dos).ok()?;
    if dos.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32::from_le_bytes(dos.get(0x3c..0x40)?.try_into().ok()?);
    f.seek(SeekFrom::Start(u64::from(pe))).ok()?;
    let mut coff = [0u8; 24];
    f.read_exact(&mut coff).ok()?;
    if coff.get(..4)? != b"PE\0\0" {
        return None;
    }
    let sections = u16::from_le_bytes(coff.get(6..8)?.try_into().ok()?);
    let optional = u16::from_le_bytes(coff.get(20..22)?.try_into().ok()?);
    if sections > MAX_SECTIONS {
        return None;
    }
    let table = u64::from(pe) + 24 + u64::from(optional);
    f.seek(SeekFrom::Start(table)).ok()?;
    let mut headers = vec![0u8; usize::from(sections) * 40];
    f.read_exact(&mut headers).ok()?;
    let header = headers
        .chunks_exact(40)
        .find(|h| h.get(..8) == Some(b".osrel\0\0".as_slice()))?;
    let u32_at = |at: usize| Some(u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?));
    let virtual_size = u32_at(8)?;
    let raw_size = u32_at(16)?;
    let offset = u32_at(20)?;
    let len = virtual_size.min(raw_size);
    if len > MAX_OSREL {
        return None;
    }
    f.seek(SeekFrom::Start(u64::from(offset))).ok()?;
    let mut text = vec![0u8; len as usize];
    f.read_exact(&mut text).ok()?;
    let text = String::from_utf8_lossy(&text);
    Some(text.trim_end_matches('\0').to_owned())
}

/// The value of `key` in os-release text (quotes removed).
pub fn osrel_value<'a>(osrel: &'a str, key: &str) -> Option<&'a str> {
    osrel.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE file: DOS header, PE header, no optional header, the given sections.
    fn pe(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&64u32.to_le_bytes());
        let mut coff = vec![0u8; 24];
        coff[..4].copy_from_slice(b"PE\0\0");
        coff[6..8].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        f.extend(coff);
        let data_at = 64 + 24 + 40 * sections.len();
        let mut data = Vec::new();
        for (name, bytes) in sections {
            let mut h = vec![0u8; 40];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            h[16..20].copy_from_slice(&(bytes.len() as u32 + 3).to_le_bytes());
            h[20..24].copy_from_slice(&((data_at + data.len()) as u32).to_le_bytes());
            f.extend(h);
            data.extend_from_slice(bytes);
            data.extend_from_slice(&[0, 0, 0]);
        }
        f.extend(data);
        f
    }

    #[test]
    fn reads_the_osrel_section_and_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uki.efi");
        let text = b"NAME=flakeboot\nVERSION_ID=\"0.2.0+x\"\n";
        std::fs::write(&path, pe(&[(".cmdline", b"ro"), (".osrel", text)])).unwrap();
        let osrel = osrel(&path).unwrap();
        assert_eq!(osrel_value(&osrel, "VERSION_ID"), Some("0.2.0+x"));
        assert_eq!(osrel_value(&osrel, "VERSION"), None);
        assert_eq!(osrel_value(&osrel, "NAME"), Some("flakeboot"));
    }

    #[test]
    fn other_files_have_none_and_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, pe(&[(".linux", b"k")])).unwrap();
        assert_eq!(osrel(&path), None);
        let mut bytes = pe(&[(".osrel", b"A=1")]);
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let _ = osrel(&path);
        }
        bytes[0x3c] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(osrel(&path), None);
        std::fs::write(
            &path,
            b"not a PE file at all, but long enough for a DOS header....................",
        )
        .unwrap();
        assert_eq!(osrel(&path), None);
        assert_eq!(osrel(&dir.path().join("missing")), None);
    }
}
