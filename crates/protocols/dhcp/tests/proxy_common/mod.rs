//! Shared set-up for the proxy-mode black-box tests: a LAN of two network namespaces over a
//! veth pair, dnsmasq as the LAN's DHCP server and flakeboot's DHCP server (proxy mode,
//! in-process on its own tokio runtime) in the server namespace, and a small PXE client that
//! runs on a thread inside the client namespace.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{
    Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode,
};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::BootEvent;
use flakeboot_dhcp::server::{DhcpStatsSnapshot, ServerMode};
use flakeboot_testbed::{Proc, TestLan, require_root, require_tool};

use crate::dhcp_server::Server;

/// flakeboot's address on the LAN.
pub const FLAKEBOOT_IP: Ipv4Addr = crate::dhcp_server::SERVER_IP;
/// dnsmasq's address (the LAN's router), the primary address of the same interface.
pub const DNSMASQ_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The LAN interface in the server namespace (a veth end), and the client's.
pub const SERVER_IF: &str = "lan0";
pub const CLIENT_IF: &str = "eth0";
/// The LAN interface when the client is a QEMU guest on a tap in the server namespace.
pub const TAP_IF: &str = "tap0";

/// How the clients reach the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanKind {
    /// A veth pair to a client namespace (clients are processes or threads there).
    Veth,
    /// A tap device in the server namespace for a QEMU guest, with an IPv6 prefix that dnsmasq
    /// advertises (iPXE otherwise waits ~13 s for IPv6 autoconfiguration).
    Tap,
}

/// The test LAN: namespaces, dnsmasq, flakeboot. Everything stops on drop (flakeboot by its
/// token, namespaces deleted, dnsmasq by PID).
pub struct Lan {
    /// flakeboot's DHCP server in proxy mode (stopped first).
    pub flakeboot: Server,
    /// The interface both DHCP servers serve.
    pub interface: &'static str,
    /// The server namespace (`net.server`) and the client's (`net.client()`).
    pub net: TestLan,
    /// The LAN's DHCP server (absent in a proxy-only LAN).
    pub dnsmasq: Option<Proc>,
}

impl Lan {
    /// Build a LAN of two namespaces over a veth pair and wait until both DHCP servers listen.
    pub fn start() -> Lan {
        Lan::start_with(LanKind::Veth)
    }

    /// Build the LAN and wait until both DHCP servers listen.
    pub fn start_with(kind: LanKind) -> Lan {
        Lan::start_opts(kind, true)
    }

