//! Counters of the TFTP server, shared with whoever exports metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics: each is a monotonic count, read for display).
#[derive(Debug, Default)]
pub struct TftpStats {
    transfers_ok: AtomicU64,
    transfers_aborted: AtomicU64,
    transfers_failed: AtomicU64,
    requests_refused: AtomicU64,
    refused_client_busy: AtomicU64,
    refused_server_busy: AtomicU64,
    duplicate_requests: AtomicU64,
    transfers_evicted: AtomicU64,
    bad_packets: AtomicU64,
    retransmissions: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TftpStatsSnapshot {
    /// Files delivered completely.
    pub transfers_ok: u64,
    /// Transfers the client ended after the OACK (the PXE tsize probe): not failures.
    pub transfers_aborted: u64,
    /// Transfers that timed out, were aborted mid-file, or hit a file error.
    pub transfers_failed: u64,
    /// Requests answered with an ERROR (unknown or forbidden name, WRQ, busy).
    pub requests_refused: u64,
    /// Of those, refused because the client address had `max_per_client` transfers.
    pub refused_client_busy: u64,
    /// Of those, refused because every slot was taken by clients no heavier than this one.
    pub refused_server_busy: u64,
    /// Requests dropped unanswered: a transfer to the same address and port was running.
    pub duplicate_requests: u64,
    /// Transfers ended early to give their slot to a client with fewer transfers.
    pub transfers_evicted: u64,
    /// Datagrams that were malformed or unexpected.
    pub bad_packets: u64,
    /// DATA and OACK packets sent again after a timeout.
    pub retransmissions: u64,
}

impl TftpStats {
    /// The current values.
    pub fn snapshot(&self) -> TftpStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TftpStatsSnapshot {
            transfers_ok: get(&self.transfers_ok),
            transfers_aborted: get(&self.transfers_aborted),
            transfers_failed: get(&self.transfers_failed),
            requests_refused: get(&self.requests_refused),
            refused_client_busy: get(&self.refused_client_busy),
            refused_server_busy: get(&self.refused_server_busy),
            duplicate_requests: get(&self.duplicate_requests),
            transfers_evicted: get(&self.transfers_evicted),
            bad_packets: get(&self.bad_packets),
            retransmissions: get(&self.retransmissions),
        }
    }

    pub(crate) fn ok(&self) {
        self.transfers_ok.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self) {
        self.transfers_aborted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.transfers_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.requests_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused_client_busy(&self) {
        self.refused_client_busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused_server_busy(&self) {
        self.refused_server_busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate_request(&self) {
        self.duplicate_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self) {
        self.transfers_evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bad_packet(&self) {
        self.bad_packets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retransmitted(&self, n: u64) {
        self.retransmissions.fetch_add(n, Ordering::Relaxed);
    }
}
