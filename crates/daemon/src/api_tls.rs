//! How the CLI trusts the appliance's certificate over `--server`: a CA file (`--cacert`, PEM),
//! or a pin of the certificate's SHA-256 (`--pin`, as the settings page shows it). A pinned
//! certificate is matched exactly; the handshake's signatures are still verified with ring's
//! algorithms, so only the holder of that certificate's key gets through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Where the settings page shows the fingerprint a pin is compared with.
pub const WHERE_FINGERPRINT: &str = "the appliance's page shows it under Settings > HTTPS \
     certificate (\"SHA-256: AB:CD:...\")";

/// Why the trust settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `--pin` is not a SHA-256.
    #[error(
        "--pin {given:?} is not a SHA-256 fingerprint: give its 64 hex digits, with or without \
         colons ({WHERE_FINGERPRINT})"
    )]
    BadPin { given: String },
    /// The CA file cannot be read.
    #[error("cannot read --cacert {}: {err}", path.display())]
    ReadCa { path: PathBuf, err: std::io::Error },
    /// The CA file holds no usable certificate.
    #[error(
        "--cacert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----){detail}",
        path.display()
    )]
    NoCa { path: PathBuf, detail: String },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate the appliance presented is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the appliance presented a certificate with SHA-256 {got}, not the pinned {expected}")]
pub struct PinMismatch {
    /// The pin, formatted like the settings page.
    pub expected: String,
    /// What the appliance presented.
    pub got: String,
}

/// How to trust the appliance.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates from a PEM file (the appliance's own, or the CA that signed an upload).
    CaFile(PathBuf),
    /// The SHA-256 of the appliance's certificate (DER).
    Pin([u8; 32]),
}

impl Trust {
    /// Parses a pin as the settings page shows it (`AB:CD:...`), or plain hex, any case; an
    /// optional `sha256:` or `SHA-256:` prefix is accepted.
    pub fn pin(given: &str) -> Result<Trust, TrustError> {
        let bad = || TrustError::BadPin {
            given: given.to_owned(),
        };
        let trimmed = given.trim();
        let lower = trimmed.to_ascii_lowercase();
        let body = ["sha-256:", "sha256:", "sha256/"]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .unwrap_or(&lower);
        let hex: String = body.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Trust::Pin(out))
    }

    /// A rustls client configuration (ring, TLS 1.2 and 1.3, HTTP/1.1) that trusts this.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TrustError> {
        let provider = Arc::new(ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let mut config = match self {
            Trust::CaFile(path) => {
                let roots = read_roots(path)?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TrustError::NoCa {
                            path: path.clone(),
                            detail: format!(": {e}"),
                        })?;
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinVerifier {
                    pin: *pin,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let pem = std::fs::read(path).map_err(|err| TrustError::ReadCa {
        path: path.to_owned(),
        err,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::NoCa {
            path: path.to_owned(),
            detail: format!(": {e}"),
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TrustError::NoCa {
            path: path.to_owned(),
            detail: String::new(),
        });
    }
    Ok(roots)
}

/// `AB:CD:...` (upper-case hex pairs joined by colons).
pub fn format_pin(pin: &[u8; 32]) -> String {
    pin.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts exactly the certificate whose SHA-256 is `pin` (names and dates are not checked:
/// the pin names one certificate), and checks the handshake's signatures with its key.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: format_pin(&self.pin),
                    got: format_pin(&got),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The pin mismatch inside a failed handshake's error, if that is why it failed.
pub fn pin_mismatch(err: &rustls::Error) -> Option<&PinMismatch> {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_read_as_the_settings_page_shows_it_or_as_plain_hex() {
        let page = "AB:".repeat(31) + "CD";
        let Trust::Pin(p) = Trust::pin(&page).unwrap() else {
            panic!("not a pin")
        };
        assert_eq!(p[0], 0xAB);
        assert_eq!(p[31], 0xCD);
        assert_eq!(format_pin(&p), page, "formatted back like the page");
        let plain = page.replace(':', "").to_lowercase();
        assert!(matches!(Trust::pin(&plain), Ok(Trust::Pin(q)) if q == p));
        assert!(matches!(Trust::pin(&format!("SHA-256: {page}")), Ok(Trust::Pin(q)) if q == p));
        assert!(matches!(Trust::pin(&format!("sha256:{plain}")), Ok(Trust::Pin(q)) if q == p));
        for bad in [
            "",
            "AB:CD",
            &plain[..62],
            &format!("{plain}00"),
            &"zz".repeat(32),
        ] {
            let err = Trust::pin(bad).unwrap_err();
            assert!(err.to_string().contains("Settings > HTTPS"), "{err}");
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_with_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = Trust::CaFile(path.clone()).client_config().unwrap_err();
        assert!(matches!(err, TrustError::NoCa { .. }), "{err:?}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let err = Trust::CaFile(tmp.path().join("missing.pem"))
            .client_config()
            .unwrap_err();
        assert!(matches!(err, TrustError::ReadCa { .. }), "{err:?}");
    }
}
