//! The receiver: one UDP socket for syslog and one for netconsole on the LAN address, bound to
//! the LAN port. Each datagram is parsed (pure), rate-limited per source and in all, and
//! attributed to a machine by its source address through [`Catalogue::machine_at`] (never by
//! the host name it names). An attributed line goes to a bounded channel (the store's writer);
//! a line that says the boot failed is also recorded as a [`BootStage::Console`] boot event.
//! Nothing here waits: a full channel, a source over its rate or an address no machine holds
//! is counted in [`LogStats`] and the line dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, MacAddr, Outcome};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::failure::boot_failure;
use crate::limit::{Limited, RateLimit, Rates};
use crate::line::{LogLine, Proto};
use crate::netconsole::Assembler;
use crate::syslog;

/// The biggest datagram read (a syslog message over UDP is at most this by RFC 5426's advice;
/// a longer one is cut by the kernel).
const MAX_DATAGRAM: usize = 8192;

/// Errors of the receiver.
#[derive(Debug, thiserror::Error)]
pub enum LogServerError {
    #[error("binding the {what} receiver to {addr} on {interface}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        interface: String,
        source: std::io::Error,
    },
}

/// Where and how the receiver listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogServerConfig {
    /// The LAN port (SO_BINDTODEVICE).
    pub interface: String,
    /// The LAN address.
    pub address: Ipv4Addr,
    /// Syslog's UDP port (514).
    pub syslog_port: u16,
    /// Netconsole's UDP port (6666).
    pub netconsole_port: u16,
    pub rates: Rates,
}

/// A line attributed to a machine, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineLine {
    pub mac: MacAddr,
    /// Where it came from.
    pub peer: IpAddr,
    /// When it arrived.
    pub at: SystemTime,
    pub line: LogLine,
}

/// Why a line was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its source address belongs to no machine.
    Unattributed,
    /// Its source sent more than its rate.
    RateSource,
    /// All sources together sent more than the total rate.
    RateTotal,
    /// The store's writer was behind (the channel was full).
    Overflow,
    /// The store had no machine record for its MAC.
    NoMachine,
}

