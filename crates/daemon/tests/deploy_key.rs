//! The SSH deploy key of the real daemon: made on the first start (owner-only, kept across
//! restarts, never in the log), shown by `GET /api/v1/deploy-key` to a token only, by the flakes
//! page, and by `flakeboot deploy-key` on the appliance (API socket) and from a laptop
//! (`--server`) alike.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};

const BASE: &str = "https://10.77.0.1";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_deploy_key_is_made_once_and_shown_by_the_api_the_ui_and_the_cli() {
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let state = lan.state_dir();
    let config = lan.write_config("[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false");
    let mut daemon = lan.start(&config);
    let cert = state.join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "off");

    // Owner-only files in <state>/ssh.
    let key_file = state.join("ssh/deploy_key");
    assert_eq!(mode(&state.join("ssh")), 0o700);
    assert_eq!(mode(&key_file), 0o600);
    let private = std::fs::read_to_string(&key_file).unwrap();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));

    // The API: a token sees it, nobody else.
    let (code, key) = admin.api("GET", "/api/v1/deploy-key", None);
    assert_eq!(code, 200, "{key}");
    let public = key["public_key"].as_str().unwrap().to_owned();
    let fingerprint = key["fingerprint"].as_str().unwrap().to_owned();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.contains(" flakeboot@"), "{public}");
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    let anonymous = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "--cacert",
            cert.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{BASE}/api/v1/deploy-key"),
        ])
        .unwrap();
    assert_eq!(anonymous.trim(), "401");

    // The flakes page shows the public half and the fingerprint, with what to do with them.
    admin.curl.log_in(BASE);
    let page = admin
        .curl
        .ok(&["--fail-with-body", &format!("{BASE}/flakes")]);
    assert!(page.contains(&public), "{page}");
    assert!(page.contains(&fingerprint));
    assert!(page.contains("read-only deploy key in your forge for git+ssh:// flakes"));

    // The CLI on the appliance (owner-only API socket) and on a laptop (--server, token, pin)
    // print the same line.
    let local = stdout_of(
        Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["deploy-key", "--state-dir"])
            .arg(&state),
    );
    assert_eq!(local, format!("{public}\n"));
    let token_file = lan.path("token");
    std::fs::write(&token_file, format!("{}\n", admin.token)).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let remote = |json: bool| {
        let mut cmd = lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
        cmd.args(["--server", BASE, "--token-file"])
            .arg(&token_file)
            .args(["--pin", &admin.fingerprint, "deploy-key"])
            .env_remove("FLAKEBOOT_TOKEN");
        if json {
            cmd.arg("--json");
        }
        stdout_of(&mut cmd)
    };
    assert_eq!(remote(false), local);
    let json: serde_json::Value = serde_json::from_str(&remote(true)).unwrap();
    assert_eq!(json, key);

    // The private key is in no log line.
    let log = daemon.output();
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "the private key is in the log");
    }
    assert!(
        log.contains(&fingerprint),
        "the fingerprint is logged at start"
    );

    // A restart keeps the key, and tightens a loosened key file.
    daemon.stop();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _daemon = lan.start(&config);
    assert_eq!(mode(&key_file), 0o600);
    let again = stdout_of(
        Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["deploy-key", "--json", "--state-dir"])
            .arg(&state),
    );
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again, key);
}
