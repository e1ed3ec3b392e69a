//! The `?mac=` query parameter, pure.
//!
//! iPXE expands `${net0/mac}` to `52:54:00:12:34:56` (`${net0/mac:hexhyp}` gives `-`
//! separators); either may arrive percent-encoded.

use flakeboot_catalogue::MacAddr;

/// What the query said about the client's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacParam {
    /// No `mac` parameter (or an empty one).
    Absent,
    Valid(MacAddr),
    /// A `mac` parameter that is not a MAC, or not one machine's (zero, broadcast, multicast):
    /// the raw value, for the debug log.
    Invalid(String),
}

/// Find `mac=` in a raw query string (`a=b&mac=...`); the first occurrence wins.
pub fn mac_param(query: Option<&str>) -> MacParam {
    let Some(query) = query else {
        return MacParam::Absent;
    };
    let Some(raw) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mac="))
        .filter(|v| !v.is_empty())
    else {
        return MacParam::Absent;
    };
    let mac = percent_decode(raw)
        .and_then(|s| s.parse::<MacAddr>().ok())
        .filter(MacAddr::is_station);
    match mac {
        Some(mac) => MacParam::Valid(mac),
        None => MacParam::Invalid(raw.chars().take(64).collect()),
    }
}

/// Decode `%XX` escapes (and `+` as a space); `None` for a bad escape or non-UTF-8 result.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    #[test]
    fn finds_the_mac() {
        for q in [
            "mac=52:54:00:12:34:56",
            "mac=52-54-00-12-34-56",
            "mac=52%3A54%3a00%3A12%3A34%3A56",
            "x=1&mac=52:54:00:12:34:56&mac=00:00:00:00:00:00",
            "mac=52:54:00:12:34:56&",
        ] {
            assert_eq!(mac_param(Some(q)), MacParam::Valid(MAC), "{q}");
        }
    }

    #[test]
    fn absent_or_invalid() {
        for q in [
            None,
            Some(""),
            Some("mac="),
            Some("x=1"),
            Some("amac=52:54:00:12:34:56"),
        ] {
            assert_eq!(mac_param(q), MacParam::Absent, "{q:?}");
        }
        for q in [
            "mac=nope",
            "mac=52:54:00:12:34",
            "mac=%zz",
            "mac=%",
            "mac=%ff%fe",
            "mac=${net0/mac}",
            "mac=ff:ff:ff:ff:ff:ff",
            "mac=01:00:5e:00:00:01",
            "mac=00-00-00-00-00-00",
        ] {
            assert!(matches!(mac_param(Some(q)), MacParam::Invalid(_)), "{q}");
        }
    }
}
