//! Session tests with scripted time: a fake clock is an `Instant` plus offsets.

use super::*;
use crate::options::{Limits, negotiate};

const T: Duration = Duration::from_secs(1);

/// A file and a session, with `Read` outputs served from memory.
struct Harness {
    file: Vec<u8>,
    session: Session,
    now: Instant,
}

/// A packet the server sent, decoded for assertions.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Data(u16, usize),
    Oack(Vec<(String, String)>),
    Error(u16),
}

impl Harness {
    fn limits(&self) -> Limits {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            mtu: None,
        }
    }

    fn new(size: usize, options: &[(&str, &str)], retries: u32) -> Self {
        let file: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let limits = Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            mtu: None,
        };
        let n = negotiate(options, size as u64, &limits);
        Harness {
            session: Session::new(&n, size as u64, T, retries),
            file,
            now: Instant::now(),
        }
    }

    /// Serves reads; returns what was sent and the final outcome, if any.
    fn run(&mut self, mut outputs: Vec<Output>) -> (Vec<Sent>, Vec<Output>) {
        let mut sent = Vec::new();
        let mut ends = Vec::new();
        while !outputs.is_empty() {
            let mut next = Vec::new();
            for o in outputs {
                match o {
                    Output::Send(bytes) => sent.push(decode(&bytes)),
                    Output::Read { offset, len } => {
                        let from = (offset as usize).min(self.file.len());
                        let to = (from + len).min(self.file.len());
                        next.extend(self.session.on_read(self.now, &self.file[from..to]));
                    }
                    end => ends.push(end),
                }
            }
            outputs = next;
        }
        (sent, ends)
    }

    fn start(&mut self) -> (Vec<Sent>, Vec<Output>) {
        let o = self.session.start(self.now);
        self.run(o)
    }

    fn ack(&mut self, block: u16) -> (Vec<Sent>, Vec<Output>) {
        let o = self
            .session
            .on_packet(self.now, &Packet::Ack { block }.emit());
        self.run(o)
    }

    fn advance(&mut self, d: Duration) -> (Vec<Sent>, Vec<Output>) {
        self.now += d;
        let o = self.session.on_timeout(self.now);
        self.run(o)
    }
}

/// Decodes a sent packet for assertions (`data_carries_the_file_bytes` checks contents).
fn decode(bytes: &[u8]) -> Sent {
    match Packet::parse(bytes).unwrap() {
        Packet::Data { block, data } => Sent::Data(block, data.len()),
        Packet::Oack { options } => Sent::Oack(
            options
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
        ),
        Packet::Error { code, .. } => Sent::Error(code.0),
        other => panic!("server sent {other:?}"),
    }
}

fn data(blocks: &[(u16, usize)]) -> Vec<Sent> {
    blocks.iter().map(|&(b, n)| Sent::Data(b, n)).collect()
}

#[test]
fn lock_step_without_options() {
    let mut h = Harness::new(1000, &[], 5);
    assert_eq!(h.start().0, data(&[(1, 512)]));
    assert_eq!(h.session.poll_at(), Some(h.now + T));
    assert_eq!(h.ack(1).0, data(&[(2, 488)]));
    let (sent, ends) = h.ack(2);
    assert!(sent.is_empty());
    assert_eq!(ends, vec![Output::Done(Done::Complete { bytes: 1000 })]);
    assert!(h.session.is_finished());
    assert_eq!(h.session.poll_at(), None);
}

#[test]
fn data_carries_the_file_bytes() {
    let mut h = Harness::new(600, &[], 5);
    let outputs = h.session.start(h.now);
    let [
        Output::Read {
            offset: 0,
            len: 512,
        },
    ] = outputs.as_slice()
    else {
        panic!("{outputs:?}")
    };
    let file = h.file.clone();
    let sent = h.session.on_read(h.now, &file[..512]);
    let [Output::Send(bytes)] = sent.as_slice() else {
        panic!()
    };
    assert_eq!(
        Packet::parse(bytes).unwrap(),
        Packet::Data {
            block: 1,
            data: &file[..512]
        }
    );
    let outputs = h.session.on_packet(h.now, &Packet::Ack { block: 1 }.emit());
    assert_eq!(
        outputs,
        vec![Output::Read {
            offset: 512,
            len: 88
        }]
    );
}

