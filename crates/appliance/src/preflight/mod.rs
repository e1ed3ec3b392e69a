//! Pre-flight (issue #16): every new generation boots once in a VM before machines get it.
//!
//! - [`queue`]: one pre-flight at a time. New generations arrive `queued` (the build runner asks
//!   [`flakeboot_nix::PreflightGate`]); the queue boots the oldest through a [`PreflightVm`],
//!   records `running`, then `passed` or `failed` with times, reason and console log, and
//!   refreshes what hosts boot (a passed generation becomes current by the store's rule). Builds
//!   keep running meanwhile.
//! - [`PreflightVm`]: how one generation is booted. The daemon's QEMU machine on its private
//!   network implements it; tests use fakes.

pub mod qemu;
pub mod queue;

use std::path::Path;
use std::time::Duration;

use flakeboot_store::GenerationRecord;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use qemu::{QemuPreflight, find_qemu};
pub use queue::{PreflightQueue, QueueSettings};

/// Boots one generation in the pre-flight VM.
pub trait PreflightVm: Send + Sync + 'static {
    /// Boot `generation`, writing its serial console to `log`; `Ok` once its system reported
    /// `up`, `Err(reason)` on a `failed` report, the VM exiting, or `timeout` ("no report").
    /// Cancelled (daemon stop): end the VM and return soon.
    fn boot<'a>(
        &'a self,
        generation: &'a GenerationRecord,
        log: &'a Path,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<(), String>>;
}
