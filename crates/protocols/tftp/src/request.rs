//! What the server does with a datagram on its listening port: serve a binary, refuse with an
//! ERROR, or drop it. Pure; the server loop only carries the decision out.

use flakeboot_catalogue::IpxeBinary;

use crate::names::{NameError, requested_binary};
use crate::packet::{self, ErrorCode, Mode, Packet, PacketError, RequestKind};

/// The server's answer to one datagram on the listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a transfer of this binary with these requested options.
    Serve {
        binary: IpxeBinary,
        /// The name as the client sent it (for logs).
        requested: String,
        options: Vec<(String, String)>,
    },
    /// Answer with an ERROR packet and serve nothing.
    Refuse {
        code: ErrorCode,
        /// The text sent to the client.
        message: &'static str,
        reason: Refusal,
    },
    /// Not a request: count it and drop it silently.
    Drop(Refusal),
}

/// Why a datagram is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed packet: {0}")]
    Malformed(#[from] PacketError),
    #[error("{0} packet on the request port")]
    NotARequest(&'static str),
    #[error("write request for {name:?}: the server is read-only")]
    Write { name: String },
    #[error("mail mode is not supported")]
    MailMode,
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Refusal {
    /// True for datagrams that are not well-formed TFTP (counted as bad packets), as opposed to
    /// well-formed requests the server declines.
    pub fn is_bad_packet(&self) -> bool {
        matches!(self, Refusal::Malformed(_) | Refusal::NotARequest(_))
    }
}

/// Decides what to do with one datagram received on the listening port.
pub fn decide(bytes: &[u8]) -> Decision {
    let packet = match Packet::parse(bytes) {
        Ok(p) => p,
        Err(e) => {
            // A broken request gets an answer (clients show it); other noise does not.
            return match packet::opcode(bytes) {
                Some(1 | 2) => Decision::Refuse {
                    code: e.error_code(),
                    message: "malformed request",
                    reason: e.into(),
                },
                _ => Decision::Drop(e.into()),
            };
        }
    };
    let request = match packet {
        Packet::Request(r) => r,
        Packet::Data { .. } => return Decision::Drop(Refusal::NotARequest("DATA")),
        Packet::Ack { .. } => return Decision::Drop(Refusal::NotARequest("ACK")),
        Packet::Error { .. } => return Decision::Drop(Refusal::NotARequest("ERROR")),
        Packet::Oack { .. } => return Decision::Drop(Refusal::NotARequest("OACK")),
    };
    if request.kind == RequestKind::Write {
        return Decision::Refuse {
            code: ErrorCode::ACCESS_VIOLATION,
            message: "read-only server",
            reason: Refusal::Write {
                name: request.filename.to_owned(),
            },
        };
    }
    match request.mode {
        // netascii is served as octet: every file here is a binary, and translating line ends
        // would corrupt it. Clients that ask for netascii (rare) get the exact bytes.
        Mode::Octet | Mode::Netascii => {}
        Mode::Mail => {
            return Decision::Refuse {
                code: ErrorCode::ILLEGAL_OPERATION,
                message: "mail mode is not supported",
                reason: Refusal::MailMode,
            };
        }
    }
    match requested_binary(request.filename) {
        Ok(binary) => Decision::Serve {
            binary,
            requested: request.filename.to_owned(),
            options: request
                .options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
        Err(e) => Decision::Refuse {
            code: e.error_code(),
            message: match e.error_code() {
                ErrorCode::FILE_NOT_FOUND => "file not found",
                _ => "access violation",
            },
            reason: e.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(d: &Decision) -> Option<u16> {
        match d {
            Decision::Refuse { code, .. } => Some(code.0),
            _ => None,
        }
    }

    #[test]
    fn serves_catalogue_names_in_octet_and_netascii() {
        let d = decide(b"\x00\x01/undionly.kpxe\x00octet\x00tsize\x000\x00");
        assert_eq!(
            d,
            Decision::Serve {
                binary: IpxeBinary::Undionly,
                requested: "/undionly.kpxe".into(),
                options: vec![("tsize".into(), "0".into())],
            }
        );
        assert!(matches!(
            decide(b"\x00\x01ipxe.efi\x00NETASCII\x00"),
            Decision::Serve {
                binary: IpxeBinary::IpxeEfi,
                ..
            }
        ));
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], u16)] = &[
            (b"\x00\x02undionly.kpxe\x00octet\x00", 2),
            (b"\x00\x01undionly.kpxe\x00mail\x00", 4),
            (b"\x00\x01../../etc/passwd\x00octet\x00", 2),
            (b"\x00\x01/etc/passwd\x00octet\x00", 2),
            (b"\x00\x01pxelinux.0\x00octet\x00", 1),
            (b"\x00\x01\x00octet\x00", 1),
            (b"\x00\x01undionly.kpxe", 4),
            (b"\x00\x01undionly.kpxe\x00", 4),
            (b"\x00\x01undionly.kpxe\x00binary\x00", 4),
        ];
        for (bytes, want) in cases {
            assert_eq!(code(&decide(bytes)), Some(*want), "{bytes:?}");
        }
    }

    #[test]
    fn noise_is_dropped_silently() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x00\x04\x00\x01",
            b"\x00\x03\x00\x01data",
            b"\x00\x05\x00\x00x\x00",
            b"\x00\x06\x00",
            b"\xff\xff",
        ] {
            let d = decide(bytes);
            let Decision::Drop(reason) = &d else {
                panic!("{bytes:?}: {d:?}")
            };
            assert!(reason.is_bad_packet());
        }
    }
}
