//! `flakeboot backup` (over the API) and `flakeboot restore` (on this machine's files, or
//! onto a fresh appliance through its setup route with `--server`).

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_appliance::backup;
use flakeboot_webui::BACKUP_PASSPHRASE_HEADER;
use flakeboot_webui::auth::secret::random_token;
use flakeboot_webui::pages::FORM_COOKIE;
use flakeboot_webui::pages::setup_restore::{CODE_HEADER, FORM_HEADER};

use crate::api_client::{ApiClient, Server};
use crate::cli::RemoteArgs;
use crate::progress::Progress;

/// The passphrase variable.
const PASSPHRASE_ENV: &str = "FLAKEBOOT_BACKUP_PASSPHRASE";

/// The setup code variable (`restore --server`).
const SETUP_CODE_ENV: &str = "FLAKEBOOT_SETUP_CODE";
/// How long a fresh appliance may take to decrypt, check and swap in a backup after its last
/// byte (the store of a big site on slow flash).
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The passphrase from the environment, else the next line of standard input.
fn passphrase() -> anyhow::Result<String> {
    secret(PASSPHRASE_ENV, "backup passphrase")
}

/// `var`'s value, else the next line of standard input (asked for as `what`).
fn secret(var: &str, what: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    eprint!("flakeboot: {what} (or set {var}): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
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

/// `flakeboot restore FILE --server URL`: onto a fresh appliance (not set up yet) through
/// `POST /setup/restore`, as its setup page sends it: the archive as the body, the setup code,
/// the passphrase and a form token (this client's own, as its cookie and its header) in
/// headers. The appliance starts again on the backup.
pub fn restore_remote(server: &str, remote: &RemoteArgs, file: &Path) -> anyhow::Result<ExitCode> {
    let client = ApiClient::setup(Server::parse(server)?, crate::commands::trust(remote)?)?;
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let len = input.metadata()?.len();
    let code = secret(
        SETUP_CODE_ENV,
        "setup code shown on the appliance's console",
    )?;
    let passphrase = passphrase()?;
    backup::check_passphrase(&passphrase)?;
    let form = random_token()?;
    let cookie = format!("{FORM_COOKIE}={form}");
    let headers = [
        ("cookie", cookie.as_str()),
        (FORM_HEADER, form.as_str()),
        (CODE_HEADER, code.trim()),
        (BACKUP_PASSPHRASE_HEADER, passphrase.as_str()),
    ];
    let shown = Progress::new(len, "decrypting and restoring");
    let answer = client.upload_with(
        "/setup/restore",
        &headers,
        input,
        len,
        RESTORE_WAIT,
        move |sent| shown.sent(sent),
    )?;
    eprintln!();
    println!(
        "flakeboot: the appliance restored the backup of flakeboot {} and is starting again on \
         it (its setup, certificate, keys and tokens are the old ones)",
        answer
            .get("restored")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
    );
    println!(
        "flakeboot: pin its old certificate again; generations whose store paths it lacks are \
         built again from their locked revisions"
    );
    Ok(ExitCode::SUCCESS)
}
