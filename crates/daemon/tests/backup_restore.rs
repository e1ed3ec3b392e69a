//! Backup and restore with the real daemon: a machine assigned in the UI's store gets a lease
//! (udhcpc) and its host's boot script; `flakeboot backup` writes the encrypted archive (on
//! the appliance over the API socket, and from a laptop with `--server` and a token); the
//! daemon stops; `flakeboot restore` refuses a wrong passphrase and a used state directory,
//! then restores into a new one; a daemon started on it has the same TLS key, admin token and
//! lease, and the machine, asking DHCP again, gets its old address and its old host.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::dhcp_clients::{set_mac, udhcpc};
use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::{Serve, require_tool};

const BASE: &str = "https://10.77.0.1";
const MAC: &str = "52:54:00:aa:bb:07";
const PASSPHRASE: &str = "correct horse battery staple 7";

/// `flakeboot ARGS` in the server namespace with the backup passphrase `passphrase`.
fn flakeboot(lan: &Lan, passphrase: &str, args: &[&str]) -> Output {
    lan.server
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .env("FLAKEBOOT_BACKUP_PASSPHRASE", passphrase)
        .env_remove("FLAKEBOOT_SERVER")
        .env_remove("FLAKEBOOT_TOKEN_FILE")
        .env_remove("FLAKEBOOT_TOKEN")
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The machine's DHCP address (its lease), put on the client's port, and the boot script the
/// daemon serves to that address (naming the MAC, as iPXE's chain URL does).
fn boot_script(lan: &Lan) -> (String, String) {
    let ip = udhcpc(lan.client()).unwrap().to_string();
    let _ = lan.client().run(&["ip", "addr", "flush", "dev", "eth0"]);
    lan.client()
        .run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])
        .unwrap();
    let script = lan
        .client()
        .run(&[
            "curl",
            "-sf",
            &format!("http://10.77.0.1/boot.ipxe?mac={MAC}"),
        ])
        .unwrap();
    (ip, script)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_restored_into_a_new_state_directory_boots_the_machine_as_before() {
    require_tool("curl");
    require_tool("udhcpc");
    let lan = Lan::new();
    // A static address for setting up; the machine takes a DHCP lease later.
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\nlease_time = \"10m\"",
    );
    let mut daemon = lan.start(&config);
    let cert = lan.state_dir().join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "router");
    let state = lan.state_dir();
    let socket = ["--state-dir", state.to_str().unwrap()];

    // The machine: assigned in the store (not the config file), leased, served its host.
    let out = flakeboot(
        &lan,
        "",
        &[&["machine", "assign", MAC, "demo"][..], &socket].concat(),
    );
    assert!(out.status.success(), "{}", said(&out));
    set_mac(lan.client(), MAC);
    let (ip, script) = boot_script(&lan);
    assert!(script.contains("# flakeboot: boot host demo"), "{script}");

    // Backups: a short passphrase refused; on the appliance over the socket; from the laptop.
    let short = lan.path("short.age");
    let out = flakeboot(
        &lan,
        "too short",
        &[&["backup", "--out", short.to_str().unwrap()][..], &socket].concat(),
    );
    assert!(
        !out.status.success() && said(&out).contains("at least 12"),
        "{}",
        said(&out)
    );
    assert!(!short.exists());
    let archive = lan.path("appliance.age");
    let out = flakeboot(
        &lan,
        PASSPHRASE,
        &[&["backup", "--out", archive.to_str().unwrap()][..], &socket].concat(),
    );
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(mode(&archive), 0o600);
    let bytes = std::fs::read(&archive).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1\n-> scrypt "),
        "not an age file"
    );
    let key = std::fs::read(state.join("tls/key.pem")).unwrap();
    assert!(
        !bytes.windows(32).any(|w| key.windows(32).next() == Some(w)),
        "the TLS key is in the clear in the backup"
    );
    let token_file = lan.path("token");
    std::fs::write(&token_file, &admin.token).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let remote = lan.path("laptop.age");
    let out = lan
        .client()
        .command(env!("CARGO_BIN_EXE_flakeboot"))
        .args([
            "--server",
            BASE,
            "--pin",
            &admin.fingerprint,
            "--token-file",
        ])
        .arg(&token_file)
        .args(["backup", "--out", remote.to_str().unwrap()])
        .env("FLAKEBOOT_BACKUP_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    assert!(std::fs::metadata(&remote).unwrap().len() > 1000);
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));

    // Restore: refusals first, then into a new state directory.
    let fresh = lan.path("restored-state");
    let restore = |passphrase: &str, dir: &Path| {
        flakeboot(
            &lan,
            passphrase,
            &[
                "restore",
                archive.to_str().unwrap(),
                "--state-dir",
                dir.to_str().unwrap(),
            ],
        )
    };
    let out = restore("not the passphrase at all", &fresh);
    assert!(
        !out.status.success() && said(&out).contains("cannot decrypt"),
        "{}",
        said(&out)
    );
    assert!(!fresh.exists(), "a failed restore left {}", fresh.display());
    let out = restore(PASSPHRASE, &state);
    assert!(
        !out.status.success() && said(&out).contains("is not empty"),
        "{}",
        said(&out)
    );
    let out = restore(PASSPHRASE, &fresh);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(std::fs::read(fresh.join("tls/key.pem")).unwrap(), key);
    assert_eq!(mode(&fresh.join("tls/key.pem")), 0o600);
    assert_eq!(mode(&fresh), 0o700);
    assert!(!fresh.join("api.sock").exists());

    // The daemon on the restored state: the same certificate and token, the same lease and
    // host for the machine.
    let mut restored = Serve::new(&config, &fresh)
        .bin(env!("CARGO_BIN_EXE_flakeboot"))
        .start(&lan.server)
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, status) = admin.api("GET", "/api/v1/health", None);
    assert_eq!(code, 200, "the old token and pinned certificate: {status}");
    let (again, script) = boot_script(&lan);
    assert_eq!(again, ip, "the machine's lease came back with the backup");
    assert!(script.contains("# flakeboot: boot host demo"), "{script}");
    let kernel = script
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kernel line in {script}"))
        .to_owned();
    let got = lan
        .client()
        .command("curl")
        .args(["-sf", &kernel])
        .output()
        .unwrap();
    assert_eq!(got.stdout, std::fs::read(lan.path("vmlinuz")).unwrap());
    assert!(restored.stop().unwrap().success(), "{}", restored.tail(20));
}
