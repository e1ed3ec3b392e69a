//! Local flakes come only from `[nix] allowed_paths`, against the real daemon: `path:/etc` in
//! the config file stops `check-config` and `serve` with the setting named (even with `/etc`
//! under a listed directory); over the API, `/etc`, the state directory (through a symlink),
//! `..` and an unlisted directory are refused next to the `url` field, and the listed fixture
//! flake is added (locked and discovered by real nix).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use flakeboot_hil_tests::FlakeRepo;
use flakeboot_testbed::require_tool;

fn flakeboot(args: &[&str], state: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config whose only flake is `url`, with `allowed` as `[nix] allowed_paths`.
fn write_config(lan: &Lan, name: &str, url: &str, allowed: &[&Path]) -> std::path::PathBuf {
    let dirs: Vec<String> = allowed
        .iter()
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    let text = format!(
        "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[preflight]\nenabled = false\n\
         {flakes}[nix]\nsubstituters = []\nextra_options = {{ \"build-users-group\" = \"\" }}\n\
         allowed_paths = [{}]\n",
        dirs.join(", "),
        flakes = if url.is_empty() {
            String::new()
        } else {
            format!("[[flakes]]\nurl = {url:?}\nname = \"lab\"\n")
        },
    );
    let path = lan.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn local_flakes_come_only_from_allowed_paths_and_never_from_etc_or_the_state() {
    require_tool("nix");
    let lan = Lan::new();
    std::fs::write(lan.path("k"), b"fake kernel").unwrap();
    std::fs::write(lan.path("i"), b"fake initrd").unwrap();
    let repo = FlakeRepo::new(&lan.path("k"), &lan.path("i")).unwrap();
    repo.commit_marker(&format!("flake-sources-{}", std::process::id()))
        .unwrap();
    let state = lan.state_dir();

    // In the config file: refused by check-config and by serve, naming the setting, even when
    // "/" (and so /etc) is listed.
    let etc = write_config(&lan, "etc.toml", "path:/etc", &[Path::new("/")]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .arg("check-config")
        .arg(&etc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("flakes[0].url: path:/etc is refused"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("[nix] allowed_paths"),
        "{}",
        stderr(&out)
    );
    let mut refused = lan.spawn("serve-etc", &etc);
    let status = refused.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(!status.success(), "serve started with path:/etc");
    let log = refused.output();
    assert!(
        log.contains("path:/etc is refused") && log.contains("[nix] allowed_paths"),
        "{log}"
    );
    assert!(!state.join("api.sock").exists(), "serve bound its socket");
    // Not listed at all: the message says where to list it.
    let unlisted = write_config(&lan, "unlisted.toml", &repo.url(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .arg("check-config")
        .arg(&unlisted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{} is not under [nix] allowed_paths; add its directory there to build local flakes",
            repo.url()
        )),
        "{}",
        stderr(&out)
    );

    // Over the API (the CLI through the API socket): the fixture's directory is listed.
    let config = write_config(&lan, "flakeboot.toml", "", &[repo.path()]);
    let mut daemon = lan.start(&config);
    std::os::unix::fs::symlink(&state, repo.path().join("state-link")).unwrap();
    let repo_dir = repo.path().display().to_string();
    for (url, needle) in [
        ("path:/etc".to_owned(), "path:/etc is refused"),
        (
            format!("path:{repo_dir}/../../../../../../etc"),
            "never built from /etc",
        ),
        (format!("path:{repo_dir}/state-link"), "never built from"),
        (
            "path:/usr/share".to_owned(),
            "path:/usr/share is not under [nix] allowed_paths; add its directory there",
        ),
    ] {
        let out = flakeboot(&["flake", "add", &url], &state);
        assert!(!out.status.success(), "{url} was added");
        let err = stderr(&out);
        assert!(err.contains("url: "), "{url}: {err}");
        assert!(err.contains(needle), "{url}: {err}");
        assert!(err.contains("[nix] allowed_paths"), "{url}: {err}");
    }
    std::fs::remove_file(repo.path().join("state-link")).unwrap();
    let out = flakeboot(&["flake", "list", "--json"], &state);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // The listed directory is accepted: nix locks it and finds its hosts.
    let out = flakeboot(
        &["flake", "add", &format!("path:{repo_dir}"), "--name", "lab"],
        &state,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        daemon.tail(30)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Added flake lab"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
}