#[test]
fn exact_multiple_of_blksize_ends_with_an_empty_block() {
    let mut h = Harness::new(1024, &[], 5);
    h.start();
    assert_eq!(h.ack(1).0, data(&[(2, 512)]));
    assert_eq!(h.ack(2).0, data(&[(3, 0)]));
    assert_eq!(
        h.ack(3).1,
        vec![Output::Done(Done::Complete { bytes: 1024 })]
    );
}

#[test]
fn empty_file_is_one_empty_block() {
    let mut h = Harness::new(0, &[], 5);
    assert_eq!(h.start().0, data(&[(1, 0)]));
    assert_eq!(h.ack(1).1, vec![Output::Done(Done::Complete { bytes: 0 })]);
}

#[test]
fn oack_then_ack_zero_starts_data() {
    let mut h = Harness::new(3000, &[("tsize", "0"), ("blksize", "1468")], 5);
    let (sent, _) = h.start();
    assert_eq!(
        sent,
        vec![Sent::Oack(vec![
            ("tsize".into(), "3000".into()),
            ("blksize".into(), "1468".into())
        ])]
    );
    // A stray ACK 1 before ACK 0 changes nothing.
    assert!(matches!(h.ack(1).1.as_slice(), [Output::Ignored(_)]));
    assert_eq!(h.ack(0).0, data(&[(1, 1468)]));
    assert_eq!(h.ack(1).0, data(&[(2, 1468)]));
    assert_eq!(h.ack(2).0, data(&[(3, 64)]));
    assert_eq!(
        h.ack(3).1,
        vec![Output::Done(Done::Complete { bytes: 3000 })]
    );
}

#[test]
fn client_error_after_oack_is_an_abort_not_a_failure() {
    let mut h = Harness::new(3000, &[("tsize", "0")], 5);
    h.start();
    let probe_abort = b"\x00\x05\x00\x08tsize probe\x00";
    let outputs = h.session.on_packet(h.now, probe_abort);
    assert_eq!(
        outputs,
        vec![Output::Done(Done::AbortedAfterOack {
            code: ErrorCode::OPTION_REJECTED,
            message: "tsize probe".into()
        })]
    );
    assert_eq!(
        h.session.poll_at(),
        None,
        "no retransmission after an abort"
    );
    assert!(h.advance(10 * T).0.is_empty());
    assert_eq!(
        h.session.on_packet(h.now, &Packet::Ack { block: 0 }.emit()),
        vec![Output::Ignored(Ignored::Finished)]
    );
}

#[test]
fn client_error_during_data_is_a_failure() {
    let mut h = Harness::new(3000, &[], 5);
    h.start();
    h.ack(1);
    let outputs = h.session.on_packet(h.now, b"\x00\x05\x00\x00disk full\x00");
    assert!(matches!(
        outputs.as_slice(),
        [Output::Failed(Failure::AbortedByClient { block: 2, .. })]
    ));
}

#[test]
fn window_slides_on_full_and_partial_acks() {
    let mut h = Harness::new(10 * 512 + 100, &[("windowsize", "4")], 5);
    h.start();
    assert_eq!(h.ack(0).0, data(&[(1, 512), (2, 512), (3, 512), (4, 512)]));
    // Full window acknowledged: the next four.
    assert_eq!(h.ack(4).0, data(&[(5, 512), (6, 512), (7, 512), (8, 512)]));
    // Partial: the client got 5 and 6 only; resend from 7, window of 4.
    assert_eq!(h.ack(6).0, data(&[(7, 512), (8, 512), (9, 512), (10, 512)]));
    // The last window is short: block 11 of 100 bytes.
    assert_eq!(h.ack(10).0, data(&[(11, 100)]));
    assert_eq!(
        h.ack(11).1,
        vec![Output::Done(Done::Complete { bytes: 5220 })]
    );
}

