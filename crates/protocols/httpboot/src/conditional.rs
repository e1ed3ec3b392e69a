//! Validators (`ETag`, `Last-Modified`) and conditional requests (RFC 9110 §13), pure.
//!
//! Evaluated in the RFC's order for GET/HEAD: `If-None-Match` (else `If-Modified-Since`) may
//! answer `304 Not Modified`; `If-Range` decides whether a `Range` header is honoured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file's validators, computed from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// A strong entity tag, quotes included: `"<inode>-<size>-<mtime ns>"` in hex.
    pub etag: String,
    /// Modification time, truncated to whole seconds (HTTP dates have no finer resolution).
    pub last_modified: SystemTime,
}

impl Validators {
    /// Validators for a file of `len` bytes with inode `inode`, modified at `mtime`. Any change of
    /// content through a rewrite or a replacement (new inode) changes the tag.
    pub fn new(len: u64, mtime: SystemTime, inode: u64) -> Validators {
        let since_epoch = mtime.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Validators {
            etag: format!("\"{inode:x}-{len:x}-{:x}\"", since_epoch.as_nanos()),
            last_modified: UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
        }
    }

    /// The `Last-Modified` header value.
    pub fn last_modified_header(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }
}

/// The request headers that make a GET or HEAD conditional (raw values, absent = `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

/// What the conditions say about a GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The client's copy is current: `304 Not Modified`, no body.
    NotModified,
    /// Send the representation; honour `Range` only when `use_range`.
    Send { use_range: bool },
}

impl Conditions<'_> {
    /// Evaluate these conditions against the current validators.
    pub fn evaluate(&self, v: &Validators) -> Precondition {
        let not_modified = match (self.if_none_match, self.if_modified_since) {
            (Some(inm), _) => etag_list_matches(inm, &v.etag, Compare::Weak),
            // If-Modified-Since is ignored when If-None-Match is present (RFC 9110 §13.1.3).
            (None, Some(ims)) => parse_date(ims).is_some_and(|since| v.last_modified <= since),
            (None, None) => false,
        };
        if not_modified {
            return Precondition::NotModified;
        }
        let use_range = match self.if_range {
            None => true,
            Some(value) => if_range_matches(value, v),
        };
        Precondition::Send { use_range }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Equal opaque tags, `W/` prefixes ignored (If-None-Match).
    Weak,
    /// Equal opaque tags and neither weak (If-Range).
    Strong,
}

/// Does a comma-separated list of entity tags (or `*`) match `current` (a strong tag)?
fn etag_list_matches(header: &[u8], current: &str, compare: Compare) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    let header = header.trim();
    if header == "*" {
        return true;
    }
    // Entity tags cannot contain commas or quotes inside, so splitting on ',' is exact.
    header.split(',').map(str::trim).any(|tag| {
        let (weak, opaque) = match tag.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        if weak && compare == Compare::Strong {
            return false;
        }
        opaque == current
    })
}

/// `If-Range`: an entity tag (strong comparison) or an HTTP date (exact match of Last-Modified).
fn if_range_matches(value: &[u8], v: &Validators) -> bool {
    let trimmed = value.trim_ascii();
    if trimmed.starts_with(b"\"") || trimmed.starts_with(b"W/") {
        etag_list_matches(trimmed, &v.etag, Compare::Strong) && !trimmed.contains(&b',')
    } else {
        parse_date(trimmed) == Some(v.last_modified)
    }
}

fn parse_date(value: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        Validators::new(
            8 << 20,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            42,
        )
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    #[test]
    fn etag_and_last_modified() {
        let v = validators();
        assert_eq!(
            v.etag,
            format!("\"2a-800000-{:x}\"", 1_700_000_000_123_456_789u128)
        );
        assert_eq!(v.last_modified_header(), LM);
        // Another inode, size or mtime gives another tag.
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_ne!(Validators::new(8 << 20, t, 43).etag, v.etag);
        assert_ne!(Validators::new(1, t, 42).etag, v.etag);
        assert_ne!(
            Validators::new(8 << 20, t + Duration::from_nanos(1), 42).etag,
            v.etag
        );
        // A time before the epoch does not panic.
        let _ = Validators::new(1, UNIX_EPOCH - Duration::from_secs(5), 1);
    }

    fn eval(c: Conditions<'_>) -> Precondition {
        c.evaluate(&validators())
    }

    #[test]
    fn unconditional() {
        assert_eq!(
            eval(Conditions::default()),
            Precondition::Send { use_range: true }
        );
    }

    #[test]
    fn if_none_match() {
        let v = validators();
        let weak = format!("W/{}", v.etag);
        let list = format!("\"other\", {}", v.etag);
        for hit in [v.etag.as_str(), "*", weak.as_str(), list.as_str()] {
            let c = Conditions {
                if_none_match: Some(hit.as_bytes()),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::NotModified, "{hit}");
        }
        for miss in ["\"other\"", "", "garbage", "\"2a-800000\""] {
            let c = Conditions {
                if_none_match: Some(miss.as_bytes()),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::Send { use_range: true }, "{miss}");
        }
    }

    #[test]
    fn if_modified_since() {
        for (date, expected) in [
            (LM, Precondition::NotModified),
            ("Wed, 15 Nov 2023 00:00:00 GMT", Precondition::NotModified),
            (
                "Tue, 14 Nov 2023 22:13:19 GMT",
                Precondition::Send { use_range: true },
            ),
            ("not a date", Precondition::Send { use_range: true }),
        ] {
            let c = Conditions {
                if_modified_since: Some(date.as_bytes()),
                ..Default::default()
            };
            assert_eq!(eval(c), expected, "{date}");
        }
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let c = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(LM.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Send { use_range: true });
    }

    #[test]
    fn if_range() {
        let v = validators();
        let weak = format!("W/{}", v.etag);
        for (value, use_range) in [
            (v.etag.as_str(), true),
            (LM, true),
            (weak.as_str(), false),
            ("\"other\"", false),
            ("Tue, 14 Nov 2023 22:13:19 GMT", false),
            ("garbage", false),
        ] {
            let c = Conditions {
                if_range: Some(value.as_bytes()),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::Send { use_range }, "{value}");
        }
    }
}
