//! One read transfer as a state machine, without I/O (in the style of smoltcp's sockets).
//!
//! The driver feeds it datagrams from the client ([`Session::on_packet`]), file bytes it asked
//! for ([`Session::on_read`]) and timer expiries ([`Session::on_timeout`], due at
//! [`Session::poll_at`]), and carries out the [`Output`]s: send a packet, read a range of the
//! file, or finish. Time is a parameter, so tests script it.
//!
//! Windows follow RFC 7440: up to `windowsize` DATA blocks are in flight; an ACK of block k of
//! the window starts the next window at k + 1 (so a partial ACK retransmits the rest). With a
//! window of 1 this is RFC 1350's lock-step. A duplicate ACK of the block before the window is
//! ignored (retransmitting on it is the Sorcerer's Apprentice bug): the timer resends instead.

use std::time::{Duration, Instant};

use crate::options::Negotiated;
use crate::packet::{ErrorCode, Packet, PacketError};

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram to the client.
    Send(Vec<u8>),
    /// Read `len` bytes of the file at `offset` and pass them to [`Session::on_read`] (fewer
    /// only at the end of the file).
    Read { offset: u64, len: usize },
    /// The transfer is over and nothing is wrong.
    Done(Done),
    /// The transfer is over and did not deliver the file.
    Failed(Failure),
    /// A datagram was not understood or not expected; it changed nothing.
    Ignored(Ignored),
}

/// A transfer that ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Every block was acknowledged.
    Complete { bytes: u64 },
    /// The client answered the OACK with an ERROR before any data: what PXE ROMs do after
    /// asking for tsize. A normal step of a PXE boot, not a failure.
    AbortedAfterOack { code: ErrorCode, message: String },
}

/// Why a transfer did not deliver its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no acknowledgement of block {block} after {retries} retransmissions")]
    Timeout { block: u16, retries: u32 },
    #[error("the first {what} was not acknowledged within {} ms", after.as_millis())]
    NoFirstAck { what: &'static str, after: Duration },
    #[error("aborted by the client at block {block} (error {code}: {message:?})")]
    AbortedByClient {
        block: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("the file is shorter than when the transfer began (read {got} of {want} bytes)")]
    FileShrunk { want: usize, got: usize },
}

