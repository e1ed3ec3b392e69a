//! The management plane's certificate: a self-signed one generated on first start (rcgen,
//! SANs for the appliance's addresses and name), kept in `<state>/tls/`, and replaced by an
//! uploaded certificate and key without a restart (the resolver swaps it under a lock).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::secret::hex;

/// Certificate file name inside the TLS directory.
pub const CERT_FILE: &str = "cert.pem";
/// Key file name inside the TLS directory (mode 0600).
pub const KEY_FILE: &str = "key.pem";
/// Present while the certificate is the generated self-signed one.
const SELF_SIGNED_MARKER: &str = "self-signed";

/// Why the certificate could not be made, loaded or replaced.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file in the TLS directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "read", "create").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// rcgen could not make a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM holds no certificate.
    #[error("no certificate found in the PEM text")]
    NoCertificate,
    /// The PEM could not be read as a certificate or private key.
    #[error("cannot read the {what}: {message}")]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// Why.
        message: String,
    },
    /// rustls refused the key or the pair.
    #[error("the key does not fit the certificate or is unsupported: {0}")]
    Key(#[from] rustls::Error),
}

/// Where the certificate lives and what it must name.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The directory holding `cert.pem` and `key.pem` (e.g. `<state dir>/tls`).
    pub dir: PathBuf,
    /// Subject alternative names for a generated certificate: the appliance's addresses
    /// (`10.0.0.2`) and names (`flakeboot.lan`). IP strings become IP SANs.
    pub names: Vec<String>,
}

/// What the settings page shows about the certificate in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// True while it is the generated self-signed certificate.
    pub self_signed: bool,
    /// SHA-256 of the leaf certificate (DER), hex with colons.
    pub fingerprint: String,
}

/// The certificate in use; clones share it.
#[derive(Clone)]
pub struct CertStore {
    dir: PathBuf,
    current: Arc<RwLock<(Arc<CertifiedKey>, CertInfo)>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("dir", &self.dir)
            .field("info", &self.info())
            .finish()
    }
}

impl CertStore {
    /// Loads `cert.pem` and `key.pem` from `setup.dir`, or generates a self-signed pair there
    /// (key file 0600) when there is none.
    pub fn load_or_generate(setup: &TlsSetup) -> Result<CertStore, TlsError> {
        let cert_path = setup.dir.join(CERT_FILE);
        let key_path = setup.dir.join(KEY_FILE);
        // The key directory and the key are the owner's alone; older builds left the
        // directory world-readable.
        if setup.dir.is_dir() {
            restrict(&setup.dir, KEY_DIR_MODE);
        }
        if key_path.is_file() {
            restrict(&key_path, 0o600);
        }
        if !(cert_path.is_file() && key_path.is_file()) {
            let names = if setup.names.is_empty() {
                vec!["flakeboot".to_owned()]
            } else {
                setup.names.clone()
            };
            let generated = rcgen::generate_simple_self_signed(names)?;
            write_pair(
                &setup.dir,
                &generated.cert.pem(),
                &generated.signing_key.serialize_pem(),
            )?;
            write_file(&setup.dir.join(SELF_SIGNED_MARKER), b"", 0o644)?;
            tracing::info!(dir = %setup.dir.display(), "generated a self-signed certificate");
        }
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let key = certified_key(&cert_pem, &key_pem)?;
        let info = info_of(&key, setup.dir.join(SELF_SIGNED_MARKER).exists());
        Ok(CertStore {
            dir: setup.dir.clone(),
            current: Arc::new(RwLock::new((Arc::new(key), info))),
        })
    }

    /// Replaces the certificate by an uploaded one (PEM chain and PEM key). Checked first: a
    /// bad upload changes nothing. New connections use it at once.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<CertInfo, TlsError> {
        let key = certified_key(cert_pem.as_bytes(), key_pem.as_bytes())?;
        write_pair(&self.dir, cert_pem, key_pem)?;
        let marker = self.dir.join(SELF_SIGNED_MARKER);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|source| TlsError::Io {
                action: "remove",
                path: marker,
                source,
            })?;
        }
        let info = info_of(&key, false);
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = (Arc::new(key), info.clone());
        tracing::info!(fingerprint = %info.fingerprint, "installed an uploaded certificate");
        Ok(info)
    }

    /// The certificate in use.
    pub fn info(&self) -> CertInfo {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, h2 and http/1.1) that
    /// always presents the current certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
                .clone(),
        )
    }
}

