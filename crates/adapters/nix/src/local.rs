//! Local flake sources: which directories of this machine nix may copy into its store.
//!
//! A local flake reference (`path:/dir`, a bare `/dir`, `git+file:///repo`, `hg+file://`, and
//! the `file` fetchers of archives) makes nix copy that directory (or file) into `/nix/store`,
//! where every local user can read it, and any binary cache this appliance serves would publish
//! it. So a local flake must lie under a directory listed in `[nix] allowed_paths`, judged after
//! symlinks and `..` are resolved, and may never be (or hold) `/etc` or the state directory
//! (TLS and WireGuard keys, the database), even when listed. Other references (`github:`,
//! `git+https://`, archives over HTTPS, ...) are not local and not judged here.
//!
//! [`LocalSources::check`] is called wherever a flake URL is saved or used: config load (the
//! daemon and `check-config`), `Flakes::add` (the API, the web UI and config sync), re-locking
//! and building. nix is handed [`LocalSources::resolve`]'s reference, whose path is the one
//! judged (no symlink, no `..`): a symlink on the given path swapped after the check cannot send
//! nix elsewhere. Not closed: someone who can write inside an allowed directory replacing a
//! real directory of the resolved path by a symlink between the check and nix's read (nix opens
//! the path itself and follows symlinks); the lock then pins what was read.

use std::path::{Path, PathBuf};

use flakeboot_config::{Config, FlakeConfig, NEVER_FLAKE_SOURCES};

use crate::flakeref::{FlakeRef, FlakeRefKind};

