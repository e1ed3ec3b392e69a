//! The appliance launcher: the real `flakeboot serve` on a config file and a state directory,
//! started in a namespace, ready when it logs "serving" (its last start-up line: the DHCP and
//! TFTP servers log "listening", so no earlier line matches).
//!
//! ```no_run
//! # use flakeboot_testbed::*;
//! # use std::path::Path;
//! let lan = TestLan::veth("srv", "lan0").server_addr("10.77.0.1/24").build().unwrap();
//! let daemon = Serve::new(Path::new("flakeboot.toml"), &lan.path("state"))
//!     .arg("--log-format")
//!     .arg("json")
//!     .start(&lan.server)
//!     .unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::Netns;
use crate::process::{Proc, WaitError};
use crate::{flakeboot_bin, workspace_root};

/// How long the daemon may take to log "serving".
pub const SERVING_TIMEOUT: Duration = Duration::from_secs(20);

/// Starting `flakeboot serve` went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("flakeboot binary {path} is missing: build it first (cargo build -p flakeboot)")]
    NoBinary { path: PathBuf },
    #[error("starting flakeboot: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("flakeboot did not start serving: {0}")]
    NotServing(#[source] WaitError),
}

/// One `flakeboot serve --config C --state-dir S [args]` to start.
#[derive(Debug, Clone)]
pub struct Serve {
    bin: PathBuf,
    label: String,
    config: PathBuf,
    state_dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Serve {
    /// The daemon [`flakeboot_bin`] on `config` and `state_dir`, logging as "flakeboot".
    pub fn new(config: &Path, state_dir: &Path) -> Serve {
        Serve {
            bin: flakeboot_bin(),
            label: "flakeboot".to_owned(),
            config: config.to_owned(),
            state_dir: state_dir.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Another binary (a test's `CARGO_BIN_EXE_flakeboot`, a release build).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

    /// The process's label (its log file's name, in messages).
    pub fn label(mut self, label: &str) -> Self {
        label.clone_into(&mut self.label);
        self
    }

    /// One more argument after `--state-dir`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// An environment variable for the daemon (`RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Start it in `ns` without waiting. Warns when the default binary is older than the sources.
    pub fn spawn(&self, ns: &Netns) -> Result<Proc, ServeError> {
        if !self.bin.is_file() {
            return Err(ServeError::NoBinary {
                path: self.bin.clone(),
            });
        }
        let stale = (std::env::var_os("FLAKEBOOT_BIN").is_none() && self.bin == flakeboot_bin())
            .then(|| newer_source(&self.bin))
            .flatten();
        if let Some(newer) = stale {
            eprintln!(
                "WARNING: {} is older than {}: this tests an old daemon \
                 (cargo build -p flakeboot rebuilds it)",
                self.bin.display(),
                newer.display()
            );
        }
        let mut cmd = ns.command(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(&self.label, cmd).map_err(ServeError::Spawn)
    }

    /// Start it in `ns` and wait until it logs "serving" ([`SERVING_TIMEOUT`]).
    pub fn start(&self, ns: &Netns) -> Result<Proc, ServeError> {
        let mut proc = self.spawn(ns)?;
        proc.wait_for("serving", SERVING_TIMEOUT)
            .map_err(ServeError::NotServing)?;
        Ok(proc)
    }
}

/// A test that does not build the daemon itself (the hil-tests) may run an old one: a crate
/// manifest or a source file under `crates/**/src/` newer than the binary, if any.
fn newer_source(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let newer = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built)
    };
    let mut dirs = vec![workspace_root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let in_src = path.components().any(|c| c.as_os_str() == "src");
            if path.is_dir() {
                if !matches!(
                    entry.file_name().to_str(),
                    Some("tests" | "target" | "fixtures")
                ) {
                    dirs.push(path);
                }
            } else if (path.file_name().is_some_and(|n| n == "Cargo.toml")
                || (in_src && path.extension().is_some_and(|e| e == "rs")))
                && newer(&path)
            {
                return Some(path);
            }
        }
    }
    None
}
