//! Syslog datagrams (UDP, one message per datagram): RFC 5424
//! (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) and RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST
//! TAG: MSG`, and the looser shapes devices send: no timestamp, no host, no PRI). The sender's
//! timestamp is not kept: a machine's clock at boot is not to be trusted, the time a line
//! arrived is. Never fails: what is not RFC 5424 is read as RFC 3164, and what is not even that
//! is a line of text.

use crate::line::{LogLine, MAX_TEXT, Proto, clean, name};

/// `<PRI>` at the start: (facility, severity) and the rest.
fn pri(bytes: &[u8]) -> Option<(u8, u8, &[u8])> {
    let rest = bytes.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&b| b == b'>')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if value > 191 {
        return None;
    }
    let value = u8::try_from(value).ok()?;
    Some((value / 8, value % 8, rest.get(end + 1..)?))
}

/// The next space-separated field and what follows the space (empty at the end).
fn field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    match bytes.iter().position(|&b| b == b' ') {
        Some(i) => Some((bytes.get(..i)?, bytes.get(i + 1..)?)),
        None if bytes.is_empty() => None,
        None => Some((bytes, &[])),
    }
}

/// RFC 5424 structured data: `-`, or one or more `[...]` elements (`\]` escapes a bracket
/// inside a value). The rest after it (and its space).
fn skip_structured_data(bytes: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = bytes.strip_prefix(b"-") {
        return Some(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let mut rest = bytes;
    while let Some(inner) = rest.strip_prefix(b"[") {
        let mut i = 0;
        let mut quoted = false;
        loop {
            match inner.get(i)? {
                b'\\' => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        rest = inner.get(i + 1..)?;
    }
    if rest.len() == bytes.len() {
        return None;
    }
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// An RFC 5424 message after its PRI (`1 TIMESTAMP ...`).
fn rfc5424(facility: u8, severity: u8, bytes: &[u8]) -> Option<LogLine> {
    let (version, rest) = field(bytes)?;
    if version != b"1" {
        return None;
    }
    let (_timestamp, rest) = field(rest)?;
    let (host, rest) = field(rest)?;
    let (app, rest) = field(rest)?;
    let (_procid, rest) = field(rest)?;
    let (_msgid, rest) = field(rest)?;
    let msg = skip_structured_data(rest)?;
    let msg = msg.strip_prefix(b"\xef\xbb\xbf").unwrap_or(msg);
    let (text, truncated) = clean(msg, MAX_TEXT);
    Some(LogLine {
        proto: Proto::Rfc5424,
        severity: Some(severity),
        facility: Some(facility),
        hostname: name(host),
        app: name(app),
        text,
        truncated,
    })
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss ` (the day space-padded) at the start: the rest after it.
fn skip_bsd_timestamp(bytes: &[u8]) -> Option<&[u8]> {
    let (stamp, rest) = bytes.split_first_chunk::<16>()?;
    let month = stamp.first_chunk::<3>()?;
    let shape = stamp.iter().enumerate().skip(3).all(|(i, &b)| match i {
        3 | 6 | 15 => b == b' ',
        4 => b == b' ' || b.is_ascii_digit(),
        9 | 12 => b == b':',
        _ => b.is_ascii_digit(),
    });
    (MONTHS.contains(&month) && shape).then_some(rest)
}

/// A TAG at the start of an RFC 3164 message (`sshd[42]: `, `kernel: `): the tag and the rest.
fn tag(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes
        .iter()
        .take(49)
        .position(|&b| !(b.is_ascii_alphanumeric() || b"-_./@".contains(&b)))?;
    let (tag, after) = bytes.split_at_checked(end)?;
    if tag.is_empty() {
        return None;
    }
    let after = match after.strip_prefix(b"[") {
        Some(pid) => {
            let close = pid.iter().take(12).position(|&b| b == b']')?;
            pid.get(close + 1..)?
        }
        None => after,
    };
    let rest = after.strip_prefix(b":")?;
    Some((tag, rest.strip_prefix(b" ").unwrap_or(rest)))
}

/// An RFC 3164 message after its PRI (if it had one).
fn rfc3164(pri: Option<(u8, u8)>, bytes: &[u8]) -> LogLine {
    let mut hostname = None;
    let mut msg = bytes;
    if let Some(rest) = skip_bsd_timestamp(bytes) {
        // After a timestamp comes the host name, unless the next word is already the tag.
        msg = rest;
        if tag(rest).is_none()
            && let Some((host, after)) = field(rest)
        {
            hostname = name(host);
            msg = after;
        }
    }
    let (app, msg) = match tag(msg) {
        Some((tag, rest)) => (name(tag), rest),
        None => (None, msg),
    };
    let (text, truncated) = clean(msg, MAX_TEXT);
    LogLine {
        proto: Proto::Rfc3164,
        severity: pri.map(|p| p.1),
        facility: pri.map(|p| p.0),
        hostname,
        app,
        text,
        truncated,
    }
}

/// One syslog datagram as a line.
pub fn parse(datagram: &[u8]) -> LogLine {
    match pri(datagram) {
        Some((facility, severity, rest)) => rfc5424(facility, severity, rest)
            .unwrap_or_else(|| rfc3164(Some((facility, severity)), rest)),
        None => rfc3164(None, datagram),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_from_util_linux_logger() {
        // `logger --udp --rfc5424 -t flaketest hello world`, as captured.
        let line = parse(
            b"<13>1 2026-12-03T12:40:01.123456+00:00 node1 flaketest - - \
              [timeQuality tzKnown=\"1\" isSynced=\"0\"] hello world",
        );
        assert_eq!(line.proto, Proto::Rfc5424);
        assert_eq!((line.facility, line.severity), (Some(1), Some(5)));
        assert_eq!(line.hostname.as_deref(), Some("node1"));
        assert_eq!(line.app.as_deref(), Some("flaketest"));
        assert_eq!(line.text, "hello world");
    }

    #[test]
    fn rfc5424_with_nil_fields_bom_and_escaped_brackets() {
        let line = parse(b"<0>1 - - - - - - \xef\xbb\xbfKernel panic");
        assert_eq!((line.facility, line.severity), (Some(0), Some(0)));
        assert_eq!((line.hostname, line.app), (None, None));
        assert_eq!(line.text, "Kernel panic");
        let line = parse(b"<165>1 2003-10-11T22:14:15.003Z h app 1 ID [a x=\"]\\\"\"][b] msg");
        assert_eq!(line.text, "msg");
        // Structured data and no message.
        assert_eq!(parse(b"<14>1 - h a - - [x]").text, "");
    }

    #[test]
    fn rfc3164_from_util_linux_logger() {
        let line = parse(b"<13>Dec  3 12:40:01 node1 flaketest[42]: hello 3164");
        assert_eq!(line.proto, Proto::Rfc3164);
        assert_eq!((line.facility, line.severity), (Some(1), Some(5)));
        assert_eq!(line.hostname.as_deref(), Some("node1"));
        assert_eq!(line.app.as_deref(), Some("flaketest"));
        assert_eq!(line.text, "hello 3164");
    }

    #[test]
    fn rfc3164_without_host_or_timestamp() {
        let line = parse(b"<30>Dec 13 01:02:03 systemd: Started foo.service");
        assert_eq!(line.hostname, None);
        assert_eq!(line.app.as_deref(), Some("systemd"));
        assert_eq!(line.text, "Started foo.service");
        let line = parse(b"<6>kernel: eth0: link up");
        assert_eq!(line.app.as_deref(), Some("kernel"));
        assert_eq!(line.text, "eth0: link up");
        assert_eq!(line.severity, Some(6));
    }

    #[test]
    fn anything_else_is_a_line_of_text() {
        let line = parse(b"just words\n");
        assert_eq!(line.proto, Proto::Rfc3164);
        assert_eq!((line.severity, line.app), (None, None));
        assert_eq!(line.text, "just words");
        // A PRI out of range is no PRI.
        assert_eq!(parse(b"<192>x").severity, None);
        assert_eq!(parse(b"<1x>y").text, "<1x>y");
        assert_eq!(parse(b"").text, "");
        assert_eq!(parse(b"<13>").text, "");
        // Version 2 is not RFC 5424: kept as text.
        assert_eq!(parse(b"<13>2 a b c d e - m").text, "2 a b c d e - m");
    }

    #[test]
    fn long_messages_are_cut_and_marked() {
        let mut datagram = b"<13>1 - h a - - - ".to_vec();
        datagram.extend(std::iter::repeat_n(b'x', 5000));
        let line = parse(&datagram);
        assert!(line.truncated);
        assert_eq!(line.text.len(), MAX_TEXT);
    }
}
