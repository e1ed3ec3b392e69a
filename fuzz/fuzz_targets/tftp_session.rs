//! One TFTP read transfer, the sans-IO `Session`, driven through a whole conversation: option
//! negotiation from the client's request, then any sequence of ACKs (in and out of the window),
//! ERRORs, garbage, timer expiries and short reads, with fake time.
//!
//! Asserts, for any conversation:
//! - nothing panics, and every call returns (a bounded number of outputs);
//! - reads stay inside the file, and every DATA block carries exactly the file's bytes for its
//!   block number, at most `blksize` of them, a short block only at the end of the file;
//! - the transfer is complete only after the client acknowledged the final block, with the
//!   file's size; after the end, no timer runs and nothing but `Ignored` comes out;
//! - a session that waits for the client always has a timer.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use flakeboot_tftp::options::{Limits, negotiate};
use flakeboot_tftp::packet::{ErrorCode, Packet};
use flakeboot_tftp::session::{Done, Output, Session};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Event {
    /// ACK of the last DATA block sent, minus `back` (0: the newest).
    AckSent {
        back: u8,
    },
    /// ACK of any block number.
    Ack(u16),
    Error {
        code: u16,
        message: Vec<u8>,
    },
    /// Any datagram at all.
    Raw(Vec<u8>),
    /// Time passes to the session's timer, and the timer fires.
    Timeout,
    /// Time passes (milliseconds), and the timer fires if due.
    Wait(u16),
    /// The next read returns this many bytes fewer than asked (the file shrank).
    ShortRead(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    file_size: u16,
    /// With a block size of at most 16, make the file longer than 65536 blocks, so block numbers
    /// wrap (larger blocks would make the file too big to fuzz quickly).
    wrap: bool,
    blksize: Option<u16>,
    windowsize: Option<u16>,
    timeout: Option<u8>,
    tsize: bool,
    max_blksize: u16,
    max_windowsize: u16,
    mtu: Option<u16>,
    retries: u8,
    first_ack_timeout_ms: Option<u16>,
    events: Vec<Event>,
}

/// With tiny blocks and `wrap`, the file is this much longer than `file_size`.
const WRAP_EXTRA: u64 = 65536 * 16;

/// Byte `i` of the file: not periodic in any block size, so a block sent from the wrong offset
/// shows.
fn file_byte(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16) ^ (i >> 24)) as u8
}

/// The longest file any input makes, computed once: reads are answered and DATA blocks checked
/// with slices of it (one `memcmp` per block), so whole transfers with windows of thousands of
/// blocks stay cheap enough to fuzz.
fn file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| (0..u64::from(u16::MAX) + WRAP_EXTRA).map(file_byte).collect())
}

/// The file's bytes `offset..offset + len` (inside the longest file: the driver checks reads
/// against the input's file size first).
fn file_bytes(offset: u64, len: usize) -> &'static [u8] {
    let start = usize::try_from(offset).expect("offset fits");
    &file()[start..start + len]
}

struct Driver {
    session: Session,
    now: Instant,
    file_size: u64,
    blksize: usize,
    /// Largest window in bytes.
    window_bytes: u64,
    total_blocks: u64,
    oack: Option<Vec<u8>>,
    last_data_block: Option<u16>,
    final_block_sent: bool,
    finished: bool,
    short_read: Option<usize>,
}

impl Driver {
    /// Carries out outputs, answering reads from the file, and checks each.
    fn run(&mut self, mut outputs: Vec<Output>, cause_ack: Option<u16>) {
        let mut rounds = 0;
        while !outputs.is_empty() {
            rounds += 1;
            assert!(rounds < 4, "the session keeps asking for reads");
            let mut next = Vec::new();
            for out in outputs {
                assert!(
                    !self.finished || matches!(out, Output::Ignored(_)),
                    "{out:?} after the end"
                );
                match out {
                    Output::Send(bytes) => self.check_send(&bytes),
                    Output::Read { offset, len } => {
                        assert!(offset + len as u64 <= self.file_size, "read past the end");
                        assert!(len as u64 <= self.window_bytes, "read of {len} bytes");
                        let len = len.saturating_sub(self.short_read.take().unwrap_or(0));
                        next = self.session.on_read(self.now, file_bytes(offset, len));
                    }
                    Output::Done(done) => {
                        if let Done::Complete { bytes } = done {
                            assert_eq!(bytes, self.file_size);
                            assert!(self.final_block_sent, "complete before the last block");
                            let last = ((self.total_blocks) % 65536) as u16;
                            assert_eq!(cause_ack, Some(last), "complete without its ACK");
                        }
                        self.finished = true;
                    }
                    Output::Failed(_) => self.finished = true,
                    Output::Ignored(_) => {}
                }
            }
            outputs = next;
        }
        assert_eq!(self.session.is_finished(), self.finished);
        if self.finished {
            assert_eq!(self.session.poll_at(), None, "a timer after the end");
        }
    }

