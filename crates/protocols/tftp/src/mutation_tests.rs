//! Thousands of random, mutated and truncated datagrams through the parser, the request
//! decision and live sessions: nothing may panic (this runs in the debug/test profile, with
//! overflow checks on).

use std::time::{Duration, Instant};

use crate::options::{Limits, negotiate};
use crate::packet::Packet;
use crate::request::decide;
use crate::session::{Output, Session};

/// xorshift64*: deterministic, seeded, good enough to mutate packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid datagrams of every kind: the starting points for mutation.
const SEEDS: &[&[u8]] = &[
    b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00",
    b"\x00\x01/ipxe.efi\x00netascii\x00windowsize\x0065535\x00timeout\x001\x00",
    b"\x00\x02x\x00octet\x00",
    b"\x00\x03\xff\xffsome data",
    b"\x00\x04\x00\x00",
    b"\x00\x04\xff\xff",
    b"\x00\x05\x00\x08tsize probe\x00",
    b"\x00\x06blksize\x0065464\x00tsize\x00999999999999999999999\x00",
    b"\x00\x01../../etc/passwd\x00octet\x00",
];

const INTERESTING: &[u8] = &[
    0, 1, 2, 3, 4, 5, 6, 0x7f, 0x80, 0xff, b'/', b'.', b'0', b'9',
];

fn mutate(rng: &mut Rng) -> Vec<u8> {
    let mut p = SEEDS[rng.below(SEEDS.len())].to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 => {
                let len = rng.below(p.len() + 1);
                p.truncate(len);
            }
            1 if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] = rng.next() as u8;
            }
            2 if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => {
                let i = rng.below(p.len() + 1);
                p.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            4 if !p.is_empty() => {
                let i = rng.below(p.len());
                p.remove(i);
            }
            _ => {
                let n = rng.below(40);
                p.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    p
}

fn random(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(80);
    let mut p: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    if p.len() >= 2 && rng.below(2) == 0 {
        // A plausible opcode makes the parser go deeper.
        p[0] = 0;
        p[1] = 1 + rng.below(6) as u8;
    }
    p
}

#[test]
fn parse_and_decide_never_panic() {
    let mut rng = Rng(0x5eed_f1a4_e0b0_0701);
    let mut parsed = 0;
    for i in 0..50_000 {
        let bytes = if i % 3 == 0 {
            random(&mut rng)
        } else {
            mutate(&mut rng)
        };
        if let Ok(p) = Packet::parse(&bytes) {
            parsed += 1;
            // What parses re-emits to something that parses to the same packet.
            let again = p.emit();
            assert_eq!(Packet::parse(&again).as_ref(), Ok(&p), "{bytes:?}");
            if let Packet::Request(r) = &p {
                let limits = Limits {
                    max_blksize: 65535,
                    max_windowsize: 65535,
                    mtu: Some(rng.below(70000) as u32),
                };
                let n = negotiate(&r.options, rng.next(), &limits);
                assert!((8..=65464).contains(&n.blksize) || n.blksize == 512);
                assert!(n.windowsize >= 1);
            }
        }
        let _ = decide(&bytes);
    }
    // The mutations must exercise the parser, not just its first check.
    assert!(parsed > 10_000, "only {parsed} parsed");
}

#[test]
fn sessions_survive_hostile_clients() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let file: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    for s in 0..200 {
        let options: &[(&str, &str)] = match s % 4 {
            0 => &[],
            1 => &[("tsize", "0")],
            2 => &[("blksize", "8"), ("windowsize", "7")],
            _ => &[("blksize", "1468"), ("windowsize", "64"), ("timeout", "1")],
        };
        let limits = Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            mtu: None,
        };
        let size = rng.below(file.len() + 1);
        let n = negotiate(options, size as u64, &limits);
        let mut session = Session::new(&n, size as u64, Duration::from_millis(10), 3);
        let mut now = Instant::now();
        let mut pending = session.start(now);
        for _ in 0..200 {
            for o in std::mem::take(&mut pending) {
                if let Output::Read { offset, len } = o {
                    let from = (offset as usize).min(size);
                    let to = from.saturating_add(len).min(size);
                    // Sometimes the file shrinks under the transfer.
                    let to = if rng.below(50) == 0 { from } else { to };
                    pending.extend(session.on_read(now, &file[from..to]));
                }
            }
            if session.is_finished() {
                break;
            }
            now += Duration::from_millis(rng.below(15) as u64);
            let out = match rng.below(4) {
                0 => session.on_timeout(now),
                1 => session.on_packet(
                    now,
                    &Packet::Ack {
                        block: rng.next() as u16 % 40,
                    }
                    .emit(),
                ),
                2 => session.on_packet(now, &random(&mut rng)),
                _ => session.on_packet(now, &mutate(&mut rng)),
            };
            pending.extend(out);
            // A timer that fired is re-armed in the future or stopped.
            let fired = session.on_timeout(now);
            if let Some(at) = session.poll_at() {
                assert!(at > now, "timer left in the past");
            }
            pending.extend(fired);
        }
    }
}
