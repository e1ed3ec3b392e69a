//! The HTTP `Range` header parser and the conditional-request headers (`If-None-Match`,
//! `If-Modified-Since`, `If-Range`) of the boot file server, from anyone on the LAN.
//!
//! Asserts, for any header bytes and file size:
//! - nothing panics; a partial answer is a non-empty range inside the file;
//! - for a well-formed single range (any spacing, case, leading zeros or overlong numbers) the
//!   answer is RFC 9110's: `a-b` gives `a..=min(b, len-1)`, `a-` gives `a..=len-1`, `-n` the last
//!   `n` bytes, a first byte past the end (or `-0`, or an empty file) 416, and `b < a` is ignored
//!   (the whole file);
//! - the file's own validators always match: its ETag and `*` in `If-None-Match`, its
//!   Last-Modified in `If-Modified-Since` give 304; `If-Range` with its strong ETag or
//!   Last-Modified keeps the range, a weak ETag drops it.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use flakeboot_httpboot::{Conditions, Precondition, RangeDecision, Validators};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Number {
    value: u64,
    leading_zeros: u8,
    /// Extra digits past u64 (the value is then past any file's end).
    overlong: bool,
}

impl Number {
    fn text(&self) -> String {
        let zeros = "0".repeat(usize::from(self.leading_zeros % 24));
        let tail = if self.overlong {
            "0000000000000000000000"
        } else {
            ""
        };
        format!("{zeros}{}{tail}", self.value)
    }

    /// The value, saturated: only its order against the file length matters past u64.
    fn value(&self) -> u64 {
        if self.overlong && self.value != 0 {
            u64::MAX
        } else {
            self.value
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Spec {
    Closed(Number, Number),
    Open(Number),
    Suffix(Number),
}

#[derive(Debug, Arbitrary)]
enum Range {
    Raw(Vec<u8>),
    WellFormed {
        spec: Spec,
        upper_case: bool,
        spaces: u8,
        trailing_comma: bool,
    },
}

#[derive(Debug, Arbitrary)]
enum Header {
    Absent,
    Raw(Vec<u8>),
    /// The file's own validator (ETag or date, as the header takes).
    Own,
    /// The file's ETag, weak.
    OwnWeak,
}

#[derive(Debug, Arbitrary)]
struct Input {
    len: u64,
    small: bool,
    mtime_secs: u32,
    mtime_nanos: u32,
    inode: u64,
    range: Range,
    if_none_match: Header,
    if_modified_since: Header,
    if_range: Header,
}

fn expected(spec: &Spec, len: u64) -> RangeDecision {
    match spec {
        Spec::Closed(a, b) if b.value() < a.value() => RangeDecision::Full,
        Spec::Closed(a, _) | Spec::Open(a) if a.value() >= len => RangeDecision::Unsatisfiable,
        Spec::Closed(a, b) => RangeDecision::Partial(a.value()..=b.value().min(len - 1)),
        Spec::Open(a) => RangeDecision::Partial(a.value()..=len - 1),
        Spec::Suffix(n) if n.value() == 0 || len == 0 => RangeDecision::Unsatisfiable,
        Spec::Suffix(n) => RangeDecision::Partial(len - n.value().min(len)..=len - 1),
    }
}

fn header<'a>(h: &'a Header, own: &'a [u8], weak: &'a [u8]) -> Option<&'a [u8]> {
    match h {
        Header::Absent => None,
        Header::Raw(b) => Some(b),
        Header::Own => Some(own),
        Header::OwnWeak => Some(weak),
    }
}

fuzz_target!(|input: Input| {
    // Small files half the time, so ranges near the end are reached.
    let len = if input.small {
        input.len % 64
    } else {
        input.len
    };

    let (header_bytes, want) = match &input.range {
        Range::Raw(bytes) => (bytes.clone(), None),
        Range::WellFormed {
            spec,
            upper_case,
            spaces,
            trailing_comma,
        } => {
            let sp = " ".repeat(usize::from(spaces % 3));
            let body = match spec {
                Spec::Closed(a, b) => format!("{}{sp}-{sp}{}", a.text(), b.text()),
                Spec::Open(a) => format!("{}{sp}-", a.text()),
                Spec::Suffix(n) => format!("-{sp}{}", n.text()),
            };
            let unit = if *upper_case { "BYTES" } else { "bytes" };
            let comma = if *trailing_comma { "," } else { "" };
            let h = format!("{sp}{unit}{sp}={sp}{body}{comma}{sp}");
            (h.into_bytes(), Some(expected(spec, len)))
        }
    };
    let decision = RangeDecision::decide(Some(&header_bytes), len);
    if let RangeDecision::Partial(r) = &decision {
        assert!(
            r.start() <= r.end() && *r.end() < len,
            "{r:?} of a {len}-byte file"
        );
    }
    if let Some(want) = want {
        assert_eq!(
            decision,
            want,
            "Range {:?} of a {len}-byte file",
            String::from_utf8_lossy(&header_bytes)
        );
    }

    let mtime = UNIX_EPOCH
        + Duration::new(
            u64::from(input.mtime_secs),
            input.mtime_nanos % 1_000_000_000,
        );
    let v = Validators::new(len, mtime, input.inode);
    let date = v.last_modified_header().into_bytes();
    let etag = v.etag.as_bytes().to_vec();
    let weak = [b"W/".as_slice(), &etag].concat();
    let conditions = Conditions {
        if_none_match: header(&input.if_none_match, &etag, &weak),
        if_modified_since: header(&input.if_modified_since, &date, &weak),
        if_range: header(&input.if_range, &etag, &weak),
    };
    let pre = conditions.evaluate(&v);
    let inm_matches = matches!(input.if_none_match, Header::Own | Header::OwnWeak)
        || conditions.if_none_match == Some(b"*".as_slice());
    if inm_matches
        || (conditions.if_none_match.is_none() && matches!(input.if_modified_since, Header::Own))
    {
        assert_eq!(pre, Precondition::NotModified);
    } else if pre != Precondition::NotModified {
        match input.if_range {
            Header::Absent | Header::Own => {
                assert_eq!(pre, Precondition::Send { use_range: true });
            }
            Header::OwnWeak => assert_eq!(pre, Precondition::Send { use_range: false }),
            Header::Raw(_) => {}
        }
    }
    // If-Range with the date also keeps the range.
    let by_date = Conditions {
        if_range: Some(&date),
        ..Conditions::default()
    };
    assert_eq!(by_date.evaluate(&v), Precondition::Send { use_range: true });
});
