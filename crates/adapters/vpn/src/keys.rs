//! WireGuard keys (x25519, base64 as `wg` prints them) and the appliance's own key files.
//!
//! The appliance keeps one key per interface in `<state dir>/wireguard/` (directory 0700, files
//! 0600, written to a temporary file with mode 0600 and renamed into place, so a crash never
//! leaves half a key). A peer's private key is generated, put into the config shown once, and
//! dropped: only its public key is kept.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use defguard_wireguard_rs::key::Key;

/// The directory under the state directory that holds the key files.
pub const KEY_DIR: &str = "wireguard";

/// Why a key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes of base64.
    #[error("not a WireGuard key: give the 44-character base64 key that `wg pubkey` prints")]
    Malformed,
    /// The key directory or file could not be read or written.
    #[error("cannot use the key file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file exists but does not hold a key.
    #[error(
        "the key file {} does not hold a WireGuard key: move it away to have a new key made (peers must then get new configs)",
        path.display()
    )]
    CorruptFile {
        /// The file.
        path: PathBuf,
    },
}

/// A public key. Safe to show and log.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(Key);

impl PublicKey {
    /// Parses base64 as `wg` prints it (exactly 32 bytes).
    pub fn from_base64(text: &str) -> Result<PublicKey, KeyError> {
        decode(text).map(|bytes| PublicKey(Key::new(bytes)))
    }

    /// Base64, as `wg` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_array())
    }

    pub(crate) fn key(&self) -> &Key {
        &self.0
    }

    pub(crate) fn from_key(key: Key) -> PublicKey {
        PublicKey(key)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A private key. Its `Debug` never shows it; the only way to the bytes is
/// [`PrivateKey::expose_base64`], for a config file or the interface.
#[derive(Clone)]
pub struct PrivateKey(Key);

impl PrivateKey {
    /// A fresh random key (x25519, clamped when used).
    pub fn generate() -> PrivateKey {
        PrivateKey(Key::generate())
    }

    /// Parses base64 as `wg genkey` prints it.
    pub fn from_base64(text: &str) -> Result<PrivateKey, KeyError> {
        decode(text).map(|bytes| PrivateKey(Key::new(bytes)))
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// The key in base64: for a peer's config shown once, or a key file. Never log it.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.0.as_array())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey(public {}, private redacted)",
            self.public_key()
        )
    }
}

fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::Malformed)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Malformed)
}

/// Loads `<state_dir>/wireguard/<name>.key`, or makes a new key there (directory 0700, file
/// 0600, written atomically). Permissions of an existing directory and file are tightened to
/// owner-only.
pub fn load_or_create(state_dir: &Path, name: &str) -> Result<PrivateKey, KeyError> {
    let dir = state_dir.join(KEY_DIR);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
    let path = dir.join(format!("{name}.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(&path))?;
            PrivateKey::from_base64(&text).map_err(|_| KeyError::CorruptFile { path })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::generate();
            let tmp = dir.join(format!(".{name}.key.tmp"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            // A leftover temporary file from a crash may have been created with other modes.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io(&tmp))?;
            file.write_all(format!("{}\n", key.expose_base64()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            tracing::info!(file = %path.display(), public_key = %key.public_key(), "made a new WireGuard key");
            Ok(key)
        }
        Err(e) => Err(KeyError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64_and_match_wg() {
        // `echo -n <private> | wg pubkey` for this private key (RFC 7748 test vector, Alice).
        let private =
            PrivateKey::from_base64("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=").unwrap();
        assert_eq!(
            private.public_key().to_base64(),
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
        assert_eq!(
            private.expose_base64(),
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
        );
        let generated = PrivateKey::generate();
        let again = PrivateKey::from_base64(&generated.expose_base64()).unwrap();
        assert_eq!(again.public_key(), generated.public_key());
        assert_eq!(generated.expose_base64().len(), 44);
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = PrivateKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose_base64()), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(shown.contains(&key.public_key().to_base64()), "{shown}");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "abc",
            "AAAA",
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==",
            "!!",
        ] {
            assert!(PublicKey::from_base64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let first = load_or_create(tmp.path(), "server").unwrap();
        let dir = tmp.path().join(KEY_DIR);
        let file = dir.join("server.key");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        let second = load_or_create(tmp.path(), "server").unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let other = load_or_create(tmp.path(), "hub").unwrap();
        assert_ne!(first.public_key(), other.public_key());
        // Loosened permissions are tightened again.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(tmp.path(), "server").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(!dir.join(".server.key.tmp").exists());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(KEY_DIR)).unwrap();
        std::fs::write(tmp.path().join(KEY_DIR).join("server.key"), "nonsense").unwrap();
        let err = load_or_create(tmp.path(), "server").unwrap_err();
        assert!(err.to_string().contains("server.key"), "{err}");
    }
}
