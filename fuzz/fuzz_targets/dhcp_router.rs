//! Router mode's lease state machine, driven by a sequence of clients' requests (and raw
//! datagrams, and daemon restarts) with fake time, through `server::router::decide`: the whole
//! pure decision the receive loop makes for one datagram.
//!
//! Asserts, for any sequence:
//! - nothing panics;
//! - the lease changes handed to the store (`persist`/`forget`) mirror the pool's own state
//!   exactly, so a restart from the store loses nothing but offers;
//! - an OFFER or ACK never hands out an address that is the server's or the router's, outside
//!   every range and reservation, reserved for another MAC, quarantined, or bound (unexpired) to
//!   another client; after an ACK the client holds no other lease;
//! - every reply parses as a BOOTREPLY of the request's transaction, and an OFFER's or ACK's
//!   `yiaddr` is the address of the verdict.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::{IpxeBinary, MacAddr};
use flakeboot_dhcp::boot::BootConfig;
use flakeboot_dhcp::lease::{Lease, LeaseState, Pool, PoolConfig, Verdict};
use flakeboot_dhcp::server::router::decide;
use libfuzzer_sys::fuzz_target;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);

/// Addresses a request may name: the edges, the server, the reservation, the ranges and just
/// outside them, another relay's subnet and a foreign one.
const ADDRS: [Ipv4Addr; 14] = [
    Ipv4Addr::UNSPECIFIED,
    SERVER,
    Ipv4Addr::new(10, 77, 0, 0),
    Ipv4Addr::new(10, 77, 0, 255),
    Ipv4Addr::new(10, 77, 0, 50),
    Ipv4Addr::new(10, 77, 0, 100),
    Ipv4Addr::new(10, 77, 0, 101),
    Ipv4Addr::new(10, 77, 0, 102),
    Ipv4Addr::new(10, 77, 0, 103),
    Ipv4Addr::new(10, 77, 0, 104),
    RELAY,
    Ipv4Addr::new(10, 88, 0, 100),
    Ipv4Addr::new(10, 88, 0, 101),
    Ipv4Addr::new(192, 168, 1, 5),
];
const GIADDRS: [Ipv4Addr; 3] = [Ipv4Addr::UNSPECIFIED, RELAY, Ipv4Addr::new(10, 99, 0, 1)];
const MACS: [MacAddr; 4] = [
    MacAddr([0x52, 0x54, 0, 0, 0, 1]),
    MacAddr([0x52, 0x54, 0, 0, 0, 2]),
    MacAddr([0x52, 0x54, 0, 0, 0, 3]),
    // Reserved (see `config`).
    MacAddr([0x52, 0x54, 0, 0, 0, 0x50]),
];
const STEPS: [u64; 8] = [0, 1, 59, 61, 599, 601, 3599, 3601];

fn config(reservation_in_range: bool) -> PoolConfig {
    let reserved = if reservation_in_range {
        Ipv4Addr::new(10, 77, 0, 101)
    } else {
        Ipv4Addr::new(10, 77, 0, 50)
    };
    PoolConfig {
        server_ip: SERVER,
        ranges: vec![
            (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 103)),
            (Ipv4Addr::new(10, 88, 0, 100), Ipv4Addr::new(10, 88, 0, 101)),
        ],
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(SERVER),
        dns: vec![SERVER],
        domain: Some("lan".into()),
        lease_time: Duration::from_secs(3600),
        decline_quarantine: Duration::from_secs(600),
        reservations: vec![(MACS[3], reserved, Some("reserved".into()))],
        ra: None,
    }
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
    Other(u8),
}

#[derive(Debug, Arbitrary)]
struct Req {
    kind: Kind,
    mac: u8,
    /// 0: none, 1: empty, else a one-byte identifier.
    client_id: u8,
    requested: Option<u8>,
    server_id: Option<u8>,
    ciaddr: u8,
    giaddr: u8,
    hostname: Option<String>,
    xid: u32,
    pxe: bool,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Send(Req),
    Raw(Vec<u8>),
    /// The daemon restarts: the pool is rebuilt from what was persisted (offers are lost).
    Restart,
}

#[derive(Debug, Arbitrary)]
struct Input {
    reservation_in_range: bool,
    ops: Vec<(u8, Op)>,
}

fn pick<T: Copy>(from: &[T], i: u8) -> T {
    from[usize::from(i) % from.len()]
}

fn build(req: &Req) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(req.xid)
        .set_chaddr(&pick(&MACS, req.mac).0)
        .set_ciaddr(pick(&ADDRS, req.ciaddr))
        .set_giaddr(pick(&GIADDRS, req.giaddr))
        .set_flags(Flags::default().set_broadcast());
    let kind = match req.kind {
        Kind::Discover => MessageType::Discover,
        Kind::Request => MessageType::Request,
        Kind::Decline => MessageType::Decline,
        Kind::Release => MessageType::Release,
        Kind::Inform => MessageType::Inform,
        Kind::Other(k) => MessageType::from(k),
    };
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    match req.client_id {
        0 => {}
        1 => {
            opts.insert(DhcpOption::ClientIdentifier(Vec::new()));
        }
        id => {
            opts.insert(DhcpOption::ClientIdentifier(vec![1, id % 3]));
        }
    }
    if let Some(r) = req.requested {
        opts.insert(DhcpOption::RequestedIpAddress(pick(&ADDRS, r)));
    }
    if let Some(s) = req.server_id {
        opts.insert(DhcpOption::ServerIdentifier(pick(&ADDRS, s)));
    }
    if let Some(h) = &req.hostname {
        opts.insert(DhcpOption::Hostname(h.clone()));
    }
    if req.pxe {
        opts.insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
        ));
    }
    m
}

