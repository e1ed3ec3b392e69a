//! Flake references as users type them: checked before nix ever sees them, and the default
//! name a flake gets from its URL. Pure: no I/O (whether the flake exists is nix's answer, at
//! lock time).

use std::fmt;

/// A flake reference that passed [`FlakeRef::parse`]: safe to pass to nix as one argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlakeRef {
    url: String,
    kind: FlakeRefKind,
}

/// The fetcher a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlakeRefKind {
    /// `github:owner/repo`, `gitlab:owner/repo`, `sourcehut:~owner/repo`.
    Forge,
    /// `git+https://`, `git+http://`, `git+ssh://`, `git+file://`, `git://`.
    Git,
    /// `hg+https://` and friends.
    Mercurial,
    /// `path:/abs/dir` or an absolute path.
    Path,
    /// An archive: `https://.../x.tar.gz`, `tarball+https://...`, `file+https://...`.
    Tarball,
    /// A name looked up in nix's flake registry: `flake:name`.
    Indirect,
}

/// Why a flake reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlakeRefError {
    /// Nothing given.
    #[error("the flake reference is empty: give one such as \"github:owner/repo\"")]
    Empty,
    /// Starts with `-`: nix would read it as an option.
    #[error("the flake reference {url:?} starts with '-': that is an option, not a flake")]
    LooksLikeOption {
        /// The reference as given.
        url: String,
    },
    /// Whitespace, NUL, newline or another control character.
    #[error("the flake reference {url:?} contains whitespace or a control character")]
    BadCharacter {
        /// The reference as given.
        url: String,
    },
    /// A scheme nix (or flakeboot) does not know.
    #[error(
        "the flake reference {url:?} has an unknown type {scheme:?}: use github:, gitlab:, sourcehut:, \
         git+https://, git+ssh://, git+file://, path:, hg+https:// or an https:// archive URL"
    )]
    UnknownScheme {
        /// The reference as given.
        url: String,
        /// The part before the first `:`.
        scheme: String,
    },
    /// The reference has the right type but its parts are wrong.
    #[error("the flake reference {url:?} is malformed: {reason}")]
    Malformed {
        /// The reference as given.
        url: String,
        /// What is wrong, as a sentence fragment.
        reason: &'static str,
    },
}

/// Archive suffixes nix recognises as tarballs on a plain `http(s)://` URL.
const ARCHIVE_SUFFIXES: [&str; 8] = [
    ".tar.gz",
    ".tgz",
    ".tar.xz",
    ".tar.bz2",
    ".tar.zst",
    ".tar",
    ".zip",
    ".tar.zstd",
];

