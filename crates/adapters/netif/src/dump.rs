//! rtnetlink dumps over one blocking `NETLINK_ROUTE` socket.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Why the interfaces could not be read from the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("the netlink {what} dump failed: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("the kernel refused the {what} dump: {source}")]
    Kernel {
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot decode the kernel's {what} dump: {message}")]
    Decode { what: &'static str, message: String },
    #[error("the {what} dump was interrupted by changes {ATTEMPTS} times in a row")]
    Interrupted { what: &'static str },
}

/// Dumps tried before giving up when the kernel keeps flagging them interrupted.
const ATTEMPTS: usize = 3;

/// Every netlink message starts with a 16-byte header and is padded to 4 bytes.
const HEADER_LEN: usize = 16;

/// A route netlink socket of the calling thread's network namespace.
pub(crate) struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    pub(crate) fn open() -> Result<Rtnl, NetifError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetifError::Socket)?;
        socket.bind_auto().map_err(NetifError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetifError::Socket)?;
        Ok(Rtnl {
            socket,
            sequence: 0,
        })
    }

    pub(crate) fn links(&mut self) -> Result<Vec<LinkMessage>, NetifError> {
        let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let replies = self.dump("link", &request)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .collect())
    }

    pub(crate) fn addresses(&mut self) -> Result<Vec<AddressMessage>, NetifError> {
        let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        let replies = self.dump("address", &request)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(address) => Some(address),
                _ => None,
            })
            .collect())
    }

    /// One change (`NLM_F_ACK`; `create`: also `NLM_F_CREATE | NLM_F_EXCL`), to its ack.
    pub(crate) fn change(
        &mut self,
        what: &'static str,
        request: RouteNetlinkMessage,
        create: bool,
    ) -> Result<(), NetifError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        if create {
            message.header.flags |= NLM_F_CREATE | NLM_F_EXCL;
        }
        message.header.sequence_number = self.sequence;
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        let io = |source| NetifError::Io { what, source };
        self.socket.send(&buf, 0).map_err(io)?;
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(io)?;
            let reply =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram).map_err(|e| {
                    NetifError::Decode {
                        what,
                        message: e.to_string(),
                    }
                })?;
            if reply.header.sequence_number != self.sequence {
                continue;
            }
            if let NetlinkPayload::Error(e) = reply.payload {
                return match e.code {
                    Some(_) => Err(NetifError::Kernel {
                        what,
                        source: e.to_io(),
                    }),
                    None => Ok(()),
                };
            }
        }
    }

    fn dump(
        &mut self,
        what: &'static str,
        request: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetifError> {
        for _ in 0..ATTEMPTS {
            if let Some(replies) = self.dump_once(what, request.clone())? {
                return Ok(replies);
            }
        }
        Err(NetifError::Interrupted { what })
    }

    /// One dump to its `NLMSG_DONE`; `None` when the kernel flagged it interrupted (the table
    /// changed while it was read, so it may be inconsistent).
    fn dump_once(
        &mut self,
        what: &'static str,
        request: RouteNetlinkMessage,
    ) -> Result<Option<Vec<RouteNetlinkMessage>>, NetifError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = self.sequence;
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        let io = |source| NetifError::Io { what, source };
        self.socket.send(&buf, 0).map_err(io)?;

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(io)?;
            let mut rest = datagram.as_slice();
            while !rest.is_empty() {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest).map_err(|e| {
                        NetifError::Decode {
                            what,
                            message: e.to_string(),
                        }
                    })?;
                let len = reply.header.length as usize;
                if len < HEADER_LEN {
                    return Err(NetifError::Decode {
                        what,
                        message: format!("a message claims {len} bytes"),
                    });
                }
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
                if reply.header.sequence_number != self.sequence {
                    continue; // left over from an earlier request
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(replies)),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(NetifError::Kernel {
                            what,
                            source: e.to_io(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}
