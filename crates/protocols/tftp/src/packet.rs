//! TFTP packets (RFC 1350, options per RFC 2347): parse and emit, no I/O.
//!
//! [`Packet::parse`] accepts any bytes and returns a [`Result`]: it never panics and never
//! allocates more than the option list. Parsing borrows from the input; [`Packet::emit`] builds
//! the wire bytes.

use std::fmt;

/// The largest TFTP packet: a 4-byte header and the largest block RFC 2348 allows.
pub const MAX_PACKET_LEN: usize = 4 + 65464;

/// A TFTP error code (RFC 1350 section 5, RFC 2347 for 8). Any `u16` is representable, so an
/// ERROR packet from a client never fails to parse because of its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// "Not defined, see error message".
    pub const NOT_DEFINED: ErrorCode = ErrorCode(0);
    /// "File not found".
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    /// "Access violation".
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    /// "Illegal TFTP operation".
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    /// "Unknown transfer ID".
    pub const UNKNOWN_TID: ErrorCode = ErrorCode(5);
    /// "Option negotiation rejected" (RFC 2347): what PXE ROMs send after a tsize probe.
    pub const OPTION_REJECTED: ErrorCode = ErrorCode(8);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Read or write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// RRQ (opcode 1).
    Read,
    /// WRQ (opcode 2).
    Write,
}

/// The transfer mode of a request (case-insensitive on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Raw bytes.
    Octet,
    /// Text with CR LF line ends.
    Netascii,
    /// Obsolete (RFC 1350): mail to a user.
    Mail,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        if s.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if s.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else if s.eq_ignore_ascii_case("mail") {
            Some(Mode::Mail)
        } else {
            None
        }
    }

    /// The mode's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
            Mode::Mail => "mail",
        }
    }
}

/// An RRQ or WRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub kind: RequestKind,
    /// The file name exactly as sent (validated later, see `names`).
    pub filename: &'a str,
    pub mode: Mode,
    /// Option name/value pairs (RFC 2347) in the order sent; names keep the client's case.
    pub options: Vec<(&'a str, &'a str)>,
}

/// One TFTP packet, borrowing from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Request(Request<'a>),
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    /// The message is kept as bytes: a client's ERROR must end a transfer even when its text is
    /// not UTF-8.
    Error {
        code: ErrorCode,
        message: &'a [u8],
    },
    Oack {
        options: Vec<(&'a str, &'a str)>,
    },
}

/// Why bytes are not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet of {len} bytes is shorter than its {need}-byte header")]
    TooShort { len: usize, need: usize },
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("the {field} field is not NUL-terminated")]
    Unterminated { field: &'static str },
    #[error("the {field} field is not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("unknown transfer mode {mode:?}")]
    UnknownMode { mode: String },
    #[error("DATA of {len} bytes is larger than any block size")]
    DataTooLong { len: usize },
}

impl PacketError {
    /// The TFTP error code a server answers a malformed request with.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::ILLEGAL_OPERATION
    }
}

const OP_RRQ: u16 = 1;
const OP_WRQ: u16 = 2;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// The opcode of a buffer, if it has one; lets a server tell a broken request from other noise.
pub fn opcode(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// Splits a NUL-terminated string off the front of `bytes`.
fn take_str<'a>(bytes: &'a [u8], field: &'static str) -> Result<(&'a str, &'a [u8]), PacketError> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(PacketError::Unterminated { field })?;
    let (s, rest) = bytes.split_at(end);
    let s = std::str::from_utf8(s).map_err(|_| PacketError::NotUtf8 { field })?;
    Ok((s, rest.get(1..).unwrap_or_default()))
}

