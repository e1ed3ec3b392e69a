//! The firmware service on an image laid out in a temporary directory: the slots as the ESP
//! shows them, and uploads refused (not signed, not a bundle) or trusted (signed by an openssl
//! key the image carries), each outcome kept owner-only in the state directory.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use flakeboot_appliance::firmware::{Firmware, FirmwareError, ImagePaths, boot_loader};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image in `root`: board qemu-x86_64 on slot a (blessed), slot b's entry out of tries,
/// accepting the public half of `root/release.key`.
fn image(root: &Path) -> ImagePaths {
    let paths = ImagePaths::in_dir(root);
    fs::create_dir_all(&paths.keys).unwrap();
    fs::create_dir_all(paths.esp.join("EFI/Linux")).unwrap();
    fs::write(&paths.board, "qemu-x86_64\n").unwrap();
    fs::write(&paths.version, "0.1.0\n").unwrap();
    fs::write(&paths.development, "development build: a development key\n").unwrap();
    // efivarfs: attributes (NV, BS, RT), then 1: Secure Boot enforced.
    fs::create_dir_all(&paths.efivars).unwrap();
    fs::write(
        boot_loader::variable(&paths.efivars, "SecureBoot"),
        [6, 0, 0, 0, 1],
    )
    .unwrap();
    fs::write(
        &paths.cmdline,
        "root=/dev/mapper/root flakeboot.slot=a quiet\n",
    )
    .unwrap();
    fs::write(paths.esp.join("EFI/Linux/flakeboot-1-a.efi"), b"MZ").unwrap();
    fs::write(paths.esp.join("EFI/Linux/flakeboot-2-b+0-3.efi"), b"MZ").unwrap();
    let key = root.join("release.key");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(paths.keys.join("release.pem")));
    paths
}

/// A bundle holding only a manifest for `board`, signed with `key` when given.
fn bundle(root: &Path, name: &str, board: &str, key: Option<&Path>) -> Vec<u8> {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let manifest =
        format!(r#"{{"format":1,"version":"0.2.0","board":"{board}","roothash":"00","files":[]}}"#);
    fs::write(dir.join("manifest.json"), manifest).unwrap();
    let mut names = vec!["manifest.json"];
    if let Some(key) = key {
        run(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(key)
            .arg("-in")
            .arg(dir.join("manifest.json"))
            .arg("-out")
            .arg(dir.join("manifest.sig")));
        names.push("manifest.sig");
    }
    let tar = root.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .args(&names));
    fs::read(tar).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn slots_and_uploads_on_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let state = root.join("state");
    let firmware = Firmware::new(&state, image(root));

    let status = firmware.status();
    assert!(status.image);
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert_eq!(status.board.as_deref(), Some("qemu-x86_64"));
    assert_eq!(status.running_slot.as_deref(), Some("a"));
    assert!(status.development.unwrap().starts_with("development build"));
    assert_eq!(status.secure_boot, Some(true));
    let a = &status.slots[0];
    let b = &status.slots[1];
    assert!(a.running && !b.running);
    let (ea, eb) = (a.entry.as_ref().unwrap(), b.entry.as_ref().unwrap());
    assert_eq!(
        (ea.name.as_str(), ea.state.as_str()),
        ("flakeboot-1-a.efi", "good")
    );
    assert_eq!((eb.state.as_str(), eb.tries_left), ("bad", Some(0)));
    assert_eq!(ea.version, None, "no .osrel in a two-byte file");
    assert!(status.last_update.is_none());

    // Not a bundle, unsigned, for another board: refused, each outcome recorded.
    let key = root.join("release.key");
    let refused: [(&str, Vec<u8>, &str); 3] = [
        (
            "garbage",
            b"GET / HTTP/1.1\r\n\r\n".repeat(100),
            "not an update bundle",
        ),
        (
            "unsigned",
            bundle(root, "unsigned", "qemu-x86_64", None),
            "not signed",
        ),
        (
            "board",
            bundle(root, "other", "raspberry-pi-4", Some(&key)),
            "for board raspberry-pi-4",
        ),
    ];
    for (what, body, says) in refused {
        let err = firmware.upload(body.as_slice()).await.unwrap_err();
        assert!(matches!(err, FirmwareError::Refused(_)), "{what}: {err:?}");
        assert!(err.to_string().contains(says), "{what}: {err}");
        let last = firmware.status().last_update.unwrap();
        assert!(!last.ok && last.message.contains(says), "{what}: {last:?}");
        assert!(!state.join("firmware/upload.bundle").exists(), "{what}");
    }
    assert_eq!(mode(&state.join("firmware")), 0o700);
    assert_eq!(mode(&state.join("firmware/last.json")), 0o600);

    // Signed by the image's key for its board: trusted, so installing starts. This host's
    // kernel command line names no slot, so the install itself fails (the image test installs
    // for real), and the record says which version it was.
    let good = bundle(root, "good", "qemu-x86_64", Some(&key));
    let err = firmware.upload(good.as_slice()).await.unwrap_err();
    assert!(matches!(err, FirmwareError::Failed(_)), "{err:?}");
    assert!(
        err.to_string().contains("cannot tell the running slot"),
        "{err}"
    );
    let last = firmware.status().last_update.unwrap();
    assert_eq!((last.ok, last.version.as_deref()), (false, Some("0.2.0")));

    // A new service over the same state directory still knows the last outcome.
    let again = Firmware::new(&state, image(&root.join("again")));
    assert_eq!(again.status().last_update, Some(last));
}

