//! Delta bundles made the way `image/build.sh` makes them (`flakeboot-board delta`, openssl),
//! installed on a small GPT disk image the way `flakeboot update apply --disk` does: onto the
//! slot running their base they install the same bytes a full bundle would; onto a slot running
//! anything else they are refused with the disk unchanged; a changed delta is caught.

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

use common::{digest, disk, file_entry, hex, openssl_key, run, sign, tar};
use flakeboot_board::signing::Trust;
use flakeboot_board::update::{UpdateError, install};
use sha2::{Digest, Sha256};

/// Bytes that do not repeat (xorshift), like compressed data.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// A delta bundle's entries, in the order image/build.sh writes them.
const ENTRIES: [&str; 6] = [
    "manifest.json",
    "manifest.sig",
    "root.sqfs.delta",
    "verity.img",
    "uki-a.efi.delta",
    "uki-b.efi.delta",
];

struct Release {
    root: Vec<u8>,
    uki_a: Vec<u8>,
    uki_b: Vec<u8>,
}

/// A UKI for `slot` whose bytes are mostly `body`.
fn uki(body: &[u8], slot: u8) -> Vec<u8> {
    let mut u = body.to_vec();
    u[1000] = slot;
    u
}

/// Writes `new` as a delta bundle against `base` and returns it (and the delta's size).
fn delta_bundle(dir: &Path, key: &Path, base: &Release, new: &Release) -> (PathBuf, u64) {
    let work = dir.join("delta.d");
    fs::create_dir_all(&work).unwrap();
    let write = |name: &str, data: &[u8]| {
        let path = work.join(name);
        fs::write(&path, data).unwrap();
        path
    };
    let verity = noise(4096, 99);
    write("verity.img", &verity);
    // Each slot's UKI against the UKI that runs when it is installed: the other slot's.
    let pieces = [
        ("root.sqfs", &new.root, "root.sqfs", &base.root),
        ("uki-a.efi", &new.uki_a, "uki-b.efi", &base.uki_b),
        ("uki-b.efi", &new.uki_b, "uki-a.efi", &base.uki_a),
    ];
    let mut files = Vec::new();
    let mut delta_bytes = 0;
    for (name, data, against, base_data) in pieces {
        let from = write(&format!("{name}.base"), base_data);
        let to = write(name, data);
        let delta = work.join(format!("{name}.delta"));
        let said = run(Command::new(env!("CARGO_BIN_EXE_flakeboot-board"))
            .arg("delta")
            .args([&from, &to, &delta]));
        assert!(said.contains("copied from the base"), "{said}");
        let d = fs::read(&delta).unwrap();
        delta_bytes += d.len() as u64;
        let whole = file_entry(name, data);
        files.push(format!(
            r#"{},"delta":{{"base":"{against}","size":{},"sha256":"{}"}}}}"#,
            whole.trim_end_matches('}'),
            d.len(),
            hex(&Sha256::digest(&d))
        ));
    }
    files.insert(1, file_entry("verity.img", &verity));
    let base_files = [
        file_entry("root.sqfs", &base.root),
        file_entry("uki-a.efi", &base.uki_a),
        file_entry("uki-b.efi", &base.uki_b),
    ];
    let manifest = format!(
        r#"{{"format":2,"version":"0.3.0","board":"qemu-x86_64","roothash":"11","base":{{"version":"0.2.0","roothash":"00","files":[{}]}},"files":[{}]}}"#,
        base_files.join(","),
        files.join(",")
    );
    fs::write(work.join("manifest.json"), manifest).unwrap();
    sign(&work, key);
    let out = dir.join("delta.bundle.tar");
    tar(&work, &ENTRIES, &out);
    (out, delta_bytes)
}

/// Puts `root` at the start of the disk's root-a partition (1 MiB + 16 MiB in).
fn put_root_a(img: &Path, root: &[u8]) {
    let file = img.with_file_name("root-a.bin");
    fs::write(&file, root).unwrap();
    run(Command::new("dd")
        .arg(format!("if={}", file.display()))
        .arg(format!("of={}", img.display()))
        .args(["bs=1M", "seek=17", "conv=notrunc", "status=none"]));
}

fn mtools(img: &Path, tool: &str) -> Command {
    let mut c = Command::new(tool);
    c.env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", img.display(), 1 << 20));
    c
}

