//! nix's own files on the appliance, under `<state>/nix/` (owner-only, on the data partition):
//! - `nix.conf`: every `[nix]` setting, written before each nix run and handed to nix with
//!   `NIX_USER_CONF_FILES` (so settings and secrets never appear on a command line);
//! - `home/` and `cache/`: nix's `HOME` and `XDG_CACHE_HOME` (the fetcher and eval caches).
//!
//! Access tokens for private GitHub/GitLab flakes come from `[nix] access_tokens_file`, a file the
//! owner alone may read (`github.com=ghp_...`, one host a line, `#` comments), and from
//! `access-tokens` here, set from the UI, API or CLI ([`crate::tokens`]); for a host in both, the
//! config file's wins. They go into `nix.conf` (mode 0600) and nowhere else: never an argument,
//! never a log line.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where nix's files live: `<state>/nix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixFiles {
    dir: PathBuf,
}

/// Why nix's configuration could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A setting's key or value would break the file (a newline, or `=` in a key).
    #[error("[nix] setting {key:?} cannot be written to nix.conf: {why}")]
    BadSetting {
        /// The setting.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The access token file could not be read.
    #[error("[nix] access_tokens_file {}: {source}", path.display())]
    TokensUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read the access token file.
    #[error(
        "[nix] access_tokens_file {} is readable by others (mode {mode:o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TokensExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line of the access token file is not `host=token`.
    #[error(
        "[nix] access_tokens_file {} line {line}: expected `host=token` (e.g. github.com=ghp_...)",
        path.display()
    )]
    TokensSyntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// Writing the files failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl NixFiles {
    /// nix's files under the state directory.
    pub fn under(state_dir: &Path) -> NixFiles {
        NixFiles {
            dir: state_dir.join("nix"),
        }
    }

    /// `<state>/nix/nix.conf`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("nix.conf")
    }

    /// The access tokens set from the UI, API or CLI (`<state>/nix/access-tokens`).
    pub fn tokens(&self) -> crate::tokens::TokenFile {
        crate::tokens::TokenFile::at(self.dir.join("access-tokens"))
    }

    /// nix's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// nix's `XDG_CACHE_HOME`.
    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// Write `nix.conf` (0600, replaced atomically) and make `home/` and `cache/` (0700).
    pub fn write(&self, content: &str) -> Result<(), ConfError> {
        for dir in [&self.dir, &self.home(), &self.cache()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| ConfError::Write {
                    path: dir.clone(),
                    source,
                })?;
        }
        let conf = self.conf();
        // One temporary file per process and thread: concurrent nix runs never share one.
        let tmp = self.dir.join(format!(
            ".nix.conf.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &conf)
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            ConfError::Write { path: conf, source }
        })
    }
}

/// `nix.conf`'s text: one `key = value` line per setting, in order (later lines win in nix),
/// then `access-tokens`.
pub fn render(
    options: &[(String, String)],
    access_tokens: &[(String, String)],
) -> Result<String, ConfError> {
    let mut out = String::from("# Written by flakeboot from [nix] before each nix run.\n");
    for (key, value) in options {
        check(key, value)?;
        let _ = writeln!(out, "{key} = {value}");
    }
    if !access_tokens.is_empty() {
        let tokens: Vec<String> = access_tokens
            .iter()
            .map(|(host, token)| format!("{host}={token}"))
            .collect();
        let _ = writeln!(out, "access-tokens = {}", tokens.join(" "));
    }
    Ok(out)
}

fn check(key: &str, value: &str) -> Result<(), ConfError> {
    let bad = |why| {
        Err(ConfError::BadSetting {
            key: key.to_owned(),
            why,
        })
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return bad("a nix setting name has only letters, digits and '-'");
    }
    if value.chars().any(char::is_control) {
        return bad("the value has a newline or another control character");
    }
    Ok(())
}

/// The tokens in `path` (`host=token` a line; blank lines and `#` comments skipped). The file
/// must not be readable by group or others.
pub fn read_access_tokens(path: &Path) -> Result<Vec<(String, String)>, ConfError> {
    let unreadable = |source| ConfError::TokensUnreadable {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(unreadable)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfError::TokensExposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(unreadable)?;
    parse_tokens(&text).map_err(|line| ConfError::TokensSyntax {
        path: path.to_owned(),
        line,
    })
}

/// Parse `host=token` lines; `Err(line)` names the first bad line (1-based).
fn parse_tokens(text: &str) -> Result<Vec<(String, String)>, usize> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (host, token) = line.split_once('=').ok_or(i + 1)?;
        let (host, token) = (host.trim(), token.trim());
        if !crate::tokens::host_ok(host) || !crate::tokens::token_ok(token) {
            return Err(i + 1);
        }
        tokens.push((host.to_owned(), token.to_owned()));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_tokens_render_as_lines() {
        let text = render(
            &[
                ("substituters".into(), "https://a https://b".into()),
                ("max-jobs".into(), "2".into()),
            ],
            &[
                ("github.com".into(), "ghp_x".into()),
                ("gitlab.com".into(), "PAT:y".into()),
            ],
        )
        .unwrap();
        assert!(text.contains("\nsubstituters = https://a https://b\nmax-jobs = 2\n"));
        assert!(text.ends_with("access-tokens = github.com=ghp_x gitlab.com=PAT:y\n"));
    }

    #[test]
    fn a_setting_cannot_add_lines() {
        for (k, v) in [
            ("sandbox", "false\nbuild-hook = /tmp/evil"),
            ("a b", "1"),
            ("x=y", "1"),
            ("", "1"),
        ] {
            assert!(
                matches!(
                    render(&[(k.into(), v.into())], &[]),
                    Err(ConfError::BadSetting { .. })
                ),
                "{k:?} = {v:?}"
            );
        }
    }

    #[test]
    fn token_lines_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_tokens("# forge tokens\n\ngithub.com = ghp_1\ngitlab.example.org=PAT:2\n"),
            Ok(vec![
                ("github.com".into(), "ghp_1".into()),
                ("gitlab.example.org".into(), "PAT:2".into())
            ])
        );
        assert_eq!(parse_tokens("github.com=a\nno token here\n"), Err(2));
        assert_eq!(parse_tokens("github.com=a b\n"), Err(1));
        assert_eq!(parse_tokens("=x\n"), Err(1));
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        fs::write(&path, "github.com=ghp_secret\n").unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let err = read_access_tokens(&path).unwrap_err();
        assert!(matches!(err, ConfError::TokensExposed { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"));
        assert!(!err.to_string().contains("ghp_secret"));
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(
            read_access_tokens(&path).unwrap(),
            vec![("github.com".into(), "ghp_secret".into())]
        );
    }

    #[test]
    fn the_conf_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = NixFiles::under(dir.path());
        files.write("max-jobs = 1\n").unwrap();
        files.write("max-jobs = 2\n").unwrap();
        let meta = fs::metadata(files.conf()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(files.conf()).unwrap(), "max-jobs = 2\n");
        for d in [files.home(), files.cache(), dir.path().join("nix")] {
            assert_eq!(fs::metadata(d).unwrap().mode() & 0o777, 0o700);
        }
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("nix")).unwrap().count(), 3);
    }
}
