//! The CLI and history helpers of the automatic-update tests (`follow_updates.rs`,
//! `dns_notify.rs`): a failed step panics with its message.

#![allow(clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use flakeboot_hil_tests::FlakeRepo;
use serde_json::Value;

/// `flakeboot <args> --state-dir <state>` over the owner-only API socket.
pub fn flakeboot(args: &[&str], state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

/// The CLI's stdout; it must succeed.
pub fn ok(args: &[&str], state: &Path) -> String {
    let out = flakeboot(args, state);
    assert!(
        out.status.success(),
        "flakeboot {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The CLI's `--json` output.
pub fn json(args: &[&str], state: &Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(&all, state)).unwrap()
}

/// The flake's history (`flakeboot flake history NAME --json`); `None` while the flake is
/// not there yet (the config file's flakes are added in the background).
pub fn history(state: &Path, name: &str) -> Option<Value> {
    let out = flakeboot(&["flake", "history", name, "--json"], state);
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The flake's updates, oldest first; empty while the flake is not there yet.
pub fn updates(state: &Path, name: &str) -> Vec<Value> {
    history(state, name).map_or_else(Vec::new, |h| h["updates"].as_array().unwrap().clone())
}

/// Waits until the history has an update `pred` accepts; returns it.
pub fn wait_for_update(
    state: &Path,
    name: &str,
    daemon: &flakeboot_testbed::Proc,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(u) = updates(state, name).into_iter().find(|u| pred(u)) {
            return u;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no update {what} in {:#?}\n{}",
            updates(state, name),
            daemon.tail(40)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The revision of the generation `host` boots now (newest, unless pinned).
pub fn current_revision(state: &Path, host: &str) -> Option<String> {
    let v = json(&["flake", "generations", host], state);
    let view = v.as_object()?.values().next()?.clone();
    let gens = view["generations"].as_array()?.clone();
    let current = match view["pinned"].as_u64() {
        Some(p) => gens.iter().find(|g| g["number"] == p)?.clone(),
        None => gens.last()?.clone(),
    };
    current["revision"].as_str().map(str::to_owned)
}

/// A label no other run writes (each commit's marker: a new store path).
pub fn marker(label: &str) -> String {
    format!(
        "{label}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The config of a daemon that builds `repo`'s flake with no cache and serves no boots.
pub fn nix_config(repo: &FlakeRepo) -> String {
    format!(
        "[dhcp]\nmode = \"off\"\n\n[tftp]\nenabled = false\n\n[nix]\nsubstituters = []\n\
         extra_options = {{ \"build-users-group\" = \"\" }}\nallowed_paths = [{:?}]\n",
        repo.path().display().to_string()
    )
}