#[test]
fn a_delta_bundle_installs_onto_its_base_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = dir.join("keys");
    let key = openssl_key(dir, &keys, "release");
    let trust = Trust::load(&keys, "qemu-x86_64").unwrap();

    let body = noise(600_000, 1);
    let base = Release {
        root: noise(3 << 20, 2),
        uki_a: uki(&body, b'a'),
        uki_b: uki(&body, b'b'),
    };
    // The new release: a file grown in the middle of the root, a changed kernel command line.
    let mut root = base.root.clone();
    root.splice(1 << 20..1 << 20, noise(40_000, 3));
    root[2_500_000..2_500_100].fill(7);
    let mut new_body = body.clone();
    new_body[300_000..300_064].fill(1);
    let new = Release {
        root,
        uki_a: uki(&new_body, b'a'),
        uki_b: uki(&new_body, b'b'),
    };
    let (bundle, delta_bytes) = delta_bundle(dir, &key, &base, &new);
    let full = (new.root.len() + new.uki_a.len() + new.uki_b.len()) as u64;
    println!("delta payloads {delta_bytes} bytes against {full} bytes whole");
    assert!(delta_bytes * 10 < full, "{delta_bytes} of {full}");

    // A disk running something else: refused, nothing changed (the old slot B entry stays).
    let img = disk(dir, &base.uki_a);
    put_root_a(&img, &noise(3 << 20, 5));
    run(mtools(&img, "mcopy")
        .arg(dir.join("a.efi"))
        .arg("::EFI/Linux/flakeboot-0-b.efi"));
    let before = digest(&img);
    let err = install(&bundle, Some(img.clone()), "/nonexistent".into(), &trust).unwrap_err();
    assert!(
        matches!(&err, UpdateError::NotTheBase { version, .. } if version == "0.2.0"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("slot a's root") && text.contains("full bundle"),
        "{text}"
    );
    assert_eq!(digest(&img), before, "a refused delta changed the disk");

    // The root matches but slot A's UKI is another one: refused too.
    put_root_a(&img, &base.root);
    run(mtools(&img, "mcopy")
        .arg("-o")
        .arg(dir.join("a.efi"))
        .arg("::EFI/Linux/flakeboot-1-a.efi"));
    fs::write(dir.join("other.efi"), uki(&noise(600_000, 8), b'a')).unwrap();
    run(mtools(&img, "mcopy")
        .arg("-o")
        .arg(dir.join("other.efi"))
        .arg("::EFI/Linux/flakeboot-1-a.efi"));
    let before = digest(&img);
    let err = install(&bundle, Some(img.clone()), "/nonexistent".into(), &trust).unwrap_err();
    assert!(
        err.to_string().contains("boot entry is not its uki-a.efi"),
        "{err}"
    );
    assert_eq!(digest(&img), before);

    // The base itself: installed, the same bytes a full bundle writes.
    fs::write(dir.join("a.efi"), &base.uki_a).unwrap();
    run(mtools(&img, "mcopy")
        .arg("-o")
        .arg(dir.join("a.efi"))
        .arg("::EFI/Linux/flakeboot-1-a.efi"));
    let done = install(&bundle, Some(img.clone()), "/nonexistent".into(), &trust).unwrap();
    assert_eq!(
        (
            done.slot.letter(),
            done.uki.as_str(),
            done.delta_from.as_deref()
        ),
        ('b', "flakeboot-2-b+3.efi", Some("0.2.0"))
    );
    let disk_bytes = fs::read(&img).unwrap();
    let root_b = (1 + 16 + 8 + 2) << 20;
    assert!(disk_bytes[root_b..root_b + new.root.len()] == new.root[..]);
    let verity_b = root_b + (8 << 20);
    assert!(disk_bytes[verity_b..verity_b + 4096] == noise(4096, 99)[..]);
    let got = dir.join("got-b.efi");
    run(mtools(&img, "mcopy")
        .arg("::EFI/Linux/flakeboot-2-b+3.efi")
        .arg(&got));
    assert!(fs::read(&got).unwrap() == new.uki_b, "slot b's UKI");
    let listing = run(mtools(&img, "mdir").args(["-b", "::EFI/Linux"]));
    assert!(!listing.contains("flakeboot-0-b.efi"), "{listing}");

    // A delta changed after signing: its own sha256 says so, and no entry is installed.
    let work = dir.join("delta.d");
    let mut d = fs::read(work.join("root.sqfs.delta")).unwrap();
    let at = d.len() / 2;
    d[at] ^= 0x40;
    fs::write(work.join("root.sqfs.delta"), &d).unwrap();
    let bad = dir.join("bad.bundle.tar");
    tar(&work, &ENTRIES, &bad);
    let second = dir.join("second");
    fs::create_dir_all(&second).unwrap();
    let img2 = disk(&second, &base.uki_a);
    put_root_a(&img2, &base.root);
    let err = install(&bad, Some(img2.clone()), "/nonexistent".into(), &trust).unwrap_err();
    assert!(
        matches!(&err, UpdateError::HashMismatch { name, .. } if name == "root.sqfs.delta"),
        "{err:?}"
    );
    let listing = run(mtools(&img2, "mdir").args(["-b", "::EFI/Linux"]));
    assert!(!listing.contains("-b+3.efi"), "{listing}");
}
