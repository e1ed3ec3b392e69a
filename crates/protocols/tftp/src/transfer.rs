//! The task that drives one transfer: its own socket (a new transfer ID, RFC 1350), the file,
//! the timer, and a pure [`Session`] that decides everything.

use std::collections::VecDeque;
use std::io::{self, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, Outcome};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::options::{Limits, Negotiated, negotiate};
use crate::packet::{ErrorCode, MAX_PACKET_LEN, Packet};
use crate::server::{is_transient, udp_socket};
use crate::session::{Done, Failure, Output, Session};
use crate::stats::TftpStats;

/// Everything a transfer task needs, decided by the server loop.
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

/// Runs one transfer to its end and records its boot event, except for a transfer nobody
/// answered: that one is returned for the server to report (at most one report a second).
/// Its slot is the server's until the task ends (the server watches its transfer tasks).
pub(crate) async fn run(t: Transfer) -> Option<Unanswered> {
    let (end, negotiated, retransmissions) = drive(&t).await;
    record(&t, end, negotiated.as_ref(), retransmissions)
}

async fn drive(t: &Transfer) -> (End, Option<Negotiated>, u64) {
    let socket = match udp_socket(t.local, t.interface.as_deref(), false) {
        Ok(s) => s,
        Err(e) => return (End::Failed(format!("no transfer socket: {e}")), None, 0),
    };
    let (mut file, size) = match open(&t.path).await {
        Ok(f) => f,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::NotFound {
                ErrorCode::FILE_NOT_FOUND
            } else {
                ErrorCode::NOT_DEFINED
            };
            send(
                &socket,
                t.peer,
                &Packet::error(code, "cannot read file").emit(),
            )
            .await;
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
    let mut reader = Reader {
        file: &mut file,
        position: 0,
        buf: Vec::new(),
    };
    let mut queue: VecDeque<Output> = session.start(Instant::now()).into();
    let mut datagram = vec![0u8; MAX_PACKET_LEN];
    let end = loop {
        if let Some(end) = carry_out(t, &socket, &mut session, &mut reader, &mut queue).await {
            break end;
        }
        let deadline = session.poll_at();
        tokio::select! {
            () = t.shutdown.cancelled() => {
                let msg = Packet::error(ErrorCode::NOT_DEFINED, "server shutting down").emit();
                send(&socket, t.peer, &msg).await;
                break End::Failed("server shutting down".into());
            }
            () = t.evicted.cancelled() => {
                let msg = Packet::error(ErrorCode::NOT_DEFINED, "server busy, retry").emit();
                send(&socket, t.peer, &msg).await;
                break End::Failed("evicted: its slot went to a client with fewer transfers".into());
            }
            () = sleep_until(deadline) => {
                queue.extend(session.on_timeout(Instant::now()));
            }
            received = socket.recv_from(&mut datagram) => match received {
                Ok((len, from)) if from == t.peer => {
                    let bytes = datagram.get(..len).unwrap_or_default();
                    queue.extend(session.on_packet(Instant::now(), bytes));
                }
                Ok((_, from)) => {
                    // RFC 1350: a packet from another transfer ID gets ERROR 5; ours goes on.
                    t.stats.bad_packet();
                    debug!(peer = %from, transfer_peer = %t.peer, "tftp packet from a stranger");
                    let msg = Packet::error(ErrorCode::UNKNOWN_TID, "unknown transfer ID").emit();
                    send(&socket, from, &msg).await;
                }
                Err(e) if is_transient(&e) => debug!(peer = %t.peer, error = %e, "tftp receive error"),
                Err(e) => break End::Failed(format!("socket error: {e}")),
            }
        }
    };
    (end, Some(negotiated), session.retransmissions())
}

/// Carries out the session's outputs in order; returns how the transfer ended, if it did.
async fn carry_out(
    t: &Transfer,
    socket: &UdpSocket,
    session: &mut Session,
    reader: &mut Reader<'_>,
    queue: &mut VecDeque<Output>,
) -> Option<End> {
    while let Some(output) = queue.pop_front() {
        match output {
            Output::Send(bytes) => send(socket, t.peer, &bytes).await,
            Output::Read { offset, len } => match reader.read_at(offset, len).await {
                Ok(data) => queue.extend(session.on_read(Instant::now(), data)),
                Err(e) => {
                    let msg = Packet::error(ErrorCode::NOT_DEFINED, "read error").emit();
                    send(socket, t.peer, &msg).await;
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
    None
}

/// Opens the file and reads its size (the size fixed for this transfer).
async fn open(path: &std::path::Path) -> io::Result<(File, u64)> {
    let file = File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta.len()))
}

/// Streams the file in window-sized reads, seeking only when the session goes back.
struct Reader<'a> {
    file: &'a mut File,
    position: u64,
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    async fn read_at(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        if offset != self.position {
            self.file.seek(SeekFrom::Start(offset)).await?;
            self.position = offset;
        }
        self.buf.resize(len, 0);
        let mut filled = 0;
        while let Some(rest) = self.buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            let n = self.file.read(rest).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.position += filled as u64;
        Ok(self.buf.get(..filled).unwrap_or_default())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn send(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
    // A lost datagram is what retransmission is for: log and go on.
    if let Err(e) = socket.send_to(bytes, to).await {
        debug!(peer = %to, error = %e, "tftp send failed");
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
