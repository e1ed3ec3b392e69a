//! One TFTP datagram from anyone on the LAN, through what the request port does with it.
//!
//! Asserts, for any bytes:
//! - `Packet::parse` never panics, and whatever it accepts emits bytes that parse back to the
//!   same packet (parse then emit, as smoltcp's fuzz target does);
//! - `request::decide` serves only an iPXE binary of the catalogue, named exactly (one leading
//!   `/` allowed), never a path and never a name with `..`;
//! - option negotiation of a served request stays within the limits: blksize within RFC 2348 and
//!   the cap, a window of at least one block and at most `MAX_WINDOW_BYTES` (or one block),
//!   timeout 1-255 s, and an OACK that repeats no option.
#![no_main]

use flakeboot_catalogue::IpxeBinary;
use flakeboot_tftp::options::{Limits, MAX_WINDOW_BYTES, MIN_BLKSIZE, negotiate};
use flakeboot_tftp::packet::Packet;
use flakeboot_tftp::request::{Decision, decide};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes pick the file size and limits; the rest is the datagram.
    let Some((head, bytes)) = data.split_first_chunk::<8>() else {
        return;
    };
    let file_size = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    let limits = Limits {
        max_blksize: u16::from_le_bytes([head[4], head[5]]),
        max_windowsize: u16::from(head[6]),
        mtu: (head[7] != 0).then(|| u32::from(head[7]) * 64),
    };

    if let Ok(packet) = Packet::parse(bytes) {
        let emitted = packet.emit();
        let again = Packet::parse(&emitted).expect("an emitted packet parses");
        assert_eq!(again, packet, "parse -> emit -> parse changed the packet");
    }

    match decide(bytes) {
        Decision::Serve {
            binary,
            requested,
            options,
        } => {
            let name = requested.strip_prefix('/').unwrap_or(&requested);
            assert_eq!(IpxeBinary::from_file_name(name), Some(binary));
            assert!(!name.contains(['/', '\\', '\0']) && !name.contains(".."));

            let requested: Vec<(&str, &str)> = options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let n = negotiate(&requested, file_size, &limits);
            assert!(n.blksize >= MIN_BLKSIZE || n.blksize == 512);
            assert!(n.blksize <= limits.blksize_cap().max(512));
            assert!(n.windowsize >= 1);
            assert!(
                n.windowsize == 1
                    || u64::from(n.windowsize) * u64::from(n.blksize) <= MAX_WINDOW_BYTES,
                "window of {} x {} bytes",
                n.windowsize,
                n.blksize
            );
            if let Some(t) = n.timeout {
                assert!((1..=255).contains(&t.as_secs()));
            }
            let mut names: Vec<&str> = n.oack.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            let count = names.len();
            names.dedup();
            assert_eq!(
                names.len(),
                count,
                "an option repeated in the OACK: {:?}",
                n.oack
            );
        }
        Decision::Refuse { .. } | Decision::Drop(_) => {}
    }
});
