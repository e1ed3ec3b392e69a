use super::*;

use std::net::Ipv4Addr;
use std::time::Duration;

use super::super::receiver::POLL;

use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::{ClientFirmware, IpxeBinary, RecordingCatalogue};

use crate::options::parse_request;

include!("../../../tests/fixtures/captured.rs");

fn cfg() -> BootConfig {
    BootConfig {
        server_ip: Ipv4Addr::new(10, 77, 0, 1),
        http_base: "http://10.77.0.1".into(),
        uefi_binary: IpxeBinary::IpxeEfi,
        arm64_efi: false,
    }
}

const NOW: SystemTime = SystemTime::UNIX_EPOCH;

fn src() -> SocketAddr {
    "0.0.0.0:68".parse().unwrap()
}

#[test]
fn boot_client_gets_a_broadcast_offer_and_an_event() {
    let h = handle_datagram(ProxyPort::Dhcp, &OVMF_PXE_DISCOVER, src(), &cfg(), NOW);
    assert_eq!(h.counter, Counter::Replied);
    let (bytes, dest) = h.reply.unwrap();
    assert_eq!(dest, "255.255.255.255:68".parse().unwrap());
    let reply = Message::decode(&mut Decoder::new(&bytes)).unwrap();
    assert_eq!(reply.opts().msg_type(), Some(MessageType::Offer));
    let ev = h.event.unwrap();
    assert_eq!(ev.stage, BootStage::Dhcp);
    assert_eq!(ev.outcome, Outcome::Ok);
    assert_eq!(ev.at, NOW);
    assert_eq!(ev.mac, Some("52:54:00:65:43:21".parse().unwrap()));
    assert_eq!(ev.firmware, Some(ClientFirmware::UefiX64Pxe));
    assert_eq!(
        ev.vendor_class.as_deref(),
        Some("PXEClient:Arch:00007:UNDI:003000")
    );
    assert_eq!(ev.detail, "proxy offer: ipxe.efi");
}

/// The PXE client's broadcast REQUEST to the LAN's router names the address it takes (option
/// 50): flakeboot learns it, so the TFTP and HTTP requests that come from it later are this
/// machine's.
#[test]
fn a_request_to_any_server_teaches_the_address_the_client_takes() {
    let mut req = Message::decode(&mut Decoder::new(&OVMF_PXE_DISCOVER)).unwrap();
    req.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    req.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(
            10, 77, 0, 123,
        )));
    let mut bytes = Vec::new();
    req.encode(&mut dhcproto::Encoder::new(&mut bytes)).unwrap();
    // A REQUEST to the LAN's router: not answered, but the address is learned.
    let h = handle_datagram(ProxyPort::Dhcp, &bytes, src(), &cfg(), NOW);
    assert_eq!(h.reply, None);
    assert_eq!(
        h.learned,
        Some((
            "52:54:00:65:43:21".parse().unwrap(),
            Ipv4Addr::new(10, 77, 0, 123).into()
        ))
    );
    // A DISCOVER says nothing about the address.
    let h = handle_datagram(ProxyPort::Dhcp, &OVMF_PXE_DISCOVER, src(), &cfg(), NOW);
    assert_eq!(h.learned, None);
    assert_eq!(h.event.unwrap().peer, Some(Ipv4Addr::UNSPECIFIED.into()));
}

#[test]
fn plain_client_is_counted_and_gets_nothing() {
    for bytes in [&DHCLIENT_DISCOVER[..], &UDHCPC_DISCOVER[..]] {
        let h = handle_datagram(ProxyPort::Dhcp, bytes, src(), &cfg(), NOW);
        assert_eq!(h.counter, Counter::IgnoredNonBoot);
        assert_eq!(h.reply, None);
        assert_eq!(h.event, None);
    }
}

#[test]
fn garbage_is_counted_as_malformed() {
    for bytes in [
        &b""[..],
        &b"hello"[..],
        &[0u8; 300][..],
        &IPXE_BIOS_DISCOVER[..100],
    ] {
        let h = handle_datagram(ProxyPort::Dhcp, bytes, src(), &cfg(), NOW);
        assert_eq!(h.counter, Counter::Malformed, "{bytes:?}");
        assert!(h.reply.is_none() && h.event.is_none());
        assert!(h.note.is_some());
    }
}

/// A PXE DISCOVER from a broadcast or multicast `chaddr` (a forged packet): no offer, no event,
/// so no machine record and no learned address; counted as malformed.
#[test]
fn a_boot_request_from_a_group_address_is_malformed_and_makes_no_event() {
    for group in [[0xff; 6], [0x01, 0x00, 0x5e, 0, 0, 7], [0; 6]] {
        let mut req = Message::decode(&mut Decoder::new(&OVMF_PXE_DISCOVER)).unwrap();
        req.set_chaddr(&group);
        let bytes = req.to_vec().unwrap();
        let h = handle_datagram(ProxyPort::Dhcp, &bytes, src(), &cfg(), NOW);
        assert_eq!(h.counter, Counter::Malformed, "{group:02x?}");
        assert!(h.reply.is_none() && h.event.is_none() && h.learned.is_none());
    }
}

