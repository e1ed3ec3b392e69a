//! One DHCP datagram from anyone on the LAN, through everything proxy mode does with it.
//!
//! Asserts, for any bytes:
//! - `parse_request` never panics (nor does anything after it);
//! - the client description and the boot decision never panic, and a decision's URL is under the
//!   configured HTTP base;
//! - PXE option 43: whatever decodes encodes, and decodes back to the same sub-options;
//! - `handle_datagram` on ports 67 and 4011: any reply is a BOOTREPLY for the same transaction
//!   that parses as DHCP;
//! - emit then parse of what flakeboot sends: every reply proxy mode builds encodes and decodes
//!   back with exactly the options that were built, and its wire form is a fixed point (decode
//!   then encode gives the same bytes; `file` and `sname` only lose their NUL padding).
//!
//! No parse -> emit -> parse round trip of *requests*: flakeboot never re-emits one, and
//! dhcproto's re-encoding of malformed requests is lossy in ways that are its own (option 82
//! with unparsable sub-options becomes an empty relay option that is not written; empty options
//! are dropped; repeated options such as 93 are merged and re-split differently), which the
//! first runs of this target found within seconds. What flakeboot copies from a request into a
//! reply (option 97) is covered by the reply round trip above.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use dhcproto::v4::{DhcpOption, Message, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::IpxeBinary;
use flakeboot_dhcp::boot::{BootConfig, BootDecision, decide};
use flakeboot_dhcp::options::{
    ClientInfo, arch_from_vendor_class, decode_pxe_vendor_options, encode_pxe_vendor_options,
    parse_request, parse_user_class,
};
use flakeboot_dhcp::proxy::{ProxyOutcome, ProxyPort, answer, encode_reply};
use flakeboot_dhcp::server::handle_datagram;
use libfuzzer_sys::fuzz_target;

const HTTP_BASE: &str = "http://10.77.0.1";

fn config(arm64: bool) -> BootConfig {
    BootConfig {
        server_ip: Ipv4Addr::new(10, 77, 0, 1),
        http_base: HTTP_BASE.to_owned(),
        uefi_binary: IpxeBinary::IpxeEfi,
        arm64_efi: arm64,
    }
}

fn check_pxe_options(bytes: &[u8]) {
    let Ok(subs) = decode_pxe_vendor_options(bytes) else {
        return;
    };
    let encoded = encode_pxe_vendor_options(&subs).expect("decoded sub-options always encode");
    let again = decode_pxe_vendor_options(&encoded).expect("encoded sub-options decode");
    assert_eq!(again, subs, "PXE option 43 round trip");
}

fn check_reply(req: &Message, reply: &[u8]) {
    let msg = Message::decode(&mut Decoder::new(reply)).expect("a reply parses as DHCP");
    assert_eq!(msg.opcode(), Opcode::BootReply);
    assert_eq!(
        msg.xid(),
        req.xid(),
        "a reply answers the request's transaction"
    );
    assert!(
        msg.opts().msg_type().is_some(),
        "a reply has a message type"
    );
}

fn check_decision(decision: &BootDecision) {
    match decision {
        BootDecision::Ipxe { script_url, .. } => {
            assert!(script_url.starts_with(&format!("{HTTP_BASE}/boot.ipxe")));
        }
        BootDecision::Http { url, .. } => assert!(url.starts_with(&format!("{HTTP_BASE}/ipxe/"))),
        BootDecision::NotNetboot | BootDecision::Tftp { .. } | BootDecision::Decline { .. } => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the configuration; the rest is the datagram.
    let Some((&knobs, bytes)) = data.split_first() else {
        return;
    };
    let cfg = config(knobs & 1 != 0);

    // The helpers also see the raw bytes: they are fed option values from the wire.
    check_pxe_options(bytes);
    let _ = parse_user_class(bytes);
    let _ = arch_from_vendor_class(&String::from_utf8_lossy(bytes));

    let src = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 99), 68));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let port = if knobs & 2 != 0 {
        ProxyPort::BootServer
    } else {
        ProxyPort::Dhcp
    };
    let handled = handle_datagram(port, bytes, src, &cfg, now);

    let Ok(msg) = parse_request(bytes) else {
        assert!(
            handled.reply.is_none(),
            "no reply to a packet that does not parse"
        );
        return;
    };
    if let Some((reply, _dest)) = &handled.reply {
        check_reply(&msg, reply);
    }

    let info = ClientInfo::from_message(&msg);
    let _ = info.vendor_kind();
    let decision = decide(&info, &cfg);
    check_decision(&decision);
    if let Some(DhcpOption::VendorExtensions(v)) = msg.opts().get(OptionCode::VendorExtensions) {
        check_pxe_options(v);
    }

    // Emit, parse: the client gets exactly the reply that was built.
    if let ProxyOutcome::Reply(reply) = answer(port, &msg, &cfg).outcome {
        let bytes = encode_reply(&reply).expect("a reply encodes");
        let decoded = Message::decode(&mut Decoder::new(&bytes)).expect("a reply decodes");
        assert_eq!(
            decoded.opts(),
            reply.opts(),
            "emit -> parse changed the reply's options"
        );
        assert_eq!(
            decoded.to_vec().ok(),
            Some(bytes),
            "the reply's wire form is not stable"
        );
    }
});
