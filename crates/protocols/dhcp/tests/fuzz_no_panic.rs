//! Mutation fuzzing: hundreds of thousands of damaged DHCP packets, derived from requests
//! captured from real clients (iPXE BIOS ROM, OVMF native PXE, dhclient, udhcpc), go through
//! everything a received packet touches: dhcproto's decoder, `ClientInfo::from_message`,
//! `decide`, the proxy reply builders, `add_boot_options`, the encoder and the loop's
//! `handle_datagram`. None may panic, in this debug (test) profile.
//!
//! The PRNG is a fixed-seed xorshift, so a failure reproduces; the panic message names the
//! seed and the iteration.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::{ClientFirmware, IpxeBinary};
use flakeboot_dhcp::boot::{BootConfig, BootDecision, decide};
use flakeboot_dhcp::options::{
    ClientInfo, decode_pxe_vendor_options, parse_request, parse_user_class, requested_boot_item,
};
use flakeboot_dhcp::proxy::{ProxyPort, add_boot_options, encode_reply, respond};
use flakeboot_dhcp::server::handle_datagram;

include!("fixtures/captured.rs");

/// xorshift64* (Vigna): tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn cfg() -> BootConfig {
    BootConfig {
        server_ip: Ipv4Addr::new(10, 77, 0, 1),
        http_base: "http://10.77.0.1".into(),
        uefi_binary: IpxeBinary::SnponlyEfi,
        arm64_efi: true,
    }
}

/// Seeds: the captured requests plus requests built from them for the other paths (REQUEST to
/// 4011 with a boot item, HTTP boot, RFC 3004 user class).
fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![
        IPXE_BIOS_DISCOVER.to_vec(),
        OVMF_PXE_DISCOVER.to_vec(),
        DHCLIENT_DISCOVER.to_vec(),
        UDHCPC_DISCOVER.to_vec(),
    ];
    let mut req = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    req.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    req.opts_mut().insert(DhcpOption::VendorExtensions(vec![
        71, 4, 0x80, 0, 0, 0, 255,
    ]));
    req.set_ciaddr(Ipv4Addr::new(10, 77, 0, 150));
    out.push(req.to_vec().unwrap());
    let mut http = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    http.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"HTTPClient:Arch:00016:UNDI:003000".to_vec(),
    ));
    http.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(16.into()));
    http.opts_mut()
        .insert(DhcpOption::UserClass(b"\x04iPXE\x03abc".to_vec()));
    out.push(http.to_vec().unwrap());
    out
}

/// Offsets where options start in `bytes` (walking TLVs after the magic cookie).
fn option_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offs = Vec::new();
    let mut i = 240;
    while i + 1 < bytes.len() {
        match bytes[i] {
            0 => i += 1,
            255 => break,
            _ => {
                offs.push(i);
                i += 2 + usize::from(bytes[i + 1]);
            }
        }
    }
    offs
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(9) {
            // Bit flips anywhere.
            0 => {
                for _ in 0..=rng.below(8) {
                    let i = rng.below(b.len());
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
            }
            // Truncation.
            1 => b.truncate(rng.below(b.len() + 1)),
            // A random length for an existing option.
            2 => {
                let offs = option_offsets(&b);
                if !offs.is_empty() {
                    let at = offs[rng.below(offs.len())] + 1;
                    b[at] = rng.byte();
                }
            }
            // A new option with a random code and a length that may lie.
            3 => {
                let at = option_offsets(&b)
                    .first()
                    .copied()
                    .unwrap_or(240)
                    .min(b.len());
                let len = rng.below(20);
                let mut tlv = vec![
                    rng.byte(),
                    if rng.below(2) == 0 {
                        len as u8
                    } else {
                        rng.byte()
                    },
                ];
                tlv.extend((0..len).map(|_| rng.byte()));
                b.splice(at..at, tlv);
            }
            // An option the client code reads, with random content and length.
            4 => {
                let code = [
                    43u8, 53, 60, 77, 93, 94, 97, 175, 54, 55, 61, 80, 81, 82, 119, 121, 151,
                ][rng.below(17)];
                let len = rng.below(8);
                let at = option_offsets(&b)
                    .last()
                    .copied()
                    .unwrap_or(240)
                    .min(b.len());
                let mut tlv = vec![code, len as u8];
                tlv.extend((0..len).map(|_| rng.byte()));
                b.splice(at..at, tlv);
            }
            // The same option twice (RFC 3396 concatenation).
            5 => {
                let offs = option_offsets(&b);
                if let Some(&o) = offs.get(rng.below(offs.len().max(1))) {
                    let end = (o + 2 + usize::from(b[o + 1])).min(b.len());
                    let copy = b[o..end].to_vec();
                    b.splice(end..end, copy);
                }
            }
            // Header fields: op, htype, hlen, hops.
            6 => {
                let i = rng.below(4);
                if let Some(x) = b.get_mut(i) {
                    *x = rng.byte();
                }
            }
            // Random bytes appended (after END, or in place of it).
            7 => {
                if rng.below(2) == 0 {
                    b.pop();
                }
                b.extend((0..rng.below(64)).map(|_| rng.byte()));
            }
            // A random byte overwritten in the options area.
            _ => {
                if b.len() > 240 {
                    let i = 240 + rng.below(b.len() - 240);
                    b[i] = rng.byte();
                }
            }
        }
    }
    b
}

