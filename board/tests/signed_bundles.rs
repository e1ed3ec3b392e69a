//! Signed update bundles, signed the way `image/build.sh` signs them (openssl), installed on a
//! small GPT disk image the way `flakeboot update apply --disk` does: a good bundle goes into
//! slot B; an unsigned one, a tampered one, one signed by another key and one for another board
//! are refused with nothing on the disk changed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{digest, disk, file_entry, openssl_key, run, sign, tar};
use flakeboot_board::signing::{Trust, TrustError};
use flakeboot_board::update::{UpdateError, install, verify};

/// Writes a bundle: the manifest for `board`, its signature by `key` (none: unsigned), and the
/// payloads. `tamper` changes the manifest after signing.
fn bundle(dir: &Path, name: &str, board: &str, key: Option<&Path>, tamper: bool) -> PathBuf {
    let work = dir.join(format!("{name}.d"));
    fs::create_dir_all(&work).unwrap();
    let payloads: [(&str, Vec<u8>); 4] = [
        ("root.sqfs", vec![0x5a; 300_000]),
        ("verity.img", vec![0xa5; 4096]),
        ("uki-a.efi", b"uki a".to_vec()),
        ("uki-b.efi", b"uki b".to_vec()),
    ];
    let files: Vec<String> = payloads
        .iter()
        .map(|(n, data)| {
            fs::write(work.join(n), data).unwrap();
            file_entry(n, data)
        })
        .collect();
    let manifest = format!(
        r#"{{"format":1,"version":"0.2.0","board":"{board}","roothash":"00","files":[{}]}}"#,
        files.join(",")
    );
    fs::write(work.join("manifest.json"), &manifest).unwrap();
    let mut names = vec!["manifest.json"];
    if let Some(key) = key {
        sign(&work, key);
        names.push("manifest.sig");
    }
    if tamper {
        fs::write(
            work.join("manifest.json"),
            manifest.replace("0.2.0", "0.2.1"),
        )
        .unwrap();
    }
    names.extend(payloads.iter().map(|(n, _)| *n));
    let out = dir.join(format!("{name}.bundle.tar"));
    tar(&work, &names, &out);
    out
}

#[test]
fn only_bundles_signed_for_this_board_are_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = dir.join("keys");
    let key = openssl_key(dir, &keys, "release");
    let stranger = openssl_key(dir, &dir.join("other-keys"), "stranger");
    let trust = Trust::load(&keys, "qemu-x86_64").unwrap();
    let img = disk(dir, b"slot a");
    let before = digest(&img);

    let refused = [
        (
            "unsigned",
            bundle(dir, "unsigned", "qemu-x86_64", None, false),
        ),
        (
            "tampered",
            bundle(dir, "tampered", "qemu-x86_64", Some(&key), true),
        ),
        (
            "stranger",
            bundle(dir, "stranger", "qemu-x86_64", Some(&stranger), false),
        ),
        (
            "board",
            bundle(dir, "board", "raspberry-pi-4", Some(&key), false),
        ),
    ];
    for (what, b) in &refused {
        let err = install(b, Some(img.clone()), "/nonexistent".into(), &trust).unwrap_err();
        let text = err.to_string();
        match (*what, &err) {
            ("unsigned", UpdateError::Trust(TrustError::Unsigned)) => {
                assert!(text.contains("FLAKEBOOT_SIGNING_KEY"), "{text}");
            }
            ("tampered" | "stranger", UpdateError::Trust(TrustError::BadSignature { keys })) => {
                assert_eq!(keys, "release");
            }
            ("board", UpdateError::Trust(TrustError::WrongBoard { bundle, running })) => {
                assert_eq!(
                    (bundle.as_str(), running.as_str()),
                    ("raspberry-pi-4", "qemu-x86_64")
                );
            }
            _ => panic!("{what}: unexpected {err:?}"),
        }
        assert!(verify(b, &trust).is_err(), "{what}");
        assert_eq!(digest(&img), before, "{what} changed the disk");
    }

    let good = bundle(dir, "good", "qemu-x86_64", Some(&key), false);
    let (manifest, _) = verify(&good, &trust).unwrap();
    assert_eq!(manifest.version, "0.2.0");
    let done = install(&good, Some(img.clone()), "/nonexistent".into(), &trust).unwrap();
    assert_eq!(
        (done.slot.letter(), done.uki.as_str()),
        ('b', "flakeboot-2-b+3.efi")
    );
    let listing = run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", img.display(), 1 << 20))
        .args(["-b", "::EFI/Linux"]));
    assert!(listing.contains("flakeboot-2-b+3.efi"), "{listing}");
    // root-b starts after esp (16 MiB), root-a (8) and verity-a (2), 1 MiB in.
    let disk = fs::read(&img).unwrap();
    let root_b = (1 + 16 + 8 + 2) << 20;
    assert!(disk[root_b..root_b + 300_000].iter().all(|&b| b == 0x5a));
}
