//! Times on the wire: RFC 3339 strings in UTC (`2026-12-02T16:20:25.123Z`), whatever the store
//! keeps. Use with `#[serde(with = "rfc3339")]` or `"rfc3339_opt"` for an `Option`.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serializer};

/// `SystemTime` as an RFC 3339 string.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

/// `Option<SystemTime>` as an RFC 3339 string or null.
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_rfc3339_weak(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super::rfc3339")]
        at: std::time::SystemTime,
        #[serde(with = "super::rfc3339_opt")]
        maybe: Option<std::time::SystemTime>,
    }

    #[test]
    fn times_are_rfc3339_strings_and_read_back() {
        let t = T {
            at: UNIX_EPOCH + Duration::from_millis(1_764_692_425_123),
            maybe: None,
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"at":"2025-12-02T16:20:25.123Z","maybe":null}"#);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
    }
}
