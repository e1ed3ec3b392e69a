//! Locking a flake: `nix flake metadata --json <ref>` gives the locked reference (the exact
//! revision and content hash) that every later eval and build uses, never the moving one.

use std::ffi::OsString;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::command::{CommandError, NixSettings, run_nix};
use crate::flakeref::FlakeRef;

/// How long locking may take (it fetches the flake: a clone or a download).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// A flake at one exact revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFlake {
    /// The reference as given.
    pub url: String,
    /// The locked reference (`git+file:///r?rev=...`, `path:/d?narHash=...`).
    pub locked_url: String,
    /// The git revision, when the fetcher has one.
    pub revision: Option<String>,
    /// The content hash nix computed (`sha256-...`).
    pub nar_hash: Option<String>,
    /// The flake's `description`.
    pub description: Option<String>,
}

impl LockedFlake {
    /// A short label of the revision for command lines and menus: the first 12 characters of
    /// the git revision, else of the content hash (`path:` and tarball flakes).
    pub fn short_rev(&self) -> String {
        short_rev(self.revision.as_deref(), self.nar_hash.as_deref())
    }
}

/// See [`LockedFlake::short_rev`].
pub fn short_rev(revision: Option<&str>, nar_hash: Option<&str>) -> String {
    if let Some(rev) = revision {
        return rev.chars().take(12).collect();
    }
    match nar_hash {
        Some(hash) => hash
            .trim_start_matches("sha256-")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect(),
        None => "unknown".into(),
    }
}

/// Why a flake could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// nix could not fetch or read the flake (nix's own message).
    #[error("cannot lock {url}: {source}")]
    Nix {
        /// The reference.
        url: String,
        /// What nix said.
        source: CommandError,
    },
    /// nix answered with JSON flakeboot cannot read.
    #[error("cannot read `nix flake metadata` output for {url}: {reason}")]
    BadOutput {
        /// The reference.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Metadata {
    url: Option<String>,
    #[serde(rename = "resolvedUrl")]
    resolved_url: Option<String>,
    revision: Option<String>,
    description: Option<String>,
    locked: Option<Locked>,
}

#[derive(Deserialize)]
struct Locked {
    rev: Option<String>,
    #[serde(rename = "narHash")]
    nar_hash: Option<String>,
}

/// Parse `nix flake metadata --json` output (pure).
pub fn parse_metadata(url: &str, json: &[u8]) -> Result<LockedFlake, LockError> {
    let bad = |reason: String| LockError::BadOutput {
        url: url.to_owned(),
        reason,
    };
    let m: Metadata = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let locked_url = m
        .url
        .or(m.resolved_url)
        .ok_or_else(|| bad("no \"url\" (the locked reference)".into()))?;
    let (rev, nar_hash) = m.locked.map_or((None, None), |l| (l.rev, l.nar_hash));
    Ok(LockedFlake {
        url: url.to_owned(),
        locked_url,
        revision: m.revision.or(rev),
        nar_hash,
        description: m.description,
    })
}

/// Lock a flake: fetch it and return its exact revision.
pub async fn lock(
    settings: &NixSettings,
    flake: &FlakeRef,
    cancel: &CancellationToken,
) -> Result<LockedFlake, LockError> {
    let args: Vec<OsString> = vec![
        "flake".into(),
        "metadata".into(),
        "--json".into(),
        // Always fetch the newest revision of a moving reference (an "update").
        "--refresh".into(),
        flake.as_str().into(),
    ];
    let out = run_nix(settings, &args, cancel, Some(LOCK_TIMEOUT), &mut |line| {
        tracing::trace!(target: "flakeboot_nix::nix", "{line}");
    })
    .await
    .map_err(|source| LockError::Nix {
        url: flake.to_string(),
        source,
    })?;
    parse_metadata(flake.as_str(), &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_metadata_gives_url_and_revision() {
        let json = br#"{"description":"fixture","lastModified":1795307024,"locked":{"lastModified":1795307024,"narHash":"sha256-4GgMM1539+cpWLeRZlNUPy5sZscWJv+J/ukLoKBdhV4=","ref":"master","rev":"0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4","revCount":1,"type":"git","url":"file:///tmp/r"},"original":{"type":"git","url":"file:///tmp/r"},"originalUrl":"git+file:///tmp/r","path":"/nix/store/x-source","resolvedUrl":"git+file:///tmp/r","revision":"0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4","url":"git+file:///tmp/r?ref=master&rev=0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"}"#;
        let l = parse_metadata("git+file:///tmp/r", json).unwrap();
        assert_eq!(
            l.locked_url,
            "git+file:///tmp/r?ref=master&rev=0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"
        );
        assert_eq!(
            l.revision.as_deref(),
            Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4")
        );
        assert_eq!(l.short_rev(), "0f1e2d3c4b5a");
        assert_eq!(l.description.as_deref(), Some("fixture"));
    }

    #[test]
    fn path_metadata_has_a_hash_but_no_revision() {
        // Captured from nix 2.8 on this fixture.
        let json = br#"{"description":"flakeboot test fixture: netbootable hosts without nixpkgs","lastModified":1795307024,"locked":{"lastModified":1795307024,"narHash":"sha256-4GgMM1539+cpWLeRZlNUPy5sZscWJv+J/ukLoKBdhV4=","path":"/tmp/fx","type":"path"},"locks":{"nodes":{"root":{}},"root":"root","version":7},"original":{"path":"/tmp/fx","type":"path"},"originalUrl":"path:/tmp/fx","path":"/nix/store/0qzcy4v5ax7ka7b4cm9f3i0jvr3j4sbx-source","resolved":{"path":"/tmp/fx","type":"path"},"resolvedUrl":"path:/tmp/fx","url":"path:/tmp/fx?lastModified=1795307024&narHash=sha256-4GgMM1539+cpWLeRZlNUPy5sZscWJv+J%2fukLoKBdhV4="}"#;
        let l = parse_metadata("path:/tmp/fx", json).unwrap();
        assert!(l.locked_url.starts_with("path:/tmp/fx?lastModified="));
        assert_eq!(l.revision, None);
        assert_eq!(l.short_rev(), "4GgMM1539cpW");
    }

    #[test]
    fn unreadable_output_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"[]", b"{}", b"{\"url\":1}"] {
            let err = parse_metadata("path:/x", bad).unwrap_err();
            assert!(matches!(err, LockError::BadOutput { .. }), "{err}");
        }
    }
}