#[test]
fn replies_from_other_servers_are_ignored_not_malformed() {
    let mut offer = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    offer.set_opcode(dhcproto::v4::Opcode::BootReply);
    let bytes = offer.to_vec().unwrap();
    let h = handle_datagram(ProxyPort::Dhcp, &bytes, src(), &cfg(), NOW);
    assert_eq!(h.counter, Counter::Ignored);
}

#[test]
fn declined_client_is_recorded() {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    msg.opts_mut().insert(DhcpOption::ClientSystemArchitecture(
        dhcproto::v4::Architecture(11),
    ));
    let bytes = msg.to_vec().unwrap();
    let h = handle_datagram(ProxyPort::Dhcp, &bytes, src(), &cfg(), NOW);
    assert_eq!(h.counter, Counter::Declined);
    assert!(h.reply.is_none());
    let ev = h.event.unwrap();
    assert_eq!(ev.outcome, Outcome::Declined);
    assert_eq!(ev.firmware, Some(ClientFirmware::UefiArm64Pxe));
    assert!(ev.detail.starts_with("declined: "), "{}", ev.detail);
}

#[test]
fn boot_server_reply_goes_back_to_the_source() {
    let mut msg = parse_request(&IPXE_BIOS_DISCOVER).unwrap();
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    msg.set_ciaddr(Ipv4Addr::new(10, 77, 0, 150));
    let bytes = msg.to_vec().unwrap();
    let from: SocketAddr = "10.77.0.150:68".parse().unwrap();
    let h = handle_datagram(ProxyPort::BootServer, &bytes, from, &cfg(), NOW);
    let (_, dest) = h.reply.unwrap();
    assert_eq!(dest, from);
    let ev = h.event.unwrap();
    assert_eq!(ev.stage, BootStage::PxeBootServer);
    assert_eq!(ev.firmware, Some(ClientFirmware::IpxeBios));
    assert_eq!(
        ev.detail,
        "boot server ack: http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56"
    );
}

#[tokio::test]
async fn loop_survives_garbage_and_answers_on_loopback() {
    // Server and client on 127.0.0.1 (lo), ephemeral ports: the loop's receive/send/record
    // path without namespaces. A client on loopback sends from 127.0.0.1, so the 4011 reply
    // (unicast to the source) comes back to it.
    let server = super::super::socket::bind_std("lo", Ipv4Addr::LOCALHOST, 0).unwrap();
    let addr = server.local_addr().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let catalogue = Arc::new(RecordingCatalogue::default());
    let stats = Arc::new(DhcpStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        server,
        ProxyPort::BootServer,
        cfg(),
        catalogue.clone(),
        Arc::clone(&stats),
        shutdown.clone(),
    ));

    for junk in [&b"x"[..], &[0xffu8; 600][..], &IPXE_BIOS_DISCOVER[..239]] {
        client.send_to(junk, addr).await.unwrap();
    }
    let mut req = parse_request(&IPXE_BIOS_DISCOVER).unwrap();
    req.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    req.set_ciaddr(Ipv4Addr::LOCALHOST);
    client.send_to(&req.to_vec().unwrap(), addr).await.unwrap();

    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    assert_eq!(from, addr);
    let reply = Message::decode(&mut Decoder::new(&buf[..n])).unwrap();
    assert_eq!(reply.xid(), req.xid());
    assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));

    // A stop wakes the thread asleep in its receive (not the next POLL), and the loop ends
    // with its socket closed: the port is free for a socket that does not share it.
    let stopping = std::time::Instant::now();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(stopping.elapsed() < POLL / 5, "{:?}", stopping.elapsed());
    std::net::UdpSocket::bind(addr).expect("the loop's socket is closed");

    // Read once the thread has ended: it sends the reply before it records the event and
    // bumps the counter, so a client woken by the reply can get here first (a CI run did).
    let snap = stats.snapshot();
    assert_eq!(snap.received, 4);
    assert_eq!(snap.malformed, 3);
    assert_eq!(snap.replied, 1);
    let events = catalogue.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].stage, BootStage::PxeBootServer);
    assert_eq!(events[0].peer, Some(Ipv4Addr::LOCALHOST.into()));
}

/// The server's other loop failed: this one's future is dropped, and its thread stops too
/// (the socket closes), though `shutdown` was never cancelled.
#[tokio::test]
async fn a_dropped_loop_stops_its_thread() {
    let server = super::super::socket::bind_std("lo", Ipv4Addr::LOCALHOST, 0).unwrap();
    let addr = server.local_addr().unwrap();
    let task = tokio::spawn(run(
        server,
        ProxyPort::Dhcp,
        cfg(),
        Arc::new(RecordingCatalogue::default()),
        Arc::new(DhcpStats::default()),
        CancellationToken::new(),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the thread still holds its socket"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
