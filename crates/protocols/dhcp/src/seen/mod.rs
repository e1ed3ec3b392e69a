//! Other DHCP servers on the LAN, from the OFFERs and ACKs they send (pure, no I/O).
//!
//! - [`parse_reply`] checks received bytes the way [`crate::options::parse_request`] checks a
//!   request, for a BOOTREPLY; [`ServerReply::from_message`] reads what it tells of its server:
//!   server identifier, [`ServerKind`] (`full` when it offers an address, `proxy` when `yiaddr`
//!   is 0 and it answers PXE), offered address, router (option 3), boot file (`file` or
//!   option 67).
//! - [`SeenServers`]: the servers seen, with first and last seen, expiring after a timeout and
//!   bounded in size (anything on the LAN can send these packets): at the cap the least recently
//!   seen server makes room.
//! - [`probe_discover`]: the DISCOVER the appliance probes with, as a PXE client would send it
//!   (so proxyDHCP servers answer too), with its own hardware address ([`probe_mac`]) and client
//!   identifier. Nothing here ever builds a REQUEST: a probe never takes an address.
//!
//! Time is a parameter (`SystemTime`: first and last seen are shown as dates).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use dhcproto::Encodable;
use dhcproto::v4::{
    Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode,
};
use flakeboot_catalogue::MacAddr;

use crate::options::{Framing, decode_checked};

/// Why received bytes tell nothing of a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Shorter than the fixed BOOTP header plus the magic cookie.
    #[error("packet is {len} bytes, shorter than a DHCP header (240)")]
    TooShort { len: usize },
    /// The four bytes after the header are not 99.130.83.99.
    #[error("bad DHCP magic cookie {cookie:02x?}")]
    BadMagic { cookie: [u8; 4] },
    /// dhcproto could not decode it.
    #[error("undecodable DHCP message: {reason}")]
    Decode { reason: String },
    /// A BOOTREQUEST (another client's packet, or our own probe).
    #[error("not a BOOTREPLY (op {op})")]
    NotReply { op: u8 },
    /// `hlen` larger than the 16-byte `chaddr` field.
    #[error("hardware address length {hlen} exceeds 16")]
    BadHlen { hlen: u8 },
    /// Neither an OFFER nor an ACK (a NAK, or no option 53).
    #[error("not an OFFER or ACK (message type {message_type:?})")]
    NotOfferOrAck { message_type: Option<MessageType> },
    /// No option 54 and no source address: nothing to call the server by.
    #[error("no server identifier (option 54) and no source address")]
    NoServer,
    /// No address offered and no PXE answer (e.g. an ACK to an INFORM): nothing to learn.
    #[error("neither an address nor a PXE answer")]
    NothingOffered,
}

/// Decode a received packet into a [`Message`] that is safe to use: a BOOTREPLY with the
/// magic cookie and `hlen <= 16`.
pub fn parse_reply(bytes: &[u8]) -> Result<Message, ReplyError> {
    Ok(decode_checked(bytes, Opcode::BootReply)?)
}

impl From<Framing> for ReplyError {
    fn from(f: Framing) -> Self {
        match f {
            Framing::TooShort { len } => ReplyError::TooShort { len },
            Framing::BadMagic { cookie } => ReplyError::BadMagic { cookie },
            Framing::Decode { reason } => ReplyError::Decode { reason },
            Framing::WrongOpcode { op } => ReplyError::NotReply { op },
            Framing::BadHlen { hlen } => ReplyError::BadHlen { hlen },
        }
    }
}

/// What kind of DHCP server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    /// It hands out addresses.
    Full,
    /// proxyDHCP: boot information only (`yiaddr` 0, option 60 `PXEClient` or a boot file).
    Proxy,
}

impl ServerKind {
    /// `full` or `proxy`, as the API and CLI say it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Full => "full",
            ServerKind::Proxy => "proxy",
        }
    }
}

/// What one OFFER or ACK tells of the server that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// Option 54, else the packet's source address.
    pub server_id: Ipv4Addr,
    /// Full or proxy.
    pub kind: ServerKind,
    /// `yiaddr` when it is not 0.
    pub offered: Option<Ipv4Addr>,
    /// Option 3, the first router.
    pub router: Option<Ipv4Addr>,
    /// Option 67, else the `file` field, when not empty.
    pub boot_file: Option<String>,
    /// It answers PXE clients (option 60 `PXEClient`/`HTTPClient`, option 43 or a boot file).
    pub pxe: bool,
    /// The client it answers (`chaddr`, Ethernet with a 6-byte address of one station).
    pub client: Option<MacAddr>,
    /// An ACK (else an OFFER).
    pub ack: bool,
}

