//! Proxy mode beside a real DHCP server: dnsmasq serves the LAN's addresses, flakeboot (in
//! proxy mode on the same interface) adds boot information for boot clients only.
//!
//! Two network namespaces over a veth pair (see `proxy_common`). Peers: dnsmasq (the LAN's
//! DHCP server), udhcpc and dhclient (plain clients), and a PXE client written here with
//! dhcproto that sends exactly what a BIOS PXE ROM, UEFI firmware and iPXE send.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod dhcp_server;
mod proxy_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dhcproto::v4::{MessageType, OptionCode};
use flakeboot_catalogue::{BootStage, ClientFirmware, Outcome};
use flakeboot_testbed::require_tool;
use proxy_common::*;

const WAIT: Duration = Duration::from_secs(3);

fn is_pool(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[..3] == [10, 77, 0] && (100..=200).contains(&o[3])
}

#[test]
fn pxe_client_receives_both_offers_plain_client_only_dnsmasqs() {
    let lan = Lan::start();

    // A BIOS PXE ROM's DISCOVER.
    let mac = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x01];
    let replies = lan.in_client(move || broadcast(&ClientRequest::bios_pxe(mac), WAIT));
    let offers: Vec<_> = replies
        .iter()
        .filter(|r| r.msg.opts().msg_type() == Some(MessageType::Offer))
        .collect();
    assert_eq!(
        offers.len(),
        2,
        "expected dnsmasq's and flakeboot's offers: {replies:#?}"
    );

    let dnsmasq = offers
        .iter()
        .find(|r| r.server_id() == Some(DNSMASQ_IP))
        .unwrap_or_else(|| panic!("no offer from dnsmasq: {offers:#?}"));
    assert!(
        is_pool(dnsmasq.msg.yiaddr()),
        "dnsmasq offers an address: {dnsmasq:?}"
    );

    let proxy = offers
        .iter()
        .find(|r| r.server_id() == Some(FLAKEBOOT_IP))
        .unwrap_or_else(|| panic!("no proxy offer from flakeboot: {offers:#?}"));
    assert_eq!(
        proxy.msg.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "a proxy offer has no address"
    );
    assert_eq!(proxy.msg.siaddr(), FLAKEBOOT_IP);
    assert_eq!(proxy.file(), "undionly.kpxe");
    assert_eq!(
        proxy.bytes_opt(OptionCode::ClassIdentifier).unwrap(),
        b"PXEClient"
    );
    assert_eq!(
        proxy.bytes_opt(OptionCode::VendorExtensions).unwrap(),
        [6, 1, 8, 255],
        "PXE 2.1 option 43: discovery control, use the boot file"
    );
    assert!(
        proxy
            .msg
            .opts()
            .contains(OptionCode::ClientMachineIdentifier)
    );
    // (The broadcast's IP source is the interface's primary address, dnsmasq's here: clients
    // identify a proxy offer by option 54, checked above.)

    let events = lan.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].stage, BootStage::Dhcp);
    assert_eq!(events[0].outcome, Outcome::Ok);
    assert_eq!(events[0].firmware, Some(ClientFirmware::BiosPxe));
    assert_eq!(events[0].mac, Some("52:54:00:aa:00:01".parse().unwrap()));
    assert_eq!(events[0].detail, "proxy offer: undionly.kpxe");
    let before = lan.stats();
    assert_eq!(before.replied, 1);

    // A plain client's DISCOVER: only dnsmasq answers.
    let plain = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x02];
    let replies = lan.in_client(move || broadcast(&ClientRequest::plain(plain), WAIT));
    assert_eq!(
        replies.len(),
        1,
        "only dnsmasq may answer a plain client: {replies:#?}"
    );
    assert_eq!(replies[0].server_id(), Some(DNSMASQ_IP));
    assert!(is_pool(replies[0].msg.yiaddr()));

    // A real plain client, udhcpc: it gets dnsmasq's lease (DISCOVER, OFFER, REQUEST, ACK) and
    // flakeboot sends it nothing.
    let udhcpc = require_tool("udhcpc");
    let out = lan
        .net
        .client()
        .run(&[
            udhcpc.to_str().unwrap(),
            "-i",
            CLIENT_IF,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ])
        .unwrap_or_else(|e| panic!("udhcpc got no lease: {e}"));
    let _ = out;
    // udhcpc logs to stderr; the lease file of dnsmasq shows the lease.
    let after = lan.stats();
    assert_eq!(
        after.replied, before.replied,
        "flakeboot answered a plain client: {after:?}"
    );
    assert!(
        after.ignored_non_boot >= before.ignored_non_boot + 3,
        "flakeboot saw the plain clients' DISCOVERs/REQUEST and stayed silent: {after:?}"
    );
    assert_eq!(after.malformed, 0);
    assert_eq!(lan.events().len(), 1, "no event for plain clients");
    assert!(
        lan.dnsmasq_log().contains("DHCPACK(lan0)"),
        "dnsmasq acked udhcpc: {}",
        lan.dnsmasq_tail()
    );
}

