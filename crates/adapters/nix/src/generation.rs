//! Turning a successful build into a generation: its store paths, GC roots that keep them from
//! `nix-collect-garbage`, and pruning to the last N generations per host.
//!
//! GC roots are indirect roots made by `nix build --out-link <state>/gcroots/<flake>/<host>/<n>
//! <store paths>` (nix 2.8 names them `<n>`, `<n>-1`, `<n>-2` and registers each under
//! `/nix/var/nix/gcroots/auto`). Removing a generation removes its symlinks; nix drops the stale
//! registration at its next collection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flakeboot_store::{BuildRecord, GenerationRecord, Store, StoreError};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::blocking::on_store;
use crate::command::{CommandError, NixSettings, run_nix};

/// The outputs a build asks for, in the order of the installables.
pub const BUILD_OUTPUTS: [&str; 3] = ["kernel", "netbootRamdisk", "toplevel"];

/// How long registering GC roots may take (it only symlinks existing paths).
const ROOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a generation could not be recorded or pruned.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// `nix build --json` printed something flakeboot cannot read.
    #[error("cannot read `nix build --json` output: {reason}")]
    BadBuildOutput {
        /// What was wrong.
        reason: String,
    },
    /// Registering the GC roots failed.
    #[error("cannot register GC roots under {}: {source}", dir.display())]
    Roots {
        /// The generation's root directory.
        dir: PathBuf,
        /// What nix said.
        source: CommandError,
    },
    /// Creating or removing a GC root symlink failed.
    #[error("cannot change GC root {}: {source}", path.display())]
    RootIo {
        /// The symlink or its directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A store task did not finish (the runtime is shutting down).
    #[error("store task did not finish: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
}

