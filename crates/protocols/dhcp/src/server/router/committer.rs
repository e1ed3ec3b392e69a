//! The group commit of router mode, beside the receive loop: the loop decides every datagram at
//! once and sends what changes no lease (OFFERs, NAKs, INFORM's ACKs) straight away; what does
//! change leases comes here, in arrival order. While one commit is on disk the next batch
//! gathers, so a burst costs one fsync per batch and an OFFER never waits for one.
//!
//! The committer is a thread of its own, not a task: it waits for work, commits on its own
//! stack and sends the ACKs itself, so a REQUEST passes from the receive thread to it and
//! nowhere else. As a task it took three hand-overs between threads per batch (the queue's
//! wake-up of the task, `spawn_blocking` for the commit, the commit's end waking the task
//! again), each a futex wake and a chance to wait for a core behind the load.

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use flakeboot_catalogue::Catalogue;
use std::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{BATCH_CAP, Decided, DhcpStats, ReleaseRequest, finish, net_changes};
use crate::lease::{LeaseStore, LeaseStoreError};

/// At most this many decisions wait for the committer; the receive loop waits beyond it.
pub(super) const QUEUE: usize = 4 * BATCH_CAP;

/// Work for the committer, in the order the pool decided it.
pub(super) enum Pending {
    /// A reply (an ACK) or a change without a reply (DECLINE, RELEASE) whose lease changes must
    /// be durable first.
    Reply {
        decided: Box<Decided>,
        src: SocketAddr,
        arrived: Instant,
    },
    /// A user's release: the addresses the pool forgot, deleted before the answer.
    Release {
        ips: Vec<Ipv4Addr>,
        request: ReleaseRequest,
    },
}

/// What the committer sends and records with.
pub(super) struct Outbox {
    /// The DHCP socket, blocking.
    pub socket: Arc<UdpSocket>,
    pub catalogue: Arc<dyn Catalogue>,
    pub stats: Arc<DhcpStats>,
}

/// Start the committer on a thread of the runtime's blocking pool, for as long as `queue`
/// has senders. The handle ends when it has committed and answered everything queued.
pub(super) fn spawn(
    queue: mpsc::Receiver<Pending>,
    leases: Arc<dyn LeaseStore>,
    out: Outbox,
) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || run(queue, leases.as_ref(), &out))
}

/// Commit and answer everything that arrives on `queue`, a batch at a time, until the receive
/// loop drops its end (then what is queued is still committed and answered).
fn run(mut queue: mpsc::Receiver<Pending>, leases: &dyn LeaseStore, out: &Outbox) {
    let mut batch: Vec<(Decided, SocketAddr, Instant)> = Vec::with_capacity(BATCH_CAP);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            match pending {
                Pending::Reply {
                    decided,
                    src,
                    arrived,
                } => batch.push((*decided, src, arrived)),
                Pending::Release { ips, request } => {
                    // Keep the order: what the pool decided before the release is on disk first.
                    flush(&mut batch, leases, out);
                    release(leases, ips, request);
                }
            }
            if batch.len() < BATCH_CAP {
                next = queue.try_recv().ok();
            }
        }
        flush(&mut batch, leases, out);
    }
}

/// One commit of the batch's net changes, then its replies (only if the commit worked).
fn flush(batch: &mut Vec<(Decided, SocketAddr, Instant)>, leases: &dyn LeaseStore, out: &Outbox) {
    if batch.is_empty() {
        return;
    }
    let durable = commit(leases, batch.iter().map(|(d, _, _)| d));
    for (decided, src, arrived) in batch.drain(..) {
        let sent = decided
            .sendable(durable)
            .map(|(reply, dest)| out.socket.send_to(reply, dest));
        finish(
            decided,
            src,
            arrived,
            durable,
            sent,
            out.catalogue.as_ref(),
            &out.stats,
        );
    }
}

/// Delete a user's released leases from the store, then answer.
fn release(leases: &dyn LeaseStore, ips: Vec<Ipv4Addr>, request: ReleaseRequest) {
    let answer = if ips.is_empty() {
        Ok(ips)
    } else {
        match stored(leases, &[], &ips) {
            Ok(()) => {
                tracing::info!(mac = %request.mac, released = ?ips, "leases released by the user");
                Ok(ips)
            }
            Err(e) => Err(e.into()),
        }
    };
    // The asker may have gone away: nothing to tell then.
    let _ = request.reply.send(answer);
}

/// [`LeaseStore::commit`], with a panic in the store an error like any other: the batch gets
/// no ACKs and the committer goes on.
fn stored(
    leases: &dyn LeaseStore,
    put: &[crate::lease::Lease],
    delete: &[Ipv4Addr],
) -> Result<(), LeaseStoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| leases.commit(put, delete))).unwrap_or_else(|_| {
        Err(LeaseStoreError::Commit {
            written: put.len(),
            deleted: delete.len(),
            source: Box::new(std::io::Error::other("the lease store panicked")),
        })
    })
}

/// Make a batch's net lease changes durable: one [`LeaseStore::commit`]. Whether it worked.
pub(super) fn commit<'a>(
    leases: &dyn LeaseStore,
    decided: impl IntoIterator<Item = &'a Decided>,
) -> bool {
    let (put, delete) = net_changes(decided);
    if put.is_empty() && delete.is_empty() {
        return true;
    }
    match stored(leases, &put, &delete) {
        Ok(()) => {
            tracing::debug!(
                written = put.len(),
                deleted = delete.len(),
                "leases committed"
            );
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "leases not stored: no ACK for this batch");
            false
        }
    }
}
