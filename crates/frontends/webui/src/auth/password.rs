//! Passwords: argon2id hashes in PHC string form, and what a new password must satisfy.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Why a password could not be set or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("the password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// The two entries differ.
    #[error("the two passwords do not match")]
    Mismatch,
    /// argon2 failed (cannot happen with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checks a new password and its confirmation.
pub fn check_new(password: &str, confirm: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort {
            min: MIN_PASSWORD_LEN,
        });
    }
    if password != confirm {
        return Err(PasswordError::Mismatch);
    }
    Ok(())
}

/// The argon2id hash (default parameters: 19 MiB, 2 passes) of a password, with a random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// A fixed hash to verify against when the user does not exist (same cost, never matches a
/// real login because the caller also requires the user to exist).
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$Zmxha2Vib290LWR1bW15$8Zt2t9G3YkU3ZQ0mKXrj6TiSUTLJi3xbkf2d0vwl1QM"
}

/// True when `password` matches the PHC hash. An unreadable hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::warn!("unreadable password hash in the store: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterx", &a));
        assert!(!verify("anything", "not a hash"));
        // The dummy hash parses (so verifying against it costs a full argon2 run).
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(matches!(
            check_new("short", "short"),
            Err(PasswordError::TooShort { min: 10 })
        ));
        assert!(matches!(
            check_new("long enough 1", "long enough 2"),
            Err(PasswordError::Mismatch)
        ));
        check_new("long enough 1", "long enough 1").unwrap();
    }
}