#[test]
fn duplicate_ack_of_previous_block_is_ignored() {
    let mut h = Harness::new(5000, &[], 5);
    h.start();
    h.ack(1);
    // Sorcerer's Apprentice: a late duplicate ACK 1 must not resend block 2.
    let (sent, ends) = h.ack(1);
    assert!(sent.is_empty());
    assert_eq!(ends, vec![Output::Ignored(Ignored::StaleAck(1))]);
    // Nor does an ACK from the future.
    assert_eq!(h.ack(9).1, vec![Output::Ignored(Ignored::StaleAck(9))]);
}

#[test]
fn retransmits_window_on_timeout_then_fails() {
    let mut h = Harness::new(5000, &[("windowsize", "2")], 3);
    h.start();
    h.ack(0);
    // Not yet due: nothing.
    assert!(h.advance(T / 2).0.is_empty());
    let mut resent = 0;
    for _ in 0..3 {
        let (sent, ends) = h.advance(T);
        assert_eq!(sent, data(&[(1, 512), (2, 512)]));
        assert!(ends.is_empty());
        resent += 1;
    }
    assert_eq!(resent, 3);
    assert_eq!(h.session.retransmissions(), 6);
    let (sent, ends) = h.advance(T);
    assert_eq!(sent, vec![Sent::Error(0)]);
    assert_eq!(
        ends,
        vec![Output::Failed(Failure::Timeout {
            block: 1,
            retries: 3
        })]
    );
    assert_eq!(h.session.poll_at(), None);
}

#[test]
fn progress_resets_the_retry_budget() {
    let mut h = Harness::new(5000, &[], 2);
    h.start();
    h.advance(T);
    h.advance(T);
    // Two retransmissions used; an ACK restores the budget.
    assert_eq!(h.ack(1).0, data(&[(2, 512)]));
    assert_eq!(h.advance(T).0, data(&[(2, 512)]));
    assert_eq!(h.advance(T).0, data(&[(2, 512)]));
    assert!(matches!(h.advance(T).1.as_slice(), [Output::Failed(_)]));
}

#[test]
fn oack_is_retransmitted_and_times_out() {
    let mut h = Harness::new(100, &[("tsize", "0")], 1);
    h.start();
    let (sent, _) = h.advance(T);
    assert!(matches!(sent.as_slice(), [Sent::Oack(_)]));
    let (_, ends) = h.advance(T);
    assert_eq!(
        ends,
        vec![Output::Failed(Failure::Timeout {
            block: 0,
            retries: 1
        })]
    );
}

#[test]
fn client_timeout_option_sets_the_timer() {
    let mut h = Harness::new(100, &[("timeout", "3")], 1);
    h.start();
    assert_eq!(h.session.timeout(), Duration::from_secs(3));
    assert_eq!(h.session.poll_at(), Some(h.now + Duration::from_secs(3)));
    assert!(h.advance(T).0.is_empty());
}

#[test]
fn block_numbers_roll_over_to_zero() {
    // 65536 full blocks of 512 (32 MiB) then the empty final block: numbers 1..=65535, 0, 1.
    let size = 65536 * 512;
    let mut h = Harness::new(size, &[("windowsize", "64")], 1);
    h.start();
    let mut sent = h.ack(0).0;
    let mut numbers = Vec::new();
    loop {
        let last = match sent.last() {
            Some(Sent::Data(b, _)) => *b,
            other => panic!("{other:?}"),
        };
        numbers.extend(sent.iter().map(|s| match s {
            Sent::Data(b, _) => *b,
            _ => unreachable!(),
        }));
        let (next, ends) = h.ack(last);
        if !ends.is_empty() {
            assert_eq!(
                ends,
                vec![Output::Done(Done::Complete { bytes: size as u64 })]
            );
            break;
        }
        sent = next;
    }
    assert_eq!(numbers.len(), 65537);
    assert_eq!(numbers[65534], 65535);
    assert_eq!(numbers[65535], 0);
    assert_eq!(numbers[65536], 1);
}

