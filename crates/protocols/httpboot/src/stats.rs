//! Counters of the HTTP boot service, for metrics and the web UI.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request counters, shared between the router and whoever reports them.
#[derive(Debug, Default)]
pub struct HttpBootStats {
    /// Boot scripts served.
    pub scripts: AtomicU64,
    /// File responses sent (200, 206, 304 and 416 included).
    pub files: AtomicU64,
    /// Requests for something that is not a boot file, or not in the catalogue (404).
    pub not_found: AtomicU64,
    /// Malformed input: undecodable paths, invalid `?mac=` values, bad report bodies.
    pub bad_requests: AtomicU64,
    /// Failures on our side: unrenderable scripts, unreadable files (500).
    pub errors: AtomicU64,
    /// System reports accepted (`POST /boot/report`, 204).
    pub reports: AtomicU64,
    /// System reports from an address that may not report for that MAC (403).
    pub refused_reports: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpBootCounts {
    pub scripts: u64,
    pub files: u64,
    pub not_found: u64,
    pub bad_requests: u64,
    pub errors: u64,
    pub reports: u64,
    pub refused_reports: u64,
}

impl HttpBootStats {
    /// Read every counter.
    pub fn snapshot(&self) -> HttpBootCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpBootCounts {
            scripts: get(&self.scripts),
            files: get(&self.files),
            not_found: get(&self.not_found),
            bad_requests: get(&self.bad_requests),
            errors: get(&self.errors),
            reports: get(&self.reports),
            refused_reports: get(&self.refused_reports),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
