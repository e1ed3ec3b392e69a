//! One transfer on a thread of its own: its own socket (a new transfer ID, RFC 1350), the
//! file, the retransmission timer, and a pure [`Session`] that decides everything.
//!
//! Why a thread and not a tokio task: in lock-step each block is one ACK in and one DATA out.
//! A thread blocked in `recv_from` on its own socket does that in two system calls, with no
//! hand-off; as a task on the multi-thread runtime every block cost a wake-up of another
//! worker thread (73 % of the time in `finish_task_switch`, docs/benchmarks.md).
//!
//! The retransmission timer is the socket's receive timeout, never longer than [`SLICE`]:
//! between receives the thread checks the shutdown and eviction tokens, so either ends a
//! transfer within [`SLICE`]. A window's blocks leave in one `sendmmsg` ([`Link::send`]).
//!
//! Threads are bounded by the server's transfer slots: one thread per admitted transfer
//! (`max_transfers` in all), plus, for at most [`SLICE`] each, transfers that were just
//! evicted (their slot is given away at once, their thread ends at its next check).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, Outcome};
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info, warn};

use crate::options::{Limits, Negotiated, negotiate};
use crate::packet::{ErrorCode, Packet};
use crate::server::{is_transient, std_udp_socket};
use crate::session::{Done, Failure, Output, Session};
use crate::stats::TftpStats;

/// Longest a transfer thread waits in `recv_from` before it looks at its tokens again.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// File bytes read ahead per `pread` (a lock-step block would otherwise cost a system call of
/// its own); small, as every running transfer holds this much.
const READ_AHEAD: usize = 16 * 1024;

/// Receive buffer of a transfer. Its client sends ACKs (4 bytes) and ERRORs (a short message):
/// a longer datagram is cut here and reads the same (trailing bytes after an ACK are ignored,
/// an ERROR's message needs no NUL). Every running transfer holds one, so not 64 KiB.
const RECV_LEN: usize = 2048;

/// Datagrams per `sendmmsg` (a larger window goes out in several calls).
const BATCH: usize = 64;

/// Everything a transfer needs, decided by the server loop.
pub(crate) struct Transfer {
    pub peer: SocketAddr,
    /// The catalogue name of the file (for events and logs).
    pub name: &'static str,
    pub path: PathBuf,
    pub options: Vec<(String, String)>,
    /// Address for the transfer socket (port 0: a fresh transfer ID).
    pub local: SocketAddr,
    pub interface: Option<String>,
    pub limits: Limits,
    pub timeout: Duration,
    pub retries: u32,
    pub first_ack_timeout: Duration,
    pub catalogue: Arc<dyn Catalogue>,
    pub stats: Arc<TftpStats>,
    pub shutdown: CancellationToken,
    /// Cancelled when the server gives this transfer's slot to a client with fewer transfers.
    pub evicted: CancellationToken,
    pub started: Instant,
}

/// How a transfer ended, for the boot event.
enum End {
    Done(Done),
    Failed(String),
    /// The client never acknowledged the first packet (a forged or flooding request, mostly):
    /// reported through the server's rate limiter, not here.
    Unanswered(String),
}

/// A transfer nobody answered, for the server's rate-limited report.
#[derive(Debug)]
pub(crate) struct Unanswered {
    pub peer: SocketAddr,
    /// The boot event's detail, should it be reported.
    pub detail: String,
}

/// Starts the transfer on a thread of its own; the future resolves when it has ended and
/// recorded its boot event (or with the transfer nobody answered, for the server to report).
/// A thread that cannot be started fails the transfer (a boot event, as any failure).
pub(crate) fn start(t: Transfer) -> impl Future<Output = Option<Unanswered>> + Send + 'static {
    let t = Arc::new(t);
    let (tx, rx) = oneshot::channel();
    let span = Span::current();
    let mine = Arc::clone(&t);
    let spawned = thread::Builder::new()
        .name("tftp-transfer".into())
        .spawn(move || {
            let _entered = span.enter();
            // Nobody waits any more only if the server's future was dropped: nothing to do.
            let _ = tx.send(run(&mine));
        });
    let failed = spawned
        .err()
        .map(|e| record(&t, End::Failed(format!("no transfer thread: {e}")), None, 0));
    async move {
        match failed {
            Some(unanswered) => unanswered,
            // A panicked thread drops its sender: the slot is freed, as for a panicked task.
            None => rx.await.ok().flatten(),
        }
    }
}

