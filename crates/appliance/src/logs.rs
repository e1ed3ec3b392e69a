//! The machines' log lines flow from the receiver ([`flakeboot_logs::server`], beside the boot
//! services) through a bounded channel to one writer task that stores them in batches (one
//! store transaction per batch), as [`crate::events`] does for boot events. Lines of a MAC the
//! store has no machine record for are counted (`no_machine`) and dropped.

use std::sync::Arc;

use flakeboot_logs::server::{Dropped, LogStats, MachineLine};
use flakeboot_store::{LogRecord, Store};
use tokio::sync::mpsc;

/// Most lines written in one transaction.
const BATCH: usize = 1024;

/// Lines waiting for the writer, at most: beyond, the receiver drops and counts (`overflow`).
pub const QUEUE: usize = 4096;

/// The store's record of a received line.
pub fn record(line: MachineLine) -> LogRecord {
    let MachineLine {
        mac,
        peer,
        at,
        line,
    } = line;
    LogRecord {
        mac,
        peer,
        at,
        proto: line.proto.as_str().to_owned(),
        severity: line.severity,
        facility: line.facility,
        hostname: line.hostname,
        app: line.app,
        text: line.text,
        truncated: line.truncated,
    }
}

/// Runs until every sender is gone (the daemon drops the boot services at shutdown).
pub async fn run(mut rx: mpsc::Receiver<MachineLine>, store: Store, stats: Arc<LogStats>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let records: Vec<LogRecord> = batch.drain(..).map(record).collect();
        let store = store.clone();
        let count = records.len();
        match tokio::task::spawn_blocking(move || store.record_logs(&records)).await {
            Ok(Ok(refused)) => {
                stats.drop_lines(
                    Dropped::NoMachine,
                    u64::try_from(refused).unwrap_or(u64::MAX),
                );
            }
            Ok(Err(err)) => {
                tracing::error!(error = %err, lines = count, "could not store log lines");
            }
            Err(err) => tracing::error!(error = %err, "log line writer task failed"),
        }
    }
}
