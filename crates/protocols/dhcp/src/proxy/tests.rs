use super::*;

use dhcproto::Decodable;
use dhcproto::v4::{Architecture, Flags, HType};
use flakeboot_catalogue::{ClientFirmware, IpxeBinary};

use crate::options::parse_request;

include!("../../tests/fixtures/captured.rs");

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn cfg() -> BootConfig {
    BootConfig {
        server_ip: SERVER,
        http_base: "http://10.77.0.1".into(),
        uefi_binary: IpxeBinary::IpxeEfi,
        arm64_efi: false,
    }
}

fn reply(ans: &ProxyAnswer) -> &Message {
    match &ans.outcome {
        ProxyOutcome::Reply(r) => r,
        other => panic!("expected a reply, got {other:?} for {:?}", ans.decision),
    }
}

/// A `file`/`sname` field as text, whether built (no NUL) or decoded (NUL-terminated).
fn text(field: Option<&[u8]>) -> Option<String> {
    field.map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
}

fn opt(msg: &Message, code: OptionCode) -> Option<&DhcpOption> {
    msg.opts().get(code)
}

fn bytes_opt(msg: &Message, code: OptionCode) -> Option<Vec<u8>> {
    match opt(msg, code)? {
        DhcpOption::ClassIdentifier(v)
        | DhcpOption::VendorExtensions(v)
        | DhcpOption::BootfileName(v)
        | DhcpOption::ClientMachineIdentifier(v) => Some(v.clone()),
        _ => None,
    }
}

/// The OVMF request with iPXE's identity removed: a plain BIOS PXE ROM.
fn bios_pxe_discover() -> Message {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    msg.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture(0)));
    msg.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    msg
}

