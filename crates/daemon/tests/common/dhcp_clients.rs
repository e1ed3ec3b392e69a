//! DHCP clients on the client side of the test LAN: busybox udhcpc (a plain client) and a PXE
//! DISCOVER written here byte by byte (what a PXE ROM sends first: option 60 `PXEClient:...`,
//! client architecture 0), sent from a socket bound to the client's interface.

// Test support: a packet or page too short to index is a failed test.
#![allow(clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, require_tool};
use socket2::{Domain, Protocol, Socket, Type};

/// Give the client's `eth0` a new MAC: a new machine to the DHCP server.
pub fn set_mac(ns: &Netns, mac: &str) {
    ns.run(&["ip", "link", "set", "eth0", "address", mac])
        .unwrap();
}

/// udhcpc on `eth0` (it configures nothing: `-s /bin/true`): the address it was offered and
/// acknowledged, or `None` when no server gave it one within about three seconds.
pub fn udhcpc(ns: &Netns) -> Option<Ipv4Addr> {
    let udhcpc = require_tool("udhcpc");
    let out = ns
        .command(&udhcpc)
        .args([
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "3",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // "udhcpc: lease of 10.77.0.100 obtained from 10.77.0.1, lease time 600"
    let lease = text
        .split("lease of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ip| ip.parse().ok());
    match (out.status.success(), lease) {
        (true, Some(ip)) => Some(ip),
        (false, None) => None,
        _ => panic!("udhcpc said something unexpected ({}):\n{text}", out.status),
    }
}

/// The parts of a DHCP reply the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub message_type: u8,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub vendor_class: Option<String>,
}

/// DHCPOFFER.
pub const OFFER: u8 = 2;

/// One PXE DISCOVER as `mac` from `ns`'s `eth0`; the first reply for it within two seconds.
pub fn pxe_discover(ns: &Netns, mac: [u8; 6]) -> Option<Reply> {
    pxe_discover_on(ns, "eth0", mac)
}

/// [`pxe_discover`] from another interface of the namespace.
pub fn pxe_discover_on(ns: &Netns, dev: &'static str, mac: [u8; 6]) -> Option<Reply> {
    ns.thread(move || {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_broadcast(true).unwrap();
        socket.bind_device(Some(dev.as_bytes())).unwrap();
        let any: SocketAddr = "0.0.0.0:68".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let xid = [0x5e, 0x77, mac[4], mac[5]];
        socket
            .send_to(&discover(mac, xid), "255.255.255.255:67")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok((len, _)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if let Some(reply) = parse(&buf[..len], xid) {
                return Some(reply);
            }
        }
        None
    })
    .unwrap()
    .join()
    .unwrap()
}

/// A PXE ROM's REQUEST to the LAN's own DHCP server (`server`, option 54) for the address
/// `requested` (option 50), broadcast from `ns`'s `eth0` as `mac`; no reply is awaited (in proxy
/// mode flakeboot answers none, but learns that `mac` takes `requested`).
pub fn pxe_request(ns: &Netns, mac: [u8; 6], requested: Ipv4Addr, server: Ipv4Addr) {
    ns.thread(move || {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_broadcast(true).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        let any: SocketAddr = "0.0.0.0:68".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let socket: UdpSocket = socket.into();
        let mut p = packet(mac, [0x5e, 0x78, mac[4], mac[5]], 3);
        p.pop(); // the end option
        p.extend([50, 4]);
        p.extend(requested.octets());
        p.extend([54, 4]);
        p.extend(server.octets());
        p.push(255);
        socket.send_to(&p, "255.255.255.255:67").unwrap();
    })
    .unwrap()
    .join()
    .unwrap();
}

fn discover(mac: [u8; 6], xid: [u8; 4]) -> Vec<u8> {
    packet(mac, xid, 1)
}

/// A PXE client's packet of DHCP message type `message_type`, options up to the end option.
fn packet(mac: [u8; 6], xid: [u8; 4], message_type: u8) -> Vec<u8> {
    let mut p = vec![1, 1, 6, 0];
    p.extend(xid);
    p.extend([0, 0, 0x80, 0]); // secs, flags: broadcast
    p.extend([0; 16]); // ciaddr, yiaddr, siaddr, giaddr
    p.extend(mac);
    p.extend([0; 10 + 64 + 128]); // chaddr padding, sname, file
    p.extend([99, 130, 83, 99]);
    p.extend([53, 1, message_type]);
    let vendor = b"PXEClient:Arch:00000:UNDI:002001";
    p.extend([60, vendor.len() as u8]);
    p.extend(vendor);
    p.extend([93, 2, 0, 0]); // client architecture: x86 BIOS
    p.extend([94, 3, 1, 2, 1]); // UNDI 2.1
    p.extend([97, 17, 0]);
    p.extend([0x42; 16]); // client GUID
    p.extend([55, 6, 1, 3, 43, 60, 66, 67]);
    p.push(255);
    p
}

fn parse(p: &[u8], xid: [u8; 4]) -> Option<Reply> {
    if p.len() < 240 || p[0] != 2 || p[4..8] != xid || p[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let addr = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    let mut reply = Reply {
        message_type: 0,
        yiaddr: addr(16),
        siaddr: addr(20),
        vendor_class: None,
    };
    let mut i = 240;
    while i + 1 < p.len() && p[i] != 255 {
        if p[i] == 0 {
            i += 1;
            continue;
        }
        let (code, len) = (p[i], p[i + 1] as usize);
        let value = p.get(i + 2..i + 2 + len)?;
        match code {
            53 => reply.message_type = *value.first()?,
            60 => reply.vendor_class = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        i += 2 + len;
    }
    Some(reply)
}
