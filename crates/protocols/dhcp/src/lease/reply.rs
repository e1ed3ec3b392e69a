//! Building router-mode replies: the BOOTP header copied from the request and the
//! configured options (1/3/6/12/15/28/51/54/58/59, option 82 echoed).

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use super::PoolConfig;

/// A reply to `req` of type `kind` from `server_ip`: xid, flags, giaddr, htype and chaddr copied,
/// option 53 and 54 set, and option 82 echoed unchanged (RFC 3046 2.2).
pub(crate) fn base(req: &Message, kind: MessageType, server_ip: Ipv4Addr) -> Message {
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr());
    if usize::from(req.hlen()) <= 16 {
        reply.set_chaddr(req.chaddr());
    }
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server_ip));
    if let Some(relay_info) = req.opts().get(OptionCode::RelayAgentInformation) {
        opts.insert(relay_info.clone());
    }
    reply
}

/// What a reply hands the client besides its address.
#[derive(Debug, Clone)]
pub(crate) struct Grant<'a> {
    /// Any address in the client's subnet (its lease, or the relay's address).
    pub(crate) link: Ipv4Addr,
    /// The default gateway for that subnet.
    pub(crate) router: Option<Ipv4Addr>,
    /// `None` for INFORM: no lease time, T1 or T2.
    pub(crate) lease_time: Option<Duration>,
    pub(crate) hostname: Option<&'a str>,
}

/// Add the configured network options to a reply.
///
/// dhcproto encodes options in code order (option 82 last), so the client's parameter request
/// list cannot reorder them; every configured option is sent whether requested or not (all are
/// small and RFC 2131 4.3.1 allows it).
pub(crate) fn add_options(reply: &mut Message, cfg: &PoolConfig, grant: &Grant<'_>) {
    let mask = u32::from(cfg.netmask);
    let broadcast = Ipv4Addr::from(u32::from(grant.link) | !mask);
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::SubnetMask(cfg.netmask));
    if let Some(router) = grant.router {
        opts.insert(DhcpOption::Router(vec![router]));
    }
    if !cfg.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(cfg.dns.clone()));
    }
    if let Some(name) = grant.hostname {
        opts.insert(DhcpOption::Hostname(name.to_owned()));
    }
    if let Some(domain) = &cfg.domain {
        opts.insert(DhcpOption::DomainName(domain.clone()));
    }
    opts.insert(DhcpOption::BroadcastAddr(broadcast));
    if let Some(lease) = grant.lease_time {
        let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
        opts.insert(DhcpOption::AddressLeaseTime(secs));
        opts.insert(DhcpOption::Renewal(secs / 2));
        opts.insert(DhcpOption::Rebinding(t2(secs)));
    }
}

/// T2 = 0.875 of the lease time (RFC 2131 4.4.5), without overflow.
fn t2(lease_secs: u32) -> u32 {
    let t2 = u64::from(lease_secs) * 7 / 8;
    u32::try_from(t2).unwrap_or(u32::MAX)
}

/// A NAK for `req`: no address, no configuration (RFC 2131 table 3). A relayed NAK gets the
/// broadcast bit so the relay broadcasts it (RFC 2131 4.3.2).
pub(crate) fn nak(req: &Message, server_ip: Ipv4Addr, why: &str) -> Message {
    let mut reply = base(req, MessageType::Nak, server_ip);
    if !req.giaddr().is_unspecified() {
        reply.set_flags(req.flags().set_broadcast());
    }
    reply.opts_mut().insert(DhcpOption::Message(why.to_owned()));
    reply
}
