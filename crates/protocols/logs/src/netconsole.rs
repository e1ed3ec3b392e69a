//! The kernel's netconsole, in both formats:
//! - plain: the console's text as is; a message may come in several datagrams and a line may
//!   end in a later one (`pr_cont`), so text waits per source until its newline, or until it
//!   is [`FLUSH_AFTER`] old or too long;
//! - extended (`extended=1`, `netconsole=+...`): `<prefix>,<seq>,<usec>,<flags>;<text>` with
//!   `prefix` the syslog facility and level (as in `/dev/kmsg`), key=value lines after the text
//!   (dropped), and a long message split into `ncfrag=<offset>/<length>` fragments, joined
//!   here.
//!
//! Pure: datagrams and `now` in, lines out. Per-source state is bounded: [`MAX_SOURCES`]
//! sources (the oldest pending one is flushed to make room) and [`MAX_PENDING`] bytes each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::line::{LogLine, MAX_TEXT, Proto, clean};

/// Text without its newline is emitted as a line after this long.
pub const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// Sources with text pending, at most.
pub const MAX_SOURCES: usize = 256;

/// Bytes pending per source, at most: beyond, the pending text is one (cut) line.
pub const MAX_PENDING: usize = MAX_TEXT + 64;

/// The header of an extended message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    facility: u8,
    severity: u8,
    /// `ncfrag=<offset>/<length>`.
    fragment: Option<(usize, usize)>,
}

/// `<prefix>,<seq>,<usec>,<flags>[,ncfrag=o/n];` at the start: the header and the text.
fn extended(datagram: &[u8]) -> Option<(Header, &[u8])> {
    let semi = datagram.iter().take(96).position(|&b| b == b';')?;
    let head = std::str::from_utf8(datagram.get(..semi)?).ok()?;
    let body = datagram.get(semi + 1..)?;
    let mut fields = head.split(',');
    let prefix: u16 = fields.next()?.parse().ok()?;
    let _seq: u64 = fields.next()?.parse().ok()?;
    let _usec: u64 = fields.next()?.parse().ok()?;
    let _flags = fields.next()?;
    let mut fragment = None;
    for extra in fields {
        let (offset, length) = extra.strip_prefix("ncfrag=")?.split_once('/')?;
        fragment = Some((offset.parse().ok()?, length.parse().ok()?));
    }
    let prefix = u8::try_from(prefix.min(191)).ok()?;
    Some((
        Header {
            facility: prefix / 8,
            severity: prefix % 8,
            fragment,
        },
        body,
    ))
}

#[derive(Debug, Default)]
struct Pending {
    /// Plain text waiting for its newline.
    text: Vec<u8>,
    /// An extended message's fragments so far: its header and bytes.
    fragments: Option<(Header, Vec<u8>)>,
    /// When the oldest pending byte came.
    since: Option<Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.text.is_empty() && self.fragments.is_none()
    }

    /// Everything pending, as lines.
    fn drain(&mut self, out: &mut Vec<LogLine>) {
        if !self.text.is_empty() {
            out.push(LogLine::text(Proto::Netconsole, &self.text));
            self.text.clear();
        }
        if let Some((header, bytes)) = self.fragments.take() {
            out.push(extended_line(header, &bytes));
        }
        self.since = None;
    }
}

/// An extended message's text (its key=value lines dropped) as a line.
fn extended_line(header: Header, body: &[u8]) -> LogLine {
    let text = match body.iter().position(|&b| b == b'\n') {
        Some(i) => body.get(..i).unwrap_or(body),
        None => body,
    };
    let (text, truncated) = clean(text, MAX_TEXT);
    LogLine {
        proto: Proto::Netconsole,
        severity: Some(header.severity),
        facility: Some(header.facility),
        hostname: None,
        app: Some("kernel".into()),
        text,
        truncated,
    }
}