/// Why a local flake reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalSourceError {
    /// Not under any directory of `[nix] allowed_paths`.
    #[error(
        "{url} is not under [nix] allowed_paths; add its directory there to build local flakes"
    )]
    NotAllowed {
        /// The reference as given.
        url: String,
        /// The directory it names, symlinks resolved.
        path: PathBuf,
    },
    /// It is, or is inside, or holds a directory flakes are never built from.
    #[error(
        "{url} is refused: flakes are never built from {} ({what}), nor from a directory \
         inside or around it, even one under [nix] allowed_paths",
        never.display()
    )]
    Never {
        /// The reference as given.
        url: String,
        /// The directory it names, symlinks resolved.
        path: PathBuf,
        /// The directory it touches.
        never: PathBuf,
        /// What that directory holds.
        what: &'static str,
    },
    /// The directory does not exist.
    #[error("{url}: {} does not exist", path.display())]
    Missing {
        /// The reference as given.
        url: String,
        /// The path it names.
        path: PathBuf,
    },
    /// The path cannot be resolved (permissions, a symlink loop, ...).
    #[error("{url}: cannot resolve {}: {reason}", path.display())]
    Unresolvable {
        /// The reference as given.
        url: String,
        /// The path it names.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The path part is not a plain absolute path (bad percent-encoding, a remote host).
    #[error("{url}: {reason}")]
    BadPath {
        /// The reference as given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The directories local flakes may come from, and those they never may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSources {
    allowed: Vec<PathBuf>,
    never: Vec<(PathBuf, &'static str)>,
}

impl LocalSources {
    /// `allowed`: `[nix] allowed_paths`; `state_dir`: the daemon's state directory (never a
    /// source, nor `/etc`).
    pub fn new(allowed: &[PathBuf], state_dir: &Path) -> LocalSources {
        let mut never: Vec<(PathBuf, &'static str)> = NEVER_FLAKE_SOURCES
            .iter()
            .map(|dir| (PathBuf::from(dir), "the system's configuration and secrets"))
            .collect();
        if !state_dir.as_os_str().is_empty() {
            never.push((
                state_dir.to_owned(),
                "flakeboot's state: its keys and database",
            ));
        }
        LocalSources {
            allowed: allowed.to_vec(),
            never,
        }
    }

    /// From the config file (`[nix] allowed_paths`, `state_dir`).
    pub fn from_config(config: &Config) -> LocalSources {
        LocalSources::new(&config.nix.allowed_paths, &config.state_dir)
    }

    /// Whether nix may read this reference: `Ok` for every reference that is not local.
    pub fn check(&self, flake: &FlakeRef) -> Result<(), LocalSourceError> {
        self.resolve(flake).map(|_| ())
    }

    /// [`LocalSources::check`], and the reference to hand nix: a local one with its path
    /// replaced by the path judged (absolute, no symlink, no `..`), so that a symlink on the
    /// given path swapped after the check cannot send nix elsewhere; any other as it is.
    pub fn resolve(&self, flake: &FlakeRef) -> Result<FlakeRef, LocalSourceError> {
        let Some(local) = local_path(flake)? else {
            return Ok(flake.clone());
        };
        let url = flake.as_str();
        let real = self.judge(url, local.path)?;
        let bad = |reason| LocalSourceError::BadPath {
            url: url.to_owned(),
            reason,
        };
        let encoded = real
            .to_str()
            .map(percent_encode)
            .ok_or_else(|| bad("the resolved path is not UTF-8"))?;
        let (Some(before), Some(after)) = (url.get(..local.start), url.get(local.end..)) else {
            return Err(bad("the path is not where it was found"));
        };
        FlakeRef::parse(&format!("{before}{encoded}{after}"))
            .map_err(|_| bad("the resolved path does not make a valid reference"))
    }

    /// The resolved path of a local reference, if nix may read it.
    fn judge(&self, url: &str, path: PathBuf) -> Result<PathBuf, LocalSourceError> {
        let real = match std::fs::canonicalize(&path) {
            Ok(real) => real,
            // Judged by its text then, so that a refusal never tells whether a path outside
            // the allowed directories exists.
            Err(e) => return Err(self.unresolved(url, path, &e)),
        };
        for (dir, what) in &self.never {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if real.starts_with(&dir) || dir.starts_with(&real) {
                return Err(LocalSourceError::Never {
                    url: url.to_owned(),
                    path: real,
                    never: dir,
                    what,
                });
            }
        }
        let allowed = self
            .allowed
            .iter()
            .filter(|dir| dir.is_absolute())
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .any(|dir| real.starts_with(dir));
        if allowed {
            Ok(real)
        } else {
            Err(LocalSourceError::NotAllowed {
                url: url.to_owned(),
                path: real,
            })
        }
    }

    /// Why a path that cannot be resolved (missing, unreadable) is refused: a path inside or
    /// holding a never-directory, or not (by its text) under an allowed one, is refused as
    /// such; only inside an allowed directory is "does not exist" said.
    fn unresolved(&self, url: &str, path: PathBuf, error: &std::io::Error) -> LocalSourceError {
        let plain = !path
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if plain {
            for (dir, what) in &self.never {
                if path.starts_with(dir) || dir.starts_with(&path) {
                    return LocalSourceError::Never {
                        url: url.to_owned(),
                        path,
                        never: dir.clone(),
                        what,
                    };
                }
            }
        }
        let allowed = plain
            && self.allowed.iter().filter(|d| d.is_absolute()).any(|dir| {
                path.starts_with(dir)
                    || std::fs::canonicalize(dir).is_ok_and(|real| path.starts_with(real))
            });
        if !allowed {
            return LocalSourceError::NotAllowed {
                url: url.to_owned(),
                path,
            };
        }
        if error.kind() == std::io::ErrorKind::NotFound {
            LocalSourceError::Missing {
                url: url.to_owned(),
                path,
            }
        } else {
            LocalSourceError::Unresolvable {
                url: url.to_owned(),
                path,
                reason: error.to_string(),
            }
        }
    }

    /// Every problem with the config file's local flakes, each a sentence naming the entry.
    /// (Malformed references are reported when they are added, as before.)
    pub fn problems(&self, flakes: &[FlakeConfig]) -> Vec<String> {
        flakes
            .iter()
            .filter_map(|f| FlakeRef::parse(&f.url).ok())
            .filter_map(|r| self.check(&r).err())
            .map(|e| format!("[[flakes]] {e}"))
            .collect()
    }
}

/// The path a local reference names and where it is written in the reference.
struct LocalPath {
    /// Percent-decoded.
    path: PathBuf,
    /// Byte range of the path as written (between the scheme and authority, and the query).
    start: usize,
    end: usize,
}

/// The file system path a local reference names, or `None` for a reference that is not local.
fn local_path(flake: &FlakeRef) -> Result<Option<LocalPath>, LocalSourceError> {
    let url = flake.as_str();
    let bad = |reason| LocalSourceError::BadPath {
        url: url.to_owned(),
        reason,
    };
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let raw = match flake.kind() {
        FlakeRefKind::Path if without_query.starts_with('/') => without_query,
        FlakeRefKind::Path => without_query
            .strip_prefix("path:")
            .ok_or_else(|| bad("a path reference starts with path:"))?,
        FlakeRefKind::Git | FlakeRefKind::Mercurial | FlakeRefKind::Tarball => {
            let Some((scheme, rest)) = without_query.split_once(':') else {
                return Ok(None);
            };
            if scheme != "file" && !scheme.ends_with("+file") {
                return Ok(None);
            }
            match rest.strip_prefix("//") {
                // file:///dir or file://localhost/dir: the authority must be this machine.
                Some(authority_and_path) => {
                    let slash = authority_and_path
                        .find('/')
                        .unwrap_or(authority_and_path.len());
                    let (authority, path) = authority_and_path.split_at(slash);
                    if !(authority.is_empty() || authority == "localhost") {
                        return Err(bad("a file URL names this machine: write file:///dir"));
                    }
                    path
                }
                None => rest,
            }
        }
        FlakeRefKind::Forge | FlakeRefKind::Indirect => return Ok(None),
    };
    let decoded =
        percent_decode(raw).ok_or_else(|| bad("the path is not valid percent-encoding"))?;
    if !decoded.starts_with('/') {
        return Err(bad("a local flake needs an absolute path"));
    }
    // `raw` is the end of `without_query`, which begins `url`.
    Ok(Some(LocalPath {
        path: PathBuf::from(decoded),
        start: without_query.len() - raw.len(),
        end: without_query.len(),
    }))
}

/// A path written into a URL: `%`, `?`, `#` and every byte that is not printable ASCII
/// escaped (nix decodes them).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` escapes decoded (nix decodes them in URL paths); `None` for a bad escape, a NUL, or a
/// result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _tmp: tempfile::TempDir,
        allowed: PathBuf,
        state: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let allowed = root.join("flakes");
        let state = root.join("state");
        let outside = root.join("outside");
        for d in [&allowed, &state, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(allowed.join("lab")).unwrap();
        Dirs {
            _tmp: tmp,
            allowed,
            state,
            outside,
        }
    }

    fn check(sources: &LocalSources, url: &str) -> Result<(), LocalSourceError> {
        sources.check(&FlakeRef::parse(url).unwrap())
    }

    #[test]
    fn only_directories_under_allowed_paths_pass() {
        let d = dirs();
        let sources = LocalSources::new(std::slice::from_ref(&d.allowed), &d.state);
        let lab = d.allowed.join("lab");
        for url in [
            format!("path:{}", lab.display()),
            format!("path:{}?dir=sub", lab.display()),
            lab.display().to_string(),
            format!("git+file://{}", lab.display()),
            format!("git+file://{}?ref=main", lab.display()),
            format!("tarball+file://localhost{}", lab.display()),
            format!("hg+file://{}", lab.display()),
            format!("path:{}", d.allowed.display()),
        ] {
            assert_eq!(check(&sources, &url), Ok(()), "{url}");
        }
        let outside = format!("path:{}", d.outside.display());
        let err = check(&sources, &outside).unwrap_err();
        assert!(matches!(err, LocalSourceError::NotAllowed { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{outside} is not under [nix] allowed_paths; add its directory there to build \
                 local flakes"
            )
        );
        // Nothing listed: no local flake at all; remote ones are not judged.
        let none = LocalSources::new(&[], &d.state);
        let err = check(&none, &format!("path:{}", lab.display())).unwrap_err();
        assert!(matches!(err, LocalSourceError::NotAllowed { .. }), "{err}");
        for remote in [
            "github:acme/fleet",
            "git+https://example.org/fleet.git",
            "https://example.org/fleet.tar.gz",
            "flake:fleet",
        ] {
            assert_eq!(check(&none, remote), Ok(()), "{remote}");
        }
    }

    #[test]
    fn symlinks_dot_dot_and_escapes_are_resolved_before_judging() {
        let d = dirs();
        let sources = LocalSources::new(std::slice::from_ref(&d.allowed), &d.state);
        std::os::unix::fs::symlink("/etc", d.allowed.join("etc-link")).unwrap();
        std::os::unix::fs::symlink(&d.outside, d.allowed.join("out-link")).unwrap();
        std::os::unix::fs::symlink(&d.state, d.allowed.join("state-link")).unwrap();
        let a = d.allowed.display();
        for (url, never) in [
            (format!("path:{a}/etc-link"), true),
            (format!("path:{a}/../../../../../../etc"), true),
            (
                format!("path:{a}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc"),
                true,
            ),
            (format!("git+file://{a}/state-link"), true),
            (format!("path:{a}/out-link"), false),
            (format!("path:{a}/lab/../../outside"), false),
        ] {
            let err = check(&sources, &url).unwrap_err();
            match err {
                LocalSourceError::Never { .. } => assert!(never, "{url}: {err}"),
                LocalSourceError::NotAllowed { .. } => assert!(!never, "{url}: {err}"),
                other => panic!("{url}: {other}"),
            }
        }
        let err = check(&sources, &format!("path:{a}/%zz")).unwrap_err();
        assert!(matches!(err, LocalSourceError::BadPath { .. }), "{err}");
        let err = check(&sources, &format!("path:{a}/%00")).unwrap_err();
        assert!(matches!(err, LocalSourceError::BadPath { .. }), "{err}");
        let err = check(&sources, "tarball+file://otherhost/srv/x.tar.gz").unwrap_err();
        assert!(matches!(err, LocalSourceError::BadPath { .. }), "{err}");
        let err = check(&sources, &format!("path:{a}/nope")).unwrap_err();
        assert!(matches!(err, LocalSourceError::Missing { .. }), "{err}");
        // Outside the allowed directories a missing path is just not allowed: a refusal never
        // tells whether something exists there.
        let outside = d.outside.display();
        let err = check(&sources, &format!("path:{outside}/nope")).unwrap_err();
        assert!(matches!(err, LocalSourceError::NotAllowed { .. }), "{err}");
        let err = check(&sources, &format!("path:{a}/nope/../../outside")).unwrap_err();
        assert!(matches!(err, LocalSourceError::NotAllowed { .. }), "{err}");
        let err = check(&sources, "path:/etc/no-such-dir").unwrap_err();
        assert!(matches!(err, LocalSourceError::Never { .. }), "{err}");
    }

    /// The reference nix gets names the directory judged: a symlink swapped after the check
    /// (to `/etc` here) does not change where it points.
    #[test]
    fn nix_gets_the_resolved_path_so_a_swapped_symlink_cannot_redirect_it() {
        let d = dirs();
        let sources = LocalSources::new(std::slice::from_ref(&d.allowed), &d.state);
        let a = d.allowed.display();
        std::fs::create_dir(d.allowed.join("odd dir%?#")).unwrap();
        std::os::unix::fs::symlink(d.allowed.join("lab"), d.allowed.join("link")).unwrap();
        let resolve = |url: &str| sources.resolve(&FlakeRef::parse(url).unwrap());
        for (given, resolved) in [
            (
                format!("path:{a}/link?dir=sub"),
                format!("path:{a}/lab?dir=sub"),
            ),
            (format!("{a}/link/"), format!("{a}/lab")),
            (
                format!("git+file://{a}/link?ref=main"),
                format!("git+file://{a}/lab?ref=main"),
            ),
            (
                format!("tarball+file://localhost{a}/link/../lab/."),
                format!("tarball+file://localhost{a}/lab"),
            ),
            (
                format!("path:{a}/odd%20dir%25%3F%23"),
                format!("path:{a}/odd%20dir%25%3F%23"),
            ),
            (
                "github:acme/fleet".to_owned(),
                "github:acme/fleet".to_owned(),
            ),
        ] {
            assert_eq!(resolve(&given).unwrap().as_str(), resolved, "{given}");
            // What nix gets passes the same check and resolves to itself.
            assert_eq!(resolve(&resolved).unwrap().as_str(), resolved, "{resolved}");
        }

        let given = format!("path:{a}/link");
        let for_nix = resolve(&given).unwrap();
        // The race: the symlink is swapped after the check, before nix reads the directory.
        std::fs::remove_file(d.allowed.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.allowed.join("link")).unwrap();
        let err = resolve(&given).unwrap_err();
        assert!(matches!(err, LocalSourceError::Never { .. }), "{err}");
        let path = local_path(&for_nix).unwrap().unwrap().path;
        assert_eq!(path, d.allowed.join("lab"));
        assert_eq!(std::fs::canonicalize(&path).unwrap(), d.allowed.join("lab"));
    }

    /// `/etc` and the state directory are refused even when listed, and so is any directory
    /// holding them (`/`, the state directory's parent).
    #[test]
    fn etc_and_the_state_directory_are_never_sources_even_when_listed() {
        let d = dirs();
        let parent = d.state.parent().unwrap().to_owned();
        let sources = LocalSources::new(
            &[PathBuf::from("/"), PathBuf::from("/etc"), d.state.clone()],
            &d.state,
        );
        for url in [
            "path:/etc".to_owned(),
            "/etc".to_owned(),
            "path:/etc/ssl".to_owned(),
            "git+file:///etc".to_owned(),
            "file+file:///etc/hostname".to_owned(),
            "tarball+file:///etc/hostname".to_owned(),
            "path:/".to_owned(),
            format!("path:{}", d.state.display()),
            format!("path:{}", parent.display()),
        ] {
            let err = check(&sources, &url).unwrap_err();
            assert!(
                matches!(err, LocalSourceError::Never { .. }),
                "{url}: {err}"
            );
            assert!(err.to_string().contains("[nix] allowed_paths"), "{err}");
        }
        // Under "/", anything else is allowed.
        assert_eq!(
            check(&sources, &format!("path:{}", d.outside.display())),
            Ok(())
        );
    }

    #[test]
    fn config_problems_name_the_flake_and_the_setting() {
        let d = dirs();
        let config = Config::parse(
            &format!(
                "state_dir = {:?}\n[lan]\ninterface = \"eth0\"\n[[flakes]]\nurl = \"path:/etc\"\n\
                 [[flakes]]\nurl = \"github:acme/fleet\"\n[[flakes]]\nurl = \"path:{}\"\n\
                 [nix]\nallowed_paths = [{:?}]\n",
                d.state,
                d.allowed.join("lab").display(),
                d.allowed
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let sources = LocalSources::from_config(&config);
        let problems = sources.problems(&config.flakes);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("[[flakes]] path:/etc is refused"),
            "{problems:?}"
        );
    }
}
