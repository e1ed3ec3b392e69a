//! The one-time setup code: proves that whoever sets the appliance up can read its console or
//! log (physical access). Generated at start while no admin exists.

use std::fmt;

use crate::auth::secret::{RandomError, constant_time_eq, random_bytes};

/// Letters and digits that cannot be confused when read off a screen (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A code like `K7QX-M3PA-9TRD` (12 symbols of 5 bits: 60 bits).
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

impl SetupCode {
    /// A fresh random code. The daemon prints it (log and console) when no admin exists:
    /// `tracing::warn!("first-run setup code: {code}")` and on /dev/console.
    pub fn generate() -> Result<SetupCode, RandomError> {
        let bytes = random_bytes::<12>()?;
        let symbols: Vec<char> = bytes
            .iter()
            .map(|b| {
                char::from(
                    ALPHABET
                        .get(usize::from(*b) % ALPHABET.len())
                        .copied()
                        .unwrap_or(b'Z'),
                )
            })
            .collect();
        let groups: Vec<String> = symbols.chunks(4).map(|c| c.iter().collect()).collect();
        Ok(SetupCode(groups.join("-")))
    }

    /// A known code (tests, or a code the daemon keeps across restarts).
    pub fn from_string(code: impl Into<String>) -> SetupCode {
        SetupCode(code.into())
    }

    /// The code as printed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `input` is this code; case, spaces and dashes are ignored.
    pub fn matches(&self, input: &str) -> bool {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let (a, b) = (norm(&self.0), norm(input));
        !b.is_empty() && constant_time_eq(&a, &b)
    }
}

impl fmt::Display for SetupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetupCode(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_groups_of_four_unambiguous_symbols() {
        let code = SetupCode::generate().unwrap();
        let s = code.as_str();
        assert_eq!(s.len(), 14, "{s}");
        assert_eq!(s.split('-').count(), 3);
        assert!(
            s.chars()
                .all(|c| c == '-' || (ALPHABET.contains(&(c as u8)) && !"01OIL".contains(c)))
        );
        assert_ne!(code, SetupCode::generate().unwrap());
        assert_eq!(format!("{code:?}"), "SetupCode(..)");
    }

    #[test]
    fn matching_ignores_case_and_separators() {
        let code = SetupCode::from_string("K7QX-M3PA-9TRD");
        assert!(code.matches("k7qx m3pa 9trd"));
        assert!(code.matches("K7QXM3PA9TRD"));
        assert!(!code.matches("K7QX-M3PA-9TRE"));
        assert!(!code.matches(""));
    }
}
