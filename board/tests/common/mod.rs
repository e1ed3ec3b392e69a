//! What the bundle tests share: commands, openssl keys, signing, a small GPT disk image.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private key made by openssl and its public key in `keys/NAME.pem`.
pub fn openssl_key(dir: &Path, keys: &Path, name: &str) -> PathBuf {
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

/// Signs `dir/manifest.json` with `key` into `dir/manifest.sig` (as image/build.sh does).
pub fn sign(dir: &Path, key: &Path) {
    run(Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(key)
        .arg("-in")
        .arg(dir.join("manifest.json"))
        .arg("-out")
        .arg(dir.join("manifest.sig")));
}

/// Tars `names` from `dir` into `out`, in that order.
pub fn tar(dir: &Path, names: &[&str], out: &Path) {
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .args(names));
}

/// A payload's manifest entry.
pub fn file_entry(name: &str, data: &[u8]) -> String {
    format!(
        r#"{{"name":"{name}","size":{},"sha256":"{}"}}"#,
        data.len(),
        hex(&Sha256::digest(data))
    )
}

/// A 40 MiB disk: GPT with esp, root-a, verity-a, root-b, verity-b; slot A's UKI (`uki_a`)
/// blessed.
pub fn disk(dir: &Path, uki_a: &[u8]) -> PathBuf {
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
    fs::write(dir.join("a.efi"), uki_a).unwrap();
    run(at("mcopy")
        .arg(dir.join("a.efi"))
        .arg("::EFI/Linux/flakeboot-1-a.efi"));
    run(Command::new("dd")
        .arg(format!("if={}", esp.display()))
        .arg(format!("of={}", img.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc", "status=none"]));
    img
}

pub fn digest(path: &Path) -> String {
    hex(&Sha256::digest(fs::read(path).unwrap()))
}
