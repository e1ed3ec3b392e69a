//! Access tokens for private flakes set on the real daemon without a root shell: through the
//! API, the flakes page's form and `flakeboot access-token` (API socket and `--server`), beside
//! the config file's `[nix] access_tokens_file`; saved owner-only; the next nix run gets them in
//! its owner-only nix.conf (and real nix reads them from it); never shown again, never in the
//! log or the audit log; a read-only token cannot set one.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_hil_tests::https_admin::{Admin, Curl, input_value};
use flakeboot_testbed::require_tool;
use serde_json::json;

const BASE: &str = "https://10.77.0.1";
const FILE_TOKEN: &str = "ghp_fromTheConfigFile1";
const API_TOKEN: &str = "glpat-fromTheApi2";
const CLI_TOKEN: &str = "tok-fromTheCli3";
const FORM_TOKEN: &str = "tok-fromTheForm4";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `flakeboot ARGS --state-dir STATE` with `stdin`: its standard output (it must succeed).
fn local_cli(state: &Path, args: &[&str], stdin: &str) -> String {
    let out = output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(args)
            .arg("--state-dir")
            .arg(state),
        stdin,
    );
    assert!(
        out.status.success(),
        "flakeboot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What real nix makes of the daemon's nix.conf: its `access-tokens` line.
fn nix_sees(state: &Path) -> String {
    let conf = state.join("nix/nix.conf");
    assert_eq!(mode(&conf), 0o600);
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-config",
        ])
        .env("NIX_USER_CONF_FILES", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("access-tokens"))
        .unwrap_or("")
        .to_owned()
}