impl ServerReply {
    /// Read an OFFER or ACK received from `source` (the UDP source address).
    pub fn from_message(msg: &Message, source: Ipv4Addr) -> Result<ServerReply, ReplyError> {
        let message_type = msg.opts().msg_type();
        if !matches!(message_type, Some(MessageType::Offer | MessageType::Ack)) {
            return Err(ReplyError::NotOfferOrAck { message_type });
        }
        let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) if !ip.is_unspecified() => *ip,
            _ if !source.is_unspecified() => source,
            _ => return Err(ReplyError::NoServer),
        };
        let router = match msg.opts().get(OptionCode::Router) {
            Some(DhcpOption::Router(list)) => list.first().copied(),
            _ => None,
        };
        let boot_file = match msg.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(name)) if !name.is_empty() => {
                Some(String::from_utf8_lossy(name).into_owned())
            }
            _ => msg
                .fname_str()
                .and_then(|r| r.ok())
                .map(str::to_owned)
                .filter(|f| !f.is_empty()),
        }
        .map(|f| {
            f.trim_end_matches('\0')
                .chars()
                .take(255)
                .collect::<String>()
        });
        let vendor_pxe = matches!(
            msg.opts().get(OptionCode::ClassIdentifier),
            Some(DhcpOption::ClassIdentifier(v))
                if v.starts_with(b"PXEClient") || v.starts_with(b"HTTPClient")
        );
        let pxe = vendor_pxe
            || msg.opts().get(OptionCode::VendorExtensions).is_some()
            || boot_file.is_some();
        let yiaddr = msg.yiaddr();
        let (kind, offered) = if !yiaddr.is_unspecified() {
            (ServerKind::Full, Some(yiaddr))
        } else if pxe {
            (ServerKind::Proxy, None)
        } else {
            return Err(ReplyError::NothingOffered);
        };
        Ok(ServerReply {
            server_id,
            kind,
            offered,
            router,
            boot_file,
            pxe,
            // hlen <= 16 was checked by parse_reply, so chaddr() cannot panic.
            client: (msg.htype() == HType::Eth && msg.hlen() == 6)
                .then(|| MacAddr::from_slice(msg.chaddr()))
                .flatten()
                .filter(MacAddr::is_station),
            ack: message_type == Some(MessageType::Ack),
        })
    }

    /// What the client was offered, for its timeline: "offer from 10.77.0.2 (full DHCP):
    /// address 10.77.0.150, router 10.77.0.2, boot file pxelinux.0". The boot file is the
    /// sender's text: control characters escaped, at most 64 characters.
    pub fn describe(&self) -> String {
        let what = if self.ack { "ack" } else { "offer" };
        let kind = match self.kind {
            ServerKind::Full => "full DHCP",
            ServerKind::Proxy => "proxyDHCP",
        };
        let mut parts = Vec::new();
        if let Some(ip) = self.offered {
            parts.push(format!("address {ip}"));
        }
        if let Some(ip) = self.router {
            parts.push(format!("router {ip}"));
        }
        if let Some(file) = &self.boot_file {
            let shown: String = file
                .chars()
                .take(64)
                .flat_map(char::escape_default)
                .collect();
            parts.push(format!("boot file {shown}"));
        }
        if parts.is_empty() {
            parts.push("PXE boot information".into());
        }
        format!(
            "{what} from {} ({kind}): {}",
            self.server_id,
            parts.join(", ")
        )
    }

    /// Whether this reply is the appliance's own (its server identifier is one of `own`).
    pub fn is_from(&self, own: &[Ipv4Addr]) -> bool {
        own.contains(&self.server_id)
    }
}

/// Which other servers' replies reach machines' timelines: one per client and server every
/// [`ReplyLog::EVERY`] (a client's retries and its OFFER-ACK pair are one line), and at most
/// [`ReplyLog::PER_SECOND`] in all, so a LAN flooding forged replies cannot flood timelines.
/// Bounded: at most [`ReplyLog::MAX_PAIRS`] pairs remembered.
#[derive(Debug, Default)]
pub struct ReplyLog {
    last: std::collections::HashMap<(MacAddr, Ipv4Addr), SystemTime>,
    second: Option<SystemTime>,
    in_second: u32,
}

