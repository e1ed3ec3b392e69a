//! Backup and restore of the appliance: one archive with everything that makes it this
//! appliance, encrypted with a passphrase in the age format (scrypt; `age -d` decrypts it too).
//!
//! Inside the encryption, a tar: `flakeboot-backup.json` first (format, version, when, the
//! config file's name), then `state/...`: the state directory (the store as a consistent copy
//! ([`Store::snapshot`]), the TLS certificate and key, the WireGuard keys, the SSH deploy key
//! and its known hosts, forge access tokens, pre-flight logs), without the API socket,
//! firmware uploads and build logs; and `config/<name>`, the daemon's config file when it lies
//! outside the state directory (on the appliance image it lies inside).
//!
//! A restore goes into a state directory that is empty or absent (a fresh appliance, or the
//! daemon stopped and the old directory moved away): the archive is unpacked next to it,
//! checked (paths only under `state/` and `config/`, the store opens and migrates), then moved
//! into place. Nothing of the backup is written in the clear anywhere else.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::SecretString;
use flakeboot_store::{DB_FILE, Store, StoreError};
use serde::{Deserialize, Serialize};

/// The archive format this build writes and reads.
pub const FORMAT: u32 = 1;
/// A passphrase shorter than this is refused.
pub const MIN_PASSPHRASE: usize = 12;
/// The first entry's name.
const MANIFEST: &str = "flakeboot-backup.json";
/// What of the state directory stays out of a backup (top-level names; the API socket, like
/// any socket, is no file and stays out by its type).
const LEFT_OUT: [&str; 2] = ["firmware", "build-logs"];

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the passphrase must have at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot decrypt the backup: {0}")]
    Decrypt(String),
    #[error("this is not a flakeboot backup: {0}")]
    NotABackup(String),
    #[error(
        "the backup has format {0}; this flakeboot reads format {FORMAT}: restore it with a newer flakeboot"
    )]
    NewerFormat(u32),
    #[error(
        "{0} is not empty: restore into a new state directory (stop the daemon and move the old one away first)"
    )]
    NotEmpty(PathBuf),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// The backup's first entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupManifest {
    pub format: u32,
    /// The flakeboot version that wrote it.
    pub version: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The config file's name under `config/`, when it lies outside the state directory.
    pub config_file: Option<String>,
}

/// The passphrase, when it is long enough ([`MIN_PASSPHRASE`] characters) to encrypt or
/// restore a backup with; else [`BackupError::WeakPassphrase`].
pub fn check_passphrase(passphrase: &str) -> Result<SecretString, BackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(BackupError::WeakPassphrase);
    }
    Ok(SecretString::from(passphrase.to_owned()))
}

/// Writes the encrypted backup of `store`'s state directory (and `config_file`) to `out`.
pub fn write_backup(
    store: &Store,
    config_file: Option<&Path>,
    passphrase: &str,
    out: impl Write,
) -> Result<BackupManifest, BackupError> {
    let secret = check_passphrase(passphrase)?;
    let state_dir = store.dir().to_owned();
    let outside = config_file.filter(|c| !c.starts_with(&state_dir));
    let manifest = BackupManifest {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        config_file: outside
            .and_then(|c| c.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
    };
    let encrypted = age::Encryptor::with_user_passphrase(secret)
        .wrap_output(out)
        .map_err(io_err("encrypting"))?;
    let mut tar = tar::Builder::new(encrypted);
    tar.follow_symlinks(false);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        what: MANIFEST.into(),
        source: io::Error::other(e),
    })?;
    append_bytes(&mut tar, MANIFEST, &json, 0o600)?;

    // The store first, as a consistent copy through an owner-only scratch file.
    let scratch = scratch_file(&state_dir);
    let copied = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&scratch)
            .map_err(io_err(scratch.display().to_string()))?;
        store.snapshot(&mut f)?;
        drop(f);
        let mut f = fs::File::open(&scratch).map_err(io_err(scratch.display().to_string()))?;
        tar.append_file(format!("state/{DB_FILE}"), &mut f)
            .map_err(io_err("writing the backup"))
    })();
    let _ = fs::remove_file(&scratch);
    copied?;
    append_tree(&mut tar, &state_dir, &state_dir)?;
    if let (Some(path), Some(name)) = (outside, &manifest.config_file) {
        tar.append_path_with_name(path, format!("config/{name}"))
            .map_err(io_err(path.display().to_string()))?;
    }
    let encrypted = tar.into_inner().map_err(io_err("writing the backup"))?;
    encrypted
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(io_err("writing the backup"))?;
    Ok(manifest)
}

/// A new scratch file's path in the state directory (left out of backups).
pub fn scratch_file(state_dir: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    state_dir.join(format!(".backup-{}-{n}.tmp", std::process::id()))
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), BackupError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .map_err(io_err("writing the backup"))
}