#[test]
fn short_read_fails_the_transfer() {
    let mut h = Harness::new(1000, &[], 1);
    let outputs = h.session.start(h.now);
    assert_eq!(
        outputs,
        vec![Output::Read {
            offset: 0,
            len: 512
        }]
    );
    let outputs = h.session.on_read(h.now, &[0; 10]);
    assert!(matches!(
        outputs.as_slice(),
        [
            Output::Send(_),
            Output::Failed(Failure::FileShrunk { want: 512, got: 10 })
        ]
    ));
}

#[test]
fn unexpected_and_malformed_packets_change_nothing() {
    let mut h = Harness::new(1000, &[], 1);
    h.start();
    let deadline = h.session.poll_at();
    for bytes in [
        &b""[..],
        b"\x00",
        b"\x00\x03\x00\x01abc",
        b"\x00\x01f\x00octet\x00",
        b"\x00\x06tsize\x001\x00",
        b"\x00\x63",
    ] {
        let out = h.session.on_packet(h.now, bytes);
        assert!(matches!(out.as_slice(), [Output::Ignored(_)]), "{bytes:?}");
    }
    assert_eq!(h.session.poll_at(), deadline);
    assert_eq!(h.ack(1).0, data(&[(2, 488)]));
}

const FIRST_ACK: Duration = Duration::from_secs(2);

#[test]
fn unacknowledged_first_block_fails_at_the_first_ack_timeout() {
    let mut h = Harness::new(1000, &[], 5);
    with_first_ack(&mut h);
    assert_eq!(h.start().0, data(&[(1, 512)]));
    assert_eq!(h.session.poll_at(), Some(h.now + T));
    // 1 s: the normal retransmission.
    assert_eq!(h.advance(T).0, data(&[(1, 512)]));
    assert_eq!(h.session.poll_at(), Some(h.now + T));
    // 2 s: given up, although 4 of 5 retransmissions are left.
    let (sent, ends) = h.advance(T);
    assert_eq!(sent, vec![Sent::Error(0)]);
    assert_eq!(
        ends,
        vec![Output::Failed(Failure::NoFirstAck {
            what: "DATA block",
            after: FIRST_ACK
        })]
    );
    assert_eq!(h.session.poll_at(), None);
    assert_eq!(h.session.retransmissions(), 1);
}

#[test]
fn first_ack_timeout_applies_to_the_oack_even_with_a_longer_negotiated_timeout() {
    let mut h = Harness::new(1000, &[("timeout", "10")], 5);
    with_first_ack(&mut h);
    assert!(matches!(h.start().0.as_slice(), [Sent::Oack(_)]));
    assert_eq!(h.session.poll_at(), Some(h.now + FIRST_ACK));
    let (sent, ends) = h.advance(FIRST_ACK);
    assert_eq!(sent, vec![Sent::Error(0)]);
    assert!(
        matches!(
            ends.as_slice(),
            [Output::Failed(Failure::NoFirstAck { what: "OACK", .. })]
        ),
        "{ends:?}"
    );
}

#[test]
fn once_acknowledged_the_full_retransmission_budget_applies() {
    let mut h = Harness::new(5000, &[], 5);
    with_first_ack(&mut h);
    h.start();
    h.advance(T);
    assert_eq!(h.ack(1).0, data(&[(2, 512)]));
    // Block 2 is never acknowledged: five retransmissions, one a second, then the end.
    for _ in 0..5 {
        assert_eq!(h.advance(T).0, data(&[(2, 512)]));
    }
    let (sent, ends) = h.advance(T);
    assert_eq!(sent, vec![Sent::Error(0)]);
    assert!(
        matches!(
            ends.as_slice(),
            [Output::Failed(Failure::Timeout {
                block: 2,
                retries: 5
            })]
        ),
        "{ends:?}"
    );
}

/// Gives the harness's session the first-ACK timeout (before it starts).
fn with_first_ack(h: &mut Harness) {
    let placeholder = Session::new(&negotiate(&[], 0, &h.limits()), 0, T, 0);
    let session = std::mem::replace(&mut h.session, placeholder);
    h.session = session.with_first_ack_timeout(FIRST_ACK);
}
