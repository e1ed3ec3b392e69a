//! The proxyDHCP (port 67) and PXE boot server (port 4011) receive loop.
//!
//! [`handle_datagram`] is the whole decision for one datagram, pure (bytes, sender, time in;
//! reply, event and counter out); [`run`] only receives, calls it, sends, records and counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, Outcome};
use tokio_util::sync::CancellationToken;

use super::socket::{boot_server_destination, reply_destination};
use super::{DhcpError, DhcpStats, receiver};
use crate::boot::{BootConfig, BootDecision};
use crate::options::{PacketError, parse_request};
use crate::proxy::{IgnoreReason, ProxyOutcome, ProxyPort, answer, encode_reply};

/// Which counter a datagram ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// [`DhcpStats::replied`].
    Replied,
    /// [`DhcpStats::ignored_non_boot`].
    IgnoredNonBoot,
    /// [`DhcpStats::ignored`].
    Ignored,
    /// [`DhcpStats::malformed`].
    Malformed,
    /// [`DhcpStats::declined`].
    Declined,
}

impl Counter {
    fn of(self, stats: &DhcpStats) -> &AtomicU64 {
        match self {
            Counter::Replied => &stats.replied,
            Counter::IgnoredNonBoot => &stats.ignored_non_boot,
            Counter::Ignored => &stats.ignored,
            Counter::Malformed => &stats.malformed,
            Counter::Declined => &stats.declined,
        }
    }
}

/// The result of one datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// Bytes to send and where.
    pub reply: Option<(Vec<u8>, SocketAddr)>,
    /// The boot event to record (boot clients only).
    pub event: Option<BootEvent>,
    /// The [`DhcpStats`] counter this datagram ends in.
    pub counter: Counter,
    /// Why the datagram was dropped, for the debug log.
    pub note: Option<String>,
    /// A network-boot client and the address it takes (its REQUEST's option 50 or ciaddr),
    /// whoever the REQUEST is for: [`Catalogue::client_address`].
    pub learned: Option<(flakeboot_catalogue::MacAddr, std::net::IpAddr)>,
}

impl Handled {
    fn dropped(counter: Counter, note: String) -> Handled {
        Handled {
            reply: None,
            event: None,
            counter,
            note: Some(note),
            learned: None,
        }
    }
}

/// The address a client uses: `ciaddr` once it has one, else the address it asks the LAN's
/// DHCP server for (option 50, in its broadcast REQUEST), else where the packet came from. It is
/// what later TFTP and HTTP requests come from, so the boot policy can tell whose they are.
fn client_address(req: &dhcproto::v4::Message, src: SocketAddr) -> std::net::IpAddr {
    if !req.ciaddr().is_unspecified() {
        return req.ciaddr().into();
    }
    match req.opts().get(dhcproto::v4::OptionCode::RequestedIpAddress) {
        Some(dhcproto::v4::DhcpOption::RequestedIpAddress(ip)) if !ip.is_unspecified() => {
            (*ip).into()
        }
        _ => src.ip(),
    }
}

/// The address a network-boot client takes, from a REQUEST that says it (ciaddr or option 50),
/// whichever server the REQUEST is for.
fn learned_address(
    req: &dhcproto::v4::Message,
    ans: &crate::proxy::ProxyAnswer,
    src: SocketAddr,
) -> Option<(flakeboot_catalogue::MacAddr, std::net::IpAddr)> {
    if ans.decision == BootDecision::NotNetboot
        || ans.info.message_type != Some(dhcproto::v4::MessageType::Request)
    {
        return None;
    }
    let ip = client_address(req, src);
    (!ip.is_unspecified()).then_some(())?;
    Some((ans.info.mac?, ip))
}