/// The client identity rule of the pool (`lease::client::Client::is`), restated.
fn same_client(
    mac: MacAddr,
    id: Option<&[u8]>,
    other_mac: MacAddr,
    other_id: Option<&[u8]>,
) -> bool {
    match (id, other_id) {
        (Some(a), Some(b)) => a == b,
        _ => mac == other_mac,
    }
}

fn client_of(msg: &Message) -> Option<(MacAddr, Option<Vec<u8>>)> {
    let mac = MacAddr::from_slice(msg.chaddr().get(..6)?)?;
    let id = match msg.opts().get(dhcproto::v4::OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
        _ => None,
    };
    Some((mac, id))
}

/// May the pool hand `ip` to this client at `now`, given what it persisted?
fn check_grant(
    cfg: &PoolConfig,
    disk: &BTreeMap<Ipv4Addr, Lease>,
    now: SystemTime,
    ip: Ipv4Addr,
    (mac, id): (MacAddr, Option<&[u8]>),
) {
    assert_ne!(ip, cfg.server_ip, "granted the server's own address");
    assert_ne!(Some(ip), cfg.router, "granted the router's address");
    let reserved_for = cfg
        .reservations
        .iter()
        .find(|(_, r, _)| *r == ip)
        .map(|(m, _, _)| *m);
    match reserved_for {
        Some(owner) => assert_eq!(owner, mac, "granted {ip}, reserved for {owner}, to {mac}"),
        None => assert!(cfg.in_range(ip), "granted {ip}, outside every range"),
    }
    if let Some(lease) = disk.get(&ip)
        && lease.expires > now
    {
        match lease.state {
            LeaseState::Declined => panic!("granted {ip} while it is quarantined"),
            LeaseState::Bound => assert!(
                same_client(mac, id, lease.mac, lease.client_id.as_deref()),
                "granted {ip} to {mac} while it is bound to {}",
                lease.mac
            ),
        }
    }
}

fuzz_target!(|input: Input| {
    let cfg = config(input.reservation_in_range);
    let boot = BootConfig {
        server_ip: SERVER,
        http_base: "http://10.77.0.1".into(),
        uefi_binary: IpxeBinary::IpxeEfi,
        arm64_efi: false,
    };
    let mut pool = Pool::new(cfg.clone(), Vec::new());
    // What the store holds: every persisted lease, minus every forgotten address.
    let mut disk: BTreeMap<Ipv4Addr, Lease> = BTreeMap::new();
    let mut touched: BTreeSet<Ipv4Addr> = ADDRS.into_iter().collect();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let src = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));

    for (step, op) in input.ops.iter().take(64) {
        now += Duration::from_secs(pick(&STEPS, *step));
        let (bytes, req) = match op {
            Op::Restart => {
                pool = Pool::new(cfg.clone(), disk.values().cloned().collect());
                continue;
            }
            Op::Raw(bytes) => (bytes.clone(), None),
            Op::Send(req) => {
                let msg = build(req);
                let Ok(bytes) = msg.to_vec() else { continue };
                (bytes, Some(msg))
            }
        };
        let decided = decide(&mut pool, &boot, &bytes, src, now);

        // Grants are checked against the store as it was before this request.
        let client = req.as_ref().and_then(client_of);
        if let (Some(Verdict::Offered(ip) | Verdict::Acked(ip)), Some((mac, id))) =
            (decided.verdict, &client)
        {
            check_grant(&cfg, &disk, now, ip, (*mac, id.as_deref()));
        }

        for ip in &decided.forget {
            disk.remove(ip);
            touched.insert(*ip);
        }
        for lease in &decided.persist {
            disk.insert(lease.ip, lease.clone());
            touched.insert(lease.ip);
        }
        for ip in &touched {
            assert_eq!(
                pool.lease(*ip),
                disk.get(ip),
                "the pool's lease of {ip} differs from what it persisted"
            );
        }

        if let (Some(Verdict::Acked(ip)), Some((mac, id))) = (decided.verdict, &client) {
            let others: Vec<_> = disk
                .values()
                .filter(|l| l.ip != ip && l.state == LeaseState::Bound)
                .filter(|l| same_client(*mac, id.as_deref(), l.mac, l.client_id.as_deref()))
                .collect();
            assert!(
                others.is_empty(),
                "{mac} got {ip} and still holds {others:?}"
            );
        }

        if let Some((reply, _dest)) = &decided.reply {
            let parsed = Message::decode(&mut Decoder::new(reply)).expect("a reply parses");
            assert_eq!(parsed.opcode(), Opcode::BootReply);
            if let Some(req) = &req {
                assert_eq!(parsed.xid(), req.xid());
            }
            if let Some(Verdict::Offered(ip) | Verdict::Acked(ip)) = decided.verdict {
                assert_eq!(parsed.yiaddr(), ip, "yiaddr is the granted address");
            }
        }
    }
});