/// Joins netconsole datagrams into lines, per source.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: HashMap<IpAddr, Pending>,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Sources with text pending.
    pub fn pending_sources(&self) -> usize {
        self.pending.len()
    }

    /// One datagram from `src`: the lines it completes (of `src` only).
    pub fn push(&mut self, src: IpAddr, datagram: &[u8], now: Instant) -> Vec<LogLine> {
        let mut out = Vec::new();
        if !self.pending.contains_key(&src) && self.pending.len() >= MAX_SOURCES {
            self.evict_oldest();
        }
        let pending = self.pending.entry(src).or_default();
        match extended(datagram) {
            Some((header, body)) => {
                // Plain text waiting before an extended message is complete as it is.
                if !pending.text.is_empty() {
                    out.push(LogLine::text(Proto::Netconsole, &pending.text));
                    pending.text.clear();
                }
                match header.fragment {
                    None => {
                        if let Some((h, bytes)) = pending.fragments.take() {
                            out.push(extended_line(h, &bytes));
                        }
                        out.push(extended_line(header, body));
                    }
                    Some((offset, length)) => {
                        let joined = match pending.fragments.take() {
                            Some((h, bytes)) if offset != 0 && offset == bytes.len() => {
                                Some((h, bytes))
                            }
                            Some((h, bytes)) => {
                                // A fragment out of order: what came so far is a line.
                                out.push(extended_line(h, &bytes));
                                None
                            }
                            None => None,
                        };
                        let (h, mut bytes) = joined.unwrap_or((header, Vec::new()));
                        let room = MAX_PENDING.saturating_sub(bytes.len());
                        bytes.extend(body.iter().take(room));
                        if offset.saturating_add(body.len()) >= length || bytes.len() >= MAX_PENDING
                        {
                            out.push(extended_line(h, &bytes));
                        } else {
                            pending.fragments = Some((h, bytes));
                            pending.since.get_or_insert(now);
                        }
                    }
                }
            }
            None => {
                for piece in datagram.split_inclusive(|&b| b == b'\n') {
                    let room = MAX_PENDING.saturating_sub(pending.text.len());
                    pending.text.extend(piece.iter().take(room));
                    if piece.ends_with(b"\n") || pending.text.len() >= MAX_PENDING {
                        out.push(LogLine::text(Proto::Netconsole, &pending.text));
                        pending.text.clear();
                    }
                }
                if !pending.text.is_empty() {
                    pending.since.get_or_insert(now);
                }
            }
        }
        if pending.is_empty() {
            self.pending.remove(&src);
        }
        out
    }

    /// Text pending for [`FLUSH_AFTER`] or longer, as lines with their sources.
    pub fn flush(&mut self, now: Instant) -> Vec<(IpAddr, LogLine)> {
        let mut out = Vec::new();
        self.pending.retain(|src, pending| {
            let due = pending
                .since
                .is_none_or(|since| now.saturating_duration_since(since) >= FLUSH_AFTER);
            if due {
                let mut lines = Vec::new();
                pending.drain(&mut lines);
                out.extend(lines.into_iter().map(|line| (*src, line)));
            }
            !due
        });
        out
    }

    /// Makes room for a new source: the oldest pending text is dropped (a flood of sources
    /// must not grow the table).
    fn evict_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.since)
            .map(|(src, _)| *src);
        if let Some(src) = oldest {
            self.pending.remove(&src);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn src(n: u8) -> IpAddr {
        IpAddr::from([10, 77, 0, n])
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn plain_lines_complete_at_their_newline_even_across_datagrams() {
        let mut a = Assembler::new();
        let t = Instant::now();
        let lines = a.push(
            src(1),
            b"[    1.000000] Linux version 6.1\n[    1.1] eth0: ",
            t,
        );
        assert_eq!(texts(&lines), ["[    1.000000] Linux version 6.1"]);
        assert_eq!(lines[0].severity, None);
        // Another source's text does not mix in.
        assert_eq!(texts(&a.push(src(2), b"other\n", t)), ["other"]);
        assert_eq!(
            texts(&a.push(src(1), b"link up\n", t)),
            ["[    1.1] eth0: link up"]
        );
        assert_eq!(a.pending_sources(), 0);
    }

    #[test]
    fn text_without_a_newline_is_flushed_after_a_while() {
        let mut a = Assembler::new();
        let t = Instant::now();
        assert!(
            a.push(src(1), b"Kernel panic - not syncing: VFS", t)
                .is_empty()
        );
        assert!(a.flush(t + Duration::from_millis(500)).is_empty());
        let flushed = a.flush(t + FLUSH_AFTER);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].0, src(1));
        assert_eq!(flushed[0].1.text, "Kernel panic - not syncing: VFS");
        assert_eq!(a.pending_sources(), 0);
    }

    #[test]
    fn extended_messages_carry_level_and_drop_their_dictionary() {
        let mut a = Assembler::new();
        let lines = a.push(
            src(1),
            b"0,42,5000000,-;Kernel panic - not syncing: VFS: Unable to mount root fs\n SUBSYSTEM=x\n",
            Instant::now(),
        );
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!((line.facility, line.severity), (Some(0), Some(0)));
        assert_eq!(line.app.as_deref(), Some("kernel"));
        assert_eq!(
            line.text,
            "Kernel panic - not syncing: VFS: Unable to mount root fs"
        );
        // Facility 3 (daemon), level 6.
        let line = &a.push(src(1), b"30,43,1,c;hello", Instant::now())[0];
        assert_eq!((line.facility, line.severity), (Some(3), Some(6)));
    }

    #[test]
    fn extended_fragments_are_joined() {
        let mut a = Assembler::new();
        let t = Instant::now();
        assert!(a.push(src(1), b"6,7,1,-,ncfrag=0/11;hello ", t).is_empty());
        let lines = a.push(src(1), b"6,7,1,-,ncfrag=6/11;world", t);
        assert_eq!(texts(&lines), ["hello world"]);
        // A lost fragment: what came is a line, the next message starts anew.
        assert!(a.push(src(1), b"6,8,1,-,ncfrag=0/20;first ", t).is_empty());
        let lines = a.push(src(1), b"6,9,1,-,ncfrag=0/5;again", t);
        assert_eq!(texts(&lines), ["first", "again"]);
    }

    #[test]
    fn pending_text_and_sources_are_bounded() {
        let mut a = Assembler::new();
        let t = Instant::now();
        let lines = a.push(src(1), &[b'x'; 3000], t);
        assert!(!lines.is_empty());
        assert!(lines.iter().all(|l| l.text.len() <= MAX_TEXT));
        assert!(lines[0].truncated);
        for n in 0..=255u8 {
            a.push(IpAddr::from([10, 1, 0, n]), b"no newline", t);
            a.push(IpAddr::from([10, 2, 0, n]), b"no newline", t);
        }
        assert!(a.pending_sources() <= MAX_SOURCES);
    }

    #[test]
    fn malformed_headers_are_plain_text() {
        let mut a = Assembler::new();
        let t = Instant::now();
        assert_eq!(
            texts(&a.push(src(1), b"a,b,c,d;text\n", t)),
            ["a,b,c,d;text"]
        );
        assert_eq!(
            texts(&a.push(src(1), b"1,2,3,-,ncfrag=x;y\n", t)),
            ["1,2,3,-,ncfrag=x;y"]
        );
    }
}
