//! An upload's progress on standard error (`flakeboot firmware upload`, `flakeboot restore
//! --server`): at most once a second, and at the end with what the appliance does next.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// One upload's progress line.
pub struct Progress {
    total: u64,
    /// What the appliance does once it has every byte ("checking and installing").
    then: &'static str,
    started: Instant,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    /// For an upload of `total` bytes, after which the appliance does `then`.
    pub fn new(total: u64, then: &'static str) -> Progress {
        Progress {
            total,
            then,
            started: Instant::now(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// `sent` bytes have gone out.
    pub fn sent(&self, sent: u64) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        if sent < self.total && last.is_some_and(|l| now - l < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = |b: u64| b as f64 / 1_048_576.0;
        let pct = (sent * 100).checked_div(self.total).unwrap_or(100);
        let note = if sent >= self.total {
            format!(", {}", self.then)
        } else {
            String::new()
        };
        eprint!(
            "\rflakeboot: sent {:.0} of {:.0} MiB ({pct}%, {:.1} MiB/s){note}",
            mib(sent),
            mib(self.total),
            mib(sent) / secs
        );
        let _ = std::io::stderr().flush();
    }
}
