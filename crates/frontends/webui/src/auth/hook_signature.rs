//! A forge's push webhook proves it knows the flake's secret (pure: headers and body in, a
//! verdict out):
//! - GitHub, Gitea and Forgejo: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
//!   body, keyed with the secret>`;
//! - GitLab: `X-Gitlab-Token: <the secret>`.
//!
//! Both are compared in constant time. When a request carries both headers, the signature
//! decides (a GitLab token never rescues a bad signature).

use ring::hmac;

use crate::auth::secret::{constant_time_eq, hex};

/// The signature header of GitHub, Gitea and Forgejo.
pub const HUB_SIGNATURE_256: &str = "x-hub-signature-256";

/// GitLab's token header.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";

/// Which forge's scheme a webhook passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// `X-Hub-Signature-256` (GitHub, Gitea, Forgejo).
    HubSignature,
    /// `X-Gitlab-Token`.
    GitLab,
}

/// Why a webhook is refused (all answered 401 alike; the kind is for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither header.
    #[error("no X-Hub-Signature-256 or X-Gitlab-Token header")]
    Missing,
    /// The signature is not `sha256=` and 64 hex digits.
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    /// The signature or token does not match the secret.
    #[error("the signature or token does not match the flake's secret")]
    Mismatch,
}

/// The webhook headers, as the request carried them (`None`: absent or not text).
#[derive(Debug, Clone, Copy, Default)]
pub struct HookHeaders<'a> {
    /// `X-Hub-Signature-256`.
    pub hub_signature_256: Option<&'a str>,
    /// `X-Gitlab-Token`.
    pub gitlab_token: Option<&'a str>,
}

/// `sha256=<hex>`: the `X-Hub-Signature-256` value of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

/// Whether the headers prove knowledge of `secret` for this `body`. An empty secret never
/// passes.
pub fn verify(
    secret: &str,
    headers: HookHeaders<'_>,
    body: &[u8],
) -> Result<Forge, SignatureError> {
    if let Some(signature) = headers.hub_signature_256 {
        let tag = signature
            .trim()
            .strip_prefix("sha256=")
            .and_then(unhex)
            .ok_or(SignatureError::Malformed)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        if secret.is_empty() || hmac::verify(&key, body, &tag).is_err() {
            return Err(SignatureError::Mismatch);
        }
        return Ok(Forge::HubSignature);
    }
    if let Some(token) = headers.gitlab_token {
        if secret.is_empty() || !constant_time_eq(token.trim(), secret) {
            return Err(SignatureError::Mismatch);
        }
        return Ok(Forge::GitLab);
    }
    Err(SignatureError::Missing)
}

/// 32 bytes from 64 hex digits (either case).
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(u8::try_from(digit(*hi)? * 16 + digit(*lo)?).ok()?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    /// GitHub's documented example ("Validating webhook deliveries").
    const GITHUB_EXAMPLE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn hub(sig: &str) -> HookHeaders<'_> {
        HookHeaders {
            hub_signature_256: Some(sig),
            gitlab_token: None,
        }
    }

    fn gitlab(token: &str) -> HookHeaders<'_> {
        HookHeaders {
            hub_signature_256: None,
            gitlab_token: Some(token),
        }
    }

    #[test]
    fn githubs_documented_example_signs_and_verifies() {
        assert_eq!(sign(SECRET, BODY), GITHUB_EXAMPLE);
        assert_eq!(
            verify(SECRET, hub(GITHUB_EXAMPLE), BODY),
            Ok(Forge::HubSignature)
        );
        let upper = format!("sha256={}", GITHUB_EXAMPLE[7..].to_uppercase());
        assert_eq!(verify(SECRET, hub(&upper), BODY), Ok(Forge::HubSignature));
    }

    #[test]
    fn a_changed_body_secret_or_signature_is_a_mismatch() {
        assert_eq!(
            verify(SECRET, hub(GITHUB_EXAMPLE), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("another secret", hub(GITHUB_EXAMPLE), BODY),
            Err(SignatureError::Mismatch)
        );
        let flipped = GITHUB_EXAMPLE.replace("e17", "e18");
        assert_eq!(
            verify(SECRET, hub(&flipped), BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("", hub(&sign("", BODY)), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_signatures_and_missing_headers_are_refused() {
        for bad in [
            "",
            "sha256=",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17ff",
        ] {
            assert_eq!(
                verify(SECRET, hub(bad), BODY),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(SECRET, HookHeaders::default(), BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn gitlab_tokens_compare_whole() {
        assert_eq!(verify(SECRET, gitlab(SECRET), BODY), Ok(Forge::GitLab));
        assert_eq!(
            verify(SECRET, gitlab("It's a Secret"), BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify("", gitlab(""), BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_bad_signature_is_not_rescued_by_a_good_gitlab_token() {
        let both = HookHeaders {
            hub_signature_256: Some("sha256=00"),
            gitlab_token: Some(SECRET),
        };
        assert_eq!(verify(SECRET, both, BODY), Err(SignatureError::Malformed));
    }
}