#[test]
fn dhclient_gets_only_dnsmasqs_lease() {
    let lan = Lan::start();
    let dhclient = require_tool("dhclient");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("dhclient.leases");
    let pid = dir.path().join("dhclient.pid");
    // In the foreground (-d), so the Proc guard ends it by its PID when the test ends.
    let mut client = lan
        .net
        .client()
        .spawn(
            "dhclient",
            &[
                dhclient.to_str().unwrap(),
                "-d",
                "-1",
                "-v",
                "-lf",
                leases.to_str().unwrap(),
                "-pf",
                pid.to_str().unwrap(),
                "-sf",
                "/bin/true",
                CLIENT_IF,
            ],
        )
        .unwrap();
    client
        .wait_for("bound to", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("dhclient got no lease: {e}"));
    client.stop();
    let lease = std::fs::read_to_string(&leases).unwrap();
    assert!(
        lease.contains("dhcp-server-identifier 10.77.0.2;"),
        "{lease}"
    );
    let stats = lan.stats();
    assert_eq!(stats.replied, 0, "{stats:?}");
    assert!(stats.ignored_non_boot >= 2, "{stats:?}");
    assert!(lan.events().is_empty());
}

#[test]
fn uefi_request_to_4011_gets_an_ack() {
    let lan = Lan::start();
    lan.net.client().addr(CLIENT_IF, "10.77.0.50/24").unwrap();
    let req = ClientRequest {
        msg_type: MessageType::Request,
        vendor_class: Some("PXEClient:Arch:00007:UNDI:003000"),
        arch: Some(7),
        ciaddr: Ipv4Addr::new(10, 77, 0, 50),
        ..ClientRequest::bios_pxe([0x52, 0x54, 0x00, 0xaa, 0x00, 0x03])
    };
    let replies = lan.in_client(move || {
        exchange(
            &req,
            SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 50), 40111),
            SocketAddrV4::new(FLAKEBOOT_IP, 4011),
            WAIT,
        )
    });
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let ack = &replies[0];
    assert_eq!(ack.msg.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(
        ack.from,
        "10.77.0.1:4011".parse().unwrap(),
        "from the boot server port"
    );
    assert_eq!(ack.msg.ciaddr(), Ipv4Addr::new(10, 77, 0, 50));
    assert_eq!(ack.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.msg.siaddr(), FLAKEBOOT_IP);
    assert_eq!(ack.server_id(), Some(FLAKEBOOT_IP));
    assert_eq!(ack.file(), "ipxe.efi");
    let events = lan.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].stage, BootStage::PxeBootServer);
    assert_eq!(events[0].firmware, Some(ClientFirmware::UefiX64Pxe));
    assert_eq!(events[0].peer, Some("10.77.0.50".parse().unwrap()));
}

#[test]
fn ipxe_client_gets_the_script_url_not_a_binary() {
    let lan = Lan::start();
    let url = |mac: &str| format!("http://10.77.0.1/boot.ipxe?mac={mac}");

    // DISCOVER with the bare user class (what Debian's iPXE sends) and the RFC 3004 form.
    for (i, uc) in [&b"iPXE"[..], &b"\x04iPXE"[..]].into_iter().enumerate() {
        let mac = [0x52, 0x54, 0x00, 0xaa, 0x01, i as u8];
        let req = ClientRequest {
            user_class: Some(uc),
            ..ClientRequest::bios_pxe(mac)
        };
        let replies = lan.in_client(move || broadcast(&req, WAIT));
        let proxy = replies
            .iter()
            .find(|r| r.server_id() == Some(FLAKEBOOT_IP))
            .unwrap_or_else(|| panic!("no proxy offer for user class {uc:?}: {replies:#?}"));
        let want = url(&format!("52:54:00:aa:01:{i:02x}"));
        assert_eq!(proxy.file(), want);
        assert_eq!(
            proxy.bytes_opt(OptionCode::BootfileName).unwrap(),
            want.as_bytes()
        );
        assert!(!proxy.file().contains("kpxe"));
        assert!(replies.iter().any(|r| r.server_id() == Some(DNSMASQ_IP)));
    }

    // iPXE's "ProxyDHCP REQUEST" to 4011, from its leased address.
    lan.net.client().addr(CLIENT_IF, "10.77.0.51/24").unwrap();
    let req = ClientRequest {
        msg_type: MessageType::Request,
        user_class: Some(b"iPXE"),
        ciaddr: Ipv4Addr::new(10, 77, 0, 51),
        server_id: Some(FLAKEBOOT_IP),
        ..ClientRequest::bios_pxe([0x52, 0x54, 0x00, 0xaa, 0x01, 0x09])
    };
    let replies = lan.in_client(move || {
        exchange(
            &req,
            SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 51), 68),
            SocketAddrV4::new(FLAKEBOOT_IP, 4011),
            WAIT,
        )
    });
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0].msg.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(replies[0].file(), url("52:54:00:aa:01:09"));
    let firmware: Vec<_> = lan.events().iter().map(|e| (e.stage, e.firmware)).collect();
    assert_eq!(
        firmware,
        [
            (BootStage::Dhcp, Some(ClientFirmware::IpxeBios)),
            (BootStage::Dhcp, Some(ClientFirmware::IpxeBios)),
            (BootStage::PxeBootServer, Some(ClientFirmware::IpxeBios)),
        ]
    );
}

#[test]
fn unknown_architecture_is_declined_and_recorded() {
    let lan = Lan::start();
    let req = ClientRequest {
        vendor_class: Some("PXEClient:Arch:00006:UNDI:003000"),
        arch: Some(6),
        ..ClientRequest::bios_pxe([0x52, 0x54, 0x00, 0xaa, 0x02, 0x01])
    };
    let replies = lan.in_client(move || broadcast(&req, WAIT));
    assert!(
        replies.iter().all(|r| r.server_id() == Some(DNSMASQ_IP)),
        "{replies:#?}"
    );
    let stats = lan.stats();
    assert_eq!(stats.declined, 1, "{stats:?}");
    let events = lan.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Declined);
    assert!(
        events[0].detail.contains("architecture 6"),
        "{}",
        events[0].detail
    );
}
