//! Access tokens for private GitHub/GitLab flakes, for the frontends: set, replaced and removed
//! from the UI, API or CLI (kept by [`flakeboot_nix::TokenFile`] in the owner-only state
//! directory), listed with those of `[nix] access_tokens_file`, which stay the file's. A token
//! is never shown again once saved: the listing carries hosts only. The next nix run uses them.

use std::path::{Path, PathBuf};

use flakeboot_nix::conf::read_access_tokens;
use flakeboot_nix::{ConfError, TokenError, TokenFile};

use crate::wire::{AccessToken, AccessTokenSource};

/// Why a token could not be listed, saved or removed.
#[derive(Debug, thiserror::Error)]
pub enum AccessTokenError {
    /// The host or token is not acceptable (the message says why; it never holds the token).
    #[error("{0}")]
    Invalid(String),
    /// The host's token is in the config file: it is changed there.
    #[error(
        "the token for {host} comes from the config file's [nix] access_tokens_file {}: change or remove it there",
        file.display()
    )]
    InConfigFile {
        /// The host.
        host: String,
        /// The tokens file the config names.
        file: PathBuf,
    },
    /// No token for this host was set here.
    #[error("no access token for {0}")]
    NotFound(String),
    /// A tokens file could not be read or written.
    #[error(transparent)]
    File(#[from] ConfError),
}

impl From<TokenError> for AccessTokenError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::File(e) => AccessTokenError::File(e),
            e @ (TokenError::BadHost(_) | TokenError::BadToken | TokenError::TooMany) => {
                AccessTokenError::Invalid(e.to_string())
            }
        }
    }
}

/// The access tokens nix gets: those set here and the config file's.
#[derive(Debug)]
pub struct AccessTokens {
    managed: TokenFile,
    config_file: Option<PathBuf>,
}

impl AccessTokens {
    /// Tokens set here live under `state_dir`; `config_file` is `[nix] access_tokens_file`.
    pub fn new(state_dir: &Path, config_file: Option<PathBuf>) -> AccessTokens {
        AccessTokens {
            managed: TokenFile::under(state_dir),
            config_file,
        }
    }

    /// The config file's hosts (none without one).
    fn config_hosts(&self) -> Result<Vec<String>, AccessTokenError> {
        Ok(match &self.config_file {
            Some(file) => read_access_tokens(file)?
                .into_iter()
                .map(|(host, _)| host)
                .collect(),
            None => Vec::new(),
        })
    }

    /// Every host with a token and where it comes from, sorted by host (the config file's first
    /// for a host in both: it is the one nix gets).
    pub fn list(&self) -> Result<Vec<AccessToken>, AccessTokenError> {
        let from_file = self.config_hosts()?;
        let mut all: Vec<AccessToken> = from_file
            .iter()
            .map(|host| AccessToken {
                host: host.clone(),
                source: AccessTokenSource::ConfigFile,
            })
            .collect();
        for host in self.managed.hosts()? {
            if !from_file.contains(&host) {
                all.push(AccessToken {
                    host,
                    source: AccessTokenSource::Appliance,
                });
            }
        }
        all.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(all)
    }

    /// Saves (or replaces) `host`'s token; a host of the config file's is refused.
    pub fn set(&self, host: &str, token: &str) -> Result<(), AccessTokenError> {
        self.refuse_config_host(host)?;
        Ok(self.managed.set(host, token)?)
    }

    /// Removes `host`'s token.
    pub fn remove(&self, host: &str) -> Result<(), AccessTokenError> {
        if self.managed.remove(host)? {
            return Ok(());
        }
        self.refuse_config_host(host)?;
        Err(AccessTokenError::NotFound(host.to_owned()))
    }

    fn refuse_config_host(&self, host: &str) -> Result<(), AccessTokenError> {
        if let Some(file) = &self.config_file
            && self.config_hosts()?.iter().any(|h| h == host)
        {
            return Err(AccessTokenError::InConfigFile {
                host: host.to_owned(),
                file: file.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn with_config_file() -> (tempfile::TempDir, AccessTokens) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("forge-tokens");
        std::fs::write(&file, "github.com=ghp_file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tokens = AccessTokens::new(&dir.path().join("state"), Some(file));
        (dir, tokens)
    }

    #[test]
    fn the_listing_names_hosts_and_their_source_never_a_token() {
        let (_dir, tokens) = with_config_file();
        tokens.set("gitlab.com", "PAT:glpat_secret").unwrap();
        let list = tokens.list().unwrap();
        assert_eq!(
            list,
            vec![
                AccessToken {
                    host: "github.com".into(),
                    source: AccessTokenSource::ConfigFile
                },
                AccessToken {
                    host: "gitlab.com".into(),
                    source: AccessTokenSource::Appliance
                },
            ]
        );
        let json = serde_json::to_string(&list).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("ghp_file"),
            "{json}"
        );
        assert!(json.contains(r#""source":"config-file""#), "{json}");
    }

    #[test]
    fn the_config_files_hosts_are_changed_there_only() {
        let (_dir, tokens) = with_config_file();
        for result in [
            tokens.set("github.com", "ghp_other"),
            tokens.remove("github.com"),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, AccessTokenError::InConfigFile { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("forge-tokens"), "{err}");
        }
        assert!(matches!(
            tokens.remove("gitlab.com"),
            Err(AccessTokenError::NotFound(_))
        ));
        let err = tokens.set("gitlab.com", "two words").unwrap_err();
        assert!(matches!(err, AccessTokenError::Invalid(_)));
        assert!(!err.to_string().contains("two words"));
    }
}
