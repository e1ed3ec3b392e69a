//! `[[flakes]]` (NixOS hosts built from flakes) and `[nix]` (how flakeboot runs nix).
//!
//! Only the shape and the simple checks live here; validating a flake reference, locking it and
//! discovering its hosts is `flakeboot-nix`'s job (the same code path as flakes added later from
//! the web UI).

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A flake whose `nixosConfigurations` become bootable hosts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlakeConfig {
    /// Any flake reference nix accepts: `github:owner/repo`, `git+https://...`, `path:/dir`, ...
    pub url: String,
    /// Qualifies its hosts as `<name>#<host>`; default: derived from the URL.
    pub name: Option<String>,
    /// Follow the branch: re-lock every `check_every` (and when its push webhook is called);
    /// a new revision is built and becomes current.
    #[serde(default)]
    pub follow: bool,
    /// How often a following flake is re-locked, e.g. "15m" (the default), "1h".
    #[serde(default, with = "humantime_serde")]
    pub check_every: Option<Duration>,
    /// A TXT record announcing new revisions, e.g. "_flakeboot.example.org" (implies
    /// `follow`): asked every `[updates] txt_every` (a minute); when its `rev=<commit>` is not
    /// the locked revision, the flake is updated. Such a flake is not re-locked on the
    /// schedule: the git server is asked only when the record names a new revision.
    pub notify_txt: Option<String>,
}

/// How often a following flake is re-locked when `check_every` is not given.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// The shortest `check_every`: a re-lock asks the forge each time.
pub const MIN_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The longest `check_every`.
pub const MAX_CHECK_EVERY: Duration = Duration::from_secs(30 * 24 * 3600);

/// What is wrong with a `check_every` (the config file, the API and the UI share this rule).
pub fn check_every_problem(every: Duration) -> Option<String> {
    if every < MIN_CHECK_EVERY {
        return Some(format!(
            "{} is too short: re-lock at most once a second, e.g. \"15m\"",
            humantime_serde::re::humantime::format_duration(every)
        ));
    }
    if every > MAX_CHECK_EVERY {
        return Some(format!(
            "{} is too long: at most 30 days",
            humantime_serde::re::humantime::format_duration(every)
        ));
    }
    None
}

impl FlakeConfig {
    /// How often it is re-locked while it follows.
    pub fn check_every(&self) -> Duration {
        self.check_every.unwrap_or(DEFAULT_CHECK_EVERY)
    }

    /// Whether it follows its branch (`follow`, or implied by `notify_txt`).
    pub fn follows(&self) -> bool {
        self.follow || self.notify_txt.is_some()
    }
}

/// The longest DNS name (RFC 1035 2.3.4, without the trailing dot).
pub const MAX_DNS_NAME: usize = 253;

/// The longest label of a DNS name.
pub const MAX_DNS_LABEL: usize = 63;