/// Option pairs up to the end of the packet. Lenient, as clients vary: trailing NUL padding
/// and a final name without a value are ignored.
fn take_options(mut bytes: &[u8]) -> Result<Vec<(&str, &str)>, PacketError> {
    let mut options = Vec::new();
    while !bytes.is_empty() {
        let Ok((name, rest)) = take_str(bytes, "option name") else {
            break;
        };
        if name.is_empty() {
            // NUL padding: skip one byte.
            bytes = rest;
            continue;
        }
        let Ok((value, rest)) = take_str(rest, "option value") else {
            break;
        };
        options.push((name, value));
        bytes = rest;
    }
    Ok(options)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

impl<'a> Packet<'a> {
    /// Parses one datagram. Never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let too_short = |need| PacketError::TooShort {
            len: bytes.len(),
            need,
        };
        let op = u16_at(bytes, 0).ok_or(too_short(2))?;
        let body = bytes.get(2..).unwrap_or_default();
        match op {
            OP_RRQ | OP_WRQ => {
                let (filename, rest) = take_str(body, "filename")?;
                let (mode, rest) = take_str(rest, "mode")?;
                let mode = Mode::parse(mode).ok_or_else(|| PacketError::UnknownMode {
                    mode: mode.to_owned(),
                })?;
                let kind = if op == OP_RRQ {
                    RequestKind::Read
                } else {
                    RequestKind::Write
                };
                Ok(Packet::Request(Request {
                    kind,
                    filename,
                    mode,
                    options: take_options(rest)?,
                }))
            }
            OP_DATA => {
                let block = u16_at(bytes, 2).ok_or(too_short(4))?;
                let data = bytes.get(4..).unwrap_or_default();
                if data.len() > MAX_PACKET_LEN - 4 {
                    return Err(PacketError::DataTooLong { len: data.len() });
                }
                Ok(Packet::Data { block, data })
            }
            // Trailing bytes after an ACK are padding some clients add: ignored.
            OP_ACK => Ok(Packet::Ack {
                block: u16_at(bytes, 2).ok_or(too_short(4))?,
            }),
            OP_ERROR => {
                let code = ErrorCode(u16_at(bytes, 2).ok_or(too_short(4))?);
                let text = bytes.get(4..).unwrap_or_default();
                // Lenient: a message without its NUL still ends the transfer.
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let message = text.get(..end).unwrap_or_default();
                Ok(Packet::Error { code, message })
            }
            OP_OACK => Ok(Packet::Oack {
                options: take_options(body)?,
            }),
            other => Err(PacketError::UnknownOpcode(other)),
        }
    }

    /// The wire bytes of this packet.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.emitted_len_hint());
        let push_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        match self {
            Packet::Request(r) => {
                let op = match r.kind {
                    RequestKind::Read => OP_RRQ,
                    RequestKind::Write => OP_WRQ,
                };
                out.extend_from_slice(&op.to_be_bytes());
                push_str(&mut out, r.filename);
                push_str(&mut out, r.mode.as_str());
                for (name, value) in &r.options {
                    push_str(&mut out, name);
                    push_str(&mut out, value);
                }
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&OP_DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&OP_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
                out.extend(message.iter().copied().filter(|&b| b != 0));
                out.push(0);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                for (name, value) in options {
                    push_str(&mut out, name);
                    push_str(&mut out, value);
                }
            }
        }
        out
    }

    fn emitted_len_hint(&self) -> usize {
        match self {
            Packet::Data { data, .. } => 4 + data.len(),
            _ => 64,
        }
    }

    /// An ERROR packet with a text message.
    pub fn error(code: ErrorCode, message: &'a str) -> Packet<'a> {
        Packet::Error {
            code,
            message: message.as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tsize-only RRQ, the form of a PXE ROM's size probe (written by hand, not captured).
    const PXE_TSIZE_PROBE: &[u8] = b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00";
    /// curl 7.88 `tftp://host/undionly.kpxe --tftp-blksize 1468` (captured on loopback).
    const CURL_RRQ: &[u8] =
        b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00timeout\x006\x00";
    /// tftp-hpa 5.2 `-m binary -c get undionly.kpxe`: no options (captured on loopback).
    const TFTP_HPA_RRQ: &[u8] = b"\x00\x01undionly.kpxe\x00octet\x00";

    #[test]
    fn parses_captured_requests() {
        let Packet::Request(r) = Packet::parse(CURL_RRQ).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.kind, RequestKind::Read);
        assert_eq!(r.filename, "undionly.kpxe");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(
            r.options,
            vec![("tsize", "0"), ("blksize", "1468"), ("timeout", "6")]
        );
        let Packet::Request(r) = Packet::parse(TFTP_HPA_RRQ).unwrap() else {
            panic!("not a request")
        };
        assert!(r.options.is_empty());
        let Packet::Request(r) = Packet::parse(PXE_TSIZE_PROBE).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.options, vec![("tsize", "0")]);
    }

    #[test]
    fn requests_round_trip() {
        for bytes in [PXE_TSIZE_PROBE, CURL_RRQ, TFTP_HPA_RRQ] {
            assert_eq!(Packet::parse(bytes).unwrap().emit(), bytes);
        }
        let wrq = b"\x00\x02x\x00NetASCII\x00";
        let Packet::Request(r) = Packet::parse(wrq).unwrap() else {
            panic!()
        };
        assert_eq!((r.kind, r.mode), (RequestKind::Write, Mode::Netascii));
    }

    #[test]
    fn every_kind_round_trips() {
        let packets = [
            Packet::Data {
                block: 65535,
                data: &[1, 2, 3],
            },
            Packet::Data {
                block: 0,
                data: &[],
            },
            Packet::Ack { block: 7 },
            Packet::error(ErrorCode::FILE_NOT_FOUND, "file not found"),
            Packet::Oack {
                options: vec![("blksize", "1468"), ("tsize", "70000")],
            },
            Packet::Oack { options: vec![] },
        ];
        for p in packets {
            assert_eq!(Packet::parse(&p.emit()).unwrap(), p, "{p:?}");
        }
    }

    #[test]
    fn emits_exact_bytes() {
        assert_eq!(
            Packet::Data {
                block: 0x0102,
                data: b"ab"
            }
            .emit(),
            b"\x00\x03\x01\x02ab"
        );
        assert_eq!(Packet::Ack { block: 1 }.emit(), b"\x00\x04\x00\x01");
        assert_eq!(
            Packet::error(ErrorCode::ACCESS_VIOLATION, "no").emit(),
            b"\x00\x05\x00\x02no\x00"
        );
        assert_eq!(
            Packet::Oack {
                options: vec![("tsize", "5")]
            }
            .emit(),
            b"\x00\x06tsize\x005\x00"
        );
    }

    #[test]
    fn lenient_where_clients_vary() {
        // ACK padded to 8 bytes, ERROR without its NUL, RRQ padded with NULs.
        assert_eq!(
            Packet::parse(b"\x00\x04\x00\x09\x00\x00\x00\x00").unwrap(),
            Packet::Ack { block: 9 }
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08abort").unwrap(),
            Packet::Error {
                code: ErrorCode::OPTION_REJECTED,
                message: b"abort"
            }
        );
        let Packet::Request(r) =
            Packet::parse(b"\x00\x01f\x00octet\x00\x00\x00tsize\x000\x00\x00").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.options, vec![("tsize", "0")]);
        // A dangling option name is dropped.
        let Packet::Request(r) = Packet::parse(b"\x00\x01f\x00octet\x00blksize").unwrap() else {
            panic!()
        };
        assert!(r.options.is_empty());
        // Non-UTF-8 error text still parses.
        assert!(matches!(
            Packet::parse(b"\x00\x05\x00\x00\xff\xfe\x00"),
            Ok(Packet::Error { .. })
        ));
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(&[u8], PacketError)] = &[
            (b"", PacketError::TooShort { len: 0, need: 2 }),
            (b"\x00", PacketError::TooShort { len: 1, need: 2 }),
            (b"\x00\x04\x00", PacketError::TooShort { len: 3, need: 4 }),
            (b"\x00\x03", PacketError::TooShort { len: 2, need: 4 }),
            (b"\x00\x09", PacketError::UnknownOpcode(9)),
            (
                b"\x00\x01file",
                PacketError::Unterminated { field: "filename" },
            ),
            (
                b"\x00\x01file\x00octet",
                PacketError::Unterminated { field: "mode" },
            ),
            (
                b"\x00\x01\xff\x00octet\x00",
                PacketError::NotUtf8 { field: "filename" },
            ),
            (
                b"\x00\x01f\x00binary\x00",
                PacketError::UnknownMode {
                    mode: "binary".into(),
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::parse(bytes).as_ref(), Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn opcode_of_short_buffers() {
        assert_eq!(opcode(b""), None);
        assert_eq!(opcode(b"\x00"), None);
        assert_eq!(opcode(b"\x00\x02junk"), Some(2));
    }
}