/// Parses and checks a PEM certificate chain and key.
fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        what: "private key",
        message: e.to_string(),
    })?;
    let signing = provider::sign::any_supported_type(&key)?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match()?;
    Ok(certified)
}

fn info_of(key: &CertifiedKey, self_signed: bool) -> CertInfo {
    let fingerprint = key
        .cert
        .first()
        .map(|c| {
            let digest = ring::digest::digest(&ring::digest::SHA256, c.as_ref());
            let h = hex(digest.as_ref());
            h.as_bytes()
                .chunks(2)
                .map(|p| String::from_utf8_lossy(p).to_uppercase())
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    CertInfo {
        self_signed,
        fingerprint,
    }
}

fn write_pair(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        action: "create",
        path: dir.to_owned(),
        source,
    })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(KEY_DIR_MODE)).map_err(
        |source| TlsError::Io {
            action: "restrict",
            path: dir.to_owned(),
            source,
        },
    )?;
    write_file(&dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_file(&dir.join(CERT_FILE), cert_pem.as_bytes(), 0o644)
}

/// Writes a file atomically (temporary file, fsync, rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Permissions of the directory holding the private key.
const KEY_DIR_MODE: u32 = 0o700;

/// Takes away permissions of `path` beyond `mode`, with a warning (a failure is logged: the
/// appliance still starts).
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            was = format_args!("{current:04o}"),
            now = format_args!("{mode:04o}"),
            "TLS key was readable by others: permissions tightened"
        ),
        Err(error) => tracing::warn!(
            path = %path.display(),
            %error,
            "TLS key is readable by others and its permissions cannot be tightened"
        ),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_with_a_private_key_file_and_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let setup = TlsSetup {
            dir: tmp.path().join("tls"),
            names: vec!["10.0.0.2".into(), "flakeboot.lan".into()],
        };
        let first = CertStore::load_or_generate(&setup).unwrap();
        assert!(first.info().self_signed);
        let mode = std::fs::metadata(setup.dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode_of = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode_of(&setup.dir), 0o700);
        // A directory and key an older build left readable are tightened at the next start.
        std::fs::set_permissions(&setup.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            setup.dir.join(KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let again = CertStore::load_or_generate(&setup).unwrap();
        assert_eq!(first.info(), again.info(), "kept, not regenerated");
        assert_eq!(mode_of(&setup.dir), 0o700);
        assert_eq!(mode_of(&setup.dir.join(KEY_FILE)), 0o600);
        first.server_config().unwrap();
    }

    #[test]
    fn an_upload_replaces_it_and_a_bad_upload_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let setup = TlsSetup {
            dir: tmp.path().to_owned(),
            names: vec![],
        };
        let store = CertStore::load_or_generate(&setup).unwrap();
        let before = store.info();
        let other = rcgen::generate_simple_self_signed(vec!["nas.lan".to_owned()]).unwrap();
        let third = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();

        // A key that belongs to another certificate is refused.
        let err = store
            .replace(&other.cert.pem(), &third.signing_key.serialize_pem())
            .unwrap_err();
        assert!(matches!(err, TlsError::Key(_)), "{err:?}");
        assert!(matches!(
            store.replace("junk", "junk"),
            Err(TlsError::NoCertificate)
        ));
        assert_eq!(store.info(), before);

        let info = store
            .replace(&other.cert.pem(), &other.signing_key.serialize_pem())
            .unwrap();
        assert!(!info.self_signed);
        assert_ne!(info.fingerprint, before.fingerprint);
        assert_eq!(store.info(), info);
        let reloaded = CertStore::load_or_generate(&setup).unwrap();
        assert_eq!(reloaded.info(), info, "the upload persists");
    }
}
