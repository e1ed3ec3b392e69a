//! Boot events flow from the boot services through a bounded channel to one writer task that
//! logs each and stores them in batches (one store transaction per batch).

use flakeboot_catalogue::BootEvent;
use flakeboot_store::Store;
use tokio::sync::mpsc;

/// Most events written in one transaction.
const BATCH: usize = 512;

/// Runs until every sender is gone (the daemon drops its catalogue at shutdown), so the last
/// events are stored before the process exits.
pub async fn run(mut rx: mpsc::Receiver<BootEvent>, store: Store) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for ev in &batch {
            tracing::info!(
                mac = ev.mac.map(|m| m.to_string()).unwrap_or_default(),
                peer = ev.peer.map(|p| p.to_string()).unwrap_or_default(),
                stage = ev.stage.as_str(),
                outcome = ?ev.outcome,
                firmware = ev.firmware.map(|f| f.as_str()).unwrap_or(""),
                detail = %ev.detail,
                "boot event"
            );
        }
        let events = std::mem::take(&mut batch);
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || store.record_events(&events)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "could not store boot events"),
            Err(err) => tracing::error!(error = %err, "boot event writer task failed"),
        }
    }
}
