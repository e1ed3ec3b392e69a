//! User-controlled text in logs. A user name with a newline or terminal escape codes must not
//! forge a log line ("signed in") or repaint an operator's terminal: [`escape_for_log`] writes
//! control and invisible formatting characters as `\u{..}` escapes and shortens long input.

use std::fmt::Write;

/// Longest user input logged, in characters; the rest is cut off with `…`.
pub const MAX_LOGGED_CHARS: usize = 128;

/// `s` made safe for one log line: control characters (newlines, ESC, DEL, C1), bidirectional
/// and zero-width formatting characters, and backslashes (so an escape cannot be faked) are
/// escaped; more than [`MAX_LOGGED_CHARS`] characters are cut off.
pub fn escape_for_log(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_CHARS * 2));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_LOGGED_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width, LRM/RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, bidi isolates
            | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_escapes_and_bidi_overrides_are_escaped() {
        let forged = "admin\n2026-01-01T00:00:00Z  INFO signed in user=admin\x1b[2K\r";
        let logged = escape_for_log(forged);
        assert!(!logged.chars().any(char::is_control), "{logged}");
        assert_eq!(
            logged,
            "admin\\n2026-01-01T00:00:00Z  INFO signed in user=admin\\u{1b}[2K\\r"
        );
        assert_eq!(
            escape_for_log("a\u{202e}b\u{7f}c\u{85}"),
            "a\\u{202e}b\\u{7f}c\\u{85}"
        );
        // A literal backslash-n typed by the user stays distinguishable from a newline.
        assert_eq!(escape_for_log("a\\nb"), "a\\\\nb");
        assert_eq!(escape_for_log("plain ümlaut name"), "plain ümlaut name");
    }

    #[test]
    fn long_input_is_cut_off() {
        let long = "x".repeat(10_000);
        let logged = escape_for_log(&long);
        assert_eq!(logged.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(logged.ends_with('…'));
        assert_eq!(escape_for_log(""), "");
    }
}
