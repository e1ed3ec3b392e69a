//! What the firmware and systemd-boot tell the running system through UEFI variables
//! (efivarfs: each file is 4 bytes of attributes, then the value), and the one-shot entry
//! that sends the next boot into the development mode.
//!
//! systemd-boot (the Boot Loader Interface) sets `LoaderEntrySelected` (the entry booted now)
//! and `LoaderEntries` (every entry it offered), as UTF-16LE strings; it boots
//! `LoaderEntryOneShot` once at the next boot and deletes it. The image's UKIs have two profiles
//! (image/build.sh), so systemd-boot offers two entries for each: `<file>` (profile 0, normal)
//! and `<file>@dev` (profile 1, whose `.profile` says `ID=dev`; `<file>@1` when a profile has
//! no `ID=`), the boot counter left out of the file name and the name in lower case.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The Boot Loader Interface's vendor GUID (systemd-boot's variables).
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The UEFI global variables' GUID (`SecureBoot`).
const GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// Non-volatile, boot-service and runtime access: what systemd's `bootctl set-oneshot` writes.
const ATTRIBUTES: [u8; 4] = [0x07, 0, 0, 0];
/// The development profile's `ID=` (image/build.sh), and its number.
pub const DEVELOPMENT_PROFILE: (&str, u32) = ("dev", 1);

/// Why the development entry cannot be chosen.
#[derive(Debug, thiserror::Error)]
pub enum BootLoaderError {
    #[error(
        "the boot loader did not say which entry is running (no LoaderEntrySelected in {0}): the appliance did not boot through systemd-boot"
    )]
    NoSelected(String),
    #[error(
        "the boot loader offers no development entry for the running entry {running:?} (it offers {offered:?}): this image's UKIs have no development profile (an image older than the development mode)"
    )]
    NoDevelopmentEntry {
        running: String,
        offered: Vec<String>,
    },
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// The efivarfs file of the variable `name`: `SecureBoot` is a global one, the rest are
/// systemd-boot's.
pub fn variable(efivars: &Path, name: &str) -> PathBuf {
    let guid = if name == "SecureBoot" {
        GLOBAL_GUID
    } else {
        LOADER_GUID
    };
    efivars.join(format!("{name}-{guid}"))
}