/// Decide what to do with one datagram that arrived on `port` from `src` at `now`.
pub fn handle_datagram(
    port: ProxyPort,
    bytes: &[u8],
    src: SocketAddr,
    cfg: &BootConfig,
    now: SystemTime,
) -> Handled {
    let req = match parse_request(bytes) {
        Ok(req) => req,
        Err(e @ PacketError::NotRequest { .. }) => {
            return Handled::dropped(Counter::Ignored, e.to_string());
        }
        Err(e) => return Handled::dropped(Counter::Malformed, e.to_string()),
    };
    if crate::seen::is_probe(&req) {
        return Handled::dropped(Counter::Ignored, "the appliance's own probe".into());
    }
    let ans = answer(port, &req, cfg);
    let learned = learned_address(&req, &ans, src);
    let (stage, what) = match (port, &ans.outcome) {
        (ProxyPort::Dhcp, ProxyOutcome::Reply(r))
            if r.opts().has_msg_type(dhcproto::v4::MessageType::Ack) =>
        {
            (BootStage::Dhcp, "proxy ack")
        }
        (ProxyPort::Dhcp, _) => (BootStage::Dhcp, "proxy offer"),
        (ProxyPort::BootServer, _) => (BootStage::PxeBootServer, "boot server ack"),
    };
    let event = |outcome, detail: String| {
        let mut ev = BootEvent::new(stage, outcome, detail);
        ev.at = now;
        ev.peer = Some(client_address(&req, src));
        ev.mac = ans.info.mac;
        ev.firmware = ans.decision.firmware();
        ev.vendor_class.clone_from(&ans.info.vendor_class);
        ev
    };
    let mut handled = match ans.outcome {
        ProxyOutcome::Reply(reply) => {
            let dest = match port {
                ProxyPort::Dhcp => reply_destination(&req, src),
                ProxyPort::BootServer => boot_server_destination(&req, src),
            };
            match encode_reply(&reply) {
                Ok(bytes) => {
                    let file = ans.decision.boot_file().unwrap_or_default();
                    Handled {
                        reply: Some((bytes, dest)),
                        event: Some(event(Outcome::Ok, format!("{what}: {file}"))),
                        counter: Counter::Replied,
                        note: None,
                        learned: None,
                    }
                }
                Err(e) => Handled {
                    reply: None,
                    event: Some(event(Outcome::Failed, format!("{what}: {e}"))),
                    counter: Counter::Malformed,
                    note: Some(e.to_string()),
                    learned: None,
                },
            }
        }
        ProxyOutcome::Declined => {
            let reason = match &ans.decision {
                BootDecision::Decline { reason, .. } => reason.clone(),
                other => format!("{other:?}"),
            };
            Handled {
                reply: None,
                event: Some(event(Outcome::Declined, format!("declined: {reason}"))),
                counter: Counter::Declined,
                note: Some(reason),
                learned: None,
            }
        }
        ProxyOutcome::Ignored(IgnoreReason::NotNetboot) => {
            Handled::dropped(Counter::IgnoredNonBoot, "not a network-boot client".into())
        }
        ProxyOutcome::Ignored(IgnoreReason::BadHlen(h)) => {
            Handled::dropped(Counter::Malformed, format!("hlen {h}"))
        }
        ProxyOutcome::Ignored(reason) => Handled::dropped(Counter::Ignored, format!("{reason:?}")),
    };
    handled.learned = learned;
    handled
}

/// Receive on `socket` until `shutdown`, on a thread of its own ([`super::receiver`]): every
/// datagram through [`handle_datagram`], the reply sent, the event recorded, the counter
/// bumped. The boot policy's calls are synchronous and do not block.
pub(crate) async fn run(
    socket: std::net::UdpSocket,
    port: ProxyPort,
    cfg: BootConfig,
    catalogue: Arc<dyn Catalogue>,
    stats: Arc<DhcpStats>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    let local_port = receiver::local_port(&socket);
    let socket = receiver::blocking(socket)?;
    // Dropped when this future ends or is dropped (the other loop of the server failed):
    // the thread stops either way.
    let stop = receiver::Stop::new(&socket);
    let flag = stop.flag.clone();
    let mut thread = tokio::task::spawn_blocking(move || {
        receive(&socket, port, &cfg, catalogue.as_ref(), &stats, &flag);
    });
    tokio::select! {
        joined = &mut thread => return receiver::ended(joined, local_port),
        () = shutdown.cancelled() => {}
    }
    drop(stop);
    receiver::ended(thread.await, local_port)
}

/// The blocking loop of [`run`], until `stop` is raised.
fn receive(
    socket: &std::net::UdpSocket,
    port: ProxyPort,
    cfg: &BootConfig,
    catalogue: &dyn Catalogue,
    stats: &DhcpStats,
    stop: &CancellationToken,
) {
    let local_port = receiver::local_port(socket);
    let mut buf = vec![0u8; 4096];
    while let Some((len, src)) = receiver::next(socket, &mut buf, stop) {
        let arrived = std::time::Instant::now();
        DhcpStats::bump(&stats.received);
        DhcpStats::add_bytes(&stats.received_bytes, len);
        let bytes = buf.get(..len).unwrap_or_default();
        let handled = handle_datagram(port, bytes, src, cfg, SystemTime::now());
        if let Some(note) = &handled.note {
            tracing::debug!(peer = %src, port = local_port, counter = ?handled.counter, "DHCP request dropped: {note}");
        }
        let mut counter = handled.counter;
        if let Some((reply, dest)) = &handled.reply {
            match socket.send_to(reply, dest) {
                Ok(_) => {
                    stats.sent(reply.len(), arrived);
                    // Debug, as the router's OFFERs: the reply's boot event is logged
                    // (`boot event`, with the same detail) and recorded.
                    tracing::debug!(peer = %src, %dest, port = local_port,
                        detail = handled.event.as_ref().map(|e| e.detail.as_str()).unwrap_or_default(),
                        "DHCP reply sent");
                }
                Err(e) => {
                    tracing::warn!(peer = %src, %dest, error = %e, "DHCP reply not sent");
                    counter = Counter::Ignored;
                }
            }
        }
        if let Some((mac, ip)) = handled.learned {
            catalogue.client_address(mac, ip);
        }
        if let Some(event) = handled.event {
            if event.outcome == Outcome::Declined {
                tracing::info!(peer = %src, mac = ?event.mac, "{}", event.detail);
            }
            catalogue.record(event);
        }
        DhcpStats::bump(counter.of(stats));
    }
}

#[cfg(test)]
mod tests;