#[test]
fn access_tokens_are_set_from_the_api_ui_and_cli_and_reach_nix_only() {
    require_tool("nix");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let state = lan.state_dir();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    repo.commit_marker(&format!("access-tokens-{}", std::process::id()))
        .unwrap();
    let file = lan.path("forge-tokens");
    std::fs::write(&file, format!("github.com={FILE_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = lan.write_config(&format!(
        "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[nix]\nsubstituters = []\n\
         extra_options = {{ \"build-users-group\" = \"\" }}\nallowed_paths = [{:?}]\n\
         access_tokens_file = {:?}\n",
        repo.path().display().to_string(),
        file.display().to_string(),
    ));
    let daemon = lan.start(&config);
    let cert = state.join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "off");

    // The config file's host is listed, as the file's.
    let (code, list) = admin.api("GET", "/api/v1/access-tokens", None);
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        list,
        json!([{"host": "github.com", "source": "config-file"}])
    );

    // The API sets one; refuses the file's host (naming the file), a bad host and a bad token.
    let set = |host: &str, token: &str| {
        admin.api(
            "POST",
            "/api/v1/access-tokens",
            Some(&json!({"host": host, "token": token})),
        )
    };
    assert_eq!(set("gitlab.example.org", API_TOKEN).0, 204);
    let (code, body) = set("github.com", "ghp_other");
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("forge-tokens"),
        "{body}"
    );
    assert_eq!(set("bad host", "t").0, 422);
    let (code, body) = set("gitea.example.org", "two words");
    assert_eq!(code, 422, "{body}");
    assert!(!body.to_string().contains("two words"), "{body}");
    // A read-only token lists but cannot set; nobody signed in gets nothing.
    let read_only = admin.new_token("reader", "read_only");
    let (code, _) = admin.curl.api(
        BASE,
        &read_only,
        "POST",
        "/api/v1/access-tokens",
        Some(&json!({"host": "x.example", "token": "t"})),
    );
    assert_eq!(code, 403);
    let (code, _) = admin
        .curl
        .api(BASE, &read_only, "GET", "/api/v1/access-tokens", None);
    assert_eq!(code, 200);
    let (code, _) = admin
        .curl
        .api(BASE, "fbt_nobody", "GET", "/api/v1/access-tokens", None);
    assert_eq!(code, 401);

    // The CLI on the appliance reads the token from standard input (never an argument).
    let out = local_cli(
        &state,
        &["access-token", "set", "git.example.com"],
        &format!("{CLI_TOKEN}\n"),
    );
    assert!(out.contains("saved"), "{out}");

    // The flakes page: the hosts and where each was set, a form, never a token.
    admin.curl.log_in(BASE);
    let page = admin
        .curl
        .ok(&["--fail-with-body", &format!("{BASE}/flakes")]);
    assert!(page.contains("id=\"access-tokens\""), "{page}");
    for host in ["github.com", "gitlab.example.org", "git.example.com"] {
        assert!(page.contains(host), "{host} not on the page");
    }
    assert!(page.contains("the config file"));
    let csrf = input_value(&page, "csrf");
    let posted = admin.curl.post_form(
        &format!("{BASE}/access-tokens"),
        &[
            format!("csrf={csrf}"),
            "host=codeberg.org".to_owned(),
            format!("token={FORM_TOKEN}"),
        ],
    );
    assert!(posted.starts_with("303 "), "{posted}");
    let page = admin
        .curl
        .ok(&["--fail-with-body", &format!("{BASE}/flakes")]);
    assert!(page.contains("codeberg.org"));
    for token in [FILE_TOKEN, API_TOKEN, CLI_TOKEN, FORM_TOKEN] {
        assert!(!page.contains(token), "a token is on the flakes page");
    }
    // Without the form's CSRF token nothing is saved.
    let refused = admin.curl.post_form(
        &format!("{BASE}/access-tokens"),
        &["host=evil.example".to_owned(), "token=x".to_owned()],
    );
    assert!(refused.starts_with("403"), "{refused}");

    // Saved owner-only; the next nix run (locking a flake) has every token in its nix.conf,
    // the config file's first, and real nix reads them.
    assert_eq!(mode(&state.join("nix/access-tokens")), 0o600);
    let out = local_cli(&state, &["flake", "add", &repo.url(), "--name", "lab"], "");
    assert!(out.contains("lab"), "{out}");
    let line = nix_sees(&state);
    for pair in [
        format!("github.com={FILE_TOKEN}"),
        format!("gitlab.example.org={API_TOKEN}"),
        format!("git.example.com={CLI_TOKEN}"),
        format!("codeberg.org={FORM_TOKEN}"),
    ] {
        assert!(line.contains(&pair), "nix lacks {pair}: {line}");
    }

    // From a laptop: the same listing; a removal; the next nix run no longer has it.
    let token_file = lan.path("token");
    std::fs::write(&token_file, format!("{}\n", admin.token)).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let remote = |args: &[&str]| {
        let mut cmd = lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
        cmd.args(["--server", BASE, "--token-file"])
            .arg(&token_file)
            .args(["--pin", &admin.fingerprint])
            .args(args)
            .env_remove("FLAKEBOOT_TOKEN");
        stdout_of(&mut cmd)
    };
    let table = remote(&["access-token", "list"]);
    assert_eq!(table, local_cli(&state, &["access-token", "list"], ""));
    assert!(table.contains("github.com  config file\n"), "{table}");
    assert!(table.contains("gitlab.example.org  set here\n"), "{table}");
    remote(&["access-token", "remove", "gitlab.example.org"]);
    let (code, _) = admin.api("DELETE", "/api/v1/access-tokens/gitlab.example.org", None);
    assert_eq!(code, 404);
    let (code, _) = admin.api("POST", "/api/v1/flakes/lab/update", None);
    assert!(code == 202 || code == 200, "{code}");
    let mut line = String::new();
    for _ in 0..60 {
        line = nix_sees(&state);
        if !line.contains("gitlab.example.org") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(!line.contains("gitlab.example.org"), "{line}");
    assert!(line.contains(&format!("github.com={FILE_TOKEN}")), "{line}");

    // The audit log names the hosts; no token is in it or in the daemon's log.
    let (code, audit) = admin.api("GET", "/api/v1/audit", None);
    assert_eq!(code, 200);
    let audit = audit.to_string();
    assert!(audit.contains("access-token.set") && audit.contains("access-token.remove"));
    assert!(audit.contains("codeberg.org"), "{audit}");
    let log = daemon.output();
    for token in [FILE_TOKEN, API_TOKEN, CLI_TOKEN, FORM_TOKEN] {
        assert!(!audit.contains(token), "a token is in the audit log");
        assert!(!log.contains(token), "a token is in the daemon's log");
    }
}
