//! The LAN's other DHCP servers: a socket on the client port (68) of the LAN port hears their
//! OFFERs and ACKs (broadcast, beside any other client on this machine: SO_REUSEADDR and
//! SO_BINDTODEVICE), and a probe DISCOVER of the appliance's own ([`crate::seen`]) at start,
//! when asked ([`ProbeTrigger`]) and every `probe_interval` makes every server answer. It never
//! sends a REQUEST, so it never takes an address. Replies carrying one of the appliance's own
//! addresses as server identifier are its own and skipped; anything that is not an OFFER or ACK
//! is logged at debug and dropped. A reply to a client goes to that client's timeline as a
//! [`BootStage::OtherDhcp`] event (through the catalogue, which keeps it only for a machine it
//! knows), at most once per client and server every few seconds ([`ReplyLog`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, MacAddr, Outcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::DhcpError;
use super::socket::{CLIENT_PORT, SERVER_PORT, bind_udp};
use crate::seen::{ReplyLog, SeenServers, ServerReply, parse_reply, probe_discover, probe_mac};

/// How the watcher runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// The LAN port.
    pub interface: String,
    /// Its MAC (the probe's hardware address is derived from it).
    pub lan_mac: MacAddr,
    /// The appliance's own addresses: replies with one of them as server identifier are ours.
    pub own: Vec<Ipv4Addr>,
    /// Time between probes.
    pub probe_interval: Duration,
    /// The port replies arrive on (68) and the port probes go to (67).
    pub client_port: u16,
    pub server_port: u16,
}

impl WatchConfig {
    /// The standard ports.
    pub fn new(
        interface: String,
        lan_mac: MacAddr,
        own: Vec<Ipv4Addr>,
        probe_interval: Duration,
    ) -> WatchConfig {
        WatchConfig {
            interface,
            lan_mac,
            own,
            probe_interval,
            client_port: CLIENT_PORT,
            server_port: SERVER_PORT,
        }
    }
}

/// The table of servers seen, shared between the watcher and whoever shows it.
#[derive(Debug, Clone)]
pub struct SharedSeen(Arc<Mutex<SeenServers>>);

impl SharedSeen {
    /// A shared `table`.
    pub fn new(table: SeenServers) -> SharedSeen {
        SharedSeen(Arc::new(Mutex::new(table)))
    }