impl ReplyLog {
    /// The same client and server at most once in this time.
    pub const EVERY: Duration = Duration::from_secs(10);
    /// At most this many a second in all.
    pub const PER_SECOND: u32 = 20;
    /// Pairs remembered.
    pub const MAX_PAIRS: usize = 1024;

    /// Whether `reply` (to `client`) goes to the client's timeline, at `now`.
    pub fn admit(&mut self, client: MacAddr, server: Ipv4Addr, now: SystemTime) -> bool {
        let key = (client, server);
        let recent = |at: &SystemTime| now.duration_since(*at).is_ok_and(|d| d < Self::EVERY);
        if self.last.get(&key).is_some_and(recent) {
            return false;
        }
        let same_second = self.second.is_some_and(|s| {
            now.duration_since(s)
                .is_ok_and(|d| d < Duration::from_secs(1))
        });
        if !same_second {
            self.second = Some(now);
            self.in_second = 0;
        }
        if self.in_second >= Self::PER_SECOND {
            return false;
        }
        self.in_second += 1;
        if self.last.len() >= Self::MAX_PAIRS {
            self.last.retain(|_, at| recent(at));
            if self.last.len() >= Self::MAX_PAIRS {
                self.last.clear();
            }
        }
        self.last.insert(key, now);
        true
    }
}

/// One server seen on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenServer {
    /// Its server identifier.
    pub address: Ipv4Addr,
    /// Its hardware address, when the LAN port's neighbour table knows it.
    pub mac: Option<MacAddr>,
    /// `Full` once it offered an address, else `Proxy`.
    pub kind: ServerKind,
    /// It answers PXE clients.
    pub pxe: bool,
    /// The lowest and highest address it offered.
    pub range_seen: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The router it hands out (latest).
    pub router: Option<Ipv4Addr>,
    /// The boot file it hands out (latest).
    pub boot_file: Option<String>,
    /// When it was first seen.
    pub first_seen: SystemTime,
    /// When it was last seen.
    pub last_seen: SystemTime,
}

/// The bounds of a [`SeenServers`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenLimits {
    /// Servers kept at most; the least recently seen makes room for a new one.
    pub capacity: usize,
    /// A server not seen for this long is forgotten.
    pub expiry: Duration,
}

impl Default for SeenLimits {
    fn default() -> SeenLimits {
        SeenLimits {
            capacity: 32,
            expiry: Duration::from_secs(15 * 60),
        }
    }
}

/// The DHCP servers seen on the LAN, bounded and expiring.
#[derive(Debug, Clone)]
pub struct SeenServers {
    limits: SeenLimits,
    servers: Vec<SeenServer>,
    evicted: u64,
}

impl SeenServers {
    /// An empty table.
    pub fn new(limits: SeenLimits) -> SeenServers {
        SeenServers {
            limits: SeenLimits {
                capacity: limits.capacity.max(1),
                ..limits
            },
            servers: Vec::new(),
            evicted: 0,
        }
    }

    /// The table's bounds.
    pub fn limits(&self) -> SeenLimits {
        self.limits
    }

    /// Change the expiry (and capacity; the least recently seen go first).
    pub fn set_limits(&mut self, limits: SeenLimits) {
        self.limits = SeenLimits {
            capacity: limits.capacity.max(1),
            ..limits
        };
        while self.servers.len() > self.limits.capacity {
            self.evict_oldest();
        }
    }

    /// Servers dropped to make room since the table was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Record `reply` seen at `now`, from `mac` when known.
    pub fn observe(&mut self, reply: &ServerReply, mac: Option<MacAddr>, now: SystemTime) {
        self.expire(now);
        if let Some(s) = self
            .servers
            .iter_mut()
            .find(|s| s.address == reply.server_id)
        {
            s.last_seen = now.max(s.first_seen);
            if reply.kind == ServerKind::Full {
                s.kind = ServerKind::Full;
            }
            s.pxe |= reply.pxe;
            s.mac = mac.or(s.mac);
            if let Some(ip) = reply.offered {
                s.range_seen = Some(widen(s.range_seen, ip));
            }
            if reply.router.is_some() {
                s.router = reply.router;
            }
            if reply.boot_file.is_some() {
                s.boot_file = reply.boot_file.clone();
            }
            return;
        }
        if self.servers.len() >= self.limits.capacity {
            self.evict_oldest();
        }
        self.servers.push(SeenServer {
            address: reply.server_id,
            mac,
            kind: reply.kind,
            pxe: reply.pxe,
            range_seen: reply.offered.map(|ip| (ip, ip)),
            router: reply.router,
            boot_file: reply.boot_file.clone(),
            first_seen: now,
            last_seen: now,
        });
    }