impl FlakeRef {
    /// Check a reference. Leading and trailing whitespace is ignored.
    pub fn parse(input: &str) -> Result<FlakeRef, FlakeRefError> {
        let url = input.trim();
        let malformed = |reason| FlakeRefError::Malformed {
            url: url.to_owned(),
            reason,
        };
        if url.is_empty() {
            return Err(FlakeRefError::Empty);
        }
        if url.starts_with('-') {
            return Err(FlakeRefError::LooksLikeOption { url: url.into() });
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FlakeRefError::BadCharacter { url: url.into() });
        }
        if url.starts_with('/') {
            return Ok(FlakeRef::new(url, FlakeRefKind::Path));
        }
        if url.starts_with('.') {
            return Err(malformed(
                "a relative path depends on the daemon's working directory: use path:/absolute/dir",
            ));
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(malformed(
                "it has no type: write e.g. \"github:owner/repo\" or \"flake:name\"",
            ));
        };
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let kind = match scheme {
            "github" | "gitlab" | "sourcehut" => {
                let mut parts = path.split('/');
                let owner = parts.next().unwrap_or_default();
                let repo = parts.next().unwrap_or_default();
                if owner.is_empty() || repo.is_empty() || path.starts_with("//") {
                    return Err(malformed(
                        "it needs an owner and a repository: github:owner/repo",
                    ));
                }
                FlakeRefKind::Forge
            }
            "git+https" | "git+http" | "git+ssh" | "git" | "hg+https" | "hg+http" | "hg+ssh" => {
                let Some(authority) = path.strip_prefix("//") else {
                    return Err(malformed("it needs \"//host/path\" after the type"));
                };
                let host = authority.split('/').next().unwrap_or_default();
                if host.is_empty() || authority.len() <= host.len() + 1 {
                    return Err(malformed("it needs a host and a repository path"));
                }
                if scheme.starts_with("hg") {
                    FlakeRefKind::Mercurial
                } else {
                    FlakeRefKind::Git
                }
            }
            "git+file" | "hg+file" => {
                if !path.starts_with("///") || path.len() <= 3 {
                    return Err(malformed("it needs an absolute path: git+file:///srv/repo"));
                }
                if scheme.starts_with("hg") {
                    FlakeRefKind::Mercurial
                } else {
                    FlakeRefKind::Git
                }
            }
            "path" => {
                if !path.starts_with('/') {
                    return Err(malformed("it needs an absolute path: path:/srv/flake"));
                }
                FlakeRefKind::Path
            }
            "https" | "http" | "file" => {
                if !ARCHIVE_SUFFIXES.iter().any(|s| path.ends_with(s)) {
                    return Err(malformed(
                        "a plain URL must name an archive (.tar.gz, .tar.xz, .zip, ...): \
                         use tarball+https:// or git+https:// for anything else",
                    ));
                }
                FlakeRefKind::Tarball
            }
            "tarball+https" | "tarball+http" | "tarball+file" | "file+https" | "file+http"
            | "file+file" => {
                if !path.starts_with("//") || path.len() <= 2 {
                    return Err(malformed("it needs \"//host/path\" after the type"));
                }
                FlakeRefKind::Tarball
            }
            "flake" => {
                if path.is_empty() {
                    return Err(malformed("it needs a registry name: flake:name"));
                }
                FlakeRefKind::Indirect
            }
            other => {
                return Err(FlakeRefError::UnknownScheme {
                    url: url.into(),
                    scheme: other.into(),
                });
            }
        };
        Ok(FlakeRef::new(url, kind))
    }

    fn new(url: &str, kind: FlakeRefKind) -> FlakeRef {
        FlakeRef {
            url: url.to_owned(),
            kind,
        }
    }

    /// The reference, as nix gets it.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Which fetcher it names.
    pub fn kind(&self) -> FlakeRefKind {
        self.kind
    }

    /// The name a flake gets when the user gives none: the repository, directory or archive
    /// name, restricted to letters, digits, `-` and `_` (e.g. `github:acme/lab-fleet` ->
    /// `lab-fleet`, `git+https://host/x/fleet.git?ref=main` -> `fleet`).
    pub fn default_name(&self) -> String {
        let without_query = self.url.split(['?', '#']).next().unwrap_or_default();
        let after_scheme = match self.kind {
            FlakeRefKind::Path if without_query.starts_with('/') => without_query,
            _ => without_query
                .split_once(':')
                .map_or(without_query, |(_, rest)| rest),
        };
        let segments: Vec<&str> = after_scheme.split('/').filter(|s| !s.is_empty()).collect();
        let candidate = match self.kind {
            // github:owner/repo/ref: the repository, not the ref.
            FlakeRefKind::Forge => segments.get(1).copied(),
            _ => segments.last().copied(),
        }
        .unwrap_or_default();
        let mut name = candidate.trim_start_matches('~');
        for suffix in ARCHIVE_SUFFIXES.iter().chain([".git"].iter()) {
            if let Some(stripped) = name.strip_suffix(suffix) {
                name = stripped;
                break;
            }
        }
        let cleaned: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let cleaned = cleaned.trim_matches('-');
        if cleaned.is_empty() {
            "flake".to_owned()
        } else {
            cleaned.to_owned()
        }
    }
}

