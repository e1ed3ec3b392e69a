//! `flakeboot backup` (over the API) and `flakeboot restore` (on this machine's files).

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_appliance::backup;
use flakeboot_webui::BACKUP_PASSPHRASE_HEADER;

use crate::api_client::ApiClient;

/// The passphrase variable.
const PASSPHRASE_ENV: &str = "FLAKEBOOT_BACKUP_PASSPHRASE";

/// The passphrase from the environment, else the first line of standard input.
fn passphrase() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(p);
    }
    eprint!("flakeboot: backup passphrase (or set {PASSPHRASE_ENV}): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the passphrase from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `flakeboot backup --out FILE`.
pub fn backup(client: &ApiClient, out: &Path) -> anyhow::Result<ExitCode> {
    let passphrase = passphrase()?;
    backup::check_passphrase(&passphrase)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    let mut written: u64 = 0;
    let mut failed = None;
    let got = client.stream_with(
        "/backup",
        &[(BACKUP_PASSPHRASE_HEADER, &passphrase)],
        |chunk| {
            if failed.is_none() {
                match file.write_all(chunk) {
                    Ok(()) => written += chunk.len() as u64,
                    Err(e) => failed = Some(e),
                }
            }
        },
    );
    let done = got
        .map_err(anyhow::Error::from)
        .and_then(|()| failed.map_or(Ok(()), |e| Err(e.into())))
        .and_then(|()| file.sync_all().map_err(Into::into));
    if let Err(e) = done {
        drop(file);
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    println!(
        "flakeboot: backup written to {} ({written} bytes, encrypted with the passphrase; keep both safe)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot restore FILE --state-dir DIR [--config PATH]`.
pub fn restore(file: &Path, state_dir: &Path, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let passphrase = passphrase()?;
    let done = backup::restore(
        std::io::BufReader::new(input),
        &passphrase,
        state_dir,
        config,
    )?;
    println!(
        "flakeboot: restored the backup of flakeboot {} ({} entries) into {}",
        done.manifest.version,
        done.entries,
        state_dir.display()
    );
    match (&done.manifest.config_file, &done.config_file) {
        (Some(_), Some(path)) => println!("flakeboot: its config file is {}", path.display()),
        (Some(name), None) => println!(
            "flakeboot: the backup also holds the config file {name}: restore it with --config PATH"
        ),
        _ => {}
    }
    println!("flakeboot: start the daemon on it (its setup, keys and tokens are the old ones)");
    println!(
        "flakeboot: generations whose store paths this machine lacks are built again from their \
         locked revisions when it starts"
    );
    Ok(ExitCode::SUCCESS)
}
