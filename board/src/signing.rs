//! Who may update an appliance: the ed25519 public keys an image accepts and the board it is.
//!
//! A bundle's second entry, `manifest.sig`, is the raw 64-byte ed25519 signature of the bundle's
//! `manifest.json` (the bytes `openssl pkeyutl -sign -rawin` writes; `image/build.sh` signs with
//! the key in `FLAKEBOOT_SIGNING_KEY`). The manifest holds every payload file's size and sha256,
//! so a good signature covers the whole bundle. An image carries the keys it accepts as PEM
//! public keys (`openssl pkey -pubout`) in `/usr/lib/flakeboot/update-keys/*.pem` and its board's
//! name in `/usr/lib/flakeboot/board`.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};

/// The accepted keys' directory on the appliance.
pub const KEYS_DIR: &str = "/usr/lib/flakeboot/update-keys";
/// The file naming the appliance's board.
pub const BOARD_FILE: &str = "/usr/lib/flakeboot/board";
/// Public key files larger than this are not keys.
const MAX_KEY_FILE: u64 = 4096;

/// Why a bundle is not trusted, or the trust could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not an ed25519 public key in PEM (`openssl pkey -pubout` writes one): {reason}"
    )]
    BadKey { path: PathBuf, reason: String },
    #[error("{0}: no accepted update keys (*.pem) there, so no bundle can be trusted")]
    NoKeys(PathBuf),
    #[error(
        "the bundle is not signed (no manifest.sig after manifest.json): build it with image/build.sh, which signs it with FLAKEBOOT_SIGNING_KEY"
    )]
    Unsigned,
    #[error(
        "the bundle's signature does not verify with any key this appliance accepts ({keys}): it was changed after it was signed, or signed with a key this image does not carry"
    )]
    BadSignature { keys: String },
    #[error("the bundle is for board {bundle}, this appliance is a {running}")]
    WrongBoard { bundle: String, running: String },
}

/// The keys an appliance accepts and the board it is.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: Vec<(String, VerifyingKey)>,
    board: String,
}

impl Trust {
    /// Trusts `keys` (name, key) for `board`.
    pub fn new(keys: Vec<(String, VerifyingKey)>, board: impl Into<String>) -> Trust {
        Trust {
            keys,
            board: board.into(),
        }
    }

    /// Loads every `*.pem` in `dir` (sorted by name); at least one is required.
    pub fn load(dir: &Path, board: impl Into<String>) -> Result<Trust, TrustError> {
        let read_err = |source| TrustError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        paths.sort();
        let mut keys = Vec::new();
        for path in paths {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            keys.push((name, read_public_key(&path)?));
        }
        if keys.is_empty() {
            return Err(TrustError::NoKeys(dir.to_owned()));
        }
        Ok(Trust::new(keys, board))
    }

    /// The running appliance's trust: its image's keys and board.
    pub fn of_image() -> Result<Trust, TrustError> {
        let board = std::fs::read_to_string(BOARD_FILE).map_err(|source| TrustError::Read {
            path: BOARD_FILE.into(),
            source,
        })?;
        Trust::load(Path::new(KEYS_DIR), board.trim())
    }

    /// The board this trust is for.
    pub fn board(&self) -> &str {
        &self.board
    }

    /// The name of the key whose signature `sig` of `manifest` is, if any is.
    pub fn verify(&self, manifest: &[u8], sig: Option<&[u8]>) -> Result<&str, TrustError> {
        let sig = sig.ok_or(TrustError::Unsigned)?;
        let names = || {
            self.keys
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Ok(sig) = Signature::from_slice(sig) else {
            return Err(TrustError::BadSignature { keys: names() });
        };
        self.keys
            .iter()
            .find(|(_, key)| key.verify_strict(manifest, &sig).is_ok())
            .map(|(name, _)| name.as_str())
            .ok_or_else(|| TrustError::BadSignature { keys: names() })
    }

    /// Refuses a bundle built for another board.
    pub fn check_board(&self, bundle_board: &str) -> Result<(), TrustError> {
        if bundle_board == self.board {
            Ok(())
        } else {
            Err(TrustError::WrongBoard {
                bundle: bundle_board.to_owned(),
                running: self.board.clone(),
            })
        }
    }
}

/// Reads one PEM public key file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    let read_err = |source| TrustError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_KEY_FILE {
        return Err(TrustError::BadKey {
            path: path.to_owned(),
            reason: format!("{len} bytes"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| TrustError::BadKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn trust(seeds: &[u8]) -> (Vec<SigningKey>, Trust) {
        let signers: Vec<SigningKey> = seeds
            .iter()
            .map(|s| SigningKey::from_bytes(&[*s; 32]))
            .collect();
        let keys = signers
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("key{i}"), k.verifying_key()))
            .collect();
        (signers, Trust::new(keys, "qemu-x86_64"))
    }

    #[test]
    fn any_accepted_key_verifies_and_nothing_else_does() {
        let (signers, trust) = trust(&[1, 2]);
        let manifest = br#"{"format":1}"#;
        let sig = signers[1].sign(manifest).to_bytes();
        assert_eq!(trust.verify(manifest, Some(&sig)).unwrap(), "key1");
        let other = SigningKey::from_bytes(&[3; 32]).sign(manifest).to_bytes();
        assert!(matches!(
            trust.verify(manifest, Some(&other)),
            Err(TrustError::BadSignature { keys }) if keys == "key0, key1"
        ));
        let mut changed = manifest.to_vec();
        changed[2] ^= 1;
        assert!(trust.verify(&changed, Some(&sig)).is_err());
        assert!(matches!(
            trust.verify(manifest, None),
            Err(TrustError::Unsigned)
        ));
        assert!(trust.verify(manifest, Some(&sig[..63])).is_err());
        assert!(trust.verify(manifest, Some(&[0u8; 64])).is_err());
    }

    #[test]
    fn another_board_is_refused() {
        let (_, trust) = trust(&[1]);
        trust.check_board("qemu-x86_64").unwrap();
        let err = trust.check_board("raspberry-pi-4").unwrap_err().to_string();
        assert_eq!(
            err,
            "the bundle is for board raspberry-pi-4, this appliance is a qemu-x86_64"
        );
    }

    #[test]
    fn keys_dir_needs_pem_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Trust::load(dir.path(), "b"),
            Err(TrustError::NoKeys(_))
        ));
        std::fs::write(dir.path().join("x.pem"), "not a key").unwrap();
        let err = Trust::load(dir.path(), "b").unwrap_err().to_string();
        assert!(err.contains("x.pem: not an ed25519 public key"), "{err}");
    }
}
