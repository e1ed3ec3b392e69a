//! What a host name and a kernel command line may contain: the one definition shared by the
//! config's validation (every value a user saves) and the iPXE script renderer (which refuses
//! anything else). A value that passes here always renders.
//!
//! iPXE reads a script line by line, expands `${...}` settings anywhere in a line, splits it on
//! whitespace, and treats the tokens `||`, `&&`, `;` and any token starting with `#` as command
//! terminators or comments (iPXE `core/exec.c`: `expand_settings`, `split_command`,
//! `command_terminator`); newer builds also read quotes and backslashes. A command line holding
//! any of that could end the `kernel` command early or inject another one.

/// Longest host name: a DNS label (host names appear in URL paths and menu labels).
pub const MAX_HOST_NAME: usize = 63;

/// Longest flake name (flake names appear in URLs, version labels and menus).
pub const MAX_FLAKE_NAME: usize = 64;

/// Longest version label in a boot URL: a flake generation's `<flake>.g<n>` with the longest
/// flake name and a `u32` generation number (10 digits) fits.
pub const MAX_VERSION: usize = MAX_FLAKE_NAME + ".g".len() + 10;

/// Why a kernel command line cannot go into a boot script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("contains a line break")]
    LineBreak,
    #[error("contains a control character")]
    Control,
    #[error("contains a non-ASCII character")]
    NonAscii,
    #[error("contains '$' (iPXE would expand it as a setting)")]
    Dollar,
    #[error("contains a quote or a backslash")]
    Quote,
    #[error("contains {0:?} as a word (iPXE reads it as a command separator)")]
    Separator(&'static str),
    #[error("contains a word starting with '#' (iPXE reads it as a comment)")]
    Comment,
}

/// Host names: 1-63 of `[A-Za-z0-9_-]`.
pub fn valid_host_name(name: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Flake names: 1-64 of `[A-Za-z0-9_-]` (no `.`, so `<flake>.g<n>` splits unambiguously).
pub fn valid_flake_name(name: &str) -> bool {
    (1..=MAX_FLAKE_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A kernel command line is one line of printable ASCII that iPXE passes through unchanged: no
/// control characters (newlines), no `$`, no quotes or backslashes, and no word that iPXE reads
/// as a terminator (`||`, `&&`, `;`) or a comment (`#...`). Words are separated by spaces (a tab
/// is a control character).
pub fn check_cmdline(cmdline: &str) -> Result<(), CmdlineError> {
    for c in cmdline.chars() {
        match c {
            '\n' | '\r' => return Err(CmdlineError::LineBreak),
            c if c.is_control() => return Err(CmdlineError::Control),
            c if !c.is_ascii() => return Err(CmdlineError::NonAscii),
            '$' => return Err(CmdlineError::Dollar),
            '\\' | '"' | '\'' => return Err(CmdlineError::Quote),
            _ => {}
        }
    }
    for word in cmdline.split_ascii_whitespace() {
        for separator in ["||", "&&", ";"] {
            if word == separator {
                return Err(CmdlineError::Separator(separator));
            }
        }
        if word.starts_with('#') {
            return Err(CmdlineError::Comment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["demo", "a", "web-01", "under_score", "X9", &"a".repeat(63)] {
            assert!(valid_host_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "a b",
            "a\n",
            "a.b",
            "${x}",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!valid_host_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn cmdlines() {
        for ok in [
            "",
            "console=ttyS0 panic=-1",
            "init=/nix/store/abc-nixos-system/init loglevel=4",
            "a|b c&&d e;f x#y",
        ] {
            assert_eq!(check_cmdline(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("quiet\nshell", CmdlineError::LineBreak),
            ("quiet\r\nshell", CmdlineError::LineBreak),
            ("quiet\tx", CmdlineError::Control),
            ("a\0b", CmdlineError::Control),
            ("root=${root}", CmdlineError::Dollar),
            ("quiet || shell", CmdlineError::Separator("||")),
            ("quiet && shell", CmdlineError::Separator("&&")),
            ("quiet ; shell", CmdlineError::Separator(";")),
            ("quiet #comment", CmdlineError::Comment),
            ("#!ipxe", CmdlineError::Comment),
            ("x=\"a b\"", CmdlineError::Quote),
            ("x='a'", CmdlineError::Quote),
            ("x=a\\b", CmdlineError::Quote),
            ("é", CmdlineError::NonAscii),
        ] {
            assert_eq!(check_cmdline(bad), Err(why), "{bad:?}");
        }
    }
}
