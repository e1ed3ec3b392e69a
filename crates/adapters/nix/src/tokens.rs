//! Access tokens for private GitHub/GitLab flakes set from the UI, API or CLI: kept in
//! `<state>/nix/access-tokens` (mode 0600, `host=token` a line, replaced atomically), beside the
//! ones an admin may keep in `[nix] access_tokens_file`. Before each nix run both go into the
//! owner-only `nix.conf` ([`crate::command::NixSettings::write_files`]); nothing else ever
//! holds a token: the listing gives hosts only, and no error or log line carries one.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::conf::{ConfError, read_access_tokens};

/// The most tokens kept (one per forge host; a handful in practice).
pub const MAX_TOKENS: usize = 64;

/// The longest token accepted (GitHub's fine-grained tokens are under 100 characters).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The longest host accepted (a DNS name, perhaps with a port).
pub const MAX_HOST_LEN: usize = 253;

/// Why a token could not be listed, saved or removed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The host is not a forge host name.
    #[error(
        "{0:?} is not a host name: use the forge's host, e.g. github.com or gitlab.example.org:8443"
    )]
    BadHost(String),
    /// The token is empty, too long or has a space or control character.
    #[error(
        "the token must be 1 to {MAX_TOKEN_LEN} characters without spaces (GitLab: PAT:glpat-...)"
    )]
    BadToken,
    /// Too many hosts already have a token.
    #[error("at most {MAX_TOKENS} hosts can have an access token: remove one first")]
    TooMany,
    /// The file could not be read or written.
    #[error(transparent)]
    File(#[from] ConfError),
}

/// Whether `host` can name a forge in `access-tokens` (`github.com`, `gitlab.example.org:8443`,
/// or a path prefix such as `github.com/org`, as nix allows).
pub fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '/'))
        && !host.starts_with(['.', '-', '/', ':'])
}

/// Whether `token` can be written to `access-tokens` (one word, printable).
pub fn token_ok(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && !token.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The tokens file flakeboot manages: `<state>/nix/access-tokens`.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// Saves and removals are read-modify-write: one at a time.
    lock: Mutex<()>,
}

impl TokenFile {
    /// The file under the state directory.
    pub fn under(state_dir: &Path) -> TokenFile {
        TokenFile::at(state_dir.join("nix").join("access-tokens"))
    }

    /// The file at `path`.
    pub(crate) fn at(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every `(host, token)` in it (none when the file does not exist yet).
    pub fn read(&self) -> Result<Vec<(String, String)>, ConfError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        read_access_tokens(&self.path)
    }

    /// The hosts that have a token, sorted.
    pub fn hosts(&self) -> Result<Vec<String>, TokenError> {
        let mut hosts: Vec<String> = self.read()?.into_iter().map(|(h, _)| h).collect();
        hosts.sort();
        Ok(hosts)
    }

    /// Saves `token` for `host` (replacing the one it had).
    pub fn set(&self, host: &str, token: &str) -> Result<(), TokenError> {
        if !host_ok(host) {
            return Err(TokenError::BadHost(host.to_owned()));
        }
        if !token_ok(token) {
            return Err(TokenError::BadToken);
        }
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut tokens = self.read()?;
        tokens.retain(|(h, _)| h != host);
        if tokens.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        tokens.push((host.to_owned(), token.to_owned()));
        tokens.sort();
        self.write(&tokens)
    }

    /// Removes `host`'s token; `false` when it had none.
    pub fn remove(&self, host: &str) -> Result<bool, TokenError> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut tokens = self.read()?;
        let before = tokens.len();
        tokens.retain(|(h, _)| h != host);
        if tokens.len() == before {
            return Ok(false);
        }
        self.write(&tokens)?;
        Ok(true)
    }

    /// Replaces the file (0600, fsynced, renamed into place).
    fn write(&self, tokens: &[(String, String)]) -> Result<(), TokenError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(".access-tokens.tmp");
        let write = || -> std::io::Result<()> {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = String::from("# flakeboot: access tokens set from the UI, API or CLI\n");
            for (host, token) in tokens {
                text.push_str(host);
                text.push('=');
                text.push_str(token);
                text.push('\n');
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            TokenError::File(ConfError::Write {
                path: self.path.clone(),
                source,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn tokens_are_saved_owner_only_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::under(dir.path());
        assert!(file.hosts().unwrap().is_empty());
        file.set("github.com", "ghp_one").unwrap();
        file.set("gitlab.example.org:8443", "PAT:glpat-two")
            .unwrap();
        file.set("github.com", "ghp_three").unwrap();
        assert_eq!(
            file.read().unwrap(),
            vec![
                ("github.com".into(), "ghp_three".into()),
                ("gitlab.example.org:8443".into(), "PAT:glpat-two".into()),
            ]
        );
        assert_eq!(fs::metadata(file.path()).unwrap().mode() & 0o777, 0o600);
        assert!(file.remove("github.com").unwrap());
        assert!(!file.remove("github.com").unwrap());
        assert_eq!(file.hosts().unwrap(), vec!["gitlab.example.org:8443"]);
    }

    #[test]
    fn bad_hosts_and_tokens_are_refused_without_echoing_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::under(dir.path());
        for host in [
            "",
            "github.com\nx",
            "a=b",
            "-x",
            "git hub",
            &"h".repeat(300),
        ] {
            assert!(
                matches!(file.set(host, "t"), Err(TokenError::BadHost(_))),
                "{host:?}"
            );
        }
        for token in ["", "two words", "new\nline", &"t".repeat(MAX_TOKEN_LEN + 1)] {
            let err = file.set("github.com", token).unwrap_err();
            assert!(matches!(err, TokenError::BadToken), "{token:?}");
            assert!(token.is_empty() || !err.to_string().contains(token));
        }
        assert!(!file.path().exists());
    }

    #[test]
    fn the_number_of_hosts_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::under(dir.path());
        for i in 0..MAX_TOKENS {
            file.set(&format!("host{i}.example"), "t").unwrap();
        }
        assert!(matches!(
            file.set("one-more.example", "t"),
            Err(TokenError::TooMany)
        ));
        // Replacing one that exists is still fine.
        file.set("host0.example", "t2").unwrap();
    }
}