/// Appends `dir` (under `root`) as `state/...`, sorted, without what is left out.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
) -> Result<(), BackupError> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_err(dir.display().to_string()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if dir == root
            && top.as_deref().is_some_and(|t| {
                LEFT_OUT.contains(&t) || t.starts_with(DB_FILE) || t.starts_with(".backup-")
            })
        {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(io_err(path.display().to_string()))?;
        let name = Path::new("state").join(&rel);
        if kind.is_dir() {
            tar.append_dir(&name, &path)
                .map_err(io_err(path.display().to_string()))?;
            append_tree(tar, root, &path)?;
        } else if kind.is_file() || kind.is_symlink() {
            tar.append_path_with_name(&path, &name)
                .map_err(io_err(path.display().to_string()))?;
        }
        // Sockets, pipes and devices are no state.
    }
    Ok(())
}

/// What a restore put where.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: BackupManifest,
    /// Files and directories written into the state directory.
    pub entries: usize,
    /// Where the config file went, when the backup had one outside the state directory.
    pub config_file: Option<PathBuf>,
}

/// Restores the backup read from `input` into `state_dir` (absent or empty), its config file
/// (if it has one outside the state directory) to `config_out`.
pub fn restore(
    input: impl Read,
    passphrase: &str,
    state_dir: &Path,
    config_out: Option<&Path>,
) -> Result<Restored, BackupError> {
    if fs::read_dir(state_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::NotEmpty(state_dir.to_owned()));
    }
    let identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
    let decryptor =
        age::Decryptor::new(input).map_err(|e| BackupError::NotABackup(e.to_string()))?;
    let plain = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let name = state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let parent = state_dir.parent().unwrap_or(Path::new("/"));
    let work = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&work)
        .map_err(io_err(work.display().to_string()))?;
    let result = unpack(plain, &work).and_then(|(manifest, entries)| {
        // The store must open (and migrate) before anything moves into place.
        drop(Store::open(&work.join("state"))?);
        let config_file = match (&manifest.config_file, config_out) {
            (Some(name), Some(out)) => {
                let from = work.join("config").join(name);
                fs::copy(&from, out).map_err(io_err(out.display().to_string()))?;
                Some(out.to_owned())
            }
            _ => None,
        };
        move_into(&work.join("state"), state_dir)?;
        Ok(Restored {
            manifest,
            entries,
            config_file,
        })
    });
    let _ = fs::remove_dir_all(&work);
    result
}

/// Unpacks the decrypted tar into `work`: its manifest and how many entries it had.
fn unpack(plain: impl Read, work: &Path) -> Result<(BackupManifest, usize), BackupError> {
    let mut archive = tar::Archive::new(plain);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let mut entries = archive
        .entries()
        .map_err(|e| BackupError::NotABackup(e.to_string()))?;
    let mut first = entries
        .next()
        .ok_or_else(|| BackupError::NotABackup("it is empty".into()))?
        .map_err(|e| BackupError::NotABackup(e.to_string()))?;
    let first_name = first.path().map(|p| p.into_owned()).unwrap_or_default();
    if first_name != Path::new(MANIFEST) || first.size() > 64 * 1024 {
        return Err(BackupError::NotABackup(format!(
            "it does not start with {MANIFEST}"
        )));
    }
    let mut json = Vec::new();
    first
        .read_to_end(&mut json)
        .map_err(io_err("reading the backup"))?;
    let manifest: BackupManifest =
        serde_json::from_slice(&json).map_err(|e| BackupError::NotABackup(e.to_string()))?;
    if manifest.format > FORMAT {
        return Err(BackupError::NewerFormat(manifest.format));
    }
    let mut count = 0;
    for entry in entries {
        let mut entry = entry.map_err(io_err("reading the backup"))?;
        let path = entry
            .path()
            .map_err(io_err("reading the backup"))?
            .into_owned();
        let allowed = path.starts_with("state") || path.starts_with("config");
        // unpack_in refuses `..` and absolute paths; anything else outside the two trees is no
        // part of a backup this build wrote.
        if !allowed
            || !entry
                .unpack_in(work)
                .map_err(io_err(path.display().to_string()))?
        {
            return Err(BackupError::NotABackup(format!(
                "it holds {:?}, outside state/ and config/",
                path.display().to_string()
            )));
        }
        count += 1;
    }
    if !work.join("state").join(DB_FILE).is_file() {
        return Err(BackupError::NotABackup(format!(
            "it holds no state/{DB_FILE}"
        )));
    }
    Ok((manifest, count))
}

/// Moves every entry of `from` into `to` (created owner-only when absent).
fn move_into(from: &Path, to: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .map_err(io_err(to.display().to_string()))?;
    for entry in fs::read_dir(from).map_err(io_err(from.display().to_string()))? {
        let entry = entry.map_err(io_err(from.display().to_string()))?;
        let dest = to.join(entry.file_name());
        fs::rename(entry.path(), &dest).map_err(io_err(dest.display().to_string()))?;
    }
    Ok(())
}
