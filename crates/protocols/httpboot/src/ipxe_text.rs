//! What may go into an iPXE script, checked before it gets there.
//!
//! iPXE reads a script line by line, expands `${...}` settings anywhere in a line, splits it on
//! whitespace, and treats the tokens `||`, `&&`, `;` and any token starting with `#` as command
//! terminators or comments (iPXE `core/exec.c`: `expand_settings`, `split_command`,
//! `command_terminator`). So a value from the catalogue could inject commands through a newline,
//! a terminator token or a settings expansion. Names and command lines are refused when they
//! contain any of that; free display text is sanitised instead.
//!
//! Host names and command lines follow [`flakeboot_catalogue::text`], the rules the config's
//! validation applies to every value a user saves: what passes there renders here.

use flakeboot_catalogue::text::{self, CmdlineError};

/// Why a value cannot go into a script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("host name {0:?} is not 1-63 characters of [A-Za-z0-9_-]")]
    HostName(String),
    #[error("version {0:?} is not 1-{max} characters of [A-Za-z0-9._-] (not starting with '.')", max = text::MAX_VERSION)]
    Version(String),
    #[error("kernel command line of host {host:?} {reason}")]
    Cmdline { host: String, reason: CmdlineError },
    #[error("base URL {0:?} is not a single http(s) URL without spaces")]
    BaseUrl(String),
}

/// Host names, as used in paths and menu labels: 1-63 of `[A-Za-z0-9_-]`
/// ([`text::valid_host_name`]).
pub fn check_host_name(name: &str) -> Result<(), TextError> {
    if text::valid_host_name(name) {
        Ok(())
    } else {
        Err(TextError::HostName(name.to_owned()))
    }
}

/// Generation labels, as used in paths: 1-[`text::MAX_VERSION`] of `[A-Za-z0-9._-]`, not
/// starting with `.` (so never `.` or `..`).
pub fn check_version(version: &str) -> Result<(), TextError> {
    let ok = (1..=text::MAX_VERSION).contains(&version.len())
        && !version.starts_with('.')
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(TextError::Version(version.to_owned()))
    }
}

/// A kernel command line iPXE passes through unchanged ([`text::check_cmdline`]).
pub fn check_cmdline(host: &str, cmdline: &str) -> Result<(), TextError> {
    text::check_cmdline(cmdline).map_err(|reason| TextError::Cmdline {
        host: host.to_owned(),
        reason,
    })
}

/// The appliance's base URL: `http://` or `https://`, then printable ASCII without whitespace,
/// `$` or quotes, and no trailing slash.
pub fn check_base_url(url: &str) -> Result<(), TextError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.ends_with('/')
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'$' | b'\\' | b'"' | b'\'' | b'#'));
    if ok {
        Ok(())
    } else {
        Err(TextError::BaseUrl(url.to_owned()))
    }
}

/// Display text (a menu line, an echo): at most `max` characters, every character that could mean
/// something to iPXE or that a console cannot show replaced by `_`, runs of whitespace collapsed.
pub fn sanitize_display(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            let safe = c.is_ascii_alphanumeric() || " .,:/()+=@_-[]%!?*<>~^".contains(c);
            out.push(if safe { c } else { '_' });
        }
    }
    out.chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["demo", "a", "web-01", "under_score", "X9", &"a".repeat(63)] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok}");
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
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        let longest_flake_generation = format!("{}.g{}", "f".repeat(64), u32::MAX);
        for ok in [
            "static",
            "1",
            "2026-11-22.3",
            "abc_def",
            &longest_flake_generation,
        ] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\0",
            "a b",
            &"1".repeat(text::MAX_VERSION + 1),
        ] {
            assert!(check_version(bad).is_err(), "{bad:?}");
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
            assert_eq!(check_cmdline("h", ok), Ok(()), "{ok}");
        }
        for bad in [
            "quiet\nshell",
            "quiet\r\nshell",
            "quiet\tx",
            "a\0b",
            "root=${root}",
            "quiet || shell",
            "quiet && shell",
            "quiet ; shell",
            "quiet #comment",
            "x=\"a b\"",
            "x='a'",
            "x=a\\b",
            "é",
        ] {
            let err = check_cmdline("h", bad).unwrap_err();
            assert!(err.to_string().contains("kernel command line"), "{bad:?}");
        }
    }

    #[test]
    fn base_urls() {
        for ok in [
            "http://10.77.0.1",
            "http://10.77.0.1:8080",
            "http://[fd77::1]:80",
        ] {
            assert_eq!(check_base_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "10.77.0.1",
            "http://x/",
            "http://a b",
            "http://x\n",
            "http://${x}",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_text() {
        assert_eq!(
            sanitize_display("NixOS 24.05 (web)", 70),
            "NixOS 24.05 (web)"
        );
        assert_eq!(
            sanitize_display("a\nshell || ${x} #c; \"q\"", 70),
            "a shell __ __x_ _c_ _q_"
        );
        assert_eq!(sanitize_display("  many   spaces\t", 70), "many spaces");
        assert_eq!(sanitize_display("ünïcode", 70), "_n_code");
        assert_eq!(sanitize_display("abcdef", 3), "abc");
    }
}