    /// The table, locked (a poisoned lock still holds a consistent table: every change is one
    /// call).
    pub fn lock(&self) -> MutexGuard<'_, SeenServers> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Asks a running watcher to probe now (a mode change). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ProbeTrigger(Arc<Notify>);

impl ProbeTrigger {
    /// Probe as soon as possible.
    pub fn probe(&self) {
        self.0.notify_one();
    }
}

/// Watch until `shutdown`: returns early only when the socket cannot be bound or fails for good.
/// Replies to clients are recorded in `catalogue` (machines' timelines).
pub async fn run(
    cfg: WatchConfig,
    seen: SharedSeen,
    trigger: ProbeTrigger,
    catalogue: Arc<dyn Catalogue>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    let socket =
        bind_udp(&cfg.interface, Ipv4Addr::UNSPECIFIED, cfg.client_port).map_err(|source| {
            DhcpError::Bind {
                interface: cfg.interface.clone(),
                port: cfg.client_port,
                source,
            }
        })?;
    let mac = probe_mac(cfg.lan_mac);
    let probe_to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, cfg.server_port));
    let mut xid: u32 = u32::from_be_bytes([0x66, 0x6c, mac.octets()[4], mac.octets()[5]]);
    let mut probe_timer = tokio::time::interval(cfg.probe_interval.max(Duration::from_secs(1)));
    let mut mac_timer = tokio::time::interval(Duration::from_secs(2));
    let mut buf = vec![0u8; 1500];
    let mut replies = ReplyLog::default();
    tracing::info!(interface = %cfg.interface, probe_mac = %mac, every = ?cfg.probe_interval, "watching for other DHCP servers");
    loop {
        let probe = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = probe_timer.tick() => true,
            _ = trigger.0.notified() => true,
            _ = mac_timer.tick() => {
                fill_macs(&seen, &cfg.interface);
                false
            }
            received = socket.recv_from(&mut buf) => {
                let (len, src) = received.map_err(|source| DhcpError::Socket { port: cfg.client_port, source })?;
                let bytes = buf.get(..len).unwrap_or_default();
                if let Some(reply) = observe(&cfg, &seen, &socket, bytes, src).await {
                    to_timeline(&reply, &mut replies, catalogue.as_ref());
                }
                false
            }
        };
        if probe {
            xid = xid.wrapping_add(1);
            match probe_discover(mac, xid) {
                Ok(bytes) => {
                    if let Err(e) = socket.send_to(&bytes, probe_to).await {
                        tracing::debug!(error = %e, "probe DISCOVER not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "probe DISCOVER not encoded"),
            }
        }
    }
}

/// Another server's reply to a client, on that client's timeline (when [`ReplyLog`] admits it).
fn to_timeline(reply: &ServerReply, log: &mut ReplyLog, catalogue: &dyn Catalogue) {
    let Some(client) = reply.client else {
        return;
    };
    let now = SystemTime::now();
    if !log.admit(client, reply.server_id, now) {
        return;
    }
    let mut event = BootEvent::new(BootStage::OtherDhcp, Outcome::Ok, reply.describe())
        .mac(client)
        .peer(IpAddr::V4(reply.server_id));
    event.at = now;
    catalogue.record(event);
}

/// Another server's reply, into the table; the reply, unless it is not one or is our own.
async fn observe(
    cfg: &WatchConfig,
    seen: &SharedSeen,
    socket: &tokio::net::UdpSocket,
    bytes: &[u8],
    src: SocketAddr,
) -> Option<ServerReply> {
    let source = match src.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => return None,
    };
    let reply = match parse_reply(bytes).and_then(|m| ServerReply::from_message(&m, source)) {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(from = %src, error = %e, "not another server's OFFER or ACK");
            return None;
        }
    };
    if reply.is_from(&cfg.own) || cfg.own.contains(&source) {
        return None;
    }
    let mac = neighbour_mac(&cfg.interface, reply.server_id);
    let new = {
        let mut table = seen.lock();
        let new = !table
            .list(SystemTime::now())
            .iter()
            .any(|s| s.address == reply.server_id);
        table.observe(&reply, mac, SystemTime::now());
        new
    };
    if new {
        tracing::info!(server = %reply.server_id, kind = reply.kind.as_str(), offered = ?reply.offered, "another DHCP server answers on the LAN");
    }
    if mac.is_none() {
        // A datagram to the discard port makes the kernel resolve its MAC (ARP); the next
        // `fill_macs` reads it from the neighbour table.
        let discard = SocketAddr::V4(SocketAddrV4::new(reply.server_id, 9));
        let _ = socket.send_to(&[], discard).await;
    }
    Some(reply)
}

fn fill_macs(seen: &SharedSeen, interface: &str) {
    let missing: Vec<Ipv4Addr> = seen
        .lock()
        .list(SystemTime::now())
        .iter()
        .filter(|s| s.mac.is_none())
        .map(|s| s.address)
        .collect();
    for ip in missing {
        if let Some(mac) = neighbour_mac(interface, ip) {
            seen.lock().set_mac(ip, mac);
        }
    }
}

/// The MAC of `ip` on `interface` from this network namespace's neighbour table.
fn neighbour_mac(interface: &str, ip: Ipv4Addr) -> Option<MacAddr> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    arp_lookup(&table, interface, ip)
}

/// Find `ip` on `interface` in the text of `/proc/net/arp`
/// (`IP address  HW type  Flags  HW address  Mask  Device`); incomplete entries are zero.
fn arp_lookup(table: &str, interface: &str, ip: Ipv4Addr) -> Option<MacAddr> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [addr, _, _, hw, _, dev] if *dev == interface && addr.parse() == Ok(ip) => {
                hw.parse::<MacAddr>().ok().filter(MacAddr::is_station)
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neighbour_table_gives_a_servers_mac() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.9.0.2         0x1         0x2         52:54:00:aa:bb:cc     *        lan0\n\
                     10.9.0.3         0x1         0x0         00:00:00:00:00:00     *        lan0\n\
                     10.9.0.2         0x1         0x2         52:54:00:11:22:33     *        wan0\n";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            arp_lookup(table, "lan0", ip("10.9.0.2")),
            Some("52:54:00:aa:bb:cc".parse().unwrap())
        );
        assert_eq!(arp_lookup(table, "lan0", ip("10.9.0.3")), None);
        assert_eq!(arp_lookup(table, "lan0", ip("10.9.0.4")), None);
        assert_eq!(
            arp_lookup(table, "wan0", ip("10.9.0.2")),
            Some("52:54:00:11:22:33".parse().unwrap())
        );
    }
}
