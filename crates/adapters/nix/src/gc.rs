//! Disk space for builds: how full the nix store's file system is, garbage collection, and the
//! `[nix] min_free` rule.
//!
//! `nix store gc` deletes only what no GC root reaches; every kept generation (current, pinned
//! and the last `keep_generations`) has its roots under `<state>/gcroots`, registered with nix
//! (see [`crate::generation`]), so collecting never takes what a machine may boot.
//!
//! A build's outputs have no root between the end of `nix build --no-link` and the
//! registration of its generation's roots (nix's temporary roots end with its process): a
//! collection waits until no build is in that window ([`Storage::build_in_flight`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{CommandError, NixSettings, run_nix};

/// The store's file system now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Its size in bytes.
    pub total: u64,
    /// Bytes available to nix.
    pub free: u64,
}

/// What a garbage collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// When it ended.
    pub at: SystemTime,
    /// Bytes it freed.
    pub freed: u64,
    /// Store paths it deleted.
    pub paths: u64,
    /// Why it ran: "after a build", "daily", "below min_free".
    pub reason: String,
}

/// Why disk space could not be measured or collected.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// statvfs failed.
    #[error("cannot measure the file system of {}: {source}", path.display())]
    Measure {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// `nix store gc` failed.
    #[error("garbage collection: {0}")]
    Nix(#[from] CommandError),
}

/// The runner's disk policy: `[nix] min_free` and `[nix] gc`, and what the last collection did.
#[derive(Debug)]
pub struct Storage {
    store_dir: PathBuf,
    min_free: Option<u64>,
    gc: bool,
    last: Mutex<Option<GcReport>>,
    /// One collection at a time.
    running: tokio::sync::Mutex<()>,
    /// Held (shared) by every build from before nix builds until its roots exist; a collection
    /// takes it exclusively.
    in_flight: tokio::sync::RwLock<()>,
}

/// Disk space and the last collection, for the dashboard and `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageReport {
    /// The store's file system now (`None` when it cannot be measured).
    pub usage: Option<DiskUsage>,
    /// `[nix] min_free`.
    pub min_free: Option<u64>,
    /// `[nix] gc`.
    pub gc: bool,
    /// The last collection since the daemon started.
    pub last_gc: Option<GcReport>,
}

impl Storage {
    /// The policy for the store in `store_dir` (normally [`STORE_DIR`]).
    pub fn new(store_dir: &Path, min_free: Option<u64>, gc: bool) -> Storage {
        Storage {
            store_dir: store_dir.to_owned(),
            min_free,
            gc,
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            in_flight: tokio::sync::RwLock::new(()),
        }
    }

    /// A build holds this from before `nix build` until its generation's GC roots are
    /// registered (or it failed): no collection runs meanwhile, so nothing it built is
    /// deleted before it is rooted. Drop it before [`Storage::after_build`].
    pub async fn build_in_flight(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.in_flight.read().await
    }

    /// Before a build: below `min_free`, collect garbage; `Err` with the message that refuses
    /// the build when that did not free enough.
    pub async fn before_build(
        &self,
        settings: &NixSettings,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let Some(min) = self.min_free else {
            return Ok(());
        };
        let Ok(usage) = disk_usage(&self.store_dir) else {
            return Ok(());
        };
        if usage.free >= min {
            return Ok(());
        }
        info!(
            free = usage.free,
            min_free = min,
            "below [nix] min_free: collecting garbage before the build"
        );
        self.collect(settings, cancel, "below min_free").await;
        match disk_usage(&self.store_dir) {
            Ok(usage) => refuse_build(usage, Some(min)).map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    /// After a successful build (with `[nix] gc`): collect what older generations left.
    pub async fn after_build(&self, settings: &NixSettings, cancel: &CancellationToken) {
        if self.gc {
            self.collect(settings, cancel, "after a build").await;
        }
    }

    /// Whether collections run after builds and daily.
    pub fn scheduled(&self) -> bool {
        self.gc
    }

    /// Collect now, once no build is between its result and its roots (logged; failures are
    /// logged and leave the last report as it was).
    pub async fn collect(&self, settings: &NixSettings, cancel: &CancellationToken, reason: &str) {
        let _one = self.running.lock().await;
        let _no_unrooted_builds = self.in_flight.write().await;
        match collect_garbage(settings, cancel, reason).await {
            Ok(report) => {
                info!(
                    freed = report.freed,
                    paths = report.paths,
                    reason,
                    "garbage collected"
                );
                if let Ok(mut last) = self.last.lock() {
                    *last = Some(report);
                }
            }
            Err(e) => warn!(reason, "garbage collection failed: {e}"),
        }
    }

    /// Disk space now and the last collection.
    pub fn report(&self) -> StorageReport {
        StorageReport {
            usage: disk_usage(&self.store_dir).ok(),
            min_free: self.min_free,
            gc: self.gc,
            last_gc: self.last.lock().ok().and_then(|l| l.clone()),
        }
    }
}

/// The directory whose file system holds the store.
pub const STORE_DIR: &str = "/nix/store";

/// Size and free space of the file system holding `path`.
pub fn disk_usage(path: &Path) -> Result<DiskUsage, GcError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|source| GcError::Measure {
        path: path.to_owned(),
        source,
    })?;
    let fragment = st.fragment_size();
    Ok(DiskUsage {
        total: st.blocks().saturating_mul(fragment),
        free: st.blocks_available().saturating_mul(fragment),
    })
}

