//! The forwarder's counters (`/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared with whoever shows them; a restarted server keeps counting into them.
#[derive(Debug, Default)]
pub struct DnsStats {
    local: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    tcp_refused: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStatsSnapshot {
    /// Queries answered from the local names (found or NXDOMAIN).
    pub local: u64,
    /// Queries answered from upstream (or its cache).
    pub forwarded: u64,
    /// Forwarded queries that got SERVFAIL (no upstream, a timeout, an upstream error).
    pub failed: u64,
    /// Queries refused: over a budget, or a query this server does not take (AXFR, ANY,
    /// another class or opcode, a malformed question section).
    pub refused: u64,
    /// Packets that were no DNS message (dropped).
    pub malformed: u64,
    /// TCP connections closed at once (over the connection caps).
    pub tcp_refused: u64,
}

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Local,
    Forwarded,
    Failed,
    Refused,
    Malformed,
    TcpRefused,
}

impl DnsStats {
    /// Adds one.
    pub fn count(&self, which: Count) {
        let counter = match which {
            Count::Local => &self.local,
            Count::Forwarded => &self.forwarded,
            Count::Failed => &self.failed,
            Count::Refused => &self.refused,
            Count::Malformed => &self.malformed,
            Count::TcpRefused => &self.tcp_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter now.
    pub fn snapshot(&self) -> DnsStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DnsStatsSnapshot {
            local: get(&self.local),
            forwarded: get(&self.forwarded),
            failed: get(&self.failed),
            refused: get(&self.refused),
            malformed: get(&self.malformed),
            tcp_refused: get(&self.tcp_refused),
        }
    }
}