/// Everything a received datagram can reach. Returns whether dhcproto decoded it.
fn exercise(bytes: &[u8], cfg: &BootConfig) -> bool {
    let src: SocketAddr = "10.77.0.150:68".parse().unwrap();
    for port in [ProxyPort::Dhcp, ProxyPort::BootServer] {
        let _ = handle_datagram(port, bytes, src, cfg, SystemTime::UNIX_EPOCH);
    }
    let _ = parse_request(bytes);
    // The raw decoder too, without parse_request's checks in front of it.
    let Ok(msg) = Message::decode(&mut Decoder::new(bytes)) else {
        return false;
    };
    let info = ClientInfo::from_message(&msg);
    let decision = decide(&info, cfg);
    let _ = requested_boot_item(&msg);
    for port in [ProxyPort::Dhcp, ProxyPort::BootServer] {
        if let flakeboot_dhcp::proxy::ProxyOutcome::Reply(r) =
            respond(port, &msg, &info, &decision, cfg.server_ip)
        {
            let _ = encode_reply(&r);
        }
    }
    let mut reply = Message::default();
    add_boot_options(&mut reply, &decision, cfg.server_ip);
    let _ = encode_reply(&reply);
    true
}

#[test]
fn mutated_captured_requests_never_panic() {
    let cfg = cfg();
    let seeds = seeds();
    let per_seed = 10_000;
    let mut decoded = 0usize;
    let mut total = 0usize;
    for (s, seed) in seeds.iter().enumerate() {
        for fixed in [0x9e37_79b9_7f4a_7c15u64, 0xdead_beef_cafe_f00d] {
            let mut rng = Rng(fixed ^ (s as u64 + 1));
            for i in 0..per_seed {
                let bytes = mutate(&mut rng, seed);
                let r = catch_unwind(AssertUnwindSafe(|| exercise(&bytes, &cfg)));
                match r {
                    Ok(d) => decoded += usize::from(d),
                    Err(_) => {
                        panic!("panic on seed {s} ({fixed:#x}) iteration {i}: packet {bytes:02x?}")
                    }
                }
                total += 1;
            }
        }
    }
    // The mutations must mostly still decode, or this would only test the first check.
    assert!(
        decoded > total / 2,
        "only {decoded} of {total} mutated packets decoded"
    );
}

#[test]
fn every_truncation_of_every_capture_is_safe() {
    let cfg = cfg();
    for seed in seeds() {
        for len in 0..=seed.len() {
            exercise(&seed[..len], &cfg);
        }
    }
}

#[test]
fn random_pxe_vendor_options_and_user_classes_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..50_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(3) == 0 {
                    [6u8, 71, 10, 255, 0, 4][rng.below(6)]
                } else {
                    rng.byte()
                }
            })
            .collect();
        let _ = decode_pxe_vendor_options(&bytes);
        let _ = parse_user_class(&bytes);
    }
}

/// The workspace builds dhcproto with `debug-assertions = false` in every profile (see
/// /Cargo.toml): its decoder `debug_assert!`s on some option lengths, which would let one
/// packet panic a debug build. This test is compiled with debug assertions on, and feeds
/// exactly such packets: they must decode (to an error or to garbage), not panic.
#[test]
fn dhcproto_debug_assertions_are_off_in_this_profile() {
    // Constant per build, and that is the point: this file must be built with assertions on.
    assert!(
        std::hint::black_box(cfg!(debug_assertions)),
        "run this test in the debug/test profile: it proves the dhcproto override"
    );
    // Option 80 (rapid commit) must be empty: dhcproto has `debug_assert!(len == 0)`.
    let with = |tlv: &[u8]| {
        let mut b = DHCLIENT_DISCOVER.to_vec();
        let end = b.iter().rposition(|&x| x == 255).unwrap();
        b.splice(end..end, tlv.iter().copied());
        b
    };
    let rapid = with(&[80, 1, 0]);
    let msg = Message::decode(&mut Decoder::new(&rapid)).expect("decodes without the assert");
    assert!(
        msg.opts()
            .get(dhcproto::v4::OptionCode::RapidCommit)
            .is_some()
    );
    // Option 94 (client NDI) must be 3 bytes: `debug_assert!(len == 3)`.
    let ndi = with(&[94, 4, 1, 2, 3, 4]);
    let msg = Message::decode(&mut Decoder::new(&ndi)).expect("decodes without the assert");
    assert_eq!(
        ClientInfo::from_message(&msg).ndi,
        Some((1, 2, 3)),
        "garbage, but no panic"
    );
    // Option 81 (client FQDN) shorter than 3: `debug_assert!(len >= 3)`, then an error.
    let fqdn = with(&[81, 1, 0]);
    assert!(Message::decode(&mut Decoder::new(&fqdn)).is_ok());
    // And the whole server path answers such a packet like any other.
    let mut pxe = parse_request(&OVMF_PXE_DISCOVER).unwrap();
    pxe.opts_mut().insert(DhcpOption::RapidCommit);
    let mut bytes = pxe.to_vec().unwrap();
    let end = bytes.iter().rposition(|&x| x == 255).unwrap();
    // Turn the encoded empty option 80 into a 1-byte one.
    let at = bytes.windows(2).position(|w| w == [80, 0]).unwrap();
    bytes[at + 1] = 1;
    bytes.insert(at + 2, 0);
    let _ = end;
    let h = handle_datagram(
        ProxyPort::Dhcp,
        &bytes,
        "0.0.0.0:68".parse().unwrap(),
        &cfg(),
        SystemTime::UNIX_EPOCH,
    );
    assert!(h.reply.is_some());
    let d = decide(
        &ClientInfo::from_message(&parse_request(&bytes).unwrap()),
        &cfg(),
    );
    assert_eq!(d.firmware(), Some(ClientFirmware::UefiX64Pxe));
    assert!(matches!(d, BootDecision::Tftp { .. }));
}