/// Runs one transfer to its end and records its boot event, except for a transfer nobody
/// answered: that one is returned for the server to report (at most one report a second).
pub(crate) fn run(t: &Transfer) -> Option<Unanswered> {
    let (end, negotiated, retransmissions) = drive(t);
    record(t, end, negotiated.as_ref(), retransmissions)
}

fn drive(t: &Transfer) -> (End, Option<Negotiated>, u64) {
    let socket = match std_udp_socket(t.local, t.interface.as_deref(), false, false) {
        Ok(s) => s,
        Err(e) => return (End::Failed(format!("no transfer socket: {e}")), None, 0),
    };
    let mut link = Link::new(socket, t.peer);
    let (file, size) = match open(&t.path) {
        Ok(f) => f,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::NotFound {
                ErrorCode::FILE_NOT_FOUND
            } else {
                ErrorCode::NOT_DEFINED
            };
            link.send_error(code, "cannot read file");
            let reason = format!("cannot open {}: {e}", t.path.display());
            return (End::Failed(reason), None, 0);
        }
    };
    let requested: Vec<(&str, &str)> = t
        .options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let negotiated = negotiate(&requested, size, &t.limits);
    let mut session = Session::new(&negotiated, size, t.timeout, t.retries)
        .with_first_ack_timeout(t.first_ack_timeout);
    let mut reader = Reader::new(file);
    let mut queue: VecDeque<Output> = session.start(Instant::now()).into();
    let mut datagram = vec![0u8; RECV_LEN];
    let end = loop {
        if let Some(end) = carry_out(t, &mut link, &mut session, &mut reader, &mut queue) {
            break end;
        }
        if t.shutdown.is_cancelled() {
            link.send_error(ErrorCode::NOT_DEFINED, "server shutting down");
            break End::Failed("server shutting down".into());
        }
        if t.evicted.is_cancelled() {
            link.send_error(ErrorCode::NOT_DEFINED, "server busy, retry");
            break End::Failed("evicted: its slot went to a client with fewer transfers".into());
        }
        let now = Instant::now();
        let wait = match session.poll_at() {
            Some(at) if at <= now => {
                queue.extend(session.on_timeout(now));
                continue;
            }
            Some(at) => (at - now).min(SLICE),
            None => SLICE,
        };
        if let Err(e) = link.wait_at_most(wait) {
            break End::Failed(format!("socket error: {e}"));
        }
        match link.socket.recv_from(&mut datagram) {
            Ok((len, from)) if from == t.peer => {
                let bytes = datagram.get(..len).unwrap_or_default();
                queue.extend(session.on_packet(Instant::now(), bytes));
            }
            Ok((_, from)) => {
                // RFC 1350: a packet from another transfer ID gets ERROR 5; ours goes on.
                t.stats.bad_packet();
                debug!(peer = %from, transfer_peer = %t.peer, "tftp packet from a stranger");
                let msg = Packet::error(ErrorCode::UNKNOWN_TID, "unknown transfer ID").emit();
                if let Err(e) = link.socket.send_to(&msg, from) {
                    debug!(peer = %from, error = %e, "tftp send failed");
                }
            }
            // The receive timeout: the loop looks at the tokens and the timer.
            Err(e) if is_timeout(&e) => {}
            Err(e) if is_transient(&e) => debug!(peer = %t.peer, error = %e, "tftp receive error"),
            Err(e) => break End::Failed(format!("socket error: {e}")),
        }
    };
    (end, Some(negotiated), session.retransmissions())
}

