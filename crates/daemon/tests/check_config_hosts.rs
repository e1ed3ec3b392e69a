//! `check-config` checks host names against the flake hosts the real daemon found: before the
//! daemon ever ran it says it cannot (and accepts them); with the daemon running (over its API
//! socket) and stopped (from its store) a menu default naming no host of the flake and a
//! machine on a host that cannot netboot are problems, while `lab#alpha` is accepted. The flake
//! is a real local flake, locked and evaluated by real nix.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_testbed::require_tool;

/// A config whose flake is the fixture repository (`lab`), with `machine_host` assigned to the
/// test's machine and `default` as the menu default.
fn write_config(lan: &Lan, name: &str, repo: &Path, machine_host: &str, default: &str) -> PathBuf {
    let text = format!(
        "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [menu]\ndefault = {default:?}\n\
         [[flakes]]\nurl = \"path:{repo}\"\nname = \"lab\"\n\
         [[machines]]\nmac = \"{CLIENT_MAC}\"\nhost = {machine_host:?}\n\
         [nix]\nsubstituters = []\nextra_options = {{ \"build-users-group\" = \"\" }}\n\
         allowed_paths = [{repo:?}]\n",
        repo = repo.display(),
    );
    let path = lan.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(config: &Path, state: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .arg("check-config")
        .arg(config)
        .arg("--for-another-machine")
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The bad config's verdict once the flake's hosts are known: two problems, with lines.
fn assert_hosts_checked(out: &Output) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(":8: menu.default: \"lab#nope\" names no host"),
        "{t}"
    );
    assert!(
        t.contains(":14: machines[0].host: there is no host named \"lab#diskonly\""),
        "{t}"
    );
    assert!(t.contains(": 2 problem(s)"), "{t}");
    assert!(!t.contains("not checked"), "{t}");
}

#[test]
fn check_config_knows_the_flake_hosts_the_daemon_found() {
    require_tool("nix");
    let lan = Lan::new();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    repo.commit_marker(&format!("check-hosts-{}", std::process::id()))
        .unwrap();
    let state = lan.state_dir();
    let bad = write_config(&lan, "bad.toml", repo.path(), "lab#diskonly", "lab#nope");
    let good = write_config(&lan, "good.toml", repo.path(), "lab#alpha", "lab#beta");

    // The daemon never ran: nothing knows the flake's hosts; check-config says so.
    let out = check(&bad, &state);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("note: host names of flakes (flake#host) are not checked")
            && t.contains("holds no flakeboot store"),
        "{t}"
    );

    // The daemon adds the file's flake at start; nix locks it and finds its hosts.
    let mut daemon = lan.start(&good);
    let started = Instant::now();
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["flake", "list", "--json", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&out.stdout).into_owned();
        if list.contains("\"diskonly\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the flake was not locked in 3 min: {list}\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Running: asked over the API socket.
    let checked = Instant::now();
    assert_hosts_checked(&check(&bad, &state));
    let out = check(&good, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("not checked"), "{}", text(&out));
    eprintln!("check-config over the socket: {:?}", checked.elapsed());

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
    // Stopped: read from its store.
    assert_hosts_checked(&check(&bad, &state));
    let out = check(&good, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A flake the daemon has not added: said so, not guessed.
    let other = write_config(
        &lan,
        "other.toml",
        Path::new("/nonexistent-flake"),
        "x#y",
        "x#z",
    );
    let t = text(&check(&other, &state));
    assert!(
        t.contains("not checked: the daemon has not added flake \"path:/nonexistent-flake\""),
        "{t}"
    );
}