/// Run `nix store gc` to the end.
pub async fn collect_garbage(
    settings: &NixSettings,
    cancel: &CancellationToken,
    reason: &str,
) -> Result<GcReport, GcError> {
    // nix prints its summary ("3 store paths deleted, 1.20 MiB freed") on stdout.
    let out = run_nix(
        settings,
        &["store".into(), "gc".into()],
        cancel,
        None,
        &mut |_| {},
    )
    .await?;
    let summary = String::from_utf8_lossy(&out)
        .lines()
        .find_map(parse_summary);
    let (paths, freed) = summary.unwrap_or((0, 0));
    Ok(GcReport {
        at: SystemTime::now(),
        freed,
        paths,
        reason: reason.to_owned(),
    })
}

/// nix's closing line, "12 store paths deleted, 3.40 MiB freed": (paths, bytes).
pub fn parse_summary(text: &str) -> Option<(u64, u64)> {
    let (count, rest) = text.trim().split_once(" store paths deleted, ")?;
    let paths = count.trim().parse().ok()?;
    let (amount, unit) = rest.trim().trim_end_matches(" freed").split_once(' ')?;
    let amount: f64 = amount.parse().ok()?;
    let scale: f64 = match unit {
        "bytes" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (amount * scale).round();
    // `as` saturates for floats; the value is non-negative and finite here.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = if bytes.is_finite() && bytes >= 0.0 {
        bytes as u64
    } else {
        0
    };
    Some((paths, bytes))
}

/// Whether a build may start: `None` when `free` is at least `min_free`, else the message that
/// refuses it.
pub fn refuse_build(usage: DiskUsage, min_free: Option<u64>) -> Option<String> {
    let min = min_free?;
    (usage.free < min).then(|| {
        format!(
            "not enough disk space to build: {} free on the nix store's file system, below \
             [nix] min_free = {} (garbage collection could not free more). Remove flakes or \
             hosts you no longer boot, lower [nix] keep_generations, or give the store a \
             larger disk",
            human(usage.free),
            human(min)
        )
    })
}

/// "1.5 GiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match (unit, UNITS.get(unit)) {
        (0, _) => format!("{bytes} B"),
        (_, Some(u)) => format!("{v:.1} {u}"),
        (_, None) => format!("{bytes} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_summaries_parse() {
        assert_eq!(
            parse_summary("12 store paths deleted, 3.40 MiB freed"),
            Some((12, 3_565_158))
        );
        assert_eq!(
            parse_summary("0 store paths deleted, 0.00 MiB freed"),
            Some((0, 0))
        );
        assert_eq!(
            parse_summary("1 store paths deleted, 2.00 GiB freed"),
            Some((1, 2 * 1024 * 1024 * 1024))
        );
        assert_eq!(parse_summary("deleting '/nix/store/abc'"), None);
        assert_eq!(parse_summary("x store paths deleted, 1 MiB freed"), None);
    }

    #[test]
    fn builds_are_refused_below_min_free_only() {
        let usage = DiskUsage {
            total: 10 << 30,
            free: 1 << 30,
        };
        assert_eq!(refuse_build(usage, None), None);
        assert_eq!(refuse_build(usage, Some(1 << 30)), None);
        let msg = refuse_build(usage, Some(2 << 30)).unwrap();
        assert!(msg.contains("1.0 GiB free"), "{msg}");
        assert!(msg.contains("min_free = 2.0 GiB"), "{msg}");
        assert!(msg.contains("keep_generations"), "{msg}");
    }

    #[test]
    fn the_store_file_system_is_measured() {
        let usage = disk_usage(Path::new("/")).unwrap();
        assert!(usage.total > 0 && usage.free <= usage.total);
    }
}