    /// Build the LAN, with or without dnsmasq, and wait until the servers listen.
    pub fn start_opts(kind: LanKind, with_dnsmasq: bool) -> Lan {
        require_root();
        let dnsmasq_bin = require_tool("dnsmasq");
        let (interface, lan) = match kind {
            LanKind::Veth => (SERVER_IF, TestLan::veth("px", SERVER_IF)),
            LanKind::Tap => (TAP_IF, TestLan::tap("px", TAP_IF).server_addr("fd77::1/64")),
        };
        // dnsmasq's address first (primary: its server identifier), flakeboot's second.
        let net = lan
            .server_addr("10.77.0.2/24")
            .server_addr("10.77.0.1/24")
            .build()
            .unwrap();
        let server = &net.server;

        let leases = net.path("dnsmasq.leases");
        let mut args = vec![
            dnsmasq_bin.to_str().unwrap().to_owned(),
            "--no-daemon".into(),
            "--port=0".into(),
            "--no-ping".into(),
            "--conf-file=/dev/null".into(),
            "--log-facility=-".into(),
            "--log-dhcp".into(),
            "--dhcp-range=10.77.0.100,10.77.0.200,1h".into(),
            format!("--interface={interface}"),
            "--bind-interfaces".into(),
            format!("--dhcp-leasefile={}", leases.display()),
        ];
        if kind == LanKind::Tap {
            args.push("--enable-ra".into());
            args.push(format!("--dhcp-range=::,constructor:{interface},ra-only"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let dnsmasq = with_dnsmasq.then(|| {
            let mut dnsmasq = server.spawn("dnsmasq", &argv).unwrap();
            dnsmasq
                .wait_for("DHCP, IP range", Duration::from_secs(10))
                .unwrap();
            dnsmasq
        });

        let flakeboot = Server::start(server, interface, ServerMode::Proxy, &net.path("store"));
        Lan {
            flakeboot,
            interface,
            net,
            dnsmasq,
        }
    }

    /// dnsmasq's log so far (empty without dnsmasq).
    pub fn dnsmasq_log(&self) -> String {
        self.dnsmasq.as_ref().map(Proc::output).unwrap_or_default()
    }

    /// The last lines of dnsmasq's log.
    pub fn dnsmasq_tail(&self) -> String {
        self.dnsmasq
            .as_ref()
            .map(|p| p.tail(30))
            .unwrap_or_default()
    }

    pub fn stats(&self) -> DhcpStatsSnapshot {
        self.flakeboot.stats.snapshot()
    }

    /// The counters once `done` holds of them, or as they are after 5 s: a client can end
    /// (perfdhcp exits after its last send) before the server's thread has counted what it sent.
    pub fn stats_once(&self, done: impl Fn(&DhcpStatsSnapshot) -> bool) -> DhcpStatsSnapshot {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let stats = self.stats();
            if done(&stats) || std::time::Instant::now() > deadline {
                return stats;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn events(&self) -> Vec<BootEvent> {
        self.flakeboot.events.events()
    }

    /// Run `f` on a thread inside the client namespace and return its result.
    pub fn in_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.net.client().thread(f).unwrap().join().unwrap()
    }
}

/// What a test client puts in its request.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub mac: [u8; 6],
    pub msg_type: MessageType,
    pub vendor_class: Option<&'static str>,
    pub arch: Option<u16>,
    pub user_class: Option<&'static [u8]>,
    pub ciaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
}

impl ClientRequest {
    /// A BIOS PXE ROM's DISCOVER: option 60 `PXEClient:Arch:00000:UNDI:002001`, option 93 = 0.
    pub fn bios_pxe(mac: [u8; 6]) -> ClientRequest {
        ClientRequest {
            mac,
            msg_type: MessageType::Discover,
            vendor_class: Some("PXEClient:Arch:00000:UNDI:002001"),
            arch: Some(0),
            user_class: None,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            server_id: None,
        }
    }

    /// A client that is not a boot client (no vendor class, no arch).
    pub fn plain(mac: [u8; 6]) -> ClientRequest {
        ClientRequest {
            vendor_class: None,
            arch: None,
            ..ClientRequest::bios_pxe(mac)
        }
    }

    pub fn to_message(&self, xid: u32) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_xid(xid)
            .set_chaddr(&self.mac)
            .set_ciaddr(self.ciaddr)
            // Broadcast flag: dnsmasq then broadcasts its offer too (the client has no address
            // to unicast to).
            .set_flags(Flags::default().set_broadcast());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(self.msg_type));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::VendorExtensions,
            OptionCode::ClassIdentifier,
            OptionCode::BootfileName,
        ]));
        if let Some(vc) = self.vendor_class {
            o.insert(DhcpOption::ClassIdentifier(vc.as_bytes().to_vec()));
        }
        if let Some(a) = self.arch {
            o.insert(DhcpOption::ClientSystemArchitecture(Architecture(a)));
            o.insert(DhcpOption::ClientMachineIdentifier(vec![0; 17]));
        }
        if let Some(uc) = self.user_class {
            o.insert(DhcpOption::UserClass(uc.to_vec()));
        }
        if let Some(id) = self.server_id {
            o.insert(DhcpOption::ServerIdentifier(id));
        }
        m
    }
}

/// One reply a test client received.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: SocketAddr,
    pub msg: Message,
}

impl Received {
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        match self.msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        }
    }
    pub fn bytes_opt(&self, code: OptionCode) -> Option<Vec<u8>> {
        match self.msg.opts().get(code)? {
            DhcpOption::ClassIdentifier(v)
            | DhcpOption::VendorExtensions(v)
            | DhcpOption::BootfileName(v) => Some(v.clone()),
            _ => None,
        }
    }
    pub fn file(&self) -> String {
        self.msg
            .fname()
            .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
            .unwrap_or_default()
    }
}

/// Send `req` from `bind` (on the client interface) to `to`, and collect every reply with
/// our xid for `wait`. Runs inside the client namespace.
pub fn exchange(
    req: &ClientRequest,
    bind: SocketAddrV4,
    to: SocketAddrV4,
    wait: Duration,
) -> Vec<Received> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_broadcast(true).unwrap();
    socket.bind_device(Some(CLIENT_IF.as_bytes())).unwrap();
    socket.bind(&SocketAddr::V4(bind).into()).unwrap();
    let socket: UdpSocket = socket.into();
    let xid = u32::from_be_bytes([req.mac[2], req.mac[3], req.mac[4], req.mac[5]]) ^ 0x5a5a_0000;
    let bytes = req.to_message(xid).to_vec().unwrap();
    socket.send_to(&bytes, to).unwrap();
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            break;
        };
        let Ok(msg) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if msg.opcode() == Opcode::BootReply && msg.xid() == xid {
            out.push(Received { from, msg });
        }
    }
    out
}

/// Broadcast a request from 0.0.0.0:68 to 255.255.255.255:67, as a client without an address.
pub fn broadcast(req: &ClientRequest, wait: Duration) -> Vec<Received> {
    exchange(
        req,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        wait,
    )
}