#[test]
fn proxy_offer_for_a_bios_pxe_rom() {
    let req = bios_pxe_discover();
    let ans = answer(ProxyPort::Dhcp, &req, &cfg());
    let r = reply(&ans);
    assert_eq!(r.opcode(), Opcode::BootReply);
    assert_eq!(r.xid(), req.xid());
    assert_eq!(r.chaddr(), req.chaddr());
    assert_eq!(r.htype(), HType::Eth);
    assert_eq!(r.flags(), req.flags());
    assert_eq!(r.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.siaddr(), SERVER);
    assert_eq!(r.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(
        opt(r, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        bytes_opt(r, OptionCode::ClassIdentifier).unwrap(),
        b"PXEClient"
    );
    assert_eq!(
        bytes_opt(r, OptionCode::VendorExtensions).unwrap(),
        [6, 1, 8, 255]
    );
    assert_eq!(text(r.fname()).as_deref(), Some("undionly.kpxe"));
    assert_eq!(text(r.sname()).as_deref(), Some("10.77.0.1"));
    // Option 97 echoed (PXE 2.1 requires it).
    assert_eq!(
        bytes_opt(r, OptionCode::ClientMachineIdentifier).unwrap(),
        vec![0u8; 17]
    );
    // No address-related options: this is not a lease.
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::SubnetMask,
        OptionCode::Router,
    ] {
        assert!(!r.opts().contains(code), "{code:?}");
    }
}

#[test]
fn proxy_offer_encodes_to_what_a_pxe_rom_reads() {
    let req = bios_pxe_discover();
    let ans = answer(ProxyPort::Dhcp, &req, &cfg());
    let bytes = encode_reply(reply(&ans)).unwrap();
    // Fixed BOOTP fields by offset (RFC 2131 figure 1).
    assert_eq!(bytes[0], 2, "op BOOTREPLY");
    assert_eq!(&bytes[4..8], &req.xid().to_be_bytes());
    assert_eq!(&bytes[16..20], &[0, 0, 0, 0], "yiaddr");
    assert_eq!(&bytes[20..24], &[10, 77, 0, 1], "siaddr");
    assert_eq!(&bytes[28..34], &[0x52, 0x54, 0, 0x65, 0x43, 0x21], "chaddr");
    assert_eq!(&bytes[108..121], b"undionly.kpxe");
    assert_eq!(bytes[121], 0);
    assert_eq!(&bytes[236..240], &[99, 130, 83, 99]);
    // Option 43 as bytes in the options area.
    let opts = &bytes[240..];
    assert!(
        opts.windows(6).any(|w| w == [43, 4, 6, 1, 8, 255]),
        "{opts:?}"
    );
    assert!(opts.windows(11).any(|w| w == *b"<\x09PXEClient"));
}

#[test]
fn ovmf_gets_the_configured_uefi_binary() {
    let req = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    for binary in [IpxeBinary::IpxeEfi, IpxeBinary::SnponlyEfi] {
        let cfg = BootConfig {
            uefi_binary: binary,
            ..cfg()
        };
        let ans = answer(ProxyPort::Dhcp, &req, &cfg);
        assert_eq!(ans.decision.firmware(), Some(ClientFirmware::UefiX64Pxe));
        let r = reply(&ans);
        assert_eq!(text(r.fname()).as_deref(), Some(binary.file_name()));
        // OVMF asks with the broadcast flag: the reply keeps it.
        assert!(r.flags().broadcast());
    }
}

#[test]
fn ipxe_rom_gets_the_script_url_in_file_and_option_67() {
    let req = parse_request(&IPXE_BIOS_DISCOVER).unwrap();
    let ans = answer(ProxyPort::Dhcp, &req, &cfg());
    assert_eq!(ans.decision.firmware(), Some(ClientFirmware::IpxeBios));
    let r = reply(&ans);
    let url = "http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56";
    assert_eq!(
        bytes_opt(r, OptionCode::BootfileName).unwrap(),
        url.as_bytes()
    );
    assert_eq!(r.fname_str().unwrap().unwrap(), url);
    // iPXE recognises a ProxyDHCP offer by option 60 PXEClient; option 43 bit 3 makes it
    // skip PXE boot server discovery.
    assert_eq!(
        bytes_opt(r, OptionCode::ClassIdentifier).unwrap(),
        b"PXEClient"
    );
    assert_eq!(
        bytes_opt(r, OptionCode::VendorExtensions).unwrap(),
        [6, 1, 8, 255]
    );
    // Never a binary.
    assert!(!r.fname_str().unwrap().unwrap().contains("kpxe"));
}

#[test]
fn plain_clients_get_nothing() {
    for bytes in [&DHCLIENT_DISCOVER[..], &UDHCPC_DISCOVER[..]] {
        let req = parse_request(bytes).unwrap();
        for port in [ProxyPort::Dhcp, ProxyPort::BootServer] {
            let ans = answer(port, &req, &cfg());
            assert_eq!(ans.decision, BootDecision::NotNetboot);
            assert!(matches!(
                ans.outcome,
                ProxyOutcome::Ignored(IgnoreReason::NotNetboot)
                    | ProxyOutcome::Ignored(IgnoreReason::MessageType(_))
            ));
        }
    }
}

#[test]
fn unknown_architecture_is_declined_silently() {
    let mut req = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    req.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture(6)));
    let ans = answer(ProxyPort::Dhcp, &req, &cfg());
    assert!(matches!(ans.decision, BootDecision::Decline { .. }));
    assert_eq!(ans.outcome, ProxyOutcome::Declined);
}

fn as_request(mut msg: Message, server_id: Option<Ipv4Addr>, ciaddr: Ipv4Addr) -> Message {
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    if let Some(id) = server_id {
        msg.opts_mut().insert(DhcpOption::ServerIdentifier(id));
    }
    msg.set_ciaddr(ciaddr);
    msg
}

#[test]
fn port_67_request_only_when_it_names_this_server() {
    let ours = as_request(bios_pxe_discover(), Some(SERVER), Ipv4Addr::UNSPECIFIED);
    let r = answer(ProxyPort::Dhcp, &ours, &cfg());
    assert_eq!(reply(&r).opts().msg_type(), Some(MessageType::Ack));

    let dnsmasq = Ipv4Addr::new(10, 77, 0, 2);
    let theirs = as_request(bios_pxe_discover(), Some(dnsmasq), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        answer(ProxyPort::Dhcp, &theirs, &cfg()).outcome,
        ProxyOutcome::Ignored(IgnoreReason::OtherServer(dnsmasq))
    );
    // A renewal (no option 54) belongs to the LAN's DHCP server.
    let renew = as_request(bios_pxe_discover(), None, Ipv4Addr::new(10, 77, 0, 150));
    assert!(matches!(
        answer(ProxyPort::Dhcp, &renew, &cfg()).outcome,
        ProxyOutcome::Ignored(IgnoreReason::MessageType(Some(MessageType::Request)))
    ));
}