/// A datagram the session did not act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("malformed: {0}")]
    Malformed(#[from] PacketError),
    #[error("unexpected {0} packet from the client")]
    Unexpected(&'static str),
    #[error("ACK of block {0} is outside the window")]
    StaleAck(u16),
    #[error("packet after the end of the transfer")]
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// OACK sent, waiting for ACK 0.
    AwaitOackAck,
    /// Waiting for the driver's `on_read`.
    Reading {
        len: usize,
    },
    /// A window is in flight.
    AwaitAck,
    Finished,
}

/// A read transfer of one file to one client.
#[derive(Debug)]
pub struct Session {
    blksize: usize,
    windowsize: u64,
    timeout: Duration,
    retries: u32,
    file_size: u64,
    /// Blocks in the file, counting the final short (possibly empty) block.
    total_blocks: u64,
    oack: Option<Vec<u8>>,
    state: State,
    /// Index (from 0) of the first unacknowledged block.
    base: u64,
    /// File bytes from `base * blksize` on: the current window and what is read ahead of it.
    window: Vec<u8>,
    /// Blocks of the current window that were sent.
    in_flight: u64,
    /// Retransmissions since the last progress.
    attempts: u32,
    retransmissions: u64,
    deadline: Option<Instant>,
    /// How long the client has to acknowledge the first packet (see
    /// [`Session::with_first_ack_timeout`]).
    first_ack_timeout: Option<Duration>,
    /// When the transfer fails unless the client acknowledged something; `None` once it did.
    first_ack_deadline: Option<Instant>,
}

/// The wire block number of the block with index `i`: blocks count from 1 and wrap from
/// 65535 to 0 (as tftp-hpa, curl and iPXE expect).
fn wire_block(i: u64) -> u16 {
    ((i + 1) % 65536) as u16
}

impl Session {
    /// A transfer of a `file_size`-byte file with negotiated parameters. `timeout` applies when
    /// the client negotiated none; `retries` bounds the retransmissions of one packet.
    pub fn new(negotiated: &Negotiated, file_size: u64, timeout: Duration, retries: u32) -> Self {
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
        Session {
            blksize,
            windowsize: u64::from(negotiated.windowsize.max(1)),
            timeout: negotiated.timeout.unwrap_or(timeout),
            retries,
            file_size,
            total_blocks: file_size / blksize as u64 + 1,
            oack,
            state: State::Finished,
            base: 0,
            window: Vec::new(),
            in_flight: 0,
            attempts: 0,
            retransmissions: 0,
            deadline: None,
            first_ack_timeout: None,
            first_ack_deadline: None,
        }
    }

    /// Ends the transfer when the client has not acknowledged the first packet (the OACK or
    /// the first DATA block) within `timeout` of [`Session::start`], whatever the
    /// retransmission budget. A real client answers in milliseconds; a request with a forged
    /// source, or from a flood that never reads its answers, would otherwise hold a transfer
    /// slot for `timeout` x `retries`.
    pub fn with_first_ack_timeout(mut self, timeout: Duration) -> Self {
        self.first_ack_timeout = Some(timeout);
        self
    }

    /// Starts the transfer: the OACK, or a read of the first window.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        self.first_ack_deadline = self.first_ack_timeout.map(|t| now + t);
        match self.oack.clone() {
            Some(oack) => {
                self.state = State::AwaitOackAck;
                self.deadline = Some(now + self.timeout);
                vec![Output::Send(oack)]
            }
            None => self.fill_window(now),
        }
    }

    /// When [`Session::on_timeout`] must be called next; `None` when no timer runs.
    pub fn poll_at(&self) -> Option<Instant> {
        match self.state {
            State::AwaitOackAck | State::AwaitAck => match (self.deadline, self.first_ack_deadline)
            {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            State::Reading { .. } | State::Finished => None,
        }
    }

    /// Retransmitted packets (OACKs and DATA) so far.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// The retransmission timeout in use.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once a Done or Failed output was produced.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Handles one datagram from the client.
    pub fn on_packet(&mut self, now: Instant, bytes: &[u8]) -> Vec<Output> {
        let packet = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => return vec![Output::Ignored(e.into())],
        };
        if self.state == State::Finished {
            return vec![Output::Ignored(Ignored::Finished)];
        }
        match packet {
            Packet::Error { code, message } => {
                let message = String::from_utf8_lossy(message).into_owned();
                let after_oack = self.state == State::AwaitOackAck;
                self.finish();
                if after_oack {
                    vec![Output::Done(Done::AbortedAfterOack { code, message })]
                } else {
                    vec![Output::Failed(Failure::AbortedByClient {
                        block: wire_block(self.base),
                        code,
                        message,
                    })]
                }
            }
            Packet::Ack { block } => self.on_ack(now, block),
            Packet::Request(_) => vec![Output::Ignored(Ignored::Unexpected("request"))],
            Packet::Data { .. } => vec![Output::Ignored(Ignored::Unexpected("DATA"))],
            Packet::Oack { .. } => vec![Output::Ignored(Ignored::Unexpected("OACK"))],
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) -> Vec<Output> {
        match self.state {
            State::AwaitOackAck if block == 0 => {
                self.attempts = 0;
                self.first_ack_deadline = None;
                self.fill_window(now)
            }
            State::AwaitAck => {
                let Some(k) = (0..self.in_flight).find(|&k| wire_block(self.base + k) == block)
                else {
                    return vec![Output::Ignored(Ignored::StaleAck(block))];
                };
                let acked = self.base + k;
                self.first_ack_deadline = None;
                if acked + 1 == self.total_blocks {
                    self.finish();
                    return vec![Output::Done(Done::Complete {
                        bytes: self.file_size,
                    })];
                }
                let consumed = usize::try_from(k + 1)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(self.blksize)
                    .min(self.window.len());
                self.window.drain(..consumed);
                self.base = acked + 1;
                self.attempts = 0;
                self.fill_window(now)
            }
            _ => vec![Output::Ignored(Ignored::StaleAck(block))],
        }
    }

    /// Asks for the bytes the window lacks, or sends it when it has them all.
    fn fill_window(&mut self, now: Instant) -> Vec<Output> {
        let start = self.base.saturating_mul(self.blksize as u64);
        let want = (self.windowsize.saturating_mul(self.blksize as u64))
            .min(self.file_size.saturating_sub(start));
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        let missing = want.saturating_sub(self.window.len());
        if missing == 0 {
            return self.send_window(now, false);
        }
        self.state = State::Reading { len: missing };
        vec![Output::Read {
            offset: start + self.window.len() as u64,
            len: missing,
        }]
    }

    /// Hands the session the bytes of the last [`Output::Read`].
    pub fn on_read(&mut self, now: Instant, data: &[u8]) -> Vec<Output> {
        let State::Reading { len } = self.state else {
            return Vec::new();
        };
        if data.len() != len {
            self.finish();
            let failure = Failure::FileShrunk {
                want: len,
                got: data.len(),
            };
            return vec![
                Output::Send(
                    Packet::error(ErrorCode::NOT_DEFINED, "file changed during transfer").emit(),
                ),
                Output::Failed(failure),
            ];
        }
        self.window.extend_from_slice(data);
        self.send_window(now, false)
    }

    /// Sends the blocks of the current window (again, when `retransmit`).
    fn send_window(&mut self, now: Instant, retransmit: bool) -> Vec<Output> {
        let count = self
            .windowsize
            .min(self.total_blocks.saturating_sub(self.base));
        let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for k in 0..count {
            let from = usize::try_from(k)
                .unwrap_or(usize::MAX)
                .saturating_mul(self.blksize);
            let to = from.saturating_add(self.blksize).min(self.window.len());
            let data = self.window.get(from..to).unwrap_or_default();
            out.push(Output::Send(
                Packet::Data {
                    block: wire_block(self.base + k),
                    data,
                }
                .emit(),
            ));
        }
        if retransmit {
            self.retransmissions += count;
        }
        self.in_flight = count;
        self.state = State::AwaitAck;
        self.deadline = Some(now + self.timeout);
        out
    }

    /// Handles the timer: retransmits, or gives up after `retries` retransmissions.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Output> {
        if let (State::AwaitOackAck | State::AwaitAck, Some(at), Some(after)) =
            (self.state, self.first_ack_deadline, self.first_ack_timeout)
            && now >= at
        {
            let what = match self.state {
                State::AwaitOackAck => "OACK",
                _ => "DATA block",
            };
            self.finish();
            return vec![
                Output::Send(Packet::error(ErrorCode::NOT_DEFINED, "timed out").emit()),
                Output::Failed(Failure::NoFirstAck { what, after }),
            ];
        }
        match (self.state, self.deadline) {
            (State::AwaitOackAck | State::AwaitAck, Some(at)) if now >= at => {}
            _ => return Vec::new(),
        }
        if self.attempts >= self.retries {
            let block = match self.state {
                State::AwaitOackAck => 0,
                _ => wire_block(self.base),
            };
            self.finish();
            return vec![
                Output::Send(Packet::error(ErrorCode::NOT_DEFINED, "timed out").emit()),
                Output::Failed(Failure::Timeout {
                    block,
                    retries: self.retries,
                }),
            ];
        }
        self.attempts += 1;
        match (&self.oack, self.state) {
            (Some(oack), State::AwaitOackAck) => {
                self.retransmissions += 1;
                self.deadline = Some(now + self.timeout);
                vec![Output::Send(oack.clone())]
            }
            _ => self.send_window(now, true),
        }
    }

    fn finish(&mut self) {
        self.state = State::Finished;
        self.deadline = None;
        self.first_ack_deadline = None;
        self.window = Vec::new();
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
