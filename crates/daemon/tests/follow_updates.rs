//! Automatic updates against the real daemon, a real git flake and real nix (issue #16):
//! - a push webhook signed like GitHub's (`X-Hub-Signature-256`, HMAC computed here with
//!   openssl) makes the daemon re-lock, build the new revision and make it current, and the
//!   history says so; a wrong signature, no signature or a wrong GitLab token is 401 and
//!   changes nothing; the right GitLab token is accepted ("revision unchanged", no build); a
//!   rotated secret stops the old one; a read-only token cannot read the secret;
//! - a flake the config file makes follow (`check_every = "2s"`) records "unchanged" without a
//!   build, then picks up a new commit by itself.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::flake_updates::*;
use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::require_tool;

const BASE: &str = "https://10.77.0.1";

/// The hex HMAC-SHA256 of `body` keyed with `secret`, by openssl (not by flakeboot's code).
fn hmac_sha256(secret: &str, body: &str) -> String {
    let out = output_with_stdin(
        Command::new("openssl").args(["dgst", "-sha256", "-hmac", secret]),
        body,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(hex.len(), 64, "openssl said {text:?}");
    hex
}

/// POSTs `body` to the flake's webhook with `headers`: the HTTP status.
fn call_hook(curl: &Curl, name: &str, headers: &[String], body: &str) -> u16 {
    let url = format!("{BASE}/api/v1/flakes/{name}/hook");
    let mut argv = vec!["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"];
    for h in headers {
        argv.extend(["-H", h.as_str()]);
    }
    argv.extend([
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
        &url,
    ]);
    curl.ok(&argv).trim().parse().unwrap()
}

#[test]
fn a_signed_push_builds_the_new_revision_and_bad_signatures_change_nothing() {
    require_tool("nix");
    require_tool("curl");
    require_tool("openssl");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    let first = repo.commit_marker(&marker("hook-1")).unwrap();
    let config = lan.write_config(&nix_config(&repo));
    let mut daemon = lan.start(&config);
    let state = lan.state_dir();
    let cert = state.join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "off");

    let out = ok(&["flake", "add", &repo.url(), "--name", "lab"], &state);
    assert!(out.contains("Added flake lab"), "{out}");
    assert!(updates(&state, "lab").is_empty());

    // The secret: made on first ask, the same on the next; read-only tokens may not see it.
    let hook = json(&["flake", "hook", "lab"], &state);
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{hook}");
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/flakes/lab/hook"),
        "{hook}"
    );
    assert_eq!(json(&["flake", "hook", "lab"], &state)["secret"], secret);
    let read_only = admin.new_token("reader", "read_only");
    let (status, _) = admin
        .curl
        .api(BASE, &read_only, "GET", "/api/v1/flakes/lab/hook", None);
    assert_eq!(status, 403);
    let (status, history) =
        admin
            .curl
            .api(BASE, &read_only, "GET", "/api/v1/flakes/lab/history", None);
    assert_eq!(status, 200, "{history}");
    let text = ok(&["flake", "hook", "lab"], &state);
    assert!(
        text.contains(&secret) && text.contains("X-Hub-Signature-256"),
        "{text}"
    );

    // A push: the new revision is in git, the forge calls.
    let second = repo.commit_marker(&marker("hook-2")).unwrap();
    let body = format!("{{\"ref\":\"refs/heads/main\",\"after\":\"{second}\"}}");
    let good = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256(&secret, &body)
    );
    let wrong = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256("not the secret", &body)
    );
    let other_body = format!("X-Hub-Signature-256: sha256={}", hmac_sha256(&secret, "{}"));
    for (what, headers) in [
        ("a wrong signature", vec![wrong.clone()]),
        ("the signature of another body", vec![other_body]),
        ("no signature", vec![]),
        (
            "a wrong GitLab token",
            vec!["X-Gitlab-Token: guess".to_owned()],
        ),
        (
            "a wrong signature with the right GitLab token",
            vec![wrong.clone(), format!("X-Gitlab-Token: {secret}")],
        ),
    ] {
        assert_eq!(
            call_hook(&admin.curl, "lab", &headers, &body),
            401,
            "{what}"
        );
    }
    assert_eq!(
        call_hook(
            &admin.curl,
            "nosuchflake",
            std::slice::from_ref(&good),
            &body
        ),
        401
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        updates(&state, "lab").is_empty(),
        "a refused hook changed the history"
    );
    let flakes = json(&["flake", "list"], &state);
    assert_eq!(
        flakes[0]["revision"],
        first.as_str(),
        "a refused hook re-locked"
    );

    // The signed call: re-locked to the pushed revision, built, current.
    assert_eq!(
        call_hook(&admin.curl, "lab", std::slice::from_ref(&good), &body),
        202
    );
    let done = wait_for_update(&state, "lab", &daemon, "promoted", |u| {
        u["state"] != "building"
    });
    assert_eq!(done["trigger"], "hook", "{done}");
    assert_eq!(done["old_revision"], first.as_str(), "{done}");
    assert_eq!(done["new_revision"], second.as_str(), "{done}");
    assert_eq!(done["state"], "promoted", "{done}\n{}", daemon.tail(40));
    assert_eq!(done["promoted"], true, "{done}");
    let hosts: Vec<&str> = done["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["alpha", "beta"], "{done}");
    for host in ["lab#alpha", "lab#beta"] {
        assert_eq!(
            current_revision(&state, host).as_deref(),
            Some(second.as_str())
        );
    }

    // GitLab's token: accepted; nothing new was pushed, so nothing is built.
    let gitlab = format!("X-Gitlab-Token: {secret}");
    assert_eq!(
        call_hook(&admin.curl, "lab", std::slice::from_ref(&gitlab), "{}"),
        202
    );
    let unchanged = wait_for_update(&state, "lab", &daemon, "unchanged", |u| u["seq"] == 2);
    assert_eq!(unchanged["trigger"], "hook", "{unchanged}");
    assert_eq!(unchanged["state"], "unchanged", "{unchanged}");
    assert_eq!(unchanged["reason"], "revision unchanged", "{unchanged}");
    assert_eq!(unchanged["builds"], serde_json::json!([]), "{unchanged}");

    // Rotated: the old secret is refused, the new one accepted.
    let rotated = json(&["flake", "hook", "lab", "--rotate"], &state);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(call_hook(&admin.curl, "lab", &[good], &body), 401);
    assert_eq!(call_hook(&admin.curl, "lab", &[gitlab], "{}"), 401);
    let signed = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256(&new_secret, &body)
    );
    assert_eq!(call_hook(&admin.curl, "lab", &[signed], &body), 202);
    wait_for_update(&state, "lab", &daemon, "after rotation", |u| u["seq"] == 3);

    // Every call is counted by how it ended.
    let (status, page) = admin.curl.api(BASE, &admin.token, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_owned();
    for line in [
        "flakeboot_webhook_calls_total{outcome=\"accepted\"} 3",
        "flakeboot_webhook_calls_total{outcome=\"refused\"} 8",
        "flakeboot_webhook_calls_total{outcome=\"limited\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }

    // The human history and the flake's page show it.
    let text = ok(&["flake", "history", "lab"], &state);
    eprintln!("flake history lab:\n{text}");
    assert!(
        text.contains("promoted") && text.contains("revision unchanged"),
        "{text}"
    );
    let page = admin
        .curl
        .ok(&["--fail-with-body", &format!("{BASE}/flakes/lab")]);
    assert!(
        page.contains("update-history") && page.contains(&new_secret),
        "flake page"
    );

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}

#[test]
fn a_following_flake_picks_up_a_new_commit_by_itself() {
    require_tool("nix");
    let lan = Lan::new();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    let first = repo.commit_marker(&marker("follow-1")).unwrap();
    let config = lan.path("follow.toml");
    std::fs::write(
        &config,
        format!(
            "[lan]\ninterface = \"lan0\"\n[web]\nenabled = false\n[preflight]\nenabled = false\n{}\
             [[flakes]]\nurl = {:?}\nname = \"lab\"\nfollow = true\ncheck_every = \"2s\"\n",
            nix_config(&repo),
            repo.url()
        ),
    )
    .unwrap();
    let mut daemon = lan.start(&config);
    let state = lan.state_dir();

    // Nothing new: a check records "unchanged" and builds nothing.
    let unchanged = wait_for_update(&state, "lab", &daemon, "unchanged", |u| {
        u["state"] == "unchanged"
    });
    assert_eq!(unchanged["trigger"], "schedule", "{unchanged}");
    assert_eq!(unchanged["old_revision"], first.as_str(), "{unchanged}");
    assert_eq!(unchanged["new_revision"], first.as_str(), "{unchanged}");
    assert_eq!(unchanged["reason"], "revision unchanged", "{unchanged}");
    assert_eq!(unchanged["builds"], serde_json::json!([]), "{unchanged}");
    let history = json(&["flake", "history", "lab"], &state);
    assert_eq!(history["follow"], true, "{history}");
    assert_eq!(history["check_every"], "2s", "{history}");

    // A commit: the schedule finds it, builds it, and it becomes current.
    let second = repo.commit_marker(&marker("follow-2")).unwrap();
    let done = wait_for_update(&state, "lab", &daemon, "of the new commit", |u| {
        u["new_revision"] == second.as_str() && u["state"] != "building"
    });
    assert_eq!(done["trigger"], "schedule", "{done}");
    assert_eq!(done["old_revision"], first.as_str(), "{done}");
    assert_eq!(done["state"], "promoted", "{done}\n{}", daemon.tail(40));
    for host in ["lab#alpha", "lab#beta"] {
        assert_eq!(
            current_revision(&state, host).as_deref(),
            Some(second.as_str())
        );
    }
    // Updates of one flake never overlap: each starts after the one before it ended.
    let all = updates(&state, "lab");
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            a["finished_at"].as_str().unwrap() <= b["started_at"].as_str().unwrap(),
            "overlapping updates: {a}\n{b}"
        );
    }
    // The config file's flake: its follow settings are changed there, not over the API.
    let out = flakeboot(&["flake", "follow", "lab", "--off"], &state);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
