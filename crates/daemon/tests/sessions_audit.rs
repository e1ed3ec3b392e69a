//! Sessions and the audit log against the real daemon: a browser's sign-in survives a daemon
//! restart (the same cookie still works, CSRF included), while a session signed out before the
//! restart, or one that expired while the daemon was down, does not; and admin actions made
//! over HTTPS (a session, an API token) and over the API socket (the CLI) appear in
//! `GET /api/v1/audit` and in `flakeboot audit` (on the appliance, with `--server`, and from
//! the store with the daemon stopped) with their client address, across the restart, and
//! without a password, token or cookie.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl, PASSWORD, input_value};
use serde_json::Value;

const BASE: &str = "https://10.77.0.1";
const CLIENT_IP: &str = "10.77.0.50";

/// The session cookie's value in a curl cookie jar.
fn session_cookie(jar: &Path) -> String {
    let text = std::fs::read_to_string(jar).unwrap();
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (fields.len() == 7 && fields[5] == "__Host-flakeboot").then(|| fields[6].to_owned())
        })
        .next_back()
        .unwrap_or_else(|| panic!("no session cookie in {text}"))
}

/// The status of `GET path` with this curl's cookies (no redirects followed).
fn status(curl: &Curl, path: &str) -> String {
    curl.ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{BASE}{path}"),
    ])
}

/// Signs out through the navigation bar's form (with the session's CSRF token).
fn sign_out(curl: &Curl) {
    let page = curl.ok(&["--fail-with-body", &format!("{BASE}/")]);
    let csrf = input_value(&page, "csrf");
    let done = curl.post_form(&format!("{BASE}/logout"), &[format!("csrf={csrf}")]);
    assert!(done.starts_with("303"), "{done}");
}

/// A sign-in with a wrong password: the login form answers 401.
fn fail_sign_in(curl: &Curl) {
    let page = curl.ok(&[&format!("{BASE}/login")]);
    let form = input_value(&page, "form");
    let done = curl.post_form(
        &format!("{BASE}/login"),
        &[
            format!("form={form}"),
            "user=admin".to_owned(),
            "password=not the password".to_owned(),
        ],
    );
    assert!(done.starts_with("401"), "{done}");
}

fn entries<'a>(log: &'a [Value], action: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["action"] == action).collect()
}