#[test]
fn boot_server_acks_a_uefi_request_on_4011() {
    let client = Ipv4Addr::new(10, 77, 0, 150);
    let mut req = as_request(parse_request(&OVMF_PXE_DISCOVER).unwrap(), None, client);
    req.opts_mut()
        .insert(DhcpOption::VendorExtensions(vec![71, 4, 0, 0, 0, 0, 255]));
    let ans = answer(ProxyPort::BootServer, &req, &cfg());
    let r = reply(&ans);
    assert_eq!(r.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(r.ciaddr(), client);
    assert_eq!(r.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.siaddr(), SERVER);
    assert_eq!(text(r.fname()).as_deref(), Some("ipxe.efi"));
    assert_eq!(
        opt(r, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    // The boot item asked for is answered (PXE 2.1 boot server ACK).
    assert_eq!(
        bytes_opt(r, OptionCode::VendorExtensions).unwrap(),
        [71, 4, 0, 0, 0, 0, 255]
    );
    assert_eq!(
        bytes_opt(r, OptionCode::ClientMachineIdentifier).unwrap(),
        vec![0u8; 17]
    );
}

#[test]
fn boot_server_gives_ipxe_the_script_url() {
    // iPXE's "ProxyDHCP REQUEST" goes to 4011 with its leased address in ciaddr.
    let client = Ipv4Addr::new(10, 77, 0, 151);
    let req = as_request(
        parse_request(&IPXE_BIOS_DISCOVER).unwrap(),
        Some(SERVER),
        client,
    );
    let ans = answer(ProxyPort::BootServer, &req, &cfg());
    let r = reply(&ans);
    assert_eq!(r.opts().msg_type(), Some(MessageType::Ack));
    // iPXE matches the ACK to its ProxyDHCP offer by option 54.
    assert_eq!(
        opt(r, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        bytes_opt(r, OptionCode::BootfileName).unwrap(),
        b"http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56"
    );
}

#[test]
fn boot_server_ignores_discover() {
    let req = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    assert_eq!(
        answer(ProxyPort::BootServer, &req, &cfg()).outcome,
        ProxyOutcome::Ignored(IgnoreReason::MessageType(Some(MessageType::Discover)))
    );
}

#[test]
fn uefi_http_boot_gets_a_url_and_httpclient() {
    let mut req = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    req.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture(16)));
    req.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"HTTPClient:Arch:00016:UNDI:003000".to_vec(),
    ));
    let ans = answer(ProxyPort::Dhcp, &req, &cfg());
    assert_eq!(ans.decision.firmware(), Some(ClientFirmware::UefiX64Http));
    let r = reply(&ans);
    assert_eq!(
        bytes_opt(r, OptionCode::ClassIdentifier).unwrap(),
        b"HTTPClient"
    );
    assert_eq!(
        bytes_opt(r, OptionCode::BootfileName).unwrap(),
        b"http://10.77.0.1/ipxe/ipxe.efi"
    );
    // No PXE option 43 for an HTTP client.
    assert!(!r.opts().contains(OptionCode::VendorExtensions));
}

#[test]
fn relayed_and_broadcast_fields_are_kept() {
    let mut req = bios_pxe_discover();
    req.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
    req.set_flags(Flags::default().set_broadcast());
    let r = answer(ProxyPort::Dhcp, &req, &cfg());
    assert_eq!(reply(&r).giaddr(), Ipv4Addr::new(10, 1, 0, 1));
    assert!(reply(&r).flags().broadcast());
}

