//! proxyDHCP and PXE boot server replies (pure, no I/O).
//!
//! Two places a boot client asks, both answered from the same [`BootDecision`]:
//! - port 67 ([`ProxyPort::Dhcp`]): beside the LAN's DHCP server, a DISCOVER gets an OFFER with
//!   no address (yiaddr 0) but boot information; a REQUEST naming this server (option 54) gets
//!   the same as an ACK. Everything else is left to the real DHCP server.
//! - port 4011 ([`ProxyPort::BootServer`]): the PXE boot server. UEFI firmware and iPXE (its
//!   "ProxyDHCP REQUEST") send a DHCPREQUEST there, unicast, and get a DHCPACK back to their
//!   source address and port.
//!
//! [`add_boot_options`] is the shared part: router mode calls it to put the same boot
//! information into its normal OFFER/ACK.

use std::net::Ipv4Addr;

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use crate::boot::{BootConfig, BootDecision, decide};
use crate::options::{
    ClientInfo, PxeSubOption, VendorKind, encode_pxe_vendor_options, proxy_vendor_options,
    requested_boot_item,
};

/// Where a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyPort {
    /// The DHCP server port (67): proxyDHCP.
    Dhcp,
    /// The PXE boot server port (4011).
    BootServer,
}

/// Why proxy mode sends nothing for a request it does not decline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Not a network-boot client: the LAN's DHCP server serves it.
    NotNetboot,
    /// A message type proxy mode does not answer on this port (RELEASE, DECLINE...).
    MessageType(Option<MessageType>),
    /// A REQUEST on port 67 for another server (option 54): the client chose its DHCP offer.
    OtherServer(Ipv4Addr),
    /// A hardware address length over 16: the request cannot be answered.
    BadHlen(u8),
}

/// What proxy mode does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyOutcome {
    /// Send this reply.
    Reply(Box<Message>),
    /// A boot client flakeboot will not serve ([`BootDecision::Decline`]): no reply.
    Declined,
    /// Not ours to answer: no reply.
    Ignored(IgnoreReason),
}

/// One request, fully decided: who asked, what they get, and what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAnswer {
    /// What the client said about itself.
    pub info: ClientInfo,
    /// What it gets (recorded in the boot event).
    pub decision: BootDecision,
    /// What to send.
    pub outcome: ProxyOutcome,
}

/// Why a reply could not be serialised.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// dhcproto could not serialise the message.
    #[error("cannot encode DHCP reply: {0}")]
    Encode(#[from] dhcproto::error::EncodeError),
}

/// Read, decide and build the reply for one request that arrived on `port`.
pub fn answer(port: ProxyPort, req: &Message, cfg: &BootConfig) -> ProxyAnswer {
    let info = ClientInfo::from_message(req);
    let decision = decide(&info, cfg);
    let outcome = respond(port, req, &info, &decision, cfg.server_ip);
    ProxyAnswer {
        info,
        decision,
        outcome,
    }
}

/// Build the reply for a request whose decision is already made.
pub fn respond(
    port: ProxyPort,
    req: &Message,
    info: &ClientInfo,
    decision: &BootDecision,
    server_ip: Ipv4Addr,
) -> ProxyOutcome {
    if req.hlen() > 16 {
        return ProxyOutcome::Ignored(IgnoreReason::BadHlen(req.hlen()));
    }
    if *decision == BootDecision::NotNetboot {
        return ProxyOutcome::Ignored(IgnoreReason::NotNetboot);
    }
    let reply_type = match (port, info.message_type) {
        (ProxyPort::Dhcp, Some(MessageType::Discover)) => MessageType::Offer,
        (ProxyPort::Dhcp, Some(MessageType::Request)) => match server_id(req) {
            Some(id) if id == server_ip => MessageType::Ack,
            Some(id) => return ProxyOutcome::Ignored(IgnoreReason::OtherServer(id)),
            None => return ProxyOutcome::Ignored(IgnoreReason::MessageType(info.message_type)),
        },
        (ProxyPort::BootServer, Some(MessageType::Request | MessageType::Inform)) => {
            MessageType::Ack
        }
        (_, other) => return ProxyOutcome::Ignored(IgnoreReason::MessageType(other)),
    };
    if let BootDecision::Decline { .. } = decision {
        return ProxyOutcome::Declined;
    }
    let mut reply = base_reply(req, reply_type, server_ip);
    if reply_type == MessageType::Ack {
        reply.set_ciaddr(req.ciaddr());
    }
    add_boot_options(&mut reply, decision, server_ip);
    // A proxy reply is recognised by option 60: PXE ROMs and iPXE look for `PXEClient` (iPXE
    // then sends its ProxyDHCP REQUEST to 4011), UEFI HTTP boot for `HTTPClient`.
    let opts = reply.opts_mut();
    if !opts.contains(OptionCode::ClassIdentifier) {
        opts.insert(DhcpOption::ClassIdentifier(
            VendorKind::PxeClient.as_str().as_bytes().to_vec(),
        ));
    }
    let is_pxe = matches!(
        opts.get(OptionCode::ClassIdentifier),
        Some(DhcpOption::ClassIdentifier(v)) if v.as_slice() == b"PXEClient"
    );
    if is_pxe {
        let vendor = match (port, requested_boot_item(req)) {
            // The boot server answers the boot item it was asked for (PXE 2.1, 2.2.5).
            (ProxyPort::BootServer, Some((server_type, layer))) => {
                encode_pxe_vendor_options(&[PxeSubOption::BootItem { server_type, layer }])
                    .unwrap_or_else(|_| proxy_vendor_options())
            }
            _ => proxy_vendor_options(),
        };
        opts.insert(DhcpOption::VendorExtensions(vendor));
    }
    echo_client_guid(&mut reply, req);
    ProxyOutcome::Reply(Box::new(reply))
}

