//! The CLI on an admin's laptop: the real `flakeboot` binary in a client namespace drives the
//! real daemon in the server namespace over its HTTPS API (`--server`), with a token created
//! in the UI and the certificate pinned as the settings page shows it (or trusted with
//! `--cacert`). A fixture flake is added, built with real nix and followed to success; then
//! generations, rollback, machine assignment, machines and events; and the refusals: a wrong
//! token, a wrong pin, an address where nothing listens.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::require_tool;

const BASE: &str = "https://10.77.0.1";
const NEW_MAC: &str = "52:54:00:aa:bb:01";

/// How the laptop reaches the appliance.
struct Laptop<'a> {
    lan: &'a Lan,
    token_file: String,
    trust: Vec<String>,
}

impl Laptop<'_> {
    /// `flakeboot --server BASE --token-file F <trust> <args>` in the client namespace.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
        cmd.args(["--server", BASE, "--token-file", &self.token_file])
            .args(&self.trust)
            .args(args)
            .env_remove("FLAKEBOOT_TOKEN");
        cmd.output().unwrap()
    }

    /// Runs and expects success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "flakeboot {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "flakeboot {args:?} should fail:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(out.status.code(), Some(1), "exit code of {args:?}");
        String::from_utf8(out.stderr).unwrap()
    }
}