#[test]
fn add_boot_options_for_router_mode() {
    let mut offer = Message::default();
    offer.set_yiaddr(Ipv4Addr::new(10, 77, 0, 100));
    let tftp = BootDecision::Tftp {
        firmware: ClientFirmware::BiosPxe,
        binary: IpxeBinary::Undionly,
    };
    add_boot_options(&mut offer, &tftp, SERVER);
    assert_eq!(
        offer.yiaddr(),
        Ipv4Addr::new(10, 77, 0, 100),
        "address untouched"
    );
    assert_eq!(offer.siaddr(), SERVER);
    assert_eq!(text(offer.fname()).as_deref(), Some("undionly.kpxe"));
    assert_eq!(
        bytes_opt(&offer, OptionCode::VendorExtensions).unwrap(),
        [6, 1, 8, 255]
    );

    // iPXE in router mode: the script, and no option 60 (it would make iPXE treat the
    // router's offer as a ProxyDHCP offer too).
    let mut ack = Message::default();
    let ipxe = BootDecision::Ipxe {
        firmware: ClientFirmware::IpxeBios,
        script_url: "http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56".into(),
    };
    add_boot_options(&mut ack, &ipxe, SERVER);
    assert!(!ack.opts().contains(OptionCode::ClassIdentifier));
    assert_eq!(
        bytes_opt(&ack, OptionCode::BootfileName).unwrap(),
        b"http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56"
    );

    // Nothing for non-boot clients and declines.
    for d in [
        BootDecision::NotNetboot,
        BootDecision::Decline {
            firmware: ClientFirmware::Unknown,
            reason: "x".into(),
        },
    ] {
        let mut m = Message::default();
        let before = m.clone();
        add_boot_options(&mut m, &d, SERVER);
        assert_eq!(m, before);
    }
}

#[test]
fn long_urls_go_in_option_67_only() {
    let mut m = Message::default();
    let url = format!("http://10.77.0.1/{}", "a".repeat(200));
    let d = BootDecision::Http {
        firmware: ClientFirmware::UefiX64Http,
        binary: IpxeBinary::IpxeEfi,
        url: url.clone(),
    };
    add_boot_options(&mut m, &d, SERVER);
    assert_eq!(m.fname(), None);
    assert_eq!(
        bytes_opt(&m, OptionCode::BootfileName).unwrap(),
        url.as_bytes()
    );
    // dhcproto splits it into two option-67 chunks (RFC 3396); it still encodes.
    assert!(encode_reply(&m).unwrap().len() > 240 + 200);
}

/// Found by the `dhcp_packet` fuzz target: a request with an empty option 97 got a reply that
/// claimed to echo it, but dhcproto writes nothing for an empty option, so the reply sent was
/// not the reply built.
#[test]
fn an_empty_client_guid_is_not_echoed_and_the_reply_is_what_goes_on_the_wire() {
    let mut req = bios_pxe_discover();
    req.opts_mut()
        .insert(DhcpOption::ClientMachineIdentifier(Vec::new()));
    for port in [ProxyPort::Dhcp, ProxyPort::BootServer] {
        let req = match port {
            ProxyPort::Dhcp => req.clone(),
            ProxyPort::BootServer => as_request(req.clone(), None, Ipv4Addr::UNSPECIFIED),
        };
        let ans = answer(port, &req, &cfg());
        let r = reply(&ans);
        assert!(!r.opts().contains(OptionCode::ClientMachineIdentifier));
        let wire = Message::decode(&mut dhcproto::Decoder::new(&encode_reply(r).unwrap())).unwrap();
        assert_eq!(wire.opts(), r.opts());
    }
}

#[test]
fn oversized_hlen_is_ignored_not_a_panic() {
    // A Message built by hand (not through parse_request) with hlen > 16.
    let mut bytes = IPXE_BIOS_DISCOVER;
    bytes[2] = 200;
    let msg = dhcproto::v4::Message::decode(&mut dhcproto::Decoder::new(&bytes)).unwrap();
    let info = ClientInfo::from_message(&msg);
    assert_eq!(info.mac, None);
    let d = decide(&info, &cfg());
    assert_eq!(
        respond(ProxyPort::Dhcp, &msg, &info, &d, SERVER),
        ProxyOutcome::Ignored(IgnoreReason::BadHlen(200))
    );
}
