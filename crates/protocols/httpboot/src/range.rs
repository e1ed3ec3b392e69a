//! HTTP `Range` requests (RFC 9110 §14), pure: a header value and a file size in, a decision out.
//!
//! Only what boot clients need: a single byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
//! A request for several ranges is answered with the whole file (RFC 9110 allows a server to
//! ignore `Range`), and so is any header this module cannot parse.

use std::ops::RangeInclusive;

/// What to send for a request, given its `Range` header and the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// The whole file, `200 OK`.
    Full,
    /// These bytes (inclusive, never empty, inside the file), `206 Partial Content`.
    Partial(RangeInclusive<u64>),
    /// No byte of the requested range exists: `416 Range Not Satisfiable`.
    Unsatisfiable,
}

impl RangeDecision {
    /// Decide from the raw `Range` header value (`None` when the request has none).
    pub fn decide(header: Option<&[u8]>, len: u64) -> RangeDecision {
        let Some(header) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return RangeDecision::Full;
        };
        let Some((unit, specs)) = header.trim().split_once('=') else {
            return RangeDecision::Full;
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return RangeDecision::Full;
        }
        let mut specs = specs.split(',').map(str::trim).filter(|s| !s.is_empty());
        let (Some(spec), None) = (specs.next(), specs.next()) else {
            // No range at all, or several: the whole file.
            return RangeDecision::Full;
        };
        decide_one(spec, len).unwrap_or(RangeDecision::Full)
    }
}

/// One `range-spec`; `None` when it is not valid syntax (the header is then ignored).
fn decide_one(spec: &str, len: u64) -> Option<RangeDecision> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let decision = if first.is_empty() {
        // Suffix range `-n`: the last n bytes.
        let n = digits(last)?;
        if n == 0 || len == 0 {
            RangeDecision::Unsatisfiable
        } else {
            RangeDecision::Partial(len.saturating_sub(n)..=len - 1)
        }
    } else {
        let first = digits(first)?;
        let last = if last.is_empty() {
            None
        } else {
            Some(digits(last)?)
        };
        if last.is_some_and(|last| last < first) {
            return None;
        }
        if first >= len {
            RangeDecision::Unsatisfiable
        } else {
            let end = last.map_or(len - 1, |last| last.min(len - 1));
            RangeDecision::Partial(first..=end)
        }
    };
    Some(decision)
}

/// A non-empty run of ASCII digits; values beyond `u64` saturate (they are past any file's end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// The `Content-Range` value of a 206 response: `bytes a-b/len`.
pub fn content_range(range: &RangeInclusive<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", range.start(), range.end())
}

/// The `Content-Range` value of a 416 response: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeDecision::*;

    fn d(h: &str, len: u64) -> RangeDecision {
        RangeDecision::decide(Some(h.as_bytes()), len)
    }

    #[test]
    fn no_header_is_full() {
        assert_eq!(RangeDecision::decide(None, 10), Full);
    }

    #[test]
    fn closed_ranges() {
        assert_eq!(d("bytes=100-199", 1000), Partial(100..=199));
        assert_eq!(d("bytes=0-0", 1000), Partial(0..=0));
        assert_eq!(d("bytes=999-999", 1000), Partial(999..=999));
        // The end is clamped to the file.
        assert_eq!(d("bytes=900-5000", 1000), Partial(900..=999));
        assert_eq!(d("bytes=0-99999999999999999999999", 1000), Partial(0..=999));
        // Whitespace and unit case are tolerated.
        assert_eq!(d(" BYTES = 1 - 2 ", 1000), Partial(1..=2));
    }

    #[test]
    fn open_ranges() {
        assert_eq!(d("bytes=1000-", 8000), Partial(1000..=7999));
        assert_eq!(d("bytes=0-", 1), Partial(0..=0));
        assert_eq!(d("bytes=7999-", 8000), Partial(7999..=7999));
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(d("bytes=-500", 8000), Partial(7500..=7999));
        assert_eq!(d("bytes=-8000", 8000), Partial(0..=7999));
        // Longer than the file: the whole file, as a 206.
        assert_eq!(d("bytes=-9000", 8000), Partial(0..=7999));
        assert_eq!(d("bytes=-99999999999999999999999", 8000), Partial(0..=7999));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(d("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(d("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(d("bytes=99999999999999999999999-", 1000), Unsatisfiable);
        assert_eq!(d("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(d("bytes=0-", 0), Unsatisfiable);
        assert_eq!(d("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=5-4",
            "bytes=1-2-3",
            "bytes=0x10-0x20",
            "items=0-1",
            "bytes=1 0-20",
        ] {
            assert_eq!(d(h, 1000), Full, "{h:?}");
        }
        assert_eq!(RangeDecision::decide(Some(&[0xff, 0xfe]), 1000), Full);
    }

    #[test]
    fn multiple_ranges_get_the_whole_file() {
        assert_eq!(d("bytes=0-1,5-6", 1000), Full);
        assert_eq!(d("bytes=0-1, -5", 1000), Full);
        // Empty list elements are allowed by the grammar and skipped.
        assert_eq!(d("bytes=0-1,", 1000), Partial(0..=1));
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(&(100..=199), 8000), "bytes 100-199/8000");
        assert_eq!(unsatisfied_range(8000), "bytes */8000");
    }
}
