//! IPv6 router advertisements (RFC 4861), pure: build the ICMPv6 message body; the
//! sender in `server::ra_sender` puts it on the wire.

use std::net::Ipv6Addr;
use std::time::Duration;

/// What router mode advertises on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// The /64 prefix advertised (on-link, autonomous); host bits are ignored. `::`
    /// (unspecified) means the default: [`ula_prefix_from_mac`] of the LAN interface's MAC,
    /// which the sender reads from the interface.
    pub prefix: Ipv6Addr,
    /// Time between unsolicited advertisements.
    pub interval: Duration,
}

/// A stable ULA /64 (`fdXX:XXXX:XXXX:0::/64`) derived from a MAC address.
///
/// RFC 4193 3.2.2 derives the 40-bit global ID from a hash of the time and an EUI-64; an
/// appliance wants the same prefix after every boot, so this hashes only the EUI-64 built from
/// the MAC (FNV-1a, 64 bits; no cryptographic strength is needed, only spread and stability).
pub fn ula_prefix_from_mac(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    let eui64 = [a ^ 0x02, b, c, 0xff, 0xfe, d, e, f];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in eui64 {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let g = hash.to_be_bytes();
    let [g0, g1, g2, g3, g4, ..] = g;
    Ipv6Addr::from([0xfd, g0, g1, g2, g3, g4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
}

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// Hop limit clients are told to use (RFC 4861 "Cur Hop Limit").
const CUR_HOP_LIMIT: u8 = 64;
/// Valid lifetime of the advertised prefix (radvd's default: one day).
pub const PREFIX_VALID_LIFETIME: Duration = Duration::from_secs(86_400);
/// Preferred lifetime of the advertised prefix (radvd's default: four hours).
pub const PREFIX_PREFERRED_LIFETIME: Duration = Duration::from_secs(14_400);

/// Prefix information flags: on-link (L) and autonomous address configuration (A).
const PREFIX_ON_LINK_AUTONOMOUS: u8 = 0xc0;

/// The ICMPv6 body of a Router Advertisement (RFC 4861 4.2) for `prefix`/64, sent by the
/// interface with MAC `mac`. The checksum is left 0: the kernel fills it in for raw ICMPv6
/// sockets.
///
/// - Router lifetime 0: flakeboot routes no IPv6, so clients must not make it their default
///   router. An RA with lifetime 0 still carries the prefix: Linux and iPXE autoconfigure an
///   address from it, and iPXE ends its IPv6 autoconfiguration on the first RA it gets (without
///   the ~13 s wait), since the M and O flags are clear (no DHCPv6).
/// - Options: source link-layer address (saves the client a neighbour solicitation) and prefix
///   information (/64, on-link, autonomous, lifetimes above).
pub fn router_advertisement(mac: [u8; 6], prefix: Ipv6Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(56);
    // Header: type, code, checksum, cur hop limit, flags (M=0, O=0), router lifetime,
    // reachable time, retransmit timer (0 = unspecified).
    out.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, CUR_HOP_LIMIT, 0, 0, 0]);
    out.extend_from_slice(&[0; 8]);
    // Source link-layer address option: type 1, length 1 (x 8 bytes).
    out.extend_from_slice(&[1, 1]);
    out.extend_from_slice(&mac);
    // Prefix information option: type 3, length 4 (x 8 bytes).
    out.extend_from_slice(&[3, 4, 64, PREFIX_ON_LINK_AUTONOMOUS]);
    out.extend_from_slice(&lifetime_secs(PREFIX_VALID_LIFETIME).to_be_bytes());
    out.extend_from_slice(&lifetime_secs(PREFIX_PREFERRED_LIFETIME).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&prefix_64(prefix).octets());
    out
}

/// Whether an ICMPv6 message (as a raw ICMPv6 socket delivers it: no IPv6 header) is a Router
/// Solicitation. Anything else, malformed input included, is not.
pub fn is_router_solicitation(icmp: &[u8]) -> bool {
    // Type 133, code 0, at least the 8-byte header (RFC 4861 6.1.1).
    matches!(icmp, [ROUTER_SOLICITATION, 0, _, _, _, _, _, _, ..])
}

/// The first 64 bits of an address.
pub fn prefix_64(addr: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(addr) & !u128::from(u64::MAX))
}

fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_advertisement_matches_the_hand_checked_bytes() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let prefix: Ipv6Addr = "fd77::1".parse().unwrap();
        #[rustfmt::skip]
        let expected: [u8; 56] = [
            // type 134, code 0, checksum (kernel), cur hop limit 64, M=0 O=0, router lifetime 0
            134, 0, 0x00, 0x00, 64, 0x00, 0x00, 0x00,
            // reachable time 0, retrans timer 0
            0, 0, 0, 0, 0, 0, 0, 0,
            // source link-layer address: type 1, 1 x 8 bytes, the MAC
            1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            // prefix information: type 3, 4 x 8 bytes, /64, L+A
            3, 4, 64, 0xc0,
            // valid lifetime 86400 = 0x00015180, preferred 14400 = 0x00003840, reserved
            0x00, 0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0, 0, 0, 0,
            // fd77:: (the host bits of fd77::1 cleared)
            0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(router_advertisement(mac, prefix), expected);
    }

    #[test]
    fn ula_prefix_is_stable_fd_slash_48_and_depends_on_the_mac() {
        let a = ula_prefix_from_mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let b = ula_prefix_from_mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x57]);
        assert_eq!(a, ula_prefix_from_mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_ne!(a, b);
        for p in [a, b] {
            let o = p.octets();
            assert_eq!(o[0], 0xfd, "{p}");
            assert!(o[6..].iter().all(|&x| x == 0), "subnet 0, host bits 0: {p}");
            assert_eq!(prefix_64(p), p);
        }
    }

    #[test]
    fn only_well_formed_router_solicitations_are_recognised() {
        assert!(is_router_solicitation(&[133, 0, 0x12, 0x34, 0, 0, 0, 0]));
        assert!(is_router_solicitation(&[
            133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6
        ]));
        assert!(!is_router_solicitation(&[133, 0, 0, 0]));
        assert!(!is_router_solicitation(&[133, 1, 0, 0, 0, 0, 0, 0]));
        assert!(!is_router_solicitation(&[134, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_router_solicitation(&[]));
    }
}