/// Carries out the session's outputs in order, consecutive sends in one batch; returns how
/// the transfer ended, if it did.
fn carry_out(
    t: &Transfer,
    link: &mut Link,
    session: &mut Session,
    reader: &mut Reader,
    queue: &mut VecDeque<Output>,
) -> Option<End> {
    let mut batch = Vec::new();
    while let Some(output) = queue.pop_front() {
        let output = match output {
            Output::Send(bytes) => {
                batch.push(bytes);
                continue;
            }
            other => other,
        };
        link.send(&batch);
        batch.clear();
        match output {
            Output::Send(_) => {}
            Output::Read { offset, len } => match reader.read_at(offset, len) {
                Ok(data) => queue.extend(session.on_read(Instant::now(), data)),
                Err(e) => {
                    link.send_error(ErrorCode::NOT_DEFINED, "read error");
                    return Some(End::Failed(format!("reading {}: {e}", t.path.display())));
                }
            },
            Output::Ignored(reason) => {
                t.stats.bad_packet();
                debug!(peer = %t.peer, %reason, "tftp packet ignored");
            }
            Output::Done(done) => return Some(End::Done(done)),
            Output::Failed(failure @ Failure::NoFirstAck { .. }) => {
                return Some(End::Unanswered(failure.to_string()));
            }
            Output::Failed(failure) => return Some(End::Failed(failure.to_string())),
        }
    }
    link.send(&batch);
    None
}

/// What `recv_from` reports when the socket's receive timeout runs out.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Opens the file and reads its size (the size fixed for this transfer).
fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta.len()))
}

/// The transfer's socket and its peer.
struct Link {
    socket: UdpSocket,
    peer: SocketAddr,
    /// The receive timeout set on the socket (changed only when it must be).
    timeout: Option<Duration>,
    /// `sendmmsg`'s headers, allocated at the first window of more than one block.
    headers: Option<MultiHeaders<SockaddrStorage>>,
}

impl Link {
    fn new(socket: UdpSocket, peer: SocketAddr) -> Link {
        Link {
            socket,
            peer,
            timeout: None,
            headers: None,
        }
    }

    /// Makes the next `recv_from` return within `wait` (rounded up to a millisecond). Only a
    /// wait shorter than [`SLICE`] changes the socket option, so a lock-step block never does.
    fn wait_at_most(&mut self, wait: Duration) -> io::Result<()> {
        let wait = wait.max(Duration::from_millis(1));
        let wait = if wait >= SLICE { SLICE } else { wait };
        if self.timeout != Some(wait) {
            self.socket.set_read_timeout(Some(wait))?;
            self.timeout = Some(wait);
        }
        Ok(())
    }

    /// Sends datagrams to the peer, up to [`BATCH`] per system call. A lost datagram is what
    /// retransmission is for: errors are logged, and the rest of the batch goes on.
    fn send(&mut self, datagrams: &[Vec<u8>]) {
        let mut rest = datagrams;
        while !rest.is_empty() {
            let sent = match rest {
                [one] => self.socket.send_to(one, self.peer).map(|_| 1),
                _ => self.send_many(rest),
            };
            let skip = sent.unwrap_or_else(|e| {
                debug!(peer = %self.peer, error = %e, "tftp send failed");
                1
            });
            rest = rest.get(skip..).unwrap_or_default();
        }
    }

    /// One `sendmmsg` of up to [`BATCH`] datagrams; how many it covered. The kernel stops
    /// early only on an error; the datagrams it did not send are then lost, as a datagram
    /// lost on the wire (nix's result iterator is not read: for sends it would read
    /// addresses it never wrote).
    fn send_many(&mut self, datagrams: &[Vec<u8>]) -> io::Result<usize> {
        let datagrams = datagrams.get(..BATCH).unwrap_or(datagrams);
        let slices: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|d| [IoSlice::new(d)]).collect();
        let addrs = vec![Some(SockaddrStorage::from(self.peer)); slices.len()];
        let no_control: [ControlMessage<'_>; 0] = [];
        let headers = self
            .headers
            .get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
        sendmmsg(
            self.socket.as_raw_fd(),
            headers,
            &slices,
            &addrs,
            no_control,
            MsgFlags::empty(),
        )?;
        Ok(datagrams.len())
    }