    /// Fill in the hardware address of `address` when it was not known.
    pub fn set_mac(&mut self, address: Ipv4Addr, mac: MacAddr) {
        if let Some(s) = self.servers.iter_mut().find(|s| s.address == address) {
            s.mac = Some(mac);
        }
    }

    /// Forget the servers not seen within the expiry before `now`.
    pub fn expire(&mut self, now: SystemTime) {
        let expiry = self.limits.expiry;
        self.servers.retain(|s| !expired(s, expiry, now));
    }

    /// The servers seen and not expired at `now`, by address.
    pub fn list(&self, now: SystemTime) -> Vec<SeenServer> {
        let mut list: Vec<SeenServer> = self
            .servers
            .iter()
            .filter(|s| !expired(s, self.limits.expiry, now))
            .cloned()
            .collect();
        list.sort_by_key(|s| s.address);
        list
    }

    /// When the next server expires, if any.
    pub fn poll_at(&self) -> Option<SystemTime> {
        self.servers
            .iter()
            .map(|s| s.last_seen + self.limits.expiry)
            .min()
    }

    fn evict_oldest(&mut self) {
        if let Some(i) = self
            .servers
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(i, _)| i)
        {
            self.servers.swap_remove(i);
            self.evicted += 1;
        }
    }
}

fn expired(s: &SeenServer, expiry: Duration, now: SystemTime) -> bool {
    s.last_seen + expiry <= now
}

fn widen(range: Option<(Ipv4Addr, Ipv4Addr)>, ip: Ipv4Addr) -> (Ipv4Addr, Ipv4Addr) {
    match range {
        Some((low, high)) => (low.min(ip), high.max(ip)),
        None => (ip, ip),
    }
}

/// The hardware address the appliance probes with, derived from its LAN port's `lan` MAC: a
/// locally administered unicast address that differs from it, so a server's offer to the probe
/// is never mistaken for one to the appliance itself.
pub fn probe_mac(lan: MacAddr) -> MacAddr {
    let [a, b, c, d, e, f] = lan.octets();
    MacAddr([(a | 0x02) & !0x01, b, c, d ^ 0x80, e, f])
}

/// The client identifier (option 61) of the probe: type 0 and this text with the probe MAC.
pub fn probe_client_id(mac: MacAddr) -> Vec<u8> {
    let mut id = vec![0u8];
    id.extend_from_slice(format!("flakeboot-probe {mac}").as_bytes());
    id
}

/// Whether `req` is the appliance's own probe (its client identifier): the appliance's own
/// DHCP server leaves it unanswered, so the probe makes no lease and no machine record.
pub fn is_probe(req: &Message) -> bool {
    matches!(
        req.opts().get(OptionCode::ClientIdentifier),
        Some(DhcpOption::ClientIdentifier(id)) if id.starts_with(b"\0flakeboot-probe ")
    )
}

/// A DISCOVER as a PXE ROM would send it (broadcast flag, option 60 `PXEClient:...`, option
/// 93 x86 BIOS, option 97), from `mac` with its own client identifier, so full and proxyDHCP
/// servers both answer.
pub fn probe_discover(mac: MacAddr, xid: u32) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    let mut msg = Message::default();
    msg.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(xid)
        .set_flags(Flags::default().set_broadcast())
        .set_chaddr(&mac.octets());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Discover));
    opts.insert(DhcpOption::ClientIdentifier(probe_client_id(mac)));
    opts.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    opts.insert(DhcpOption::ClientSystemArchitecture(Architecture::X86_Bios));
    opts.insert(DhcpOption::ClientNetworkInterface(1, 2, 1));
    let mut guid = vec![0u8];
    guid.extend_from_slice(&[0x66; 16]);
    opts.insert(DhcpOption::ClientMachineIdentifier(guid));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::VendorExtensions,
        OptionCode::ClassIdentifier,
        OptionCode::TFTPServerName,
        OptionCode::BootfileName,
        OptionCode::ServerIdentifier,
    ]));
    msg.to_vec()
}

#[cfg(test)]
mod tests;