/// What is wrong with a `notify_txt` name (the config file, the API and the UI share this
/// rule): labels of 1-63 letters, digits, '-' or '_' (`_flakeboot` is the usual first one),
/// at most 253 characters in all; one trailing dot is allowed.
pub fn notify_txt_problem(name: &str) -> Option<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Some("is empty: give a DNS name such as \"_flakeboot.example.org\"".into());
    }
    if bare.len() > MAX_DNS_NAME {
        return Some(format!(
            "is {} characters long: a DNS name has at most {MAX_DNS_NAME}",
            bare.len()
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > MAX_DNS_LABEL {
            return Some(format!(
                "{name:?} is not a DNS name: each dot-separated part has 1 to {MAX_DNS_LABEL} characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Some(format!(
                "{name:?} is not a DNS name: use letters, digits, '-', '_' and dots, e.g. \"_flakeboot.example.org\""
            ));
        }
    }
    None
}

/// How flakeboot runs nix. Every setting is passed to nix as `--option <key> <value>`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NixConfig {
    /// Binary caches (`substituters`); unset: [`DEFAULT_SUBSTITUTERS`]; `[]`: none at all.
    pub substituters: Option<Vec<String>>,
    /// Keys that sign the caches (`trusted-public-keys`); unset: [`DEFAULT_TRUSTED_PUBLIC_KEYS`].
    pub trusted_public_keys: Option<Vec<String>>,
    /// Remote builders in nix's `builders` syntax (one entry per builder).
    pub builders: Vec<String>,
    /// Derivations nix builds at once (`max-jobs`); unset: nix's own default.
    pub max_jobs: Option<u32>,
    /// flakeboot builds running at once; the others wait in the queue.
    pub max_concurrent_builds: usize,
    /// A build still running after this long is killed and recorded as timed out.
    #[serde(with = "humantime_serde")]
    pub build_timeout: Duration,
    /// Generations kept per host (older ones lose their GC roots); the pinned one is always kept.
    pub keep_generations: usize,
    /// Any other nix setting, e.g. `{ "sandbox-paths" = "/bin/sh=/bin/busybox" }`.
    pub extra_options: BTreeMap<String, String>,
    /// Access tokens for private flakes on GitHub/GitLab: a file only its owner may read, one
    /// `host=token` a line (`github.com=ghp_...`, `gitlab.com=PAT:glpat-...`). They reach nix
    /// through its owner-only configuration file, never a command line or a log.
    pub access_tokens_file: Option<PathBuf>,
    /// SSH host keys for `git+ssh://` flakes, as `known_hosts` lines (`ssh-keyscan` prints
    /// them: `git.example.org ssh-ed25519 AAAA...`). Set: only these keys are trusted. Empty
    /// (the default): a host's key is trusted on first use and kept in `<state>/ssh/known_hosts`.
    pub ssh_known_hosts: Vec<String>,
    /// Free space the nix store's file system keeps, e.g. "10G": below it a build first
    /// collects garbage and is refused when that does not free enough. Unset: no minimum.
    #[serde(deserialize_with = "size::option")]
    pub min_free: Option<u64>,
    /// Collect garbage (`nix store gc`) after every successful build and daily. Only what no
    /// kept generation needs is deleted, but on a machine where the store holds other work,
    /// that work goes too: on by default only in the appliance image's config.
    pub gc: bool,
    /// Directories local flakes may come from (`path:`, `git+file:`, a bare absolute path, and
    /// the other `file` fetchers): nix copies a local flake's whole directory into the
    /// world-readable nix store. Empty (the default): no local flakes. `/etc` and the state
    /// directory are refused even when listed (or under a listed directory).
    pub allowed_paths: Vec<PathBuf>,
}

/// The binary cache nix builds from when `[nix] substituters` is unset.
pub const DEFAULT_SUBSTITUTERS: &[&str] = &["https://cache.nixos.org"];

/// The key that signs [`DEFAULT_SUBSTITUTERS`].
pub const DEFAULT_TRUSTED_PUBLIC_KEYS: &[&str] =
    &["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="];

impl Default for NixConfig {
    fn default() -> Self {
        NixConfig {
            substituters: None,
            trusted_public_keys: None,
            builders: Vec::new(),
            max_jobs: None,
            max_concurrent_builds: 1,
            build_timeout: Duration::from_secs(2 * 3600),
            keep_generations: 5,
            extra_options: BTreeMap::new(),
            access_tokens_file: None,
            ssh_known_hosts: Vec::new(),
            min_free: None,
            gc: false,
            allowed_paths: Vec::new(),
        }
    }
}

/// Directories no flake may come from, whatever `[nix] allowed_paths` says: the system's
/// secrets (`/etc`); the state directory (TLS and WireGuard keys, the database) is the other.
pub const NEVER_FLAKE_SOURCES: [&str; 1] = ["/etc"];

/// Problems in `[nix] allowed_paths`, judged by their text (the daemon checks each local flake
/// again with symlinks resolved, `flakeboot_nix::LocalSources`).
fn allowed_path_problems(allowed: &[PathBuf], state_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for dir in allowed {
        let shown = dir.display();
        if !dir.is_absolute() {
            problems.push(format!(
                "[nix] allowed_paths {shown:?} is not an absolute path: write e.g. \"/srv/flakes\""
            ));
            continue;
        }
        if dir.components().any(|c| c == Component::ParentDir) {
            problems.push(format!(
                "[nix] allowed_paths {shown:?} contains \"..\": write the directory itself"
            ));
            continue;
        }
        let never = NEVER_FLAKE_SOURCES
            .iter()
            .map(Path::new)
            .chain(std::iter::once(state_dir));
        for secret in never {
            if dir.starts_with(secret) {
                problems.push(format!(
                    "[nix] allowed_paths {shown:?} is inside {}: flakes are never built from there",
                    secret.display()
                ));
            }
        }
    }
    problems
}

