//! The appliance's SSH deploy key, for private flakes over `git+ssh://`.
//!
//! One ed25519 key pair in `<state>/ssh/` (directory 0700): `deploy_key` (OpenSSH private key,
//! 0600, written atomically, tightened with a warning when found looser) is made on first start
//! and kept; the user adds its public half to the forge as a read-only deploy key. Nix's git
//! runs ssh with it ([`crate::git_ssh`]).
//!
//! The private key never reaches a log, a `Debug` output, an argument list or the Nix store.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};

/// The folder under the state directory.
pub const SSH_DIR: &str = "ssh";
/// The private key's file name.
pub const KEY_FILE: &str = "deploy_key";
/// The host keys ssh has seen (trust on first use).
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// `[nix] ssh_known_hosts`: when set, the only host keys trusted.
pub const PINNED_FILE: &str = "known_hosts.pinned";

/// The deploy key's public half, as the UI, API and CLI show it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeployKey {
    /// `ssh-ed25519 AAAA... flakeboot@host`: a line for `authorized_keys` or a forge.
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` and forges show it.
    pub fingerprint: String,
    /// The private key's file.
    pub key_file: PathBuf,
}

impl fmt::Debug for DeployKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployKey")
            .field("fingerprint", &self.fingerprint)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Why the deploy key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum DeployKeyError {
    /// Reading, writing or making a file or directory failed.
    #[error("deploy key: {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not a usable OpenSSH ed25519 private key.
    #[error(
        "the SSH deploy key {} is not an unencrypted OpenSSH ed25519 private key ({why}): move \
         it away and restart flakeboot to make a new one, then replace the deploy key in your \
         forge with the new public key",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key's bytes).
        why: String,
    },
    /// Making a new key failed.
    #[error("making an SSH deploy key: {0}")]
    Generate(String),
    /// The state directory's path would need quoting in `GIT_SSH_COMMAND`.
    #[error(
        "the state directory {} has characters git's ssh command line would need quoted \
         (only letters, digits and / . _ + - are used): git+ssh:// flakes cannot use the \
         deploy key; choose a plainer state_dir",
        path.display()
    )]
    UnsafePath {
        /// The state directory.
        path: PathBuf,
    },
}

/// `<state>/ssh`.
pub fn ssh_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(SSH_DIR)
}

/// Loads `<state>/ssh/deploy_key`, or makes a new ed25519 key there with `comment`
/// (`flakeboot@<hostname>`). The directory is made 0700 and the file 0600; looser permissions
/// of an existing one are tightened with a warning.
pub fn load_or_create(state_dir: &Path, comment: &str) -> Result<DeployKey, DeployKeyError> {
    let dir = ssh_dir(state_dir);
    fs_err(&dir, || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
    })?;
    restrict(&dir, 0o700)?;
    let path = dir.join(KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => {
            restrict(&path, 0o600)?;
            parse(&path, &text)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate(comment)?;
            write_private(&dir, &path, &key)?;
            let made = describe(&key, &path)?;
            tracing::info!(
                file = %path.display(), fingerprint = %made.fingerprint,
                "made the SSH deploy key for git+ssh:// flakes"
            );
            return Ok(made);
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(DeployKeyError::Corrupt {
                path,
                why: "not text".into(),
            });
        }
        Err(source) => return Err(DeployKeyError::Io { path, source }),
    };
    describe(&key, &path)
}

fn generate(comment: &str) -> Result<PrivateKey, DeployKeyError> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| DeployKeyError::Generate(e.to_string()))?;
    key.set_comment(comment);
    Ok(key)
}

fn parse(path: &Path, text: &str) -> Result<PrivateKey, DeployKeyError> {
    let corrupt = |why: String| DeployKeyError::Corrupt {
        path: path.to_owned(),
        why,
    };
    let key = PrivateKey::from_openssh(text).map_err(|e| corrupt(e.to_string()))?;
    if key.is_encrypted() {
        return Err(corrupt("it is encrypted".into()));
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(corrupt(format!("it is {}", key.algorithm())));
    }
    Ok(key)
}

fn describe(key: &PrivateKey, path: &Path) -> Result<DeployKey, DeployKeyError> {
    let public_key = key
        .public_key()
        .to_openssh()
        .map_err(|e| DeployKeyError::Corrupt {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    Ok(DeployKey {
        public_key,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        key_file: path.to_owned(),
    })
}

/// Writes the private key atomically (a temporary file made 0600, fsync, rename).
fn write_private(dir: &Path, path: &Path, key: &PrivateKey) -> Result<(), DeployKeyError> {
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| DeployKeyError::Generate(e.to_string()))?;
    let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
    fs_err(&tmp, || {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })?;
    fs_err(path, || std::fs::rename(&tmp, path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Takes away permissions of `path` beyond `mode`, with a warning.
fn restrict(path: &Path, mode: u32) -> Result<(), DeployKeyError> {
    let meta = fs_err(path, || std::fs::metadata(path))?;
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return Ok(());
    }
    fs_err(path, || {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    })?;
    tracing::warn!(
        path = %path.display(),
        was = format_args!("{current:04o}"),
        now = format_args!("{mode:04o}"),
        "SSH deploy key was readable by others: permissions tightened"
    );
    Ok(())
}

fn fs_err<T>(path: &Path, f: impl FnOnce() -> std::io::Result<T>) -> Result<T, DeployKeyError> {
    f().map_err(|source| DeployKeyError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_made_owner_only_and_kept_across_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let first = load_or_create(tmp.path(), "flakeboot@box").unwrap();
        let dir = tmp.path().join(SSH_DIR);
        let file = dir.join(KEY_FILE);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(
            first.public_key.starts_with("ssh-ed25519 AAAA"),
            "{first:?}"
        );
        assert!(first.public_key.ends_with(" flakeboot@box"));
        assert!(first.fingerprint.starts_with("SHA256:"));
        assert_eq!(first.key_file, file);
        // The next start (another hostname by then) loads the same key and comment.
        let second = load_or_create(tmp.path(), "flakeboot@renamed").unwrap();
        assert_eq!(first, second);
        assert!(!dir.join(".deploy_key.tmp").exists());
        // Loosened permissions are tightened again.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(load_or_create(tmp.path(), "x").unwrap(), first);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn the_key_is_one_ssh_keygen_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let key = load_or_create(tmp.path(), "flakeboot@box").unwrap();
        let Ok(out) = std::process::Command::new("ssh-keygen")
            .args(["-y", "-f"])
            .arg(&key.key_file)
            .output()
        else {
            eprintln!("ssh-keygen is not installed: skipped");
            return;
        };
        assert!(out.status.success(), "{out:?}");
        let derived = String::from_utf8(out.stdout).unwrap();
        let b64 = |line: &str| line.split_whitespace().nth(1).unwrap().to_owned();
        assert_eq!(b64(&derived), b64(&key.public_key));
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&key.key_file)
            .output()
            .unwrap();
        let listed = String::from_utf8(out.stdout).unwrap();
        assert!(listed.contains(&key.fingerprint), "{listed}");
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it_and_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(SSH_DIR);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(KEY_FILE);
        for bad in [&b"nonsense"[..], b"", &[0xff, 0xfe, 0x00][..]] {
            std::fs::write(&file, bad).unwrap();
            let err = load_or_create(tmp.path(), "x").unwrap_err();
            assert!(matches!(err, DeployKeyError::Corrupt { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(&file.display().to_string()), "{text}");
            assert!(
                text.contains("move it away and restart flakeboot"),
                "{text}"
            );
        }
        // Never replaced behind the user's back: the forge holds its public half.
        assert_eq!(std::fs::read(&file).unwrap(), [0xff, 0xfe, 0x00]);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let tmp = tempfile::tempdir().unwrap();
        let key = load_or_create(tmp.path(), "c").unwrap();
        let private = std::fs::read_to_string(&key.key_file).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.fingerprint));
        for line in private.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!shown.contains(line), "{shown}");
        }
    }
}
