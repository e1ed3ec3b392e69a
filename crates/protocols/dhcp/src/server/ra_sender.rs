//! IPv6 router advertisements on the LAN: a raw ICMPv6 socket bound to the interface, an RA
//! to ff02::1 every `interval` and promptly after each Router Solicitation.
//!
//! The packet itself is built by the pure [`crate::ra::router_advertisement`]; the kernel
//! computes the ICMPv6 checksum of raw ICMPv6 sockets and picks the interface's link-local
//! address as the source (which RFC 4861 requires of an RA).

use std::io::{self, Read};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::ra::{
    RaConfig, is_router_solicitation, prefix_64, router_advertisement, ula_prefix_from_mac,
};

/// All-nodes multicast: where RAs go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast: where Router Solicitations go.
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Solicited RAs are not sent closer together than this (a storm of RSs gets a few RAs).
const MIN_SOLICITED_GAP: Duration = Duration::from_millis(200);
/// How soon a failed send is retried.
const RETRY: Duration = Duration::from_secs(1);
/// How long the loop blocks in a receive before it looks at the clock and the shutdown token.
const POLL: Duration = Duration::from_millis(100);

/// Errors of the RA sender.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    /// The interface's index or MAC could not be found.
    #[error("cannot find the link address of interface {interface}: {source}")]
    Interface {
        interface: String,
        #[source]
        source: io::Error,
    },
    /// The raw ICMPv6 socket could not be set up (not root? no IPv6?).
    #[error("raw ICMPv6 socket on {interface}: {source}")]
    Socket {
        interface: String,
        #[source]
        source: io::Error,
    },
}

/// Send RAs on `interface` until `shutdown`. An unspecified prefix (`::`) means the ULA prefix
/// derived from the interface's MAC. Send errors (for example no link-local address yet, right
/// after the link came up) are logged at debug and retried a second later.
pub(crate) async fn run(
    interface: &str,
    cfg: &RaConfig,
    shutdown: CancellationToken,
) -> Result<(), RaError> {
    let (ifindex, mac) = link_of(interface)?;
    let prefix = if cfg.prefix.is_unspecified() {
        ula_prefix_from_mac(mac)
    } else {
        prefix_64(cfg.prefix)
    };
    let socket = open_socket(interface, ifindex).map_err(|source| RaError::Socket {
        interface: interface.to_owned(),
        source,
    })?;
    let ra = router_advertisement(mac, prefix);
    let dest = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, ifindex));
    tracing::info!(%interface, %prefix, interval = ?cfg.interval, "IPv6 router advertisements");
    // Raw sockets have no safe tokio wrapper (AsyncFd registration is `unsafe`, and this
    // workspace forbids unsafe code): the loop runs on a blocking thread, waking at least every
    // POLL to look at the clock and the shutdown token.
    let interval = cfg.interval.max(Duration::from_secs(1));
    let name = interface.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        advertise(&name, &socket, &ra, &dest, interval, &shutdown);
    });
    if let Err(e) = task.await {
        tracing::error!(%interface, error = %e, "RA sender thread failed");
    }
    Ok(())
}

/// The blocking send loop: an RA at once, then every `interval` and after each solicitation.
fn advertise(
    interface: &str,
    socket: &Socket,
    ra: &[u8],
    dest: &SockAddr,
    interval: Duration,
    shutdown: &CancellationToken,
) {
    let mut next_periodic = Instant::now();
    let mut last_solicited: Option<Instant> = None;
    let mut buf = [0u8; 1500];
    while !shutdown.is_cancelled() {
        let now = Instant::now();
        let mut send = now >= next_periodic;
        if send {
            next_periodic = now + interval;
        }
        match (&*socket).read(&mut buf) {
            Ok(len) if is_router_solicitation(buf.get(..len).unwrap_or_default()) => {
                if last_solicited.is_none_or(|t| t.elapsed() >= MIN_SOLICITED_GAP) {
                    tracing::debug!(%interface, "router solicitation: sending an RA");
                    last_solicited = Some(Instant::now());
                    send = true;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => tracing::debug!(%interface, error = %e, "ICMPv6 receive error"),
        }
        if send && let Err(e) = socket.send_to(ra, dest) {
            // Typically no link-local address yet (DAD still running): retry soon.
            tracing::debug!(%interface, error = %e, "RA not sent, retrying in 1 s");
            next_periodic = next_periodic.min(Instant::now() + RETRY);
        }
    }
}

/// A raw ICMPv6 socket on `interface`: bound to the device, hop limit 255 (receivers drop NDP
/// with any other), member of ff02::2 to hear Router Solicitations, our own RAs not looped back.
fn open_socket(interface: &str, ifindex: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_if_v6(ifindex)?;
    socket.set_multicast_loop_v6(false)?;
    socket.join_multicast_v6(&ALL_ROUTERS, ifindex)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// The index and MAC of `interface`, from getifaddrs (netlink, in the calling thread's network
/// namespace; sysfs would show the mount namespace's view instead).
fn link_of(interface: &str) -> Result<(u32, [u8; 6]), RaError> {
    let error = |source: io::Error| RaError::Interface {
        interface: interface.to_owned(),
        source,
    };
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| error(io::Error::from(e)))?;
    addrs
        .filter(|a| a.interface_name == interface)
        .filter_map(|a| {
            let link = a.address.as_ref()?.as_link_addr()?;
            Some((u32::try_from(link.ifindex()).ok()?, link.addr()?))
        })
        .next()
        .ok_or_else(|| {
            error(io::Error::new(
                io::ErrorKind::NotFound,
                "no such Ethernet interface",
            ))
        })
}
