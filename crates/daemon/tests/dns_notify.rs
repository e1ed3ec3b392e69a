//! DNS notification of new revisions against the real daemon, a real DNS server (dnsmasq with
//! `--txt-record`, in the test LAN's client namespace), a real git flake and real nix
//! (issue #16). The config file's flake has `notify_txt`; `[updates] resolver` points at
//! dnsmasq and `txt_every = "1s"` stands for the minute:
//! - the record names the locked commit: nothing happens, and the flake's DNS status shows
//!   the revision read;
//! - garbage in the record (`rev=` no commit): logged (one warning, not one a second) and
//!   ignored, the status says why;
//! - a new commit and the record naming it: the daemon re-locks, builds and promotes it within
//!   a few checks, trigger `dns`, old -> new;
//! - a record naming a commit the git server does not have yet: one update ("revision
//!   unchanged"), and the same revision is tried again only after `check_every`;
//! - never re-locked on the schedule (no `schedule` trigger).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flake_updates::*;
use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_testbed::{Netns, Proc, require_tool};
use serde_json::Value;

const RECORD: &str = "_flakeboot.test.lan";
const DNS_IP: &str = "10.77.0.50";
const DNS_PORT: &str = "5353";

/// dnsmasq answering `RECORD` with one TXT string `text` (and nothing else: no upstream, no
/// hosts file, no config file), on the client namespace's address.
fn dnsmasq(ns: &Netns, dir: &Path, text: &str) -> Proc {
    let dnsmasq = require_tool("dnsmasq");
    let proc = ns
        .spawn(
            "dnsmasq",
            &[
                &dnsmasq.to_string_lossy(),
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                &format!("--port={DNS_PORT}"),
                &format!("--listen-address={DNS_IP}"),
                "--bind-interfaces",
                "--user=root",
                "--log-queries",
                &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
                &format!("--txt-record={RECORD},{text}"),
            ],
        )
        .unwrap();
    // Serving once a query is answered (dig is not needed: the daemon's own status shows it).
    std::thread::sleep(Duration::from_millis(300));
    proc
}

