//! The group commit of router mode, beside the receive loop: the loop decides every datagram at
//! once and sends what changes no lease (OFFERs, NAKs, INFORM's ACKs) straight away; what does
//! change leases comes here, in arrival order. While one commit is on disk the next batch
//! gathers, so a burst costs one fsync per batch and an OFFER never waits for one.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use flakeboot_catalogue::Catalogue;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{BATCH_CAP, Decided, DhcpStats, ReleaseRequest, finish, net_changes};
use crate::lease::{LeaseStore, LeaseStoreError};
use crate::server::LeaseControlError;

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
    pub socket: Arc<UdpSocket>,
    pub catalogue: Arc<dyn Catalogue>,
    pub stats: Arc<DhcpStats>,
}

/// Commit and answer everything that arrives on `queue`, a batch at a time, until the receive
/// loop drops its end (then what is queued is still committed and answered).
pub(super) async fn run(
    mut queue: mpsc::Receiver<Pending>,
    leases: Arc<dyn LeaseStore>,
    out: Outbox,
) {
    let mut batch: Vec<(Decided, SocketAddr, Instant)> = Vec::with_capacity(BATCH_CAP);
    while let Some(first) = queue.recv().await {
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
                    flush(&mut batch, &leases, &out).await;
                    release(&leases, ips, request).await;
                }
            }
            if batch.len() < BATCH_CAP {
                next = queue.try_recv().ok();
            }
        }
        flush(&mut batch, &leases, &out).await;
    }
}

/// One commit of the batch's net changes, then its replies (only if the commit worked).
async fn flush(
    batch: &mut Vec<(Decided, SocketAddr, Instant)>,
    leases: &Arc<dyn LeaseStore>,
    out: &Outbox,
) {
    if batch.is_empty() {
        return;
    }
    let durable = commit(leases, batch.iter().map(|(d, _, _)| d)).await;
    for (decided, src, arrived) in batch.drain(..) {
        finish(
            &out.socket,
            decided,
            src,
            arrived,
            durable,
            &out.catalogue,
            &out.stats,
        )
        .await;
    }
}

/// Delete a user's released leases from the store, then answer.
async fn release(leases: &Arc<dyn LeaseStore>, ips: Vec<Ipv4Addr>, request: ReleaseRequest) {
    let answer = if ips.is_empty() {
        Ok(ips)
    } else {
        let (store, delete) = (Arc::clone(leases), ips.clone());
        match tokio::task::spawn_blocking(move || store.commit(&[], &delete)).await {
            Ok(Ok(())) => {
                tracing::info!(mac = %request.mac, released = ?ips, "leases released by the user");
                Ok(ips)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(LeaseControlError::Store(LeaseStoreError::Commit {
                written: 0,
                deleted: ips.len(),
                source: Box::new(std::io::Error::other(e.to_string())),
            })),
        }
    };
    // The asker may have gone away: nothing to tell then.
    let _ = request.reply.send(answer);
}

/// Make a batch's net lease changes durable: one [`LeaseStore::commit`], on a blocking thread.
/// Whether it worked.
pub(super) async fn commit<'a>(
    leases: &Arc<dyn LeaseStore>,
    decided: impl IntoIterator<Item = &'a Decided>,
) -> bool {
    let (put, delete) = net_changes(decided);
    if put.is_empty() && delete.is_empty() {
        return true;
    }
    let leases = Arc::clone(leases);
    let count = (put.len(), delete.len());
    let result = tokio::task::spawn_blocking(move || leases.commit(&put, &delete)).await;
    match result {
        Ok(Ok(())) => {
            tracing::debug!(written = count.0, deleted = count.1, "leases committed");
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "leases not stored: no ACK for this batch");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "lease writer task failed: no ACK for this batch");
            false
        }
    }
}