/// Put the boot information of `decision` into a reply (proxy or router mode): next-server,
/// boot file (the `file` field and option 67), option 60 and PXE option 43 where the client
/// needs them. [`BootDecision::NotNetboot`] and [`BootDecision::Decline`] add nothing.
pub fn add_boot_options(reply: &mut Message, decision: &BootDecision, server_ip: Ipv4Addr) {
    match decision {
        BootDecision::NotNetboot | BootDecision::Decline { .. } => {}
        BootDecision::Tftp { binary, .. } => {
            // PXE ROMs take the TFTP server from siaddr and the file from the `file` field;
            // option 43 tells them to skip boot server discovery and download it.
            reply.set_siaddr(server_ip);
            reply.set_sname_str(server_ip.to_string());
            reply.set_fname_str(binary.file_name());
            let opts = reply.opts_mut();
            opts.insert(DhcpOption::ClassIdentifier(
                VendorKind::PxeClient.as_str().as_bytes().to_vec(),
            ));
            opts.insert(DhcpOption::VendorExtensions(proxy_vendor_options()));
        }
        BootDecision::Ipxe { script_url, .. } => {
            reply.set_siaddr(server_ip);
            set_boot_file(reply, script_url);
        }
        BootDecision::Http { url, .. } => {
            // UEFI HTTP boot ignores offers without option 60 `HTTPClient`.
            set_boot_file(reply, url);
            reply.opts_mut().insert(DhcpOption::ClassIdentifier(
                VendorKind::HttpClient.as_str().as_bytes().to_vec(),
            ));
        }
    }
}

/// Echo option 97 (client machine identifier) when the client sent it: PXE 2.1 requires it
/// in replies to PXE clients. An empty one is not echoed: dhcproto writes nothing for an empty
/// option, so the reply would claim an option 97 that never goes on the wire.
pub fn echo_client_guid(reply: &mut Message, req: &Message) {
    if let Some(DhcpOption::ClientMachineIdentifier(guid)) =
        req.opts().get(OptionCode::ClientMachineIdentifier)
        && !guid.is_empty()
    {
        reply
            .opts_mut()
            .insert(DhcpOption::ClientMachineIdentifier(guid.clone()));
    }
}

/// The bytes to send.
pub fn encode_reply(reply: &Message) -> Result<Vec<u8>, ProxyError> {
    Ok(reply.to_vec()?)
}

/// A URL or name in option 67, and in `file` when it fits (127 bytes and a NUL).
fn set_boot_file(reply: &mut Message, file: &str) {
    if file.len() < 128 {
        reply.set_fname_str(file);
    }
    reply
        .opts_mut()
        .insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
}

fn server_id(req: &Message) -> Option<Ipv4Addr> {
    match req.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// A BOOTREPLY for `req`: same xid, flags, giaddr and chaddr; no address (yiaddr 0);
/// options 53 and 54. `req.hlen()` must be at most 16.
fn base_reply(req: &Message, msg_type: MessageType, server_ip: Ipv4Addr) -> Message {
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr())
        .set_yiaddr(Ipv4Addr::UNSPECIFIED)
        .set_siaddr(server_ip);
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(msg_type));
    opts.insert(DhcpOption::ServerIdentifier(server_ip));
    reply
}

#[cfg(test)]
mod tests;