    fn check_send(&mut self, bytes: &[u8]) {
        match Packet::parse(bytes).expect("the session sends valid packets") {
            Packet::Data { block, data } => {
                assert!(data.len() <= self.blksize, "DATA of {} bytes", data.len());
                // Block `block` is index block - 1 modulo 65536: one of these.
                let first = u64::from(block.wrapping_sub(1));
                let matches = (first..self.total_blocks).step_by(65536).any(|i| {
                    let offset = i * self.blksize as u64;
                    let full =
                        data.len() == self.blksize || offset + data.len() as u64 == self.file_size;
                    full && offset + data.len() as u64 <= self.file_size
                        && data == file_bytes(offset, data.len())
                });
                assert!(
                    matches,
                    "DATA block {block} does not carry the file's bytes"
                );
                if data.len() < self.blksize {
                    self.final_block_sent = true;
                }
                self.last_data_block = Some(block);
            }
            Packet::Oack { .. } => {
                assert_eq!(
                    Some(bytes),
                    self.oack.as_deref(),
                    "an OACK other than negotiated"
                );
                assert_eq!(self.last_data_block, None, "an OACK after DATA");
            }
            Packet::Error { code, .. } => assert_eq!(code, ErrorCode::NOT_DEFINED),
            other => panic!("the session sent {other:?}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let small_blocks = input.blksize.is_some_and(|b| b <= 16);
    let file_size = u64::from(input.file_size)
        + if input.wrap && small_blocks {
            WRAP_EXTRA
        } else {
            0
        };
    let limits = Limits {
        max_blksize: input.max_blksize,
        max_windowsize: input.max_windowsize,
        mtu: input.mtu.map(u32::from),
    };
    let mut requested: Vec<(&str, String)> = Vec::new();
    if let Some(b) = input.blksize {
        requested.push(("blksize", b.to_string()));
    }
    if let Some(w) = input.windowsize {
        requested.push(("windowsize", w.to_string()));
    }
    if let Some(t) = input.timeout {
        requested.push(("timeout", t.to_string()));
    }
    if input.tsize {
        requested.push(("tsize", "0".to_owned()));
    }
    let requested: Vec<(&str, &str)> = requested.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let negotiated = negotiate(&requested, file_size, &limits);
    let blksize = usize::from(negotiated.blksize.max(1));
    let oack = (!negotiated.oack.is_empty()).then(|| {
        Packet::Oack {
            options: negotiated
                .oack
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
        .emit()
    });
    let retries = u32::from(input.retries % 8);
    let mut session = Session::new(&negotiated, file_size, Duration::from_secs(1), retries);
    if let Some(ms) = input.first_ack_timeout_ms {
        session = session.with_first_ack_timeout(Duration::from_millis(u64::from(ms)));
    }
    let mut d = Driver {
        session,
        now: Instant::now(),
        file_size,
        blksize,
        window_bytes: u64::from(negotiated.windowsize.max(1)) * blksize as u64,
        total_blocks: file_size / blksize as u64 + 1,
        oack,
        last_data_block: None,
        final_block_sent: false,
        finished: false,
        short_read: None,
    };
    let start = d.session.start(d.now);
    d.run(start, None);

    for event in input.events.iter().take(128) {
        if !d.finished && !matches!(event, Event::ShortRead(_)) {
            assert!(
                d.session.poll_at().is_some(),
                "waiting for the client without a timer"
            );
        }
        let (out, ack) = match event {
            Event::AckSent { back } => {
                let block = d
                    .last_data_block
                    .unwrap_or(0)
                    .wrapping_sub(u16::from(*back));
                let bytes = Packet::Ack { block }.emit();
                (d.session.on_packet(d.now, &bytes), Some(block))
            }
            Event::Ack(block) => {
                let bytes = Packet::Ack { block: *block }.emit();
                (d.session.on_packet(d.now, &bytes), Some(*block))
            }
            Event::Error { code, message } => {
                let bytes = Packet::Error {
                    code: ErrorCode(*code),
                    message,
                }
                .emit();
                (d.session.on_packet(d.now, &bytes), None)
            }
            Event::Raw(bytes) => {
                let ack = match Packet::parse(bytes) {
                    Ok(Packet::Ack { block }) => Some(block),
                    _ => None,
                };
                (d.session.on_packet(d.now, bytes), ack)
            }
            Event::Timeout => {
                if let Some(at) = d.session.poll_at() {
                    d.now = d.now.max(at);
                }
                (d.session.on_timeout(d.now), None)
            }
            Event::Wait(ms) => {
                d.now += Duration::from_millis(u64::from(*ms));
                (d.session.on_timeout(d.now), None)
            }
            Event::ShortRead(n) => {
                d.short_read = Some(usize::from(*n).max(1));
                continue;
            }
        };
        if d.finished {
            assert!(
                out.iter().all(|o| matches!(o, Output::Ignored(_))),
                "{out:?} after the end"
            );
        }
        d.run(out, ack);
    }
});
