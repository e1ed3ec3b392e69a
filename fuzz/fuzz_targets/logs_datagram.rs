//! One datagram from anyone on the LAN to the log receiver, through what it does with it.
//!
//! Asserts, for any bytes:
//! - `syslog::parse` never panics; its text is at most `MAX_TEXT` bytes and holds no control
//!   character (escaped), a cut text is marked; severity 0-7, facility 0-23; host and program
//!   names printable, at most `MAX_NAME` bytes;
//! - the netconsole `Assembler`, fed the bytes split at a point the first byte picks, from two
//!   sources, never panics and keeps the same bounds on every line it emits or flushes, and
//!   never more pending sources than `MAX_SOURCES`;
//! - `failure::boot_failure` never panics on any line.
#![no_main]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use flakeboot_logs::failure::boot_failure;
use flakeboot_logs::line::{LogLine, MAX_NAME, MAX_TEXT};
use flakeboot_logs::netconsole::{Assembler, FLUSH_AFTER, MAX_SOURCES};
use flakeboot_logs::syslog;
use libfuzzer_sys::fuzz_target;

fn check(line: &LogLine) {
    assert!(line.text.len() <= MAX_TEXT, "{} bytes", line.text.len());
    assert!(
        !line.text.chars().any(char::is_control),
        "control character in {:?}",
        line.text
    );
    assert!(line.severity.is_none_or(|s| s <= 7));
    assert!(line.facility.is_none_or(|f| f <= 23));
    for name in [&line.hostname, &line.app].into_iter().flatten() {
        assert!(!name.is_empty() && name.len() <= MAX_NAME);
        assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name:?}");
    }
    let _ = boot_failure(&line.text);
}

fuzz_target!(|data: &[u8]| {
    check(&syslog::parse(data));

    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let (a, b) = rest.split_at(cut);
    let t = Instant::now();
    let one = IpAddr::from([10, 0, 0, 1]);
    let two = IpAddr::from([10, 0, 0, 2]);
    let mut assembler = Assembler::new();
    for (src, part) in [(one, a), (two, b), (one, b), (two, a)] {
        for line in assembler.push(src, part, t) {
            check(&line);
        }
    }
    assert!(assembler.pending_sources() <= MAX_SOURCES);
    for (_, line) in assembler.flush(t + FLUSH_AFTER + Duration::from_millis(1)) {
        check(&line);
    }
    assert_eq!(assembler.pending_sources(), 0);
});
