//! What a notification record says: the revision the appliances should run.
//!
//! The format (docs/api.md, "DNS notification"): each TXT record's strings are joined without
//! a separator (as RFC 7208 3.3 joins SPF's), and the text is `key=value` pairs separated by
//! spaces. `rev=<commit>` (40 hexadecimal digits, any case) is the one key read; other pairs
//! are ignored (`rev=... branch=main` is fine), and so are records with no `rev` (a name may
//! hold other TXT records). Several records, or several `rev` pairs, must agree.

/// A notification record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The commit, 40 lowercase hexadecimal digits.
    pub rev: String,
}

/// Why the TXT records are not a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// No TXT record at the name.
    #[error("the name has no TXT record")]
    NoRecord,
    /// TXT records, but none with a `rev=` pair.
    #[error("no TXT record says rev=<commit> ({records} record(s) without one)")]
    NoRev {
        /// The records seen.
        records: usize,
    },
    /// A `rev=` value that is not a commit.
    #[error("rev={shown} is not a commit: write rev= and the commit's 40 hexadecimal digits")]
    BadRev {
        /// The value, cut short and with control characters escaped (it goes into logs).
        shown: String,
    },
    /// Two different `rev=` values.
    #[error("the TXT records name two revisions: {a} and {b}")]
    Conflict {
        /// One.
        a: String,
        /// The other.
        b: String,
    },
}

/// The longest value shown in a [`NoticeError::BadRev`].
const SHOWN: usize = 48;

/// A record's value safe to log: at most [`SHOWN`] characters, control characters escaped.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > SHOWN {
        out.push_str("...");
    }
    out
}

/// Whether `value` is a 40-digit hexadecimal commit id.
fn is_commit(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The notice the TXT records (each a list of strings) carry.
pub fn read_notice<S: AsRef<[u8]>>(records: &[Vec<S>]) -> Result<Notice, NoticeError> {
    if records.is_empty() {
        return Err(NoticeError::NoRecord);
    }
    let mut found: Option<String> = None;
    for record in records {
        let joined: Vec<u8> = record
            .iter()
            .flat_map(|s| s.as_ref().iter().copied())
            .collect();
        let text = String::from_utf8_lossy(&joined);
        for pair in text.split_ascii_whitespace() {
            let Some(value) = pair.strip_prefix("rev=") else {
                continue;
            };
            if !is_commit(value) {
                return Err(NoticeError::BadRev {
                    shown: shown(value),
                });
            }
            let rev = value.to_ascii_lowercase();
            match &found {
                Some(a) if *a != rev => {
                    return Err(NoticeError::Conflict {
                        a: a.clone(),
                        b: rev,
                    });
                }
                _ => found = Some(rev),
            }
        }
    }
    found.map(|rev| Notice { rev }).ok_or(NoticeError::NoRev {
        records: records.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn read(records: &[&[&str]]) -> Result<Notice, NoticeError> {
        let owned: Vec<Vec<&str>> = records.iter().map(|r| r.to_vec()).collect();
        read_notice(&owned)
    }

    fn rev(r: &str) -> Result<Notice, NoticeError> {
        Ok(Notice { rev: r.into() })
    }

    #[test]
    fn rev_is_read_beside_other_pairs_and_records() {
        assert_eq!(read(&[&[&format!("rev={A}")]]), rev(A));
        assert_eq!(
            read(&[&[&format!("v=flakeboot1 rev={A} branch=main")]]),
            rev(A)
        );
        assert_eq!(
            read(&[&["v=spf1 -all"], &[&format!("rev={}", A.to_uppercase())]]),
            rev(A)
        );
        // Strings of one record are joined without a space (a long record split at 255).
        assert_eq!(
            read(&[&["rev=0123456789abcdef01234", "56789abcdef01234567"]]),
            rev(A)
        );
        // The same revision twice is fine.
        assert_eq!(
            read(&[&[&format!("rev={A}")], &[&format!("x=1 rev={A}")]]),
            rev(A)
        );
    }

    #[test]
    fn garbage_is_an_error_that_says_what_is_wrong() {
        assert_eq!(read(&[]), Err(NoticeError::NoRecord));
        assert_eq!(
            read(&[&["hello world"], &[""]]),
            Err(NoticeError::NoRev { records: 2 })
        );
        // A key that only starts like rev, or rev with a space, is not rev.
        assert_eq!(
            read(&[&[&format!("revision={A} rev = {A}")]]),
            Err(NoticeError::NoRev { records: 1 })
        );
        for bad in [
            "rev=",
            "rev=main",
            &format!("rev={A}0"),
            &format!("rev={}", &A[1..]),
            "rev=0123456789abcdef0123456789abcdef0123456g",
        ] {
            assert!(
                matches!(read(&[&[bad]]), Err(NoticeError::BadRev { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            read(&[&[&format!("rev={A}")], &[&format!("rev={B}")]]),
            Err(NoticeError::Conflict {
                a: A.into(),
                b: B.into()
            })
        );
        // Binary junk is shown escaped and cut short.
        let junk = format!("rev=\u{1b}[31m{}", "x".repeat(100));
        let Err(NoticeError::BadRev { shown }) = read(&[&[&junk]]) else {
            panic!("junk accepted");
        };
        assert!(
            shown.starts_with("\\u{1b}[31m") && shown.ends_with("..."),
            "{shown}"
        );
        let bytes: Vec<Vec<u8>> = vec![vec![0xff, 0xfe, b' ', b'r']];
        assert_eq!(
            read_notice(&[bytes]),
            Err(NoticeError::NoRev { records: 1 })
        );
    }
}
