use super::*;

use dhcproto::Encodable;
use dhcproto::v4::{Architecture, UnknownOption};

include!("../../tests/fixtures/captured.rs");

#[test]
fn ipxe_bios_rom_request_is_read_completely() {
    let msg = parse_request(&IPXE_BIOS_DISCOVER).unwrap();
    let info = ClientInfo::from_message(&msg);
    assert_eq!(info.mac, Some("52:54:00:12:34:56".parse().unwrap()));
    assert_eq!(info.message_type, Some(MessageType::Discover));
    assert_eq!(info.arch, Some(0));
    assert_eq!(
        info.vendor_class.as_deref(),
        Some("PXEClient:Arch:00000:UNDI:002001")
    );
    // Debian's iPXE sends the bare string, not RFC 3004's length-prefixed form.
    assert_eq!(info.user_classes, vec!["iPXE".to_owned()]);
    assert!(info.is_ipxe());
    assert!(info.ipxe_encap);
    assert_eq!(info.client_guid.as_deref(), Some(&[0u8; 17][..]));
    assert_eq!(info.ndi, Some((1, 2, 1)));
    assert_eq!(info.vendor_kind(), Some(VendorKind::PxeClient));
}

#[test]
fn ovmf_pxe_request_is_read_completely() {
    let msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    assert!(msg.flags().broadcast());
    let info = ClientInfo::from_message(&msg);
    assert_eq!(info.mac, Some("52:54:00:65:43:21".parse().unwrap()));
    assert_eq!(info.arch, Some(7));
    assert_eq!(
        info.vendor_class.as_deref(),
        Some("PXEClient:Arch:00007:UNDI:003000")
    );
    assert!(info.user_classes.is_empty());
    assert!(!info.is_ipxe());
    assert!(!info.ipxe_encap);
    assert_eq!(info.ndi, Some((1, 3, 0)));
}

#[test]
fn plain_clients_have_no_boot_identity() {
    for bytes in [&DHCLIENT_DISCOVER[..], &UDHCPC_DISCOVER[..]] {
        let info = ClientInfo::from_message(&parse_request(bytes).unwrap());
        assert!(info.mac.is_some());
        assert_eq!(info.arch, None);
        assert_eq!(info.vendor_kind(), None);
        assert!(!info.is_ipxe());
    }
}

#[test]
fn user_class_both_forms() {
    assert_eq!(parse_user_class(b"\x04iPXE"), vec!["iPXE"]);
    assert_eq!(parse_user_class(b"iPXE"), vec!["iPXE"]);
    assert_eq!(parse_user_class(b"\x04iPXE\x03foo"), vec!["iPXE", "foo"]);
    // A length running past the end, or a zero length: not RFC 3004, one bare class.
    assert_eq!(parse_user_class(b"\x09iPXE"), vec!["\tiPXE"]);
    assert_eq!(parse_user_class(b"\x00iPXE"), vec!["\0iPXE"]);
    assert!(parse_user_class(b"").is_empty());
}

#[test]
fn rfc3004_user_class_in_a_message() {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    msg.opts_mut()
        .insert(DhcpOption::UserClass(b"\x04iPXE".to_vec()));
    assert!(ClientInfo::from_message(&msg).is_ipxe());
}

#[test]
fn arch_falls_back_to_the_vendor_class() {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    msg.opts_mut().remove(OptionCode::ClientSystemArchitecture);
    assert_eq!(ClientInfo::from_message(&msg).arch, Some(7));
    assert_eq!(
        arch_from_vendor_class("PXEClient:Arch:00016:UNDI:003000"),
        Some(16)
    );
    assert_eq!(arch_from_vendor_class("PXEClient"), None);
    assert_eq!(arch_from_vendor_class("PXEClient:Arch:"), None);
    assert_eq!(arch_from_vendor_class("PXEClient:Arch:99999999"), None);
    // Option 93 wins over the vendor class.
    msg.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture(9)));
    assert_eq!(ClientInfo::from_message(&msg).arch, Some(9));
}

#[test]
fn mac_only_for_ethernet_with_six_bytes() {
    let mut msg = parse_request(&DHCLIENT_DISCOVER).unwrap();
    msg.set_chaddr(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ClientInfo::from_message(&msg).mac, None);
    msg.set_chaddr(&[1, 2, 3, 4, 5, 6]);
    msg.set_htype(HType::ExperimentalEth);
    assert_eq!(ClientInfo::from_message(&msg).mac, None);
}

#[test]
fn option_175_is_seen_as_ipxe_encapsulation() {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    assert!(!ClientInfo::from_message(&msg).ipxe_encap);
    msg.opts_mut()
        .insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::Unknown(175),
            vec![0xb1, 1, 1],
        )));
    assert!(ClientInfo::from_message(&msg).ipxe_encap);
}

