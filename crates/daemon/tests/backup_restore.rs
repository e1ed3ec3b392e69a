//! Backup and restore with the real daemon: a machine assigned in the UI's store gets a lease
//! (udhcpc) and its host's boot script; `flakeboot backup` writes the encrypted archive (on
//! the appliance over the API socket, and from a laptop with `--server` and a token); the
//! daemon stops; `flakeboot restore` refuses a wrong passphrase and a used state directory,
//! then restores into a new one; a daemon started on it has the same TLS key, admin token and
//! lease, and the machine, asking DHCP again, gets its old address and its old host. Then a
//! fresh appliance takes the backup through its setup route, from the laptop with `flakeboot
//! restore --server`, and starts again on it.

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

    from_the_setup_page(&lan, &config, &archive, &admin, &ip);
}

/// `POST /setup/restore` as the setup page's script sends it: the archive as the body, the
/// form token, setup code and passphrase in headers. The HTTP status and the JSON answer.
fn post_restore(curl: &Curl, form: &str, code: &str, passphrase: &str, file: &Path) -> String {
    curl.ok(&[
        "-w",
        " %{http_code}",
        "-H",
        &format!("X-Flakeboot-Form: {form}"),
        "-H",
        &format!("X-Flakeboot-Setup-Code: {code}"),
        "-H",
        &format!("X-Flakeboot-Passphrase: {passphrase}"),
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{BASE}/setup/restore"),
    ])
}

/// A fresh appliance (its own state, not set up) takes the backup through its setup page's
/// route: wrong code and passphrase refused with nothing changed (as the page's script sends
/// them, and from `flakeboot restore --server`), then the laptop's `flakeboot restore
/// --server` replaces its state and the daemon starts again on it in the same process: the old
/// certificate and admin token, the machine's old lease and host.
fn from_the_setup_page(lan: &Lan, config: &Path, archive: &Path, admin: &Admin, ip: &str) {
    let state = lan.path("setup-state");
    let mut daemon = Serve::new(config, &state)
        .bin(env!("CARGO_BIN_EXE_flakeboot"))
        .start(&lan.server)
        .unwrap_or_else(|e| panic!("{e}"));
    let fresh_key = std::fs::read(state.join("tls/key.pem")).unwrap();
    // Its own new certificate: not the one the admin pinned.
    let curl = Curl::new(lan.client(), None, lan.path("setup-cookies.txt"));
    let start = std::time::Instant::now();
    while !curl.answers(&format!("{BASE}/login"), 3) {
        assert!(start.elapsed().as_secs() < 10, "{}", daemon.tail(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let page = curl.ok(&["--fail-with-body", &format!("{BASE}/setup")]);
    assert!(page.contains("id=\"restore-upload\""), "{page}");
    let form = flakeboot_hil_tests::https_admin::input_value(&page, "form");
    let code = flakeboot_hil_tests::wait_for_setup_code(|| daemon.output(), TEN_SECONDS)
        .unwrap_or_else(|| panic!("no setup code: {}", daemon.tail(20)));

    let said = post_restore(&curl, &form, "AAAA-BBBB-CCCC", PASSPHRASE, archive);
    assert!(
        said.ends_with(" 422") && said.contains("\"field\":\"code\""),
        "{said}"
    );
    let said = post_restore(&curl, &form, &code, "not the passphrase at all", archive);
    assert!(
        said.ends_with(" 422") && said.contains("\"field\":\"passphrase\""),
        "{said}"
    );
    let said = post_restore(&curl, "", &code, PASSPHRASE, archive);
    assert!(said.ends_with(" 403"), "no form token: {said}");
    assert_eq!(std::fs::read(state.join("tls/key.pem")).unwrap(), fresh_key);

    // From the admin's laptop: `flakeboot restore --server`, trusting the fresh certificate.
    let laptop_restore = |code: &str| {
        let out = lan
            .client()
            .command(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["--server", BASE, "--cacert"])
            .arg(state.join("tls/cert.pem"))
            .arg("restore")
            .arg(archive)
            .env("FLAKEBOOT_SETUP_CODE", code)
            .env("FLAKEBOOT_BACKUP_PASSPHRASE", PASSPHRASE)
            .env_remove("FLAKEBOOT_TOKEN_FILE")
            .env_remove("FLAKEBOOT_TOKEN")
            .output()
            .unwrap();
        (out.status.success(), self::said(&out))
    };
    let (ok, out) = laptop_restore("AAAA-BBBB-CCCC");
    assert!(
        !ok && out.contains("code: That is not the setup code"),
        "{out}"
    );
    assert_eq!(std::fs::read(state.join("tls/key.pem")).unwrap(), fresh_key);

    let pid = daemon.pid();
    let (ok, out) = laptop_restore(&code);
    assert!(
        ok && out.contains("restored the backup of flakeboot"),
        "{out}\n{}",
        daemon.tail(20)
    );
    // The same process, started again on the backup: serving again, with the old pinned
    // certificate and token.
    let start = std::time::Instant::now();
    let served_again = |log: &str| {
        log.split_once("starting again on the restored state")
            .is_some_and(|(_, after)| after.contains("serving"))
    };
    while !(served_again(&daemon.output()) && curl.answers(&format!("{BASE}/login"), 3)) {
        assert!(
            start.elapsed().as_secs() < 30 && daemon.exited().is_none(),
            "the daemon did not come back on the restored state:\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(daemon.pid(), pid);
    let (status, health) = admin.api("GET", "/api/v1/health", None);
    assert_eq!(
        status, 200,
        "the old token and pinned certificate: {health}"
    );
    let (_, audit) = admin.api("GET", "/api/v1/audit?limit=5", None);
    assert!(audit.to_string().contains("\"setup.restore\""), "{audit}");
    assert_ne!(std::fs::read(state.join("tls/key.pem")).unwrap(), fresh_key);
    let leftovers: Vec<_> = std::fs::read_dir(lan.dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with(".setup-state.").then_some(name)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (again, script) = boot_script(lan);
    assert_eq!(again, ip, "the machine's lease came back with the backup");
    assert!(script.contains("# flakeboot: boot host demo"), "{script}");
    // Setup is done: the page and the route say so.
    let said = post_restore(&curl, &form, &code, PASSPHRASE, archive);
    assert!(said.ends_with(" 409"), "{said}");
    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));
}

const TEN_SECONDS: std::time::Duration = std::time::Duration::from_secs(10);
