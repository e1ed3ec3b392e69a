//! Backups written and restored on disk: what goes in (the store as of the backup, keys with
//! their modes, not the socket or firmware uploads), and what a restore refuses: a weak
//! passphrase, a wrong one, a file that is no backup, an archive with a path outside its
//! trees, a used state directory; a refused restore leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use age::secrecy::SecretString;
use flakeboot_appliance::backup::{BackupError, restore, write_backup};
use flakeboot_catalogue::MacAddr;
use flakeboot_store::Store;

const PASS: &str = "a long enough passphrase";
const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 1, 2, 3]);

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An age file (passphrase [`PASS`]) holding a tar with these entries.
fn crafted(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = age::Encryptor::with_user_passphrase(SecretString::from(PASS.to_owned()));
    let mut w = enc.wrap_output(&mut out).unwrap();
    {
        let mut tar = tar::Builder::new(&mut w);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            // Written raw: tar::Builder refuses `..` itself, an attacker's tool would not.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        tar.finish().unwrap();
    }
    w.finish().unwrap().flush().unwrap();
    out
}

#[test]
fn a_backup_holds_the_state_and_restores_only_into_a_new_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let store = Store::open(&state).unwrap();
    store.set_machine_label(MAC, Some("rack 2".into())).unwrap();
    fs::create_dir_all(state.join("tls")).unwrap();
    fs::write(state.join("tls/key.pem"), "KEY").unwrap();
    fs::set_permissions(state.join("tls/key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir_all(state.join("firmware")).unwrap();
    fs::write(state.join("firmware/upload.bundle"), "big").unwrap();
    let config = tmp.path().join("outside.toml");
    fs::write(&config, "[lan]\ninterface = \"lan0\"\n").unwrap();

    assert!(matches!(
        write_backup(&store, Some(&config), "short", Vec::new()),
        Err(BackupError::WeakPassphrase)
    ));
    let mut archive = Vec::new();
    let manifest = write_backup(&store, Some(&config), PASS, &mut archive).unwrap();
    assert_eq!(manifest.config_file.as_deref(), Some("outside.toml"));
    // Changed after the backup: the restore has the label as it was.
    store.set_machine_label(MAC, Some("later".into())).unwrap();
    assert!(fs::read_dir(&state).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".backup-")
    }));

    let new = tmp.path().join("new");
    let err = restore(archive.as_slice(), "the wrong passphrase", &new, None).unwrap_err();
    assert!(matches!(err, BackupError::Decrypt(_)), "{err:?}");
    let err = restore(&b"not a backup at all"[..], PASS, &new, None).unwrap_err();
    assert!(matches!(err, BackupError::NotABackup(_)), "{err:?}");
    let err = restore(archive.as_slice(), PASS, &state, None).unwrap_err();
    assert!(matches!(err, BackupError::NotEmpty(_)), "{err:?}");
    assert!(!new.exists());

    let config_out = tmp.path().join("restored.toml");
    let done = restore(archive.as_slice(), PASS, &new, Some(&config_out)).unwrap();
    assert_eq!(done.config_file.as_deref(), Some(config_out.as_path()));
    assert_eq!(fs::read(&config_out).unwrap(), fs::read(&config).unwrap());
    assert_eq!(fs::read_to_string(new.join("tls/key.pem")).unwrap(), "KEY");
    assert_eq!(mode(&new.join("tls/key.pem")), 0o600);
    assert_eq!(mode(&new), 0o700);
    assert!(
        !new.join("firmware").exists(),
        "firmware uploads are no state"
    );
    let restored = Store::open(&new).unwrap();
    assert_eq!(
        restored.machine(MAC).unwrap().unwrap().label.as_deref(),
        Some("rack 2")
    );
    // Nothing of the work directory is left beside it.
    let left: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restoring"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn crafted_archives_are_refused_without_writing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = br#"{"format":1,"version":"0","created_at":0,"config_file":null}"#;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "escape",
            crafted(&[
                ("flakeboot-backup.json", manifest),
                ("state/../../evil", b"x"),
            ]),
            "outside state/ and config/",
        ),
        (
            "elsewhere",
            crafted(&[("flakeboot-backup.json", manifest), ("etc/passwd", b"x")]),
            "outside state/ and config/",
        ),
        (
            "no manifest",
            crafted(&[("state/x", b"x")]),
            "does not start with",
        ),
        (
            "newer",
            crafted(&[(
                "flakeboot-backup.json",
                br#"{"format":9,"version":"9","created_at":0,"config_file":null}"#,
            )]),
            "format 9",
        ),
    ];
    for (what, archive, says) in cases {
        let dir = tmp.path().join(what.replace(' ', "-")).join("state");
        let err = restore(archive.as_slice(), PASS, &dir, None).unwrap_err();
        assert!(err.to_string().contains(says), "{what}: {err}");
        assert!(!dir.exists(), "{what}");
    }
    assert!(!tmp.path().join("evil").exists());
    let empty_store = crafted(&[("flakeboot-backup.json", manifest), ("state/tls", b"x")]);
    let err = restore(empty_store.as_slice(), PASS, &tmp.path().join("s"), None).unwrap_err();
    assert!(
        err.to_string().contains("holds no state/flakeboot.redb"),
        "{err}"
    );
}
