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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use flakeboot_board::signing::{Trust, TrustError};
use flakeboot_board::update::{UpdateError, install, verify};
use sha2::{Digest, Sha256};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private key made by openssl and its public key in `keys/NAME.pem`.
fn openssl_key(dir: &Path, keys: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    fs::create_dir_all(keys).unwrap();
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(keys.join(format!("{name}.pem"))));
    key
}

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
            format!(
                r#"{{"name":"{n}","size":{},"sha256":"{}"}}"#,
                data.len(),
                hex(&Sha256::digest(data))
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"format":1,"version":"0.2.0","board":"{board}","roothash":"00","files":[{}]}}"#,
        files.join(",")
    );
    fs::write(work.join("manifest.json"), &manifest).unwrap();
    let mut names = vec!["manifest.json"];
    if let Some(key) = key {
        run(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(key)
            .arg("-in")
            .arg(work.join("manifest.json"))
            .arg("-out")
            .arg(work.join("manifest.sig")));
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
    run(Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(&out)
        .args(&names));
    out
}

/// A 40 MiB disk: GPT with esp, root-a, verity-a, root-b, verity-b; slot A's UKI blessed.
fn disk(dir: &Path) -> PathBuf {
    let img = dir.join("disk.img");
    run(Command::new("truncate").args(["-s", "40M"]).arg(&img));
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().expect("sfdisk (util-linux)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: gpt\nfirst-lba: 2048\nsize=16MiB, name=esp\nsize=8MiB, name=root-a\nsize=2MiB, name=verity-a\nsize=8MiB, name=root-b\nsize=2MiB, name=verity-b\n",
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    let esp = dir.join("esp.img");
    run(Command::new("mkfs.fat")
        .args(["-C", "-F", "16"])
        .arg(&esp)
        .arg("16384"));
    let at = |tool: &str| {
        let mut c = Command::new(tool);
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&esp);
        c
    };
    run(at("mmd").args(["::EFI", "::EFI/Linux"]));
    fs::write(dir.join("a.efi"), b"slot a").unwrap();
    run(at("mcopy")
        .arg(dir.join("a.efi"))
        .arg("::EFI/Linux/flakeboot-1-a.efi"));
    run(Command::new("dd")
        .arg(format!("if={}", esp.display()))
        .arg(format!("of={}", img.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc", "status=none"]));
    img
}

fn digest(path: &Path) -> String {
    hex(&Sha256::digest(fs::read(path).unwrap()))
}

#[test]
fn only_bundles_signed_for_this_board_are_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = dir.join("keys");
    let key = openssl_key(dir, &keys, "release");
    let stranger = openssl_key(dir, &dir.join("other-keys"), "stranger");
    let trust = Trust::load(&keys, "qemu-x86_64").unwrap();
    let img = disk(dir);
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