#[test]
fn parse_request_rejects_what_is_not_a_request() {
    assert_eq!(
        parse_request(&IPXE_BIOS_DISCOVER[..239]),
        Err(PacketError::TooShort { len: 239 })
    );
    let mut bad = IPXE_BIOS_DISCOVER;
    bad[236] = 0;
    assert!(matches!(
        parse_request(&bad),
        Err(PacketError::BadMagic { .. })
    ));
    let mut reply = IPXE_BIOS_DISCOVER;
    reply[0] = 2;
    assert_eq!(
        parse_request(&reply),
        Err(PacketError::NotRequest { op: 2 })
    );
    // hlen 17 would make dhcproto's Message::chaddr() panic.
    let mut hlen = IPXE_BIOS_DISCOVER;
    hlen[2] = 17;
    assert_eq!(parse_request(&hlen), Err(PacketError::BadHlen { hlen: 17 }));
    // No option 53.
    let mut msg = parse_request(&DHCLIENT_DISCOVER).unwrap();
    msg.opts_mut().remove(OptionCode::MessageType);
    let bytes = msg.to_vec().unwrap();
    assert_eq!(parse_request(&bytes), Err(PacketError::NoMessageType));
}

#[test]
fn parse_request_refuses_zero_broadcast_and_multicast_client_addresses() {
    let mut msg = parse_request(&DHCLIENT_DISCOVER).unwrap();
    for group in [
        [0; 6],
        [0xff; 6],
        [0x01, 0, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
    ] {
        msg.set_chaddr(&group);
        let bytes = msg.to_vec().unwrap();
        assert_eq!(
            parse_request(&bytes),
            Err(PacketError::NotAStation {
                mac: MacAddr(group)
            }),
            "{group:02x?}"
        );
    }
    msg.set_chaddr(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert!(parse_request(&msg.to_vec().unwrap()).is_ok());
    // Not Ethernet: chaddr is not a MAC, and not judged as one.
    msg.set_htype(HType::ExperimentalEth);
    msg.set_chaddr(&[0xff; 6]);
    assert!(parse_request(&msg.to_vec().unwrap()).is_ok());
}

#[test]
fn proxy_vendor_options_are_what_pixiecore_and_dnsmasq_send() {
    // Pixiecore (pixiecore/dhcp.go: `6: []byte{8}`) and dnsmasq without a PXE menu
    // (rfc2131.c pxe_opts: `discovery_control = 8`) both put exactly this in option 43.
    assert_eq!(proxy_vendor_options(), [0x06, 0x01, 0x08, 0xff]);
    assert_eq!(
        encode_pxe_vendor_options(&[PxeSubOption::DiscoveryControl(discovery::USE_BOOTFILE)])
            .unwrap(),
        proxy_vendor_options()
    );
}

#[test]
fn pxe_vendor_options_round_trip() {
    let subs = vec![
        PxeSubOption::DiscoveryControl(discovery::NO_BROADCAST | discovery::USE_BOOTFILE),
        PxeSubOption::MenuPrompt {
            timeout: 0,
            prompt: b"PXE".to_vec(),
        },
        PxeSubOption::BootItem {
            server_type: 0x8000,
            layer: 0,
        },
        PxeSubOption::Other {
            code: 8,
            data: vec![0x80, 0, 1, 10, 77, 0, 1],
        },
    ];
    let bytes = encode_pxe_vendor_options(&subs).unwrap();
    assert_eq!(
        bytes,
        [
            6, 1, 9, // discovery control
            10, 4, 0, b'P', b'X', b'E', // menu prompt
            71, 4, 0x80, 0, 0, 0, // boot item
            8, 7, 0x80, 0, 1, 10, 77, 0, 1, // boot servers
            255
        ]
    );
    assert_eq!(decode_pxe_vendor_options(&bytes).unwrap(), subs);
}

#[test]
fn pxe_vendor_options_reject_bad_input() {
    assert!(matches!(
        decode_pxe_vendor_options(&[71, 4, 0, 0]),
        Err(PxeOptionError::Truncated {
            code: 71,
            len: 4,
            available: 2
        })
    ));
    assert!(matches!(
        decode_pxe_vendor_options(&[6]),
        Err(PxeOptionError::Truncated { code: 6, .. })
    ));
    assert!(matches!(
        decode_pxe_vendor_options(&[6, 2, 8, 8, 255]),
        Err(PxeOptionError::BadLength {
            code: 6,
            len: 2,
            expected: 1
        })
    ));
    assert!(matches!(
        decode_pxe_vendor_options(&[71, 3, 0, 0, 0]),
        Err(PxeOptionError::BadLength { code: 71, .. })
    ));
    assert!(matches!(
        encode_pxe_vendor_options(&[PxeSubOption::Other {
            code: 9,
            data: vec![0; 256]
        }]),
        Err(PxeOptionError::TooLong { code: 9, len: 256 })
    ));
    // Pads are skipped, END stops, trailing bytes after END are ignored.
    assert_eq!(
        decode_pxe_vendor_options(&[0, 0, 6, 1, 8, 255, 1, 2, 3]).unwrap(),
        vec![PxeSubOption::DiscoveryControl(8)]
    );
    assert!(decode_pxe_vendor_options(&[]).unwrap().is_empty());
}

#[test]
fn requested_boot_item_reads_option_43() {
    let mut msg = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    assert_eq!(requested_boot_item(&msg), None);
    msg.opts_mut()
        .insert(DhcpOption::VendorExtensions(vec![71, 4, 0, 0, 0, 0, 255]));
    assert_eq!(requested_boot_item(&msg), Some((0, 0)));
    msg.opts_mut()
        .insert(DhcpOption::VendorExtensions(vec![71, 9]));
    assert_eq!(requested_boot_item(&msg), None);
}