#[tokio::test]
async fn a_host_that_is_not_the_image_has_no_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = ImagePaths {
        board: tmp.path().join("no-board"),
        esp: tmp.path().join("no-esp"),
        cmdline: tmp.path().join("no-cmdline"),
        ..ImagePaths::default()
    };
    let firmware = Firmware::new(tmp.path(), paths);
    let status = firmware.status();
    assert!(!status.image);
    assert!(status.slots.iter().all(|s| s.entry.is_none() && !s.running));
    let err = firmware.upload(&b"x"[..]).await.unwrap_err();
    assert!(matches!(err, FirmwareError::NotAnImage(_)), "{err:?}");
    assert!(err.to_string().contains("not the appliance image"), "{err}");
    for development in [false, true] {
        assert!(matches!(
            firmware.reboot(development),
            Err(FirmwareError::NotAnImage(_))
        ));
    }
}

/// The reboot into the development mode: refused without the running UKI's development entry
/// (nothing rebooted), else systemd-boot's one-shot entry set and then the reboot; the status
/// of a development boot says so and names the overlay root.
#[test]
fn a_reboot_into_the_development_mode_sets_the_one_shot_entry_first() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = image(tmp.path());
    let rebooted = tmp.path().join("rebooted");
    fs::write(
        &paths.reboot[0],
        format!("#!/bin/sh\necho \"$@\" >> {}\n", rebooted.display()),
    )
    .unwrap();
    fs::set_permissions(&paths.reboot[0], fs::Permissions::from_mode(0o755)).unwrap();
    let firmware = Firmware::new(tmp.path(), paths.clone());
    let one_shot = boot_loader::variable(&paths.efivars, "LoaderEntryOneShot");

    // An image older than the development mode: its UKI has no profiles.
    let var = |name| boot_loader::variable(&paths.efivars, name);
    fs::write(
        var("LoaderEntrySelected"),
        boot_loader::encode(&["flakeboot-1-a.efi"]),
    )
    .unwrap();
    fs::write(
        var("LoaderEntries"),
        boot_loader::encode(&["flakeboot-1-a.efi"]),
    )
    .unwrap();
    let err = firmware.reboot(true).unwrap_err();
    assert!(matches!(err, FirmwareError::Development(_)), "{err:?}");
    assert!(err.to_string().contains("no development entry"), "{err}");
    assert!(!rebooted.exists() && !one_shot.exists());

    let entries = [
        "flakeboot-1-a.efi",
        "flakeboot-1-a.efi@dev",
        "flakeboot-2-b.efi",
    ];
    fs::write(
        var("LoaderEntrySelected"),
        boot_loader::encode(&entries[..1]),
    )
    .unwrap();
    fs::write(var("LoaderEntries"), boot_loader::encode(&entries)).unwrap();
    firmware.reboot(true).unwrap();
    assert_eq!(
        fs::read(&one_shot).unwrap(),
        boot_loader::encode(&["flakeboot-1-a.efi@dev"])
    );
    assert_eq!(
        fs::read_to_string(&rebooted).unwrap(),
        "\n",
        "rebooted once"
    );
    // A plain reboot leaves the boot loader's choice alone.
    fs::remove_file(&one_shot).unwrap();
    firmware.reboot(false).unwrap();
    assert!(!one_shot.exists());
    assert_eq!(fs::read_to_string(&rebooted).unwrap(), "\n\n");

    let status = firmware.status();
    assert!(!status.development_mode);
    assert_eq!(status.root_fs, None, "no mount table");
    fs::write(
        &paths.cmdline,
        "root=/dev/mapper/root flakeboot.slot=a flakeboot.dev=1 systemd.volatile=overlay\n",
    )
    .unwrap();
    fs::write(
        &paths.mounts,
        "30 1 0:31 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/run/systemd/overlay-sysroot/lower\n",
    )
    .unwrap();
    let status = firmware.status();
    assert!(status.development_mode);
    assert_eq!(status.root_fs.as_deref(), Some("overlay"));
    assert_eq!(status.running_slot.as_deref(), Some("a"));
}