/// Waits until the flake's DNS status satisfies `pred`; returns it.
fn wait_for_dns(state: &Path, daemon: &Proc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let dns = history(state, "lab").map(|h| h["dns"].clone());
        if let Some(dns) = &dns
            && !dns.is_null()
            && pred(dns)
        {
            return dns.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the DNS status never showed {what}: {dns:#?}\n{}",
            daemon.tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// When an update started.
fn started_at(update: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339_weak(update["started_at"].as_str().unwrap()).unwrap()
}

fn count(updates: &[Value], trigger: &str) -> usize {
    updates.iter().filter(|u| u["trigger"] == trigger).count()
}

#[test]
fn a_txt_record_naming_a_new_commit_updates_the_flake() {
    require_tool("nix");
    let lan = Lan::new();
    lan.client().addr("eth0", &format!("{DNS_IP}/24")).unwrap();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    let first = repo.commit_marker(&marker("dns-1")).unwrap();
    let mut dns = dnsmasq(lan.client(), lan.dir(), &format!("v=1 rev={first}"));
    let config = lan.path("dns.toml");
    std::fs::write(
        &config,
        format!(
            "[lan]\ninterface = \"lan0\"\n[web]\nenabled = false\n[preflight]\nenabled = false\n\
             [updates]\nresolver = \"{DNS_IP}:{DNS_PORT}\"\ntxt_every = \"1s\"\n{}\
             [[flakes]]\nurl = {:?}\nname = \"lab\"\nnotify_txt = \"{RECORD}\"\ncheck_every = \"12s\"\n",
            nix_config(&repo),
            repo.url()
        ),
    )
    .unwrap();
    let mut daemon = lan.start(&config);
    let state = lan.state_dir();

    // The record names the locked commit: read, and nothing happens.
    let read = wait_for_dns(&state, &daemon, "the first commit", |d| {
        d["rev"] == first.as_str()
    });
    assert_eq!(read["record"], RECORD, "{read}");
    assert!(read["error"].is_null(), "{read}");
    assert!(read["acted_on"].is_null(), "{read}");
    let history = history(&state, "lab").unwrap();
    assert_eq!(history["follow"], true, "{history}");
    assert_eq!(history["notify_txt"], RECORD, "{history}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        updates(&state, "lab").is_empty(),
        "the record names the locked commit, yet: {:#?}",
        updates(&state, "lab")
    );
    let text = ok(&["flake", "history", "lab"], &state);
    assert!(
        text.contains(&format!("TXT record {RECORD} at ")) && text.contains(&first[..12]),
        "{text}"
    );

    // Garbage: logged once as a warning and ignored.
    dns.stop();
    dns = dnsmasq(lan.client(), lan.dir(), "rev=not-a-commit");
    let bad = wait_for_dns(&state, &daemon, "the garbage", |d| d["rev"].is_null());
    let why = bad["error"].as_str().unwrap();
    assert!(why.contains("rev=not-a-commit is not a commit"), "{bad}");
    std::thread::sleep(Duration::from_secs(4));
    let warned = daemon
        .output()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("rev=not-a-commit is not a commit"))
        .count();
    assert_eq!(
        warned,
        1,
        "one warning while it lasts:\n{}",
        daemon.tail(30)
    );
    assert!(
        updates(&state, "lab").is_empty(),
        "garbage started an update"
    );

    // A new commit, and the record names it: built and promoted, trigger dns.
    let second = repo.commit_marker(&marker("dns-2")).unwrap();
    dns.stop();
    dns = dnsmasq(
        lan.client(),
        lan.dir(),
        &format!("rev={second} branch=main"),
    );
    let changed_at = Instant::now();
    let started = wait_for_update(&state, "lab", &daemon, "of the new commit", |u| {
        u["trigger"] == "dns"
    });
    assert!(
        changed_at.elapsed() < Duration::from_secs(15),
        "the update started {:?} after the record changed",
        changed_at.elapsed()
    );
    let seq = started["seq"].clone();
    let done = wait_for_update(&state, "lab", &daemon, "promoted", |u| {
        u["seq"] == seq && u["state"] != "building"
    });
    assert_eq!(done["trigger"], "dns", "{done}");
    assert_eq!(done["old_revision"], first.as_str(), "{done}");
    assert_eq!(done["new_revision"], second.as_str(), "{done}");
    assert_eq!(done["state"], "promoted", "{done}\n{}", daemon.tail(40));
    for host in ["lab#alpha", "lab#beta"] {
        assert_eq!(
            current_revision(&state, host).as_deref(),
            Some(second.as_str())
        );
    }
    let after = wait_for_dns(&state, &daemon, "the second commit", |d| {
        d["rev"] == second.as_str() && d["acted_on"] == second.as_str()
    });
    assert!(after["acted_at"].is_string(), "{after}");
    // Locked now: the record asks for nothing more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        updates(&state, "lab").len(),
        1,
        "{:#?}",
        updates(&state, "lab")
    );

    // A commit the git server does not have (the push is late): one update that finds the
    // branch unchanged, then nothing until check_every (12 s) has passed.
    let ahead = "abcdef0123456789abcdef0123456789abcdef01";
    dns.stop();
    dns = dnsmasq(lan.client(), lan.dir(), &format!("rev={ahead}"));
    let tried = wait_for_update(&state, "lab", &daemon, "of the unknown commit", |u| {
        u["trigger"] == "dns" && u["state"] == "unchanged"
    });
    assert_eq!(tried["reason"], "revision unchanged", "{tried}");
    assert_eq!(tried["new_revision"], second.as_str(), "{tried}");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        count(&updates(&state, "lab"), "dns"),
        2,
        "retried within check_every: {:#?}",
        updates(&state, "lab")
    );
    let retried = wait_for_update(&state, "lab", &daemon, "retried after check_every", |u| {
        u["trigger"] == "dns" && u["seq"].as_u64() == Some(3)
    });
    let gap = started_at(&retried)
        .duration_since(started_at(&tried))
        .unwrap();
    assert!(
        gap >= Duration::from_secs(11) && gap < Duration::from_secs(20),
        "retried {gap:?} after the first try (check_every is 12 s)"
    );
    let all = updates(&state, "lab");
    assert_eq!(
        count(&all, "schedule"),
        0,
        "re-locked on a schedule: {all:#?}"
    );
    eprintln!(
        "flake history lab:\n{}",
        ok(&["flake", "history", "lab"], &state)
    );

    // The config file's flake: its notify_txt is changed there, not over the API.
    let out = flakeboot(
        &["flake", "follow", "lab", "--notify-txt", "_x.test.lan"],
        &state,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    dns.stop();
    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