fn write_secret(path: &Path, text: &str) -> String {
    std::fs::write(path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_cli_drives_the_appliance_over_https_with_a_token() {
    require_tool("nix");
    require_tool("curl");
    let started = Instant::now();
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    // A flake with bootable hosts (the fixture's alpha, beta; diskonly cannot netboot), in the
    // one directory [nix] allowed_paths lists.
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    let config = lan.write_config(&format!(
        "[dhcp]\nmode = \"off\"\n\n[tftp]\nenabled = false\n\n[nix]\nsubstituters = []\n\
         extra_options = {{ \"build-users-group\" = \"\" }}\nallowed_paths = [{:?}]",
        repo.path().display().to_string()
    ));
    let mut daemon = lan.start(&config);
    let cert = lan.state_dir().join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "off");
    // A marker of its own: nix really builds (nothing cached from an earlier run).
    let marker = format!(
        "cli-api-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let rev = repo.commit_marker(&marker).unwrap();

    let laptop = Laptop {
        lan: &lan,
        token_file: write_secret(&lan.path("token"), &admin.token),
        trust: vec!["--pin".into(), admin.fingerprint.clone()],
    };

    // flake add / list: the human table and the API's JSON.
    let out = laptop.ok(&["flake", "add", &repo.url(), "--name", "lab"]);
    assert!(out.contains("Added flake lab"), "{out}");
    assert!(out.contains(&rev[..12]), "the locked revision: {out}");
    let out = laptop.ok(&["flake", "list"]);
    eprintln!("flake list:\n{out}");
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("alpha, beta, diskonly (no netboot)"), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&laptop.ok(&["flake", "list", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "lab", "{list}");
    assert_eq!(list[0]["revision"], rev.as_str(), "{list}");
    // A local URL outside [nix] allowed_paths: refused next to the field, and a failure.
    let err = laptop.fails(&["flake", "add", "git+file:///nonexistent/repo"]);
    assert!(err.contains("url: "), "{err}");
    assert!(err.contains("[nix] allowed_paths"), "{err}");

    // flake build, then follow its log to the end.
    let out = laptop.ok(&["flake", "build", "lab", "alpha"]);
    let id = out
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.trim_end_matches('.').parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no build id in {out:?}"));
    let log = laptop.run(&["build", "log", &id.to_string()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&log.stdout),
        String::from_utf8_lossy(&log.stderr),
    );
    eprintln!("build log {id}:\n{stdout}{stderr}");
    assert!(log.status.success(), "build log:\n{stdout}\n{stderr}");
    assert!(stdout.contains("alpha"), "the build's log lines: {stdout}");
    assert!(
        stderr.contains(&format!("build {id} (lab#alpha) succeeded: generation 1")),
        "{stderr}"
    );
    let events = laptop.ok(&["build", "log", &id.to_string(), "--json"]);
    let last: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "status", "{events}");
    assert_eq!(last["data"]["finished"], true, "{events}");
    assert_eq!(last["data"]["generation"], 1, "{events}");
    let err = laptop.fails(&["build", "log", "999"]);
    assert!(err.contains("build 999 not found"), "{err}");
    let out = laptop.ok(&["build", "list"]);
    assert!(
        out.contains("lab#alpha") && out.contains("succeeded"),
        "{out}"
    );

    // Generations by the short host name; rollback pins, unpin releases.
    let out = laptop.ok(&["flake", "generations", "alpha"]);
    assert!(out.starts_with("lab#alpha\n"), "{out}");
    assert!(
        out.contains(" current\n") || out.ends_with(" current\n"),
        "{out}"
    );
    laptop.ok(&["flake", "rollback", "alpha", "1"]);
    let out = laptop.ok(&["flake", "generations", "alpha"]);
    eprintln!("flake generations alpha:\n{out}");
    assert!(out.contains("current (pinned)"), "{out}");
    laptop.ok(&["flake", "unpin", "lab#alpha"]);
    let out = laptop.ok(&["flake", "generations", "lab#alpha"]);
    assert!(!out.contains("pinned") && out.contains("current"), "{out}");
    let err = laptop.fails(&["flake", "rollback", "alpha", "7"]);
    assert!(err.contains('7'), "{err}");

    // Update re-locks and builds every netbootable host; --wait waits for them all.
    let out = laptop.ok(&["flake", "update", "lab", "--wait"]);
    assert!(out.starts_with("ID"), "{out}");
    for host in ["lab#alpha", "lab#beta"] {
        assert!(
            out.lines()
                .any(|l| l.contains(host) && l.contains("succeeded")),
            "{host}: {out}"
        );
    }
    let out = laptop.ok(&["flake", "cancel", &id.to_string()]);
    assert_eq!(out.trim(), format!("Build {id} had already ended."));

    // Machines: assign a new one to the host, see it, send it back to the menu.
    let out = laptop.ok(&["machine", "assign", NEW_MAC, "lab#alpha"]);
    assert_eq!(out.trim(), format!("{NEW_MAC} boots lab#alpha now."));
    let out = laptop.ok(&["machines"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(NEW_MAC) && l.contains("host=lab#alpha")),
        "{out}"
    );
    let machines: serde_json::Value =
        serde_json::from_str(&laptop.ok(&["machines", "--json"])).unwrap();
    assert!(
        machines
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mac"] == NEW_MAC && m["host"] == "lab#alpha"),
        "{machines}"
    );
    let err = laptop.fails(&["machine", "assign", NEW_MAC, "lab#nosuch"]);
    assert!(
        err.contains("host: there is no host named \"lab#nosuch\""),
        "{err}"
    );
    let out = laptop.ok(&["machine", "assign", NEW_MAC, "--menu"]);
    assert_eq!(out.trim(), format!("{NEW_MAC} boots the menu now."));

    // Boot events: the client fetches the boot script over plain HTTP; the event shows.
    lan.client()
        .run(&["curl", "-sf", "http://10.77.0.1/boot.ipxe"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = laptop.ok(&["events", "--limit", "50"]);
        if out.contains("boot.ipxe") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no boot event for boot.ipxe:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let out = laptop.ok(&["events", "--mac", NEW_MAC, "--json"]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .is_array(),
        "{out}"
    );

    // On the appliance, without a token, every command runs the same code over the API
    // socket and prints byte for byte what the laptop gets (queries, and changes that are
    // idempotent so both runs find the same state).
    let build_id = id.to_string();
    let commands: &[&[&str]] = &[
        &["flake", "list"],
        &["flake", "generations", "lab#beta"],
        &["flake", "generations", "alpha"],
        &["flake", "rollback", "alpha", "1"],
        &["flake", "unpin", "lab#alpha"],
        &["flake", "cancel", &build_id],
        &["build", "list"],
        &["machine", "assign", NEW_MAC, "--menu"],
        &["machines"],
        &["events", "--limit", "50"],
        &["events", "--mac", NEW_MAC],
        &["leases"],
        &["lan", "dhcp-servers"],
        &["firmware", "status"],
        &["health"],
    ];
    for args in commands {
        for json in [false, true] {
            let mut args = args.to_vec();
            if json && args[0] != "health" {
                args.push("--json");
            }
            let mut cmd = lan.server.command(env!("CARGO_BIN_EXE_flakeboot"));
            cmd.args(&args)
                .arg("--state-dir")
                .arg(lan.state_dir())
                .env_remove("FLAKEBOOT_SERVER")
                .env_remove("FLAKEBOOT_TOKEN_FILE")
                .env_remove("FLAKEBOOT_TOKEN");
            let local = cmd.output().unwrap();
            assert!(local.status.success(), "{args:?} locally: {local:?}");
            assert_eq!(
                String::from_utf8_lossy(&local.stdout),
                laptop.ok(&args),
                "{args:?} locally and over --server"
            );
        }
    }

    // Firmware: this daemon is not on the appliance image; an upload is streamed and refused
    // with what to do.
    let status = laptop.ok(&["firmware", "status"]);
    assert!(
        status.contains("not running the appliance image"),
        "{status}"
    );
    let bundle = lan.path("some.bundle.tar");
    std::fs::write(&bundle, vec![7u8; 100_000]).unwrap();
    let said = laptop.fails(&["firmware", "upload", bundle.to_str().unwrap()]);
    assert!(said.contains("not the appliance image"), "{said}");

    // The appliance's own certificate as --cacert works too.
    let with_ca = Laptop {
        lan: &lan,
        token_file: laptop.token_file.clone(),
        trust: vec!["--cacert".into(), cert.to_str().unwrap().into()],
    };
    assert!(with_ca.ok(&["flake", "list"]).contains("lab"));

    // Refusals, each saying what to do.
    let wrong_token = Laptop {
        lan: &lan,
        token_file: write_secret(&lan.path("wrong"), "fbt_not-a-token"),
        trust: laptop.trust.clone(),
    };
    let err = wrong_token.fails(&["flake", "list"]);
    assert!(err.contains("the token was refused"), "{err}");
    assert!(err.contains("Settings > API tokens"), "{err}");

    let wrong_pin = Laptop {
        lan: &lan,
        token_file: laptop.token_file.clone(),
        trust: vec!["--pin".into(), "00".repeat(32)],
    };
    let err = wrong_pin.fails(&["machines"]);
    assert!(err.contains("does not match --pin"), "{err}");
    assert!(
        err.contains(&admin.fingerprint),
        "names the certificate presented: {err}"
    );

    // The system's CA bundle (ca-certificates) did not sign the appliance's certificate.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert!(
        Path::new(bundle).is_file(),
        "{bundle} (package ca-certificates)"
    );
    let err = Laptop {
        lan: &lan,
        token_file: laptop.token_file.clone(),
        trust: vec!["--cacert".into(), bundle.into()],
    }
    .fails(&["machines"]);
    assert!(err.contains("not trusted by --cacert"), "{err}");

    let mut cmd = lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
    cmd.args([
        "--server",
        "https://10.77.0.1:9",
        "--token-file",
        &laptop.token_file,
        "--pin",
        &admin.fingerprint,
        "flake",
        "list",
    ]);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the appliance at 10.77.0.1:9") && err.contains("LAN and VPN"),
        "{err}"
    );

    // Commands that need the API say so without --server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["build", "log", "1"])
        .env_remove("FLAKEBOOT_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));

    // Remove the flake: the machine assigned to its host boots the menu, its generations'
    // GC roots are gone, and it is no longer listed.
    laptop.ok(&["machine", "assign", NEW_MAC, "lab#alpha"]);
    let roots = lan.state_dir().join("gcroots/lab/alpha");
    let links = |dir: &Path| -> usize {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .count()
        })
    };
    assert!(links(&roots) > 0, "GC roots under {}", roots.display());
    let out = laptop.ok(&["flake", "remove", "lab"]);
    eprintln!("flake remove:\n{out}");
    assert!(out.starts_with("Removed flake lab: "), "{out}");
    assert!(out.contains("lab#alpha"), "{out}");
    assert!(
        out.contains(&format!("{NEW_MAC} boots the menu now.")),
        "{out}"
    );
    assert_eq!(links(&roots), 0, "GC roots left under {}", roots.display());
    let machines: serde_json::Value =
        serde_json::from_str(&laptop.ok(&["machines", "--json"])).unwrap();
    let m = machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == NEW_MAC)
        .unwrap();
    assert!(m["host"].is_null(), "{m}");
    assert_eq!(laptop.ok(&["flake", "list", "--json"]).trim(), "[]");
    let err = laptop.fails(&["flake", "remove", "lab"]);
    assert!(err.contains("not found"), "{err}");

    daemon.stop();
    eprintln!("cli_api: {:.1} s", started.elapsed().as_secs_f64());
}
