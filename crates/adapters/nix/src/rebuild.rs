//! Generations whose store paths are gone: a backup restored onto a new appliance (a backup
//! holds the generations' records, not `/nix`), or a `/nix` wiped by hand. When the runner
//! starts it rebuilds each such generation from its locked reference. Input-addressed
//! derivations give the very store paths the generation recorded; that is checked before its GC
//! roots are registered again, so a generation never boots anything but what it was built as.
//! A generation that fails to build, or builds to other paths (its build is not reproducible
//! from its lock), is left as it is and reported; its files stay missing until the host is
//! built again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flakeboot_store::{GenerationRecord, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::blocking::on_store;
use crate::command::{CommandError, NixSettings, run_nix};
use crate::generation::{GenerationError, add_roots, built_outputs, host_roots_dir};
use crate::outputs;

/// Why a generation could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The generation's host is not `<flake>#<host>`.
    #[error("the generation's host {host:?} is not <flake>#<host>")]
    BadHost {
        /// What the record says.
        host: String,
    },
    /// nix failed to evaluate or build the locked reference.
    #[error("nix could not build {locked_url}: {source}")]
    Build {
        /// The generation's locked reference.
        locked_url: String,
        /// What nix said.
        source: CommandError,
    },
    /// The build gave other store paths than the generation recorded.
    #[error(
        "building {locked_url} again gave {built} instead of the recorded {recorded}: its build \
         is not reproducible from its lock; build the host again for a new generation"
    )]
    Differs {
        /// The generation's locked reference.
        locked_url: String,
        /// The paths built now.
        built: String,
        /// The paths the generation recorded.
        recorded: String,
    },
    /// Reading the outputs or registering the roots failed.
    #[error(transparent)]
    Generation(#[from] GenerationError),
}

/// What happened to one generation.
#[derive(Debug)]
pub struct Rebuilt {
    /// `<flake>#<host>`.
    pub host: String,
    /// The generation's number.
    pub number: u32,
    /// Rebuilt with its recorded paths and rooted again, or why not.
    pub result: Result<(), RebuildError>,
}

/// Whether a store path of the generation is missing.
fn is_missing(generation: &GenerationRecord) -> bool {
    generation.store_paths.iter().any(|p| !p.exists())
}

/// Every generation with a store path missing, host by host.
fn missing_generations(store: &Store) -> Result<Vec<GenerationRecord>, StoreError> {
    let mut missing = Vec::new();
    for host in store.generation_hosts()? {
        missing.extend(store.generations(&host)?.into_iter().filter(is_missing));
    }
    Ok(missing)
}

/// Rebuild every generation with a store path missing (one at a time, each within `timeout`).
pub async fn rebuild_missing(
    store: &Store,
    settings: &NixSettings,
    state_dir: &Path,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<Vec<Rebuilt>, GenerationError> {
    let missing = on_store(store, missing_generations).await??;
    let mut done = Vec::with_capacity(missing.len());
    for generation in missing {
        if cancel.is_cancelled() {
            break;
        }
        let (host, number) = (generation.host.clone(), generation.number);
        let result = rebuild(store, settings, state_dir, cancel, timeout, generation).await;
        done.push(Rebuilt {
            host,
            number,
            result,
        });
    }
    Ok(done)
}

async fn rebuild(
    store: &Store,
    settings: &NixSettings,
    state_dir: &Path,
    cancel: &CancellationToken,
    timeout: Duration,
    generation: GenerationRecord,
) -> Result<(), RebuildError> {
    let (flake, host) = generation
        .host
        .split_once('#')
        .ok_or_else(|| RebuildError::BadHost {
            host: generation.host.clone(),
        })?;
    let url = &generation.locked_url;
    let failed = |source| RebuildError::Build {
        locked_url: url.clone(),
        source,
    };
    let mut ignore = |_: &str| {};
    let derivations = run_nix(
        settings,
        &outputs::derivations_args(url, host),
        cancel,
        Some(timeout),
        &mut ignore,
    )
    .await
    .map_err(failed)?;
    let built = run_nix(
        settings,
        &outputs::build_args(url, host),
        cancel,
        Some(timeout),
        &mut ignore,
    )
    .await
    .map_err(failed)?;
    let paths = built_outputs(&derivations, &built)?;
    if paths.as_slice() != generation.store_paths.as_slice() {
        return Err(RebuildError::Differs {
            locked_url: url.clone(),
            built: list(&paths),
            recorded: list(&generation.store_paths),
        });
    }
    let roots = host_roots_dir(state_dir, flake, host);
    let rooted = add_roots(settings, &roots, generation).await?;
    on_store(store, move |s| s.put_generation(&rooted))
        .await
        .map_err(GenerationError::from)?
        .map_err(GenerationError::from)?;
    Ok(())
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