impl From<tokio::task::JoinError> for GenerationError {
    fn from(e: tokio::task::JoinError) -> Self {
        GenerationError::Worker {
            reason: e.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct BuiltPath {
    outputs: std::collections::BTreeMap<String, PathBuf>,
}

/// The `out` path of each installable from `nix build --json` (pure): kernel, netbootRamdisk and
/// toplevel, in that order.
pub fn parse_build_output(json: &[u8]) -> Result<[PathBuf; 3], GenerationError> {
    let bad = |reason: String| GenerationError::BadBuildOutput { reason };
    let built: Vec<BuiltPath> = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    if built.len() != BUILD_OUTPUTS.len() {
        return Err(bad(format!("{} results for 3 installables", built.len())));
    }
    let mut outs = built.into_iter().map(|b| b.outputs.get("out").cloned());
    match (outs.next(), outs.next(), outs.next()) {
        (Some(Some(kernel)), Some(Some(ramdisk)), Some(Some(toplevel))) => {
            Ok([kernel, ramdisk, toplevel])
        }
        _ => Err(bad("a result has no \"out\" output".into())),
    }
}

/// The generation a successful build makes (its number is assigned by the store).
pub fn draft_generation(
    build: &BuildRecord,
    [kernel, ramdisk, toplevel]: [PathBuf; 3],
    built_at: SystemTime,
) -> GenerationRecord {
    GenerationRecord {
        host: build.qualified_host(),
        number: 0,
        flake_url: build.flake_url.clone(),
        locked_url: build.locked_url.clone(),
        revision: build.revision.clone(),
        kernel: kernel.join(&build.kernel_file),
        initrd: ramdisk.join("initrd"),
        init: toplevel.join("init"),
        store_paths: vec![kernel, ramdisk, toplevel],
        kernel_params: build.kernel_params.clone(),
        built_at,
        build_id: build.id,
        log: build.log.clone(),
        gc_roots: Vec::new(),
    }
}

/// Where a host's GC roots live: `<state>/gcroots/<flake>/<host>`.
pub fn roots_dir(state_dir: &Path, build: &BuildRecord) -> PathBuf {
    state_dir
        .join("gcroots")
        .join(&build.flake)
        .join(&build.host)
}

/// Store the generation and register its GC roots. If the roots cannot be registered, the
/// generation is removed again (a generation nix may collect must not be booted).
pub async fn record_generation(
    store: &Store,
    settings: &NixSettings,
    roots_dir: &Path,
    draft: &GenerationRecord,
) -> Result<GenerationRecord, GenerationError> {
    let draft = draft.clone();
    let generation = on_store(store, move |s| s.add_generation(&draft)).await??;
    match add_roots(settings, roots_dir, generation.clone()).await {
        Ok(generation) => {
            let saved = generation.clone();
            on_store(store, move |s| s.put_generation(&saved)).await??;
            Ok(generation)
        }
        Err(e) => {
            let (host, number) = (generation.host.clone(), generation.number);
            on_store(store, move |s| s.remove_generations(&host, &[number])).await??;
            Err(e)
        }
    }
}

/// `nix build --out-link <roots_dir>/<n> <store paths>`: returns the generation with its roots.
async fn add_roots(
    settings: &NixSettings,
    roots_dir: &Path,
    mut generation: GenerationRecord,
) -> Result<GenerationRecord, GenerationError> {
    std::fs::create_dir_all(roots_dir).map_err(|source| GenerationError::RootIo {
        path: roots_dir.to_owned(),
        source,
    })?;
    let link = roots_dir.join(generation.number.to_string());
    let mut args: Vec<OsString> = vec!["build".into(), "--out-link".into(), link.clone().into()];
    args.extend(
        generation
            .store_paths
            .iter()
            .map(|p| p.clone().into_os_string()),
    );
    run_nix(
        settings,
        &args,
        &CancellationToken::new(),
        Some(ROOT_TIMEOUT),
        &mut |_| {},
    )
    .await
    .map_err(|source| GenerationError::Roots {
        dir: roots_dir.to_owned(),
        source,
    })?;
    generation.gc_roots = (0..generation.store_paths.len())
        .map(|i| match i {
            0 => link.clone(),
            i => roots_dir.join(format!("{}-{i}", generation.number)),
        })
        .collect();
    Ok(generation)
}

/// The generations to drop to keep the newest `keep` (pure). A pinned generation is never
/// dropped, whatever its age.
pub fn to_prune(numbers: &[u32], keep: usize, pinned: Option<u32>) -> Vec<u32> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    let cut = sorted.len().saturating_sub(keep.max(1));
    sorted
        .into_iter()
        .take(cut)
        .filter(|n| Some(*n) != pinned)
        .collect()
}

/// Keep the newest `keep` generations of a host (and its pinned one): older ones lose their GC
/// roots and their records. Returns the numbers removed.
pub fn prune(store: &Store, host: &str, keep: usize) -> Result<Vec<u32>, GenerationError> {
    let all = store.generations(host)?;
    let numbers: Vec<u32> = all.iter().map(|g| g.number).collect();
    let drop = to_prune(&numbers, keep, store.pinned_generation(host)?);
    for g in all.iter().filter(|g| drop.contains(&g.number)) {
        for root in &g.gc_roots {
            match std::fs::remove_file(root) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(GenerationError::RootIo {
                        path: root.clone(),
                        source,
                    });
                }
            }
        }
    }
    if !drop.is_empty() {
        store.remove_generations(host, &drop)?;
        tracing::info!(host, removed = ?drop, "old generations removed with their GC roots");
    }
    Ok(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_gives_three_out_paths_in_order() {
        // Captured from nix 2.8 building the fixture's alpha.
        let json = br#"[{"drvPath":"/nix/store/1lv3qb1vlcl30yv1g7v1fywaccq4s3h0-alpha-kernel.drv","outputs":{"out":"/nix/store/cvha88ylqrjrm1jfdzxhrb63cq854f4h-alpha-kernel"}},{"drvPath":"/nix/store/8f7srwhrwq9r5gfp3k9y6af54glmc2dn-alpha-netboot-ramdisk.drv","outputs":{"out":"/nix/store/vvyx234hycbhbcc8hbvi44kn5nk2ym0p-alpha-netboot-ramdisk"}},{"drvPath":"/nix/store/i7wvmxi95gkpz1d29yzx124ri3pc28mi-alpha-toplevel.drv","outputs":{"out":"/nix/store/840jbidk8xdx47aj3mcvvaypwdy50qx3-alpha-toplevel"}}]"#;
        let [k, r, t] = parse_build_output(json).unwrap();
        assert!(k.ends_with("cvha88ylqrjrm1jfdzxhrb63cq854f4h-alpha-kernel"));
        assert!(r.ends_with("vvyx234hycbhbcc8hbvi44kn5nk2ym0p-alpha-netboot-ramdisk"));
        assert!(t.ends_with("840jbidk8xdx47aj3mcvvaypwdy50qx3-alpha-toplevel"));
        for bad in [
            &b"[]"[..],
            b"{}",
            b"[{\"outputs\":{}},{\"outputs\":{}},{\"outputs\":{}}]",
        ] {
            assert!(parse_build_output(bad).is_err());
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_pinned() {
        assert_eq!(to_prune(&[1, 2, 3, 4, 5, 6, 7], 5, None), vec![1, 2]);
        assert_eq!(to_prune(&[7, 1, 2, 3], 2, Some(1)), vec![2]);
        assert_eq!(to_prune(&[1, 2], 5, None), Vec::<u32>::new());
        // keep = 0 would leave nothing to boot: at least the newest stays.
        assert_eq!(to_prune(&[1, 2], 0, None), vec![1]);
    }
}
