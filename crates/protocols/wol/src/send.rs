//! Sending the magic packet on one interface: a UDP broadcast to 255.255.255.255:9 from a
//! socket bound to the interface (SO_BINDTODEVICE), and a raw ethernet broadcast frame of
//! EtherType 0x0842 from a packet socket on it. Both need root (CAP_NET_RAW for the frame),
//! as the daemon has.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use flakeboot_catalogue::MacAddr;
use socket2::{Domain, Protocol, Socket, Type};

use crate::packet::{ETHERTYPE_WOL, UDP_PORT, ethernet_frame, magic_packet};

/// Why a magic packet was not sent.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    /// The interface does not exist (or has no MAC address).
    #[error("no interface {interface} with a MAC address to wake machines from")]
    NoInterface {
        /// The interface asked for.
        interface: String,
    },
    /// The UDP broadcast failed.
    #[error("cannot broadcast the magic packet to UDP port {UDP_PORT} on {interface}: {source}")]
    Udp {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The ethernet frame failed.
    #[error("cannot send the 0x0842 Wake-on-LAN frame on {interface}: {source}")]
    Frame {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The interface it went out on.
    pub interface: String,
    /// The machine to wake.
    pub target: MacAddr,
    /// The interface's own MAC (the frame's source).
    pub source: MacAddr,
}

/// Sends the magic packet for `target` on `interface`, as a UDP broadcast to port 9 and as an
/// ethernet frame of type 0x0842. Blocking (two quick sends): call it off the async threads.
pub fn send(interface: &str, target: MacAddr) -> Result<Sent, WakeError> {
    let no_interface = || WakeError::NoInterface {
        interface: interface.to_owned(),
    };
    let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|_| no_interface())?;
    let source = interface_mac(interface).ok_or_else(no_interface)?;
    send_udp(interface, target).map_err(|source| WakeError::Udp {
        interface: interface.to_owned(),
        source,
    })?;
    send_frame(ifindex, &ethernet_frame(source, target)).map_err(|source| WakeError::Frame {
        interface: interface.to_owned(),
        source,
    })?;
    tracing::info!(%interface, %target, "Wake-on-LAN magic packet sent (UDP port 9 and EtherType 0x0842)");
    Ok(Sent {
        interface: interface.to_owned(),
        target,
        source,
    })
}

/// The MAC address of `interface`, from the kernel's interface list.
fn interface_mac(interface: &str) -> Option<MacAddr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address?.as_link_addr()?.addr())
        .map(MacAddr)
}

fn send_udp(interface: &str, target: MacAddr) -> std::io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(interface.as_bytes()))?;
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, UDP_PORT);
    socket.send_to(&magic_packet(target), &to.into())?;
    Ok(())
}

fn send_frame(ifindex: u32, frame: &[u8]) -> std::io::Result<()> {
    let protocol = ETHERTYPE_WOL.to_be();
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(protocol))),
    )?;
    let mut addr: libc::sockaddr_ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol,
        sll_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `frame` is a live slice of `frame.len()` bytes and `addr` a fully initialised
    // sockaddr_ll of `len` bytes; both outlive the call, and the fd is the socket's own.
    #[allow(unsafe_code)]
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::from_mut(&mut addr).cast(),
            len,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
