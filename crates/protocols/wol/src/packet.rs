//! The magic packet and its ethernet frame (pure).

use flakeboot_catalogue::MacAddr;

/// Six 0xFF bytes and sixteen copies of the MAC.
pub const MAGIC_LEN: usize = 6 + 16 * 6;
/// The EtherType of a raw Wake-on-LAN frame.
pub const ETHERTYPE_WOL: u16 = 0x0842;
/// The UDP port the magic packet is broadcast to (discard; 7 is the other common one).
pub const UDP_PORT: u16 = 9;

/// The magic packet that wakes the card with this MAC: 6 x 0xFF, then 16 x the MAC.
pub fn magic_packet(target: MacAddr) -> [u8; MAGIC_LEN] {
    let mut out = [0xFF; MAGIC_LEN];
    for chunk in out.chunks_exact_mut(6).skip(1) {
        chunk.copy_from_slice(&target.0);
    }
    out
}

/// The whole ethernet frame: broadcast destination, `source` (the sending interface's MAC),
/// EtherType 0x0842, the magic packet. (The kernel adds no padding on a packet socket; the
/// 102-byte payload is above ethernet's 46-byte minimum anyway.)
pub fn ethernet_frame(source: MacAddr, target: MacAddr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + MAGIC_LEN);
    frame.extend_from_slice(&[0xFF; 6]);
    frame.extend_from_slice(&source.0);
    frame.extend_from_slice(&ETHERTYPE_WOL.to_be_bytes());
    frame.extend_from_slice(&magic_packet(target));
    frame
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn the_magic_packet_is_six_ff_then_sixteen_macs() {
        let p = magic_packet(MAC);
        assert_eq!(p.len(), 102);
        assert_eq!(p[..6], [0xFF; 6]);
        for i in 0..16 {
            assert_eq!(p[6 + 6 * i..12 + 6 * i], MAC.0, "copy {i}");
        }
        // As a capture shows it.
        let hex: String = p[..18].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ffffffffffff525400123456525400123456");
    }

    #[test]
    fn the_frame_is_a_broadcast_of_type_0842_around_the_magic_packet() {
        let source = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let f = ethernet_frame(source, MAC);
        assert_eq!(f.len(), 14 + 102);
        assert_eq!(f[..6], [0xFF; 6]);
        assert_eq!(f[6..12], source.0);
        assert_eq!(f[12..14], [0x08, 0x42]);
        assert_eq!(f[14..], magic_packet(MAC));
    }

    #[test]
    fn a_mac_full_of_ff_bytes_still_gives_102_bytes() {
        // Not a station MAC (callers refuse it), but the builder never panics on any input.
        let p = magic_packet(MacAddr([0xFF; 6]));
        assert_eq!(p, [0xFF; 102]);
    }
}
