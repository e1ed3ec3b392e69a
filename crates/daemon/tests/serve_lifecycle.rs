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

/// The shipped examples are for another machine (their `eth0`, `tap0`, `/srv/...`): with
/// `--for-another-machine` what does not fit this one is a warning, each on its line.
#[test]
fn check_config_accepts_every_shipped_example() {
    let examples = flakeboot_testbed::workspace_root().join("examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = flakeboot()
                .args(["check-config", "--for-another-machine"])
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {err}", path.display());
            assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
            // The demo host's files are not on this machine: said, with their lines.
            let prefix = format!("{}:", path.display());
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&prefix)
                        && l.contains(": warning: hosts[0].kernel: /srv/")),
                "{err}"
            );
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
    let out = flakeboot()
        .args(["check-config", "--for-another-machine"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    let p = path.display();
    assert!(
        err.contains(&format!(
            "{p}:3: dhcp.range: mode = \"router\" needs an address range"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:7: machines[0].host: there is no host named \"ghost\""
        )),
        "{err}"
    );
}

/// On this machine: every problem of the file and every value that does not fit the machine
/// (the LAN port's subnet, missing files), one per line as `FILE:LINE: FIELD: MESSAGE`, in
/// file order; the exit status says there were problems.
#[test]
fn check_config_reports_every_problem_in_file_order_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("ipxe")).unwrap();
    for file in ["ipxe/undionly.kpxe", "ipxe/ipxe.efi", "vmlinuz"] {
        std::fs::write(dir.path().join(file), b"x").unwrap();
    }
    let lines = [
        format!("state_dir = \"{d}/state\""),
        "[lan]".to_owned(),
        "interface = \"lo\"".to_owned(),
        "[dhcp]".to_owned(),
        "mode = \"router\"".to_owned(),
        "range = [\"10.0.0.100\", \"10.0.0.200\"]".to_owned(),
        "[ipxe]".to_owned(),
        format!("dir = \"{d}/ipxe\""),
        format!("arm64_efi = \"{d}/ipxe/arm64.efi\""),
        "[menu]".to_owned(),
        "default = \"ghost\"".to_owned(),
        "[[hosts]]".to_owned(),
        "name = \"demo\"".to_owned(),
        format!("kernel = \"{d}/vmlinuz\""),
        format!("initrd = \"{d}/initrd\""),
        "cmdline = \"console=ttyS0 root=${root}\"".to_owned(),
        "[[machines]]".to_owned(),
        "mac = \"52:54:00:00:00:01\"".to_owned(),
        "host = \"demo\"".to_owned(),
        "extra_cmdline = \"quiet || shell\"".to_owned(),
        "hostname = \"node_1\"".to_owned(),
    ];
    let path = dir.path().join("flakeboot.toml");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = flakeboot().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = |n: usize, field: &str| format!("{}:{n}: {field}: ", path.display());
    let expected = [
        (
            at(6, "dhcp.range"),
            "10.0.0.100 - 10.0.0.200 is not inside the LAN's subnet 127.0.0.0/8 (lo's address 127.0.0.1/8)",
        ),
        (at(9, "ipxe.arm64_efi"), "arm64.efi does not exist"),
        (at(11, "menu.default"), "\"ghost\" names no host"),
        (at(15, "hosts[0].initrd"), "initrd does not exist"),
        (at(16, "hosts[0].cmdline"), "contains '$'"),
        (
            at(20, "machines[0].extra_cmdline"),
            "contains \"||\" as a word",
        ),
        (
            at(21, "machines[0].hostname"),
            "\"node_1\" is not a host name",
        ),
    ];
    let got: Vec<&str> = err.lines().collect();
    assert_eq!(got.len(), expected.len() + 1, "{err}");
    for (line, (prefix, text)) in got.iter().zip(&expected) {
        assert!(
            line.starts_with(prefix.as_str()) && line.contains(text),
            "{prefix}{text}:\n{err}"
        );
    }
    assert_eq!(
        got[expected.len()],
        format!("{}: 7 problem(s)", path.display())
    );

    // A port this machine does not have: a problem here, a warning for another machine.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "[lan]\ninterface = \"nosuch0\"\n[dhcp]\nmode = \"proxy\"\n",
    )
    .unwrap();
    let out = flakeboot()
        .arg("check-config")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2: lan.interface: \"nosuch0\" does not exist on this machine",
            other.display()
        )),
        "{err}"
    );
    let out = flakeboot()
        .args(["check-config", "--for-another-machine"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2: warning: lan.interface: \"nosuch0\""),
        "{err}"
    );

    // A missing file, and a syntax error on its line.
    let out = flakeboot()
        .arg("check-config")
        .arg(dir.path().join("nope.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    std::fs::write(
        &other,
        "[lan]\ninterface = \"lo\"\n\n[dhcp]\nmdoe = \"router\"\n",
    )
    .unwrap();
    let out = flakeboot()
        .arg("check-config")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5: unknown field `mdoe`", other.display())),
        "{err}"
    );
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

/// Router mode turns the DNS forwarder on by default; with port 53 of the LAN address taken by
/// another program the boot services start anyway and the dashboard's DNS line says why. With
/// `[dns] enabled = true` in the file the same start fails and says so.
#[test]
fn a_taken_dns_port_fails_only_a_forwarder_the_file_asked_for() {
    let lan = Lan::new();
    let _squatter = lan
        .server
        .spawn(
            "squatter",
            &[
                "python3",
                "-c",
                "import socket,time\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 s.bind(('10.77.0.1',53))\nprint('bound',flush=True)\ntime.sleep(600)",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let router = "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]";
    let config = lan.write_config(router);
    let mut daemon = lan.start(&config);
    let status = stdout_of(
        Command::new("curl")
            .args(["-sf", "--unix-socket"])
            .arg(lan.state_dir().join("api.sock"))
            .arg("http://appliance/api/v1/status"),
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let dns = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "DNS")
        .cloned()
        .unwrap_or_default();
    assert_eq!(dns["state"], "failed", "{status}");
    let dhcp = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with("DHCP")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(dhcp["state"], "running", "{status}");
    daemon.stop().unwrap();

    let config = lan.write_config(&format!("{router}\n[dns]\nenabled = true"));
    let mut p = lan.spawn("flakeboot-dns", &config);
    let exit = p.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(!exit.success(), "{}", p.output());
}
