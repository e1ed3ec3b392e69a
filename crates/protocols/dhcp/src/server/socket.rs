//! UDP sockets for DHCP: one per LAN interface, and where a reply goes.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use dhcproto::v4::Message;
use socket2::{Domain, Protocol, Socket, Type};

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// The receive buffer asked for (SO_RCVBUF; the kernel doubles it for its bookkeeping).
pub const RECV_BUFFER: usize = 1 << 20;

/// [`bind_std`], non-blocking and registered with the current tokio runtime. Must be called
/// from inside a tokio runtime.
pub fn bind_udp(interface: &str, ip: Ipv4Addr, port: u16) -> io::Result<tokio::net::UdpSocket> {
    let socket = bind_std(interface, ip, port)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

/// A UDP socket bound to `ip:port` on `interface` only (SO_BINDTODEVICE), with SO_REUSEADDR,
/// SO_BROADCAST, IP_FREEBIND and a [`RECV_BUFFER`] receive buffer; blocking (the proxy loops
/// receive on a thread of their own: [`super::proxy_loop`]).
///
/// `ip` is usually [`Ipv4Addr::UNSPECIFIED`]: clients without an address broadcast to
/// 255.255.255.255, which a socket bound to the interface's address would not receive.
pub fn bind_std(interface: &str, ip: Ipv4Addr, port: u16) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "SO_BINDTODEVICE {interface}: {e} (does the interface exist? are we root?)"
                ),
            )
        })?;
    // The address may be configured a moment later (or be a VIP): bind anyway.
    socket.set_freebind_v4(true)?;
    // Room for a burst (a rack powered on at once) while the loop waits for a core: the
    // default (208 KiB, about 90 datagrams) is 7 ms at 12,000 DISCOVERs a second. The kernel
    // caps it at net.core.rmem_max; a smaller buffer still works, so a refusal is not fatal.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(ip, port)).into())?;
    Ok(socket.into())
}

/// Where the reply to `req` (received from `src`) goes, per RFC 2131 section 4.1:
/// relayed (giaddr set) -> giaddr:67; client has an address (ciaddr set) -> ciaddr:68
/// unicast; otherwise broadcast 255.255.255.255:68.
pub fn reply_destination(req: &Message, _src: SocketAddr) -> SocketAddr {
    if !req.giaddr().is_unspecified() {
        SocketAddr::V4(SocketAddrV4::new(req.giaddr(), SERVER_PORT))
    } else if !req.ciaddr().is_unspecified() {
        SocketAddr::V4(SocketAddrV4::new(req.ciaddr(), CLIENT_PORT))
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT))
    }
}

/// Where a PXE boot server (port 4011) reply goes: back to the request's source address and
/// port, unicast; a source without an address falls back to [`reply_destination`].
pub fn boot_server_destination(req: &Message, src: SocketAddr) -> SocketAddr {
    match src {
        SocketAddr::V4(v4) if !v4.ip().is_unspecified() && v4.port() != 0 => src,
        _ => reply_destination(req, src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ciaddr: Ipv4Addr, giaddr: Ipv4Addr) -> Message {
        let mut m = Message::default();
        m.set_ciaddr(ciaddr).set_giaddr(giaddr);
        m
    }

    const SRC: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));

    #[test]
    fn relayed_requests_go_back_to_the_relay() {
        let m = msg(Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(reply_destination(&m, SRC), "10.1.0.1:67".parse().unwrap());
    }

    #[test]
    fn clients_with_an_address_get_unicast() {
        let m = msg(Ipv4Addr::new(10, 77, 0, 150), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            reply_destination(&m, SRC),
            "10.77.0.150:68".parse().unwrap()
        );
    }

    #[test]
    fn clients_without_an_address_get_broadcast() {
        let m = msg(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            reply_destination(&m, SRC),
            "255.255.255.255:68".parse().unwrap()
        );
    }

    #[test]
    fn boot_server_replies_go_to_the_source() {
        let m = msg(Ipv4Addr::new(10, 77, 0, 150), Ipv4Addr::UNSPECIFIED);
        let src: SocketAddr = "10.77.0.150:1234".parse().unwrap();
        assert_eq!(boot_server_destination(&m, src), src);
        let m = msg(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            boot_server_destination(&m, SRC),
            "255.255.255.255:68".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn binds_to_loopback_device() {
        let s = bind_udp("lo", Ipv4Addr::LOCALHOST, 0).unwrap();
        assert!(s.local_addr().unwrap().port() != 0);
        assert!(s.broadcast().unwrap());
        // The receive buffer is as large as asked, or as the kernel allows.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
        assert!(got >= RECV_BUFFER.min(rmem_max), "SO_RCVBUF {got}");
    }
}
