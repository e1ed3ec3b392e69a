//! One line from a machine, as the parsers hand it on: what protocol brought it, its severity
//! and facility when the sender gave them, the host and program it names (a claim: lines are
//! attributed by their source address, never by these), and its text, cleaned.

/// Most bytes of a line's text; a longer line is cut there (at a character boundary) and
/// marked [`LogLine::truncated`].
pub const MAX_TEXT: usize = 1024;

/// Most bytes of a host or program name kept.
pub const MAX_NAME: usize = 64;

/// How a line arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// Syslog, RFC 5424.
    Rfc5424,
    /// Syslog, RFC 3164 (BSD syslog), or any datagram to the syslog port that is not RFC 5424.
    Rfc3164,
    /// The kernel's netconsole.
    Netconsole,
}

impl Proto {
    /// Every protocol, in a fixed order (for counters).
    pub const ALL: [Proto; 3] = [Proto::Rfc5424, Proto::Rfc3164, Proto::Netconsole];

    /// Its name in the API and in metrics: `rfc5424`, `rfc3164`, `netconsole`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Rfc5424 => "rfc5424",
            Proto::Rfc3164 => "rfc3164",
            Proto::Netconsole => "netconsole",
        }
    }

    /// The protocol named `name` (as [`Proto::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// One line from a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub proto: Proto,
    /// 0 (emergency) to 7 (debug), when the sender gave one.
    pub severity: Option<u8>,
    /// The syslog facility (0 kernel, 1 user, 3 daemon, ...), when the sender gave one.
    pub facility: Option<u8>,
    /// The host name the message names.
    pub hostname: Option<String>,
    /// The program (RFC 5424 APP-NAME, RFC 3164 TAG).
    pub app: Option<String>,
    /// The message, cleaned ([`clean`]).
    pub text: String,
    /// The text was cut at [`MAX_TEXT`] bytes.
    pub truncated: bool,
}

impl LogLine {
    /// A line of `proto` with only a text (cleaned here).
    pub fn text(proto: Proto, raw: &[u8]) -> LogLine {
        let (text, truncated) = clean(raw, MAX_TEXT);
        LogLine {
            proto,
            severity: None,
            facility: None,
            hostname: None,
            app: None,
            text,
            truncated,
        }
    }
}

/// `raw` as text of at most `max` bytes: invalid UTF-8 replaced, surrounding whitespace and
/// line ends trimmed, a tab a space, every other control character escaped (`\x1b`), cut at a
/// character boundary. True when it was cut.
pub fn clean(raw: &[u8], max: usize) -> (String, bool) {
    let lossy = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(lossy.len().min(max));
    let mut truncated = false;
    for c in lossy
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
    {
        let mut buf = [0u8; 4];
        let piece: &str = match c {
            '\t' => " ",
            c if c.is_control() => {
                let escaped = format!("\\x{:02x}", u32::from(c));
                if out.len() + escaped.len() > max {
                    truncated = true;
                    break;
                }
                out.push_str(&escaped);
                continue;
            }
            c => c.encode_utf8(&mut buf),
        };
        if out.len() + piece.len() > max {
            truncated = true;
            break;
        }
        out.push_str(piece);
    }
    (out, truncated)
}

/// A host or program name: printable ASCII without spaces, at most [`MAX_NAME`] bytes; `None`
/// when empty or the nil value `-`.
pub fn name(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw == b"-" {
        return None;
    }
    let (text, _) = clean(raw, MAX_NAME);
    let text: String = text.chars().filter(|c| c.is_ascii_graphic()).collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_tabs_are_spaces() {
        let (text, cut) = clean(b"a\tb\x1b[31mred\x07\r\n", MAX_TEXT);
        assert_eq!(text, "a b\\x1b[31mred\\x07");
        assert!(!cut);
        let (text, _) = clean(b"one\ntwo", MAX_TEXT);
        assert_eq!(text, "one\\x0atwo");
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_and_marked() {
        let raw = "é".repeat(600);
        let (text, cut) = clean(raw.as_bytes(), MAX_TEXT);
        assert!(cut);
        assert_eq!(text.len(), MAX_TEXT);
        assert!(text.chars().all(|c| c == 'é'));
        let (text, cut) = clean(&[b'x'; MAX_TEXT], MAX_TEXT);
        assert_eq!((text.len(), cut), (MAX_TEXT, false));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (text, _) = clean(b"ok \xff\xfe end", MAX_TEXT);
        assert_eq!(text, "ok \u{fffd}\u{fffd} end");
    }

    #[test]
    fn names_are_printable_and_short() {
        assert_eq!(name(b"-"), None);
        assert_eq!(name(b""), None);
        assert_eq!(name(b"node1").as_deref(), Some("node1"));
        assert_eq!(name(&[b'h'; 100]).map(|n| n.len()), Some(MAX_NAME));
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in Proto::ALL {
            assert_eq!(Proto::parse(p.as_str()), Some(p));
        }
    }
}
