//! The daemon's contract: clear start-up errors, one daemon per state dir, clean stop.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn flakeboot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flakeboot"))
}

#[test]
fn check_config_accepts_every_shipped_example() {
    let examples = flakeboot_testbed::workspace_root().join("examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = flakeboot().arg("check-config").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
        }
    }
}

#[test]
fn check_config_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[lan]\ninterface = \"eth0\"\n[dhcp]\nmode = \"router\"\n[[machines]]\nmac = \"52:54:00:00:00:01\"\nhost = \"ghost\"\n",
    )
    .unwrap();
    let out = flakeboot().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(err.contains("range"), "{err}");
    assert!(err.contains("\"ghost\""), "{err}");
}

#[test]
fn missing_interface_is_a_clear_error() {
    let lan = Lan::new();
    let path = lan.path("c.toml");
    std::fs::write(&path, "[lan]\ninterface = \"nosuch0\"\n").unwrap();
    let mut p = lan.spawn("flakeboot", &path);
    let status = p.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    let out = p.output();
    assert!(out.contains("\"nosuch0\" does not exist"), "{out}");
    assert!(
        out.contains("lan0"),
        "should list the interfaces there are: {out}"
    );
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let lan = Lan::new();
    let config =
        lan.write_config("[dhcp]\nmode = \"off\"\n[http]\nport = 8080\n[tftp]\nenabled = false");
    let mut first = lan.start(&config);
    let mut second = lan.spawn("flakeboot-2", &config);
    let status = second.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    let out = second.output();
    assert!(out.contains("already"), "{out}");
    // The first is unharmed and stops cleanly on SIGTERM.
    let status = first.stop().unwrap();
    assert!(status.success(), "{}", first.tail(20));
    let out = first.output();
    assert!(out.contains("stopped"));
    // Services stopping because of the shutdown are neither failures nor awaited twice.
    assert!(!out.contains("panicked"), "{out}");
    assert!(!out.contains("stopped unexpectedly"), "{out}");
}

#[test]
fn the_api_socket_is_owner_only_and_answers_the_cli_without_a_token() {
    use std::os::unix::fs::PermissionsExt;
    let lan = Lan::new();
    let state = lan.state_dir();
    // Without a daemon: a clear message, not a stack of errors.
    for args in [&["flake", "list"][..], &["health"][..]] {
        let out = flakeboot()
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} without a daemon");
    }
    let out = flakeboot()
        .args(["flake", "list", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Is `flakeboot serve` running"), "{err}");
    // With the daemon stopped, `machines` reads the store; a mistyped directory is an error,
    // never a new empty store.
    let typo = state.join("typo");
    let out = flakeboot()
        .args(["machines", "--state-dir"])
        .arg(&typo)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no flakeboot state"), "{err}");
    assert!(!typo.exists(), "a mistyped --state-dir was created");

    let config = lan.write_config("[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false");
    let mut daemon = lan.start(&config);
    let socket = state.join("api.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "API socket mode {mode:o}");

    let out = flakeboot()
        .args(["health", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"healthy\":true"));

    let out = flakeboot()
        .args(["flake", "list", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    let out = flakeboot()
        .args(["flake", "rollback", "nosuch", "1", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch"), "{err}");
    daemon.stop();
}
