//! Loading and removing the table with the `nft` program: the ruleset goes on its stdin
//! (`nft -f -`), never through a shell or into its arguments.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::ruleset::{Ruleset, RulesetError, TABLE};

/// Why the firewall could not be set up or taken down.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Ruleset(#[from] RulesetError),
    #[error("`nft` was not found: install nftables (Debian: apt install nftables)")]
    NoNft,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("nft refused the ruleset ({status}): {stderr}")]
    Refused { status: String, stderr: String },
    #[error("cannot set IPv4 forwarding ({path}): {source}")]
    Forwarding {
        path: String,
        source: std::io::Error,
    },
}

/// The `nft` program: on `PATH`, else in the sbin directories (not on every user's `PATH`).
fn nft() -> Result<PathBuf, FirewallError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("nft"))
        .find(|candidate| candidate.is_file())
        .ok_or(FirewallError::NoNft)
}

/// Runs `nft` with `args` and `input` on its stdin.
fn run(args: &[&str], input: &str) -> Result<String, FirewallError> {
    let program = nft()?;
    let spawn = |source| FirewallError::Spawn {
        program: program.display().to_string(),
        source,
    };
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(FirewallError::Refused {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Loads `ruleset`, replacing the table flakeboot had (one nft transaction: the old rules hold
/// until the new ones do).
pub fn apply(ruleset: &Ruleset) -> Result<(), FirewallError> {
    let text = ruleset.render()?;
    run(&["-f", "-"], &text).map(|_| ())
}

/// Removes flakeboot's table (nothing when there is none).
pub fn remove() -> Result<(), FirewallError> {
    run(
        &["-f", "-"],
        &format!("table {TABLE}\ndelete table {TABLE}\n"),
    )
    .map(|_| ())
}

/// Whether flakeboot's table is loaded in the current network namespace.
pub fn table_exists() -> Result<bool, FirewallError> {
    let tables = run(&["list", "tables"], "")?;
    Ok(tables.lines().any(|l| l.trim() == format!("table {TABLE}")))
}