#[test]
fn sessions_survive_a_restart_and_admin_actions_are_audited() {
    let lan = Lan::new();
    lan.client()
        .addr("eth0", &format!("{CLIENT_IP}/24"))
        .unwrap();
    let state = lan.state_dir();
    let config = lan.write_config("[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false");
    let mut daemon = lan.start(&config);
    let cert = state.join("tls/cert.pem");
    // The admin's browser: setup signs it in (and makes the token `laptop`).
    let admin = Admin::set_up(
        Curl::new(lan.client(), Some(&cert), lan.path("admin.jar")),
        BASE,
        &|| daemon.output(),
        "lan0",
        "off",
    );
    // Two more browsers: one will sign out, one will sit idle while the daemon is down.
    let leaves = Curl::new(lan.client(), Some(&cert), lan.path("leaves.jar"));
    leaves.log_in(BASE);
    let idles = Curl::new(lan.client(), Some(&cert), lan.path("idles.jar"));
    idles.log_in(BASE);
    fail_sign_in(&Curl::new(
        lan.client(),
        Some(&cert),
        lan.path("stranger.jar"),
    ));
    sign_out(&leaves);
    assert_eq!(status(&leaves, "/settings"), "303");

    // Admin actions: a token (the UI), settings and a machine (the API with a token), a lease
    // release with the CLI on the appliance (the API socket; no such lease: 404, still logged).
    let ci = admin.new_token("ci", "read_only");
    admin.change_settings(|s| s["menu_timeout_secs"] = Value::from(7));
    let (code, _) = admin.api("DELETE", "/api/v1/machines/52:54:00:aa:bb:02", None);
    assert_eq!(code, 404);
    let out = Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["lease", "release", "52:54:00:aa:bb:03", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");

    // The daemon stops; while it is down, the idle browser's session passes its idle limit
    // (2 h): its stored last use is moved back, as if the hours had passed.
    daemon.stop();
    {
        let store = flakeboot_store::Store::open(&state).unwrap();
        assert_eq!(
            store.sessions().unwrap().len(),
            2,
            "the signed-out one is gone"
        );
        let hash =
            flakeboot_webui::auth::secret::sha256_hex(&session_cookie(&lan.path("idles.jar")));
        let mut record = store
            .session(&hash)
            .unwrap()
            .expect("the idle session is stored");
        let then = SystemTime::now() - Duration::from_secs(3 * 3600);
        (record.created, record.last_used) = (then, then);
        store.put_session(&hash, &record, 256).unwrap();
        // Only digests are stored, never a cookie.
        let admin_cookie = session_cookie(&lan.path("admin.jar"));
        assert!(store.session(&admin_cookie).unwrap().is_none());
        let raw = std::fs::read(state.join(flakeboot_store::DB_FILE)).unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(!raw.contains(&admin_cookie), "a cookie in the store");
    }
    // With the daemon stopped, `flakeboot audit` reads its store.
    let offline = stdout_of(
        Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["audit", "--json", "--state-dir"])
            .arg(&state),
    );
    let offline: Value = serde_json::from_str(&offline).unwrap();
    let offline = offline.as_array().unwrap();
    assert_eq!(offline.len(), 10, "{offline:#?}");
    assert_eq!(offline[0]["action"], "lease.release");
    let _daemon = lan.start(&config);

    // The same cookie still works, CSRF token included; the signed-out and the expired do not.
    assert_eq!(status(&admin.curl, "/settings"), "200");
    let (code, page) = admin.post_settings_form("/settings/menu", &[("menu_timeout_secs", "9")]);
    assert!(code == 200 || code == 303, "{code}: {page}");
    assert_eq!(status(&leaves, "/settings"), "303");
    assert_eq!(status(&idles, "/settings"), "303");

    // The audit log, across the restart, newest first.
    let (code, log) = admin.api("GET", "/api/v1/audit?limit=1000", None);
    assert_eq!(code, 200, "{log}");
    let log = log.as_array().unwrap().clone();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "settings.menu",
            "lease.release",
            "machine.forget",
            "settings",
            "token.create",
            "logout",
            "login.failed",
            "login",
            "login",
            "token.create",
            "setup",
        ],
        "{log:#?}"
    );
    for e in &log {
        if e["action"] == "lease.release" {
            // Over the API socket: the owner, no address.
            assert_eq!(e["actor"], "local", "{e}");
            assert_eq!(e["client"], Value::Null, "{e}");
            assert_eq!(e["target"], "52:54:00:aa:bb:03");
            assert_eq!(e["status"], 404);
        } else {
            assert_eq!(e["client"], CLIENT_IP, "{e}");
        }
    }
    assert_eq!(entries(&log, "setup")[0]["actor"], "admin");
    assert_eq!(entries(&log, "login.failed")[0]["actor"], Value::Null);
    assert_eq!(entries(&log, "login.failed")[0]["target"], "admin");
    assert_eq!(entries(&log, "login.failed")[0]["status"], 401);
    let tokens: Vec<&Value> = entries(&log, "token.create")
        .iter()
        .map(|e| &e["target"])
        .collect();
    assert_eq!(tokens, ["ci", "laptop"]);
    assert_eq!(entries(&log, "settings")[0]["actor"], "token laptop");
    assert_eq!(entries(&log, "machine.forget")[0]["status"], 404);
    assert_eq!(entries(&log, "settings.menu")[0]["actor"], "admin");
    let text = serde_json::to_string(&log).unwrap();
    for secret in [
        PASSWORD,
        admin.token.as_str(),
        ci.as_str(),
        &session_cookie(&lan.path("admin.jar")),
    ] {
        assert!(!text.contains(secret), "a secret in the audit log: {text}");
    }

    // `flakeboot audit --json` on the appliance (API socket) and from the client (--server,
    // token, pin) print the same entries; the table too.
    let local = stdout_of(
        Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["audit", "--json", "--limit", "1000", "--state-dir"])
            .arg(&state),
    );
    let local: Value = serde_json::from_str(&local).unwrap();
    assert_eq!(local, Value::Array(log.clone()));
    let token_file = lan.path("token");
    std::fs::write(&token_file, format!("{}\n", admin.token)).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let remote = |json: bool| {
        let mut cmd = lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
        cmd.args(["--server", BASE, "--token-file"])
            .arg(&token_file)
            .args(["--pin", &admin.fingerprint, "audit", "--limit", "1000"])
            .env_remove("FLAKEBOOT_TOKEN");
        if json {
            cmd.arg("--json");
        }
        stdout_of(&mut cmd)
    };
    let remote_json: Value = serde_json::from_str(&remote(true)).unwrap();
    assert_eq!(remote_json, local);
    let table = remote(false);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("WHEN"), "{table}");
    assert_eq!(lines.len(), log.len() + 1, "{table}");
    assert!(
        lines[1].contains("admin") && lines[1].contains("settings.menu"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.contains("lease.release")
            && l.contains("local")
            && l.contains("api socket")),
        "{table}"
    );
}