/// Problems in `[[flakes]]` and `[nix]`, each a sentence that says what to do.
pub(crate) fn problems(flakes: &[FlakeConfig], nix: &NixConfig, state_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut urls = HashSet::new();
    let mut names = HashSet::new();
    for f in flakes {
        let url = f.url.trim();
        if url.is_empty() {
            problems.push(
                "[[flakes]] url is empty: give a flake reference such as \"github:owner/repo\""
                    .into(),
            );
        } else if !urls.insert(url) {
            problems.push(format!("[[flakes]] {url:?} is listed twice"));
        }
        if let Some(why) = f.check_every.and_then(check_every_problem) {
            problems.push(format!("[[flakes]] check_every of {url:?}: {why}"));
        }
        if let Some(why) = f.notify_txt.as_deref().and_then(notify_txt_problem) {
            problems.push(format!("[[flakes]] notify_txt of {url:?}: {why}"));
        }
        if let Some(name) = &f.name {
            if !flakeboot_catalogue::text::valid_flake_name(name) {
                problems.push(format!(
                    "[[flakes]] name {name:?} is not allowed: use letters, digits, '-' and '_'"
                ));
            }
            if !names.insert(name.as_str()) {
                problems.push(format!("[[flakes]] name {name:?} is used twice"));
            }
        }
    }
    if nix.max_concurrent_builds == 0 {
        problems.push("[nix] max_concurrent_builds must be at least 1".into());
    }
    if nix.keep_generations == 0 {
        problems.push("[nix] keep_generations must be at least 1 (the current generation)".into());
    }
    if nix.build_timeout.is_zero() {
        problems.push("[nix] build_timeout must be longer than 0s, e.g. \"2h\"".into());
    }
    problems.extend(allowed_path_problems(&nix.allowed_paths, state_dir));
    for (key, value) in &nix.extra_options {
        if key.is_empty() || key.starts_with('-') || key.chars().any(char::is_whitespace) {
            problems.push(format!(
                "[nix] extra_options key {key:?} is not a nix setting name"
            ));
        }
        if value.contains(['\n', '\0']) {
            problems.push(format!(
                "[nix] extra_options {key:?}: the value must be one line"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    #[test]
    fn flakes_and_nix_sections_parse_with_defaults() {
        let c = Config::parse(
            r#"
[lan]
interface = "eth0"
[[flakes]]
url = "github:example/fleet"
[[flakes]]
url = "git+file:///srv/lab"
name = "lab"
follow = true
check_every = "2m"
[nix]
substituters = []
build_timeout = "30m"
extra_options = { "sandbox-paths" = "/bin/sh=/bin/busybox" }
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.flakes.len(), 2);
        assert_eq!(c.flakes[1].name.as_deref(), Some("lab"));
        assert!(!c.flakes[0].follow);
        assert_eq!(c.flakes[0].check_every(), super::DEFAULT_CHECK_EVERY);
        assert!(c.flakes[1].follow);
        assert_eq!(
            c.flakes[1].check_every(),
            std::time::Duration::from_secs(120)
        );
        assert_eq!(c.nix.substituters, Some(vec![]));
        assert_eq!(c.nix.max_concurrent_builds, 1);
        assert_eq!(c.nix.keep_generations, 5);
        assert_eq!(c.nix.build_timeout.as_secs(), 1800);
        assert_eq!(c.nix.extra_options["sandbox-paths"], "/bin/sh=/bin/busybox");
    }

    #[test]
    fn flake_problems_are_reported() {
        let err = Config::parse(
            r#"
[lan]
interface = "eth0"
[[flakes]]
url = "github:a/b"
name = "a b"
[[flakes]]
url = "github:a/b"
[nix]
max_concurrent_builds = 0
"#,
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listed twice"), "{err}");
        assert!(err.contains("\"a b\" is not allowed"), "{err}");
        assert!(err.contains("max_concurrent_builds"), "{err}");
    }

    #[test]
    fn allowed_paths_are_absolute_and_never_etc_or_the_state_directory() {
        let parse = |dirs: &str| {
            Config::parse(
                &format!(
                    "state_dir = \"/var/lib/fb\"\n[lan]\ninterface = \"eth0\"\n[nix]\nallowed_paths = {dirs}\n"
                ),
                Path::new("t.toml"),
            )
        };
        assert!(parse("[]").unwrap().nix.allowed_paths.is_empty());
        let c = parse("[\"/srv/flakes\", \"/home/lab/fleet\", \"/var/lib\"]").unwrap();
        assert_eq!(c.nix.allowed_paths.len(), 3);
        for (bad, needle) in [
            ("srv/flakes", "not an absolute path"),
            ("/srv/../etc", "contains \"..\""),
            ("/etc", "inside /etc"),
            ("/etc/nixos", "inside /etc"),
            ("/var/lib/fb", "inside /var/lib/fb"),
            ("/var/lib/fb/tls", "inside /var/lib/fb"),
        ] {
            let err = parse(&format!("[{bad:?}]")).unwrap_err().to_string();
            assert!(err.contains("nix.allowed_paths"), "{bad}: {err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn notify_txt_implies_follow_and_is_a_dns_name() {
        let parse = |name: &str| {
            Config::parse(
                &format!(
                    "[lan]\ninterface = \"eth0\"\n[[flakes]]\nurl = \"github:a/b\"\nnotify_txt = {name:?}\n"
                ),
                Path::new("t.toml"),
            )
        };
        let c = parse("_flakeboot.example.org").unwrap();
        assert!(c.flakes[0].follows());
        assert!(!c.flakes[0].follow);
        assert_eq!(
            c.flakes[0].notify_txt.as_deref(),
            Some("_flakeboot.example.org")
        );
        assert!(parse("_flakeboot.example.org.").is_ok());
        assert!(parse(&format!("{}.org", "a".repeat(63))).is_ok());
        for (bad, says) in [
            ("", "is empty"),
            (".", "is empty"),
            ("a..b", "1 to 63"),
            (".a", "1 to 63"),
            (&format!("{}.org", "a".repeat(64)), "1 to 63"),
            (&["abcdefghi"; 26].join("."), "at most 253"),
            ("fla ke.org", "letters, digits"),
            ("rev=1.org", "letters, digits"),
            ("é.org", "letters, digits"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("flakes[0].notify_txt"), "{bad:?}: {err}");
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn machines_may_name_flake_hosts() {
        let c = Config::parse(
            r#"
[lan]
interface = "eth0"
[[flakes]]
url = "github:a/b"
[[machines]]
mac = "52:54:00:12:34:56"
host = "b#alpha"
"#,
            Path::new("t.toml"),
        );
        assert!(c.is_ok(), "{c:?}");
    }
}

/// Sizes in the config: "10G", "512M", "2GiB", "1T" or a number of bytes.
mod size {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    pub(super) fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Bytes(n)) => Ok(Some(n)),
            Some(Raw::Text(t)) => parse(&t).map(Some).ok_or_else(|| {
                D::Error::custom(format!(
                    "{t:?} is not a size: write e.g. \"10G\", \"512M\" or a number of bytes"
                ))
            }),
        }
    }

    pub(super) fn parse(text: &str) -> Option<u64> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let n: u64 = n.parse().ok()?;
        let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
            "" => 0,
            "K" | "k" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => return None,
        };
        n.checked_mul(1u64 << shift)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn sizes_parse() {
            assert_eq!(super::parse("10G"), Some(10 << 30));
            assert_eq!(super::parse("512M"), Some(512 << 20));
            assert_eq!(super::parse("2GiB"), Some(2 << 30));
            assert_eq!(super::parse("100"), Some(100));
            assert_eq!(super::parse("1 T"), Some(1 << 40));
            assert_eq!(super::parse("ten"), None);
            assert_eq!(super::parse("5X"), None);
            assert_eq!(super::parse("99999999999999T"), None);
        }
    }
}