    fn send_error(&mut self, code: ErrorCode, message: &str) {
        self.send(&[Packet::error(code, message).emit()]);
    }
}

/// Positioned reads of the file with read-ahead: one `pread` per [`READ_AHEAD`] bytes.
struct Reader {
    file: File,
    /// File bytes from `start` on.
    ahead: Vec<u8>,
    start: u64,
}

impl Reader {
    fn new(file: File) -> Reader {
        Reader {
            file,
            ahead: Vec::new(),
            start: 0,
        }
    }

    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let skip = offset
            .checked_sub(self.start)
            .and_then(|s| usize::try_from(s).ok());
        let cached = skip.filter(|&s| s.saturating_add(len) <= self.ahead.len());
        let skip = match cached {
            Some(s) => s,
            None => {
                self.fill(offset, len.max(READ_AHEAD))?;
                0
            }
        };
        let end = skip.saturating_add(len).min(self.ahead.len());
        Ok(self.ahead.get(skip..end).unwrap_or_default())
    }

    /// Reads `len` bytes at `offset` into `ahead` (fewer only at the end of the file).
    fn fill(&mut self, offset: u64, len: usize) -> io::Result<()> {
        self.start = offset;
        self.ahead.resize(len, 0);
        let mut filled = 0;
        while let Some(rest) = self.ahead.get_mut(filled..).filter(|r| !r.is_empty()) {
            match self.file.read_at(rest, offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ahead.clear();
                    return Err(e);
                }
            }
        }
        self.ahead.truncate(filled);
        Ok(())
    }
}

/// Counts, logs and records the one boot event of this transfer (or hands an unanswered one
/// back to the server).
fn record(
    t: &Transfer,
    end: End,
    negotiated: Option<&Negotiated>,
    retransmissions: u64,
) -> Option<Unanswered> {
    let elapsed = t.started.elapsed();
    let params = negotiated
        .map(|n| {
            format!(
                "blksize {}, windowsize {}, {retransmissions} retransmissions",
                n.blksize, n.windowsize
            )
        })
        .unwrap_or_default();
    t.stats.retransmitted(retransmissions);
    let mut delivered = None;
    let (outcome, detail) = match end {
        End::Done(Done::Complete { bytes }) => {
            delivered = Some(bytes);
            t.stats.ok();
            let detail = format!(
                "{}: {bytes} bytes in {} ms ({params})",
                t.name,
                elapsed.as_millis()
            );
            info!(peer = %t.peer, %detail, "tftp transfer complete");
            (Outcome::Ok, detail)
        }
        End::Done(Done::AbortedAfterOack { code, message }) => {
            t.stats.aborted();
            let detail = format!(
                "{}: aborted by client after OACK (error {code}: {message:?})",
                t.name
            );
            debug!(peer = %t.peer, %detail, "tftp option probe ended");
            (Outcome::Ok, detail)
        }
        End::Unanswered(reason) => {
            t.stats.failed();
            let detail = format!("{}: {reason}", t.name);
            debug!(peer = %t.peer, %detail, "tftp transfer unanswered");
            return Some(Unanswered {
                peer: t.peer,
                detail,
            });
        }
        End::Failed(reason) => {
            t.stats.failed();
            let detail = format!(
                "{}: {reason} after {} ms ({params})",
                t.name,
                elapsed.as_millis()
            );
            warn!(peer = %t.peer, %detail, "tftp transfer failed");
            (Outcome::Failed, detail)
        }
    };
    let mut event = BootEvent::new(BootStage::Tftp, outcome, detail).peer(t.peer.ip());
    event.started = std::time::SystemTime::now().checked_sub(elapsed);
    event.bytes = delivered;
    t.catalogue.record(event);
    None
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