impl Dropped {
    pub const ALL: [Dropped; 5] = [
        Dropped::Unattributed,
        Dropped::RateSource,
        Dropped::RateTotal,
        Dropped::Overflow,
        Dropped::NoMachine,
    ];

    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Unattributed => "unattributed",
            Dropped::RateSource => "rate_source",
            Dropped::RateTotal => "rate_total",
            Dropped::Overflow => "overflow",
            Dropped::NoMachine => "no_machine",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The receiver's counters (shared with `/metrics`; a restarted receiver goes on counting).
#[derive(Debug, Default)]
pub struct LogStats {
    lines: [AtomicU64; 3],
    dropped: [AtomicU64; 5],
    datagrams: AtomicU64,
}

impl LogStats {
    /// Lines received of `proto` (before any was dropped).
    pub fn lines(&self, proto: Proto) -> u64 {
        self.lines
            .get(proto_index(proto))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Lines dropped for `why`.
    pub fn dropped(&self, why: Dropped) -> u64 {
        self.dropped
            .get(why.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Datagrams received.
    pub fn datagrams(&self) -> u64 {
        self.datagrams.load(Ordering::Relaxed)
    }

    /// Count `n` lines dropped for `why`.
    pub fn drop_lines(&self, why: Dropped, n: u64) {
        if let Some(c) = self.dropped.get(why.index()) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn line(&self, proto: Proto) {
        if let Some(c) = self.lines.get(proto_index(proto)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn proto_index(proto: Proto) -> usize {
    match proto {
        Proto::Rfc5424 => 0,
        Proto::Rfc3164 => 1,
        Proto::Netconsole => 2,
    }
}

/// A UDP socket on `address:port` of `interface` only.
fn bind(
    what: &'static str,
    interface: &str,
    address: Ipv4Addr,
    port: u16,
) -> Result<UdpSocket, LogServerError> {
    let addr = SocketAddr::V4(SocketAddrV4::new(address, port));
    let err = |source| LogServerError::Bind {
        what,
        addr,
        interface: interface.to_owned(),
        source,
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(err)?;
    socket.set_freebind_v4(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    // Room for a burst while the loop is busy; beyond it the kernel drops (and counts).
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

/// The bound receiver.
#[derive(Debug)]
pub struct LogServer {
    syslog: UdpSocket,
    netconsole: UdpSocket,
    rates: Rates,
    stats: Arc<LogStats>,
}

impl LogServer {
    /// Binds both sockets (an error if either port cannot be had).
    pub fn bind(
        config: &LogServerConfig,
        stats: Arc<LogStats>,
    ) -> Result<LogServer, LogServerError> {
        Ok(LogServer {
            syslog: bind(
                "syslog",
                &config.interface,
                config.address,
                config.syslog_port,
            )?,
            netconsole: bind(
                "netconsole",
                &config.interface,
                config.address,
                config.netconsole_port,
            )?,
            rates: config.rates,
            stats,
        })
    }

    /// The syslog socket's address (tests bind port 0).
    pub fn syslog_addr(&self) -> std::io::Result<SocketAddr> {
        self.syslog.local_addr()
    }

    /// The netconsole socket's address.
    pub fn netconsole_addr(&self) -> std::io::Result<SocketAddr> {
        self.netconsole.local_addr()
    }

    /// Receives until `stop`: lines of machines to `out`, boot failures to `catalogue`.
    pub async fn run(
        self,
        catalogue: Arc<dyn Catalogue>,
        out: mpsc::Sender<MachineLine>,
        stop: CancellationToken,
    ) {
        let mut sink = Sink {
            limit: RateLimit::new(self.rates, Instant::now()),
            catalogue,
            out,
            stats: self.stats.clone(),
        };
        let mut assembler = Assembler::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut syslog_buf = vec![0u8; MAX_DATAGRAM];
        let mut net_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                got = self.syslog.recv_from(&mut syslog_buf) => match got {
                    Ok((n, src)) => {
                        self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
                        let datagram = syslog_buf.get(..n).unwrap_or_default();
                        sink.line(src.ip(), syslog::parse(datagram));
                    }
                    Err(err) => receive_error("syslog", &err).await,
                },
                got = self.netconsole.recv_from(&mut net_buf) => match got {
                    Ok((n, src)) => {
                        self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
                        let datagram = net_buf.get(..n).unwrap_or_default();
                        for line in assembler.push(src.ip(), datagram, Instant::now()) {
                            sink.line(src.ip(), line);
                        }
                    }
                    Err(err) => receive_error("netconsole", &err).await,
                },
                _ = tick.tick() => {
                    for (src, line) in assembler.flush(Instant::now()) {
                        sink.line(src, line);
                    }
                }
            }
        }
        for (src, line) in assembler.flush(Instant::now() + crate::netconsole::FLUSH_AFTER) {
            sink.line(src, line);
        }
    }
}

/// A receive error (an ICMP error reported on the socket, a transient failure): logged, and
/// a short pause so a persistent one cannot spin the loop.
async fn receive_error(what: &str, err: &std::io::Error) {
    tracing::debug!(receiver = what, error = %err, "log receive failed");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Where lines go.
struct Sink {
    limit: RateLimit,
    catalogue: Arc<dyn Catalogue>,
    out: mpsc::Sender<MachineLine>,
    stats: Arc<LogStats>,
}

impl Sink {
    fn line(&mut self, src: IpAddr, line: LogLine) {
        self.stats.line(line.proto);
        let src = src.to_canonical();
        match self.limit.check(src, Instant::now()) {
            Ok(()) => {}
            Err(Limited::Source) => return self.stats.drop_lines(Dropped::RateSource, 1),
            Err(Limited::Total) => return self.stats.drop_lines(Dropped::RateTotal, 1),
        }
        let Some(mac) = self.catalogue.machine_at(src) else {
            tracing::debug!(peer = %src, proto = line.proto.as_str(), "log line from an address no machine holds: dropped");
            return self.stats.drop_lines(Dropped::Unattributed, 1);
        };
        if let Some(failure) = boot_failure(&line.text) {
            tracing::info!(%mac, peer = %src, reason = failure.as_str(), text = %line.text, "a machine's log says its boot failed");
            let event = BootEvent::new(BootStage::Console, Outcome::Failed, line.text.clone())
                .peer(src)
                .mac(mac);
            self.catalogue.record(event);
        }
        let at = SystemTime::now();
        if self
            .out
            .try_send(MachineLine {
                mac,
                peer: src,
                at,
                line,
            })
            .is_err()
        {
            self.stats.drop_lines(Dropped::Overflow, 1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::Mutex;

    use flakeboot_catalogue::{BootFile, BootSpec};

    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    /// Loopback is the machine; every other address is nobody's.
    #[derive(Debug, Default)]
    struct Fake {
        events: Mutex<Vec<BootEvent>>,
    }

    impl Catalogue for Fake {
        fn boot_spec(&self, _: Option<MacAddr>) -> BootSpec {
            BootSpec::Menu(flakeboot_catalogue::Menu {
                entries: Vec::new(),
                default: None,
                timeout: Duration::ZERO,
            })
        }
        fn boot_file(&self, _: &BootFile) -> Option<std::path::PathBuf> {
            None
        }
        fn record(&self, event: BootEvent) {
            self.events.lock().unwrap().push(event);
        }
        fn accept_report(&self, _: MacAddr, _: IpAddr) -> bool {
            false
        }
        fn machine_at(&self, ip: IpAddr) -> Option<MacAddr> {
            ip.is_loopback().then_some(MAC)
        }
    }

    fn config() -> LogServerConfig {
        LogServerConfig {
            interface: "lo".into(),
            address: Ipv4Addr::LOCALHOST,
            syslog_port: 0,
            netconsole_port: 0,
            rates: Rates {
                per_source: 50,
                total: 1000,
            },
        }
    }

    async fn next(rx: &mut mpsc::Receiver<MachineLine>) -> MachineLine {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn lines_are_attributed_by_source_and_failures_recorded() {
        let stats = Arc::new(LogStats::default());
        // SO_BINDTODEVICE needs CAP_NET_RAW, as the daemon does (the tests run as root).
        let server = LogServer::bind(&config(), stats.clone()).unwrap();
        let (syslog, netconsole) = (
            server.syslog_addr().unwrap(),
            server.netconsole_addr().unwrap(),
        );
        let fake = Arc::new(Fake::default());
        let (tx, mut rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(fake.clone(), tx, stop.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"<13>1 - node1 app - - - hello", syslog)
            .await
            .unwrap();
        let got = next(&mut rx).await;
        assert_eq!((got.mac, got.line.text.as_str()), (MAC, "hello"));
        client
            .send_to(
                b"Kernel panic - not syncing: VFS: Unable to mount root fs\n",
                netconsole,
            )
            .await
            .unwrap();
        let got = next(&mut rx).await;
        assert_eq!(got.line.proto, Proto::Netconsole);
        let events = fake.events.lock().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].stage, BootStage::Console);
        assert_eq!(events[0].outcome, Outcome::Failed);
        assert!(events[0].detail.starts_with("Kernel panic"));
        // A flood: the channel (8) and the rate (burst 100) bound it; nothing blocks.
        for _ in 0..500 {
            client.send_to(b"<13>flood", syslog).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(stats.dropped(Dropped::RateSource) + stats.dropped(Dropped::Overflow) > 0);
        stop.cancel();
        task.await.unwrap();
    }
}
