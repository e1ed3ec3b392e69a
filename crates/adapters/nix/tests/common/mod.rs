//! Test scaffolding: the fixture flake in a private git repository, nix settings that need no
//! network, and process checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flakeboot_nix::{NixSettings, Runner, RunnerConfig};
use flakeboot_store::Store;
use flakeboot_testbed::require_tool;

/// `nix-collect-garbage` must not run while another test of this binary builds: every test
/// holds this for reading, the GC test for writing.
pub static NIX_STORE_LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The fixture flake (tests/fixtures/hosts) copied into a temporary git repository, with
/// busybox-static in its `bin/` (the builders' only tool).
#[derive(Debug)]
pub struct FixtureRepo {
    pub dir: tempfile::TempDir,
    /// A marker unique to this test: it is in every store path that must not be shared.
    pub marker: String,
}

impl FixtureRepo {
    /// The `hosts` fixture.
    pub fn new(test: &str) -> FixtureRepo {
        FixtureRepo::of("hosts", test)
    }

    /// The flake in `tests/fixtures/<fixture>` (every file but `marker`, which
    /// [`FixtureRepo::commit`] writes).
    pub fn of(fixture: &str, test: &str) -> FixtureRepo {
        require_tool("nix");
        require_tool("git");
        let busybox = require_tool("busybox");
        static N: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix("flakeboot-nix-test-")
            .tempdir_in(fixtures_root())
            .unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() && entry.file_name() != "marker" {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::copy(&busybox, bin.join("busybox")).unwrap();
        for applet in [
            "sh", "mkdir", "cp", "chmod", "cpio", "sleep", "echo", "printf",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let repo = FixtureRepo { dir, marker };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit("rev1");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("git+file://{}", self.path().display())
    }

    /// Write `marker` (which ends up in initrd and init) and commit; returns the revision.
    pub fn commit(&self, label: &str) -> String {
        std::fs::write(
            self.path().join("marker"),
            format!("{}-{label}\n", self.marker),
        )
        .unwrap();
        self.commit_all(label)
    }

    /// Commit whatever changed; returns the revision.
    pub fn commit_all(&self, label: &str) -> String {
        self.git(&["add", "--all", "."]);
        self.git(&["commit", "-q", "-m", label]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Make every host's toplevel fail from the next commit on.
    pub fn break_builds(&self) -> String {
        std::fs::write(self.path().join("fail"), "").unwrap();
        self.commit_all("broken")
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "flakeboot test")
            .env("GIT_AUTHOR_EMAIL", "test@flakeboot.invalid")
            .env("GIT_COMMITTER_NAME", "flakeboot test")
            .env("GIT_COMMITTER_EMAIL", "test@flakeboot.invalid")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// nix without network and nothing else: as root on a machine without the nixbld group,
/// flakeboot itself must see that builds need `build-users-group = ''`.
pub fn offline_settings() -> NixSettings {
    NixSettings::default().with_option("substituters", "")
}

/// nix as root on a machine without the nixbld group, without network (`build-users-group` set
/// as `[nix] extra_options` would).
pub fn settings() -> NixSettings {
    NixSettings::default()
        .with_option("build-users-group", "")
        .with_option("substituters", "")
}

/// The directory the fixture flakes are made in: the one `[nix] allowed_paths` entry of
/// [`runner_config`] (local flakes come only from listed directories).
pub fn fixtures_root() -> PathBuf {
    let root = std::env::temp_dir().join("flakeboot-nix-fixtures");
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// An empty directory under [`fixtures_root`].
pub fn fixture_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(fixtures_root())
        .unwrap()
}

/// The runner as the daemon makes it: settings in `<state>/nix/nix.conf`, nix's HOME there.
pub fn runner_config(state: &Path) -> RunnerConfig {
    RunnerConfig {
        settings: settings().with_files(state),
        max_concurrent: 1,
        timeout: Duration::from_secs(300),
        keep_generations: 5,
        state_dir: state.to_owned(),
        min_free: None,
        gc: false,
        allowed_paths: vec![fixtures_root()],
    }
}

/// A state directory with a store and a runner.
pub fn start(state: &Path, config: RunnerConfig) -> Runner {
    Runner::start(Store::open(state).unwrap(), config).unwrap()
}

/// PIDs of processes whose environment contains `needle` (a derivation's attributes are its
/// builder's environment: `name=slow-toplevel-<marker>` finds that builder and its children).
pub fn pids_with_env(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|var| var == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// PIDs of processes whose command line contains `needle`, with their process group.
pub fn pids_with_cmdline(needle: &str) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(needle) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if let Some(pgrp) = after.split_whitespace().nth(2).and_then(|p| p.parse().ok()) {
            out.push((pid, pgrp));
        }
    }
    out
}

/// Processes in a process group, as `pgrep -g` sees them.
pub fn pgrep_group(pgid: i32) -> String {
    let out = Command::new(require_tool("pgrep"))
        .args(["-g", &pgid.to_string()])
        .output()
        .unwrap();
    // A zombie has exited and runs nothing: it only waits to be reaped by its parent, which is
    // this test process when a test drops the tokio runtime that would have reaped it (the
    // daemon's runtime lives on and does). Only live processes count as left behind.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| !is_zombie(pid))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when /proc says the process is a zombie (state `Z`); false when it is gone too.
fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Poll `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Open a store, waiting for a dropped runner's tasks to let go of it.
pub fn reopen(state: &Path) -> Store {
    let start = Instant::now();
    loop {
        match Store::open(state) {
            Ok(s) => return s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("store still open after 10 s: {e}"),
        }
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("flakeboot-nix-state-")
        .tempdir()
        .unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}