/// A variable's efivarfs bytes: the attributes, then each string in UTF-16LE ended by a NUL.
pub fn encode(values: &[&str]) -> Vec<u8> {
    let mut bytes = ATTRIBUTES.to_vec();
    for unit in values.iter().flat_map(|v| v.encode_utf16().chain([0])) {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// The UTF-16LE value after the attributes, split at NULs (empty parts dropped).
fn strings(bytes: &[u8]) -> Vec<String> {
    let Some(value) = bytes.get(4..) else {
        return Vec::new();
    };
    let units: Vec<u16> = value
        .chunks_exact(2)
        .filter_map(|c| Some(u16::from_le_bytes(c.try_into().ok()?)))
        .collect();
    units
        .split(|u| *u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// The `SecureBoot` variable's value: its data byte after the 4 bytes of attributes.
pub fn secure_boot(efivars: &Path) -> Option<bool> {
    match fs::read(variable(efivars, "SecureBoot")).ok()?.as_slice() {
        [_, _, _, _, value] => Some(*value == 1),
        _ => None,
    }
}

/// The entry systemd-boot started this time (`flakeboot-1-a.efi`, `flakeboot-1-a.efi@dev`).
pub fn selected(efivars: &Path) -> Option<String> {
    let bytes = fs::read(variable(efivars, "LoaderEntrySelected")).ok()?;
    strings(&bytes).into_iter().next()
}

/// Every entry systemd-boot offered at this boot.
pub fn entries(efivars: &Path) -> Vec<String> {
    fs::read(variable(efivars, "LoaderEntries"))
        .map(|b| strings(&b))
        .unwrap_or_default()
}

/// The development entry of the entry running now: its UKI's development profile, as the
/// boot loader offered it.
pub fn development_entry(efivars: &Path) -> Result<String, BootLoaderError> {
    let running = selected(efivars)
        .ok_or_else(|| BootLoaderError::NoSelected(efivars.display().to_string()))?;
    let uki = running.split_once('@').map_or(running.as_str(), |(u, _)| u);
    let (id, number) = DEVELOPMENT_PROFILE;
    let wanted = [format!("{uki}@{id}"), format!("{uki}@{number}")];
    let offered = entries(efivars);
    match offered
        .iter()
        .find(|e| wanted.iter().any(|w| w.eq_ignore_ascii_case(e)))
    {
        Some(entry) => Ok(entry.clone()),
        None => Err(BootLoaderError::NoDevelopmentEntry { running, offered }),
    }
}

/// Makes `entry` the next boot's, once (`LoaderEntryOneShot`). efivarfs marks its files
/// immutable, so one left from an earlier request is made writable first (`chattr -i`). The
/// value goes in one write, as efivarfs wants.
pub fn set_one_shot(efivars: &Path, entry: &str) -> Result<(), BootLoaderError> {
    let path = variable(efivars, "LoaderEntryOneShot");
    let failed = |source| BootLoaderError::Write {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        let status = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&path)
            .status()
            .map_err(failed)?;
        if !status.success() {
            return Err(failed(io::Error::other(format!("chattr -i: {status}"))));
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(failed)?;
    file.write_all(&encode(&[entry])).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, name: &str, values: &[&str]) {
        fs::write(variable(dir, name), encode(values)).unwrap();
    }

    #[test]
    fn the_secure_boot_variable_is_its_byte_after_the_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let path = variable(dir.path(), "SecureBoot");
        assert_eq!(
            secure_boot(dir.path()),
            None,
            "no variable: not booted with UEFI"
        );
        for (bytes, want) in [
            (&[6u8, 0, 0, 0, 1][..], Some(true)),
            (&[6, 0, 0, 0, 0][..], Some(false)),
            (&[6, 0, 0, 0][..], None),
            (&[6, 0, 0, 0, 1, 0][..], None),
            (&[][..], None),
        ] {
            fs::write(&path, bytes).unwrap();
            assert_eq!(secure_boot(dir.path()), want, "{bytes:?}");
        }
    }

    #[test]
    fn the_development_entry_is_the_running_ukis_profile_1_and_goes_in_one_shot() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            development_entry(d),
            Err(BootLoaderError::NoSelected(_))
        ));
        // As systemd-boot 257 names them: profile 0 by its file, the others `@<ID=>`.
        put(d, "LoaderEntrySelected", &["flakeboot-2-b.efi"]);
        put(
            d,
            "LoaderEntries",
            &[
                "flakeboot-2-b.efi",
                "flakeboot-2-b.efi@dev",
                "flakeboot-1-a.efi",
                "flakeboot-1-a.efi@dev",
                "auto-reboot-to-firmware-setup",
            ],
        );
        assert_eq!(development_entry(d).unwrap(), "flakeboot-2-b.efi@dev");
        // From the development mode itself: the same entry again.
        put(d, "LoaderEntrySelected", &["flakeboot-2-b.efi@dev"]);
        assert_eq!(development_entry(d).unwrap(), "flakeboot-2-b.efi@dev");
        // A profile without `ID=` is named by its number.
        put(d, "LoaderEntrySelected", &["flakeboot-3-a.efi"]);
        put(
            d,
            "LoaderEntries",
            &["flakeboot-3-a.efi", "flakeboot-3-a.efi@1"],
        );
        assert_eq!(development_entry(d).unwrap(), "flakeboot-3-a.efi@1");

        set_one_shot(d, "flakeboot-2-b.efi@dev").unwrap();
        let written = fs::read(variable(d, "LoaderEntryOneShot")).unwrap();
        assert_eq!(written[..4], ATTRIBUTES);
        assert_eq!(strings(&written), ["flakeboot-2-b.efi@dev"]);
        assert_eq!(written.len(), 4 + 2 * ("flakeboot-2-b.efi@dev".len() + 1));
        // A second request replaces the first (chattr -i on a plain file changes nothing).
        set_one_shot(d, "flakeboot-2-b.efi").unwrap();
        let again = fs::read(variable(d, "LoaderEntryOneShot")).unwrap();
        assert_eq!(strings(&again), ["flakeboot-2-b.efi"]);

        // An older image's UKI without profiles: no development entry offered.
        put(d, "LoaderEntrySelected", &["flakeboot-1-a.efi"]);
        put(d, "LoaderEntries", &["flakeboot-1-a.efi"]);
        let err = development_entry(d).unwrap_err();
        assert!(
            matches!(&err, BootLoaderError::NoDevelopmentEntry { running, .. } if running == "flakeboot-1-a.efi"),
            "{err}"
        );
        assert!(err.to_string().contains("[\"flakeboot-1-a.efi\"]"), "{err}");
    }

    #[test]
    fn odd_variable_contents_give_no_strings_and_no_panic() {
        assert!(strings(&[]).is_empty());
        assert!(strings(&[7, 0, 0]).is_empty());
        assert!(strings(&[7, 0, 0, 0, 0, 0]).is_empty());
        // An odd trailing byte is ignored; unpaired surrogates are replaced.
        assert_eq!(strings(&[7, 0, 0, 0, b'a', 0, b'b']), ["a"]);
        assert_eq!(strings(&[7, 0, 0, 0, 0x00, 0xd8, b'c', 0]), ["\u{fffd}c"]);
    }
}