impl fmt::Display for FlakeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_kind_nix_knows() {
        for (url, kind) in [
            ("github:NixOS/nixpkgs", FlakeRefKind::Forge),
            ("github:acme/fleet/v1.2?dir=hosts", FlakeRefKind::Forge),
            ("gitlab:acme/fleet", FlakeRefKind::Forge),
            ("sourcehut:~acme/fleet", FlakeRefKind::Forge),
            (
                "git+https://git.example.org/acme/fleet.git?ref=main",
                FlakeRefKind::Git,
            ),
            ("git+ssh://git@example.org/acme/fleet", FlakeRefKind::Git),
            ("git+file:///srv/fleet", FlakeRefKind::Git),
            ("git://example.org/fleet", FlakeRefKind::Git),
            ("hg+https://example.org/fleet", FlakeRefKind::Mercurial),
            ("path:/srv/fleet", FlakeRefKind::Path),
            ("/srv/fleet", FlakeRefKind::Path),
            (
                "https://example.org/fleet/archive/main.tar.gz",
                FlakeRefKind::Tarball,
            ),
            (
                "tarball+https://example.org/fleet/latest",
                FlakeRefKind::Tarball,
            ),
            (
                "file+https://example.org/flake.nix.zip",
                FlakeRefKind::Tarball,
            ),
            ("flake:fleet", FlakeRefKind::Indirect),
        ] {
            let r = FlakeRef::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(r.kind(), kind, "{url}");
            assert_eq!(r.as_str(), url);
        }
    }

    #[test]
    fn refuses_options_and_control_characters() {
        assert_eq!(FlakeRef::parse("  "), Err(FlakeRefError::Empty));
        assert!(matches!(
            FlakeRef::parse("--impure"),
            Err(FlakeRefError::LooksLikeOption { .. })
        ));
        for bad in [
            "github:a/b\n",
            "github:a/b\0",
            "github:a b/c",
            "path:/x\r/y",
        ] {
            let err = FlakeRef::parse(&format!("{bad}x")).unwrap_err();
            assert!(
                matches!(err, FlakeRefError::BadCharacter { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn malformed_references_say_what_is_missing() {
        for (url, needle) in [
            ("github:acme", "owner and a repository"),
            ("github:/fleet", "owner and a repository"),
            ("git+https:example.org/x", "//host/path"),
            ("git+https://example.org", "host and a repository"),
            ("git+file://relative", "absolute path"),
            ("path:relative/dir", "absolute path"),
            ("./fleet", "relative path"),
            ("https://example.org/fleet", "archive"),
            ("fleet", "no type"),
            ("flake:", "registry name"),
        ] {
            let err = FlakeRef::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
        let err = FlakeRef::parse("ftp://x/y.tar.gz").unwrap_err();
        assert!(matches!(err, FlakeRefError::UnknownScheme { ref scheme, .. } if scheme == "ftp"));
        assert!(err.to_string().contains("github:"), "{err}");
    }

    #[test]
    fn default_names_come_from_the_repository_or_directory() {
        for (url, name) in [
            ("github:acme/lab-fleet", "lab-fleet"),
            ("github:acme/lab-fleet/main?dir=hosts", "lab-fleet"),
            ("sourcehut:~acme/fleet", "fleet"),
            ("git+https://example.org/acme/fleet.git?ref=main", "fleet"),
            ("git+file:///tmp/flakeboot-test.1234/repo", "repo"),
            ("path:/srv/my.flake/", "my-flake"),
            ("/srv/hosts", "hosts"),
            (
                "https://example.org/fleet/archive/fleet-main.tar.gz",
                "fleet-main",
            ),
            ("flake:fleet", "fleet"),
            ("path:/", "flake"),
        ] {
            assert_eq!(FlakeRef::parse(url).unwrap().default_name(), name, "{url}");
        }
    }
}
