//! Turning a successful build into a generation: its store paths, GC roots that keep them from
//! `nix-collect-garbage`, and pruning to the last N generations per host.
//!
//! GC roots are indirect roots made by `nix build --out-link <state>/gcroots/<flake>/<host>/<n>
//! <store paths>` (nix 2.8 names them `<n>`, `<n>-1`, `<n>-2` in its own order, by store path
//! name, not in the order given, and registers each under `/nix/var/nix/gcroots/auto`); a
//! generation lists each root next to the store path it holds. Removing a generation removes
//! its symlinks; nix drops the stale registration at its next collection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flakeboot_catalogue::text::check_cmdline;
use flakeboot_config::{Field, Problem, flake_host_problems};
use flakeboot_store::{BuildRecord, GenerationRecord, PreflightRecord, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::blocking::on_store;
use crate::command::{CommandError, NixSettings, run_nix};
use crate::outputs::{OutputDerivation, OutputsError, match_build_output, parse_derivations};

/// How long registering GC roots may take (it only symlinks existing paths).
const ROOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a generation could not be recorded or pruned.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// nix's answers do not say which store path is which output.
    #[error(transparent)]
    Outputs(#[from] OutputsError),
    /// nix made no GC root for a store path of the generation.
    #[error("nix made no GC root for {} under {}", path.display(), dir.display())]
    Unrooted {
        /// The store path.
        path: PathBuf,
        /// The generation's root directory.
        dir: PathBuf,
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
    /// What the flake says of the host cannot go into a boot script: the build does not become
    /// a generation, and the host's current generation stays what it was.
    #[error("{reason}; the build is not made a generation (the previous one stays current)")]
    Unbootable {
        /// The problems, with their fields.
        reason: String,
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

/// The store paths of a build (kernel, ramdisk, toplevel) from the evaluation of its outputs'
/// derivations and `nix build --json` (pure; see [`crate::outputs`]).
pub fn built_outputs(derivations: &[u8], built: &[u8]) -> Result<[PathBuf; 3], GenerationError> {
    let derivations: [OutputDerivation; 3] = parse_derivations(derivations)?;
    Ok(match_build_output(built, &derivations)?)
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
        preflight: PreflightRecord::skipped("pre-flight is disabled"),
    }
}

/// What keeps a generation from being booted: the flake's values of the host
/// ([`flakeboot_config::flake_host_problems`]: its name, the kernel file inside the kernel's
/// store path, its kernel parameters) and the command line they make with `init=`
/// ([`flakeboot_catalogue::text::check_cmdline`], the boot script's own rule). Checked before a
/// build is recorded and when generations are loaded (one stored by an older flakeboot).
pub fn generation_problems(g: &GenerationRecord) -> Vec<Problem> {
    let host = g.host.split_once('#').map_or(g.host.as_str(), |(_, h)| h);
    // The kernel file inside the kernel's store path (a record without its store paths: the
    // kernel's file name).
    let inside = match g.store_paths.first() {
        Some(dir) => g.kernel.strip_prefix(dir).ok(),
        None => g.kernel.file_name().map(Path::new),
    };
    let kernel_file = inside.and_then(Path::to_str).unwrap_or_default();
    let mut problems = flake_host_problems(host, kernel_file, &g.kernel_params);
    if problems.is_empty() {
        let cmdline = crate::FlakeBoot::from_generation(g, false).cmdline;
        if let Err(reason) = check_cmdline(&cmdline) {
            problems.push(Problem::new(
                Field::key("cmdline"),
                format!("{reason} (init= or the revision)"),
            ));
        }
    }
    problems
}

/// [`generation_problems`] as an error.
pub fn check_generation(g: &GenerationRecord) -> Result<(), GenerationError> {
    let problems = generation_problems(g);
    if problems.is_empty() {
        return Ok(());
    }
    Err(GenerationError::Unbootable {
        reason: format!(
            "{:?}: {}",
            g.host,
            crate::discover::unbootable_values(&problems)
        ),
    })
}

/// Where a host's GC roots live: `<state>/gcroots/<flake>/<host>`.
pub fn roots_dir(state_dir: &Path, build: &BuildRecord) -> PathBuf {
    host_roots_dir(state_dir, &build.flake, &build.host)
}

/// `<state>/gcroots/<flake>/<host>`: where the GC roots of a host's generations are.
pub fn host_roots_dir(state_dir: &Path, flake: &str, host: &str) -> PathBuf {
    state_dir.join("gcroots").join(flake).join(host)
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
pub(crate) async fn add_roots(
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
    // nix names the roots `<n>`, `<n>-1` ... in its own order (by name), not in the order of
    // the paths it was given: read where each points.
    let links: Vec<(PathBuf, PathBuf)> = (0..generation.store_paths.len())
        .map(|i| match i {
            0 => link.clone(),
            i => roots_dir.join(format!("{}-{i}", generation.number)),
        })
        .filter_map(|root| std::fs::read_link(&root).ok().map(|target| (root, target)))
        .collect();
    generation.gc_roots = roots_in_order(&generation.store_paths, &links).map_err(|path| {
        GenerationError::Unrooted {
            path,
            dir: roots_dir.to_owned(),
        }
    })?;
    Ok(generation)
}

/// The GC root of each store path, in the order of the paths (pure); `links` are the roots nix
/// made with their targets. Returns the first path no root holds.
fn roots_in_order(
    store_paths: &[PathBuf],
    links: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>, PathBuf> {
    store_paths
        .iter()
        .map(|path| {
            links
                .iter()
                .find(|(_, target)| target == path)
                .map(|(root, _)| root.clone())
                .ok_or_else(|| path.clone())
        })
        .collect()
}

/// The generations to drop to keep the newest `keep` (pure). The generation the host boots
/// (pinned, or the newest that passed pre-flight) is never dropped, whatever its age.
pub fn to_prune(numbers: &[u32], keep: usize, current: Option<u32>) -> Vec<u32> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    let cut = sorted.len().saturating_sub(keep.max(1));
    sorted
        .into_iter()
        .take(cut)
        .filter(|n| Some(*n) != current)
        .collect()
}

/// Keep the newest `keep` generations of a host (and the one it boots: pinned, or the newest
/// that passed pre-flight, even behind newer ones that failed): older ones lose their GC roots
/// and their records. Returns the numbers removed.
pub fn prune(store: &Store, host: &str, keep: usize) -> Result<Vec<u32>, GenerationError> {
    let all = store.generations(host)?;
    let numbers: Vec<u32> = all.iter().map(|g| g.number).collect();
    let current =
        flakeboot_store::current_of(store.pinned_generation(host)?, &all).map(|g| g.number);
    let drop = to_prune(&numbers, keep, current);
    for g in all.iter().filter(|g| drop.contains(&g.number)) {
        remove_roots(g)?;
    }
    if !drop.is_empty() {
        store.remove_generations(host, &drop)?;
        tracing::info!(host, removed = ?drop, "old generations removed with their GC roots");
    }
    Ok(drop)
}

/// Removes every generation of a host with its GC roots, and its pin (the host's flake is being
/// removed). Returns how many generations there were.
pub fn remove_host(store: &Store, host: &str) -> Result<usize, GenerationError> {
    let all = store.generations(host)?;
    for g in &all {
        remove_roots(g)?;
    }
    let numbers: Vec<u32> = all.iter().map(|g| g.number).collect();
    store.remove_generations(host, &numbers)?;
    store.pin_generation(host, None)?;
    Ok(all.len())
}

/// Removes a generation's GC root symlinks (one already gone is fine).
fn remove_roots(generation: &GenerationRecord) -> Result<(), GenerationError> {
    for root in &generation.gc_roots {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(host: &str, kernel_file: &str, params: &[&str]) -> BuildRecord {
        BuildRecord {
            id: 1,
            flake: "lab".into(),
            host: host.into(),
            flake_url: "path:/lab".into(),
            locked_url: "path:/lab?narHash=sha256-abc".into(),
            revision: None,
            kernel_file: kernel_file.into(),
            kernel_params: params.iter().map(|p| (*p).to_owned()).collect(),
            state: flakeboot_store::BuildState::Running,
            queued_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            error: None,
            interruptions: 0,
            generation: None,
            log: "/l".into(),
        }
    }

    fn draft(b: &BuildRecord) -> GenerationRecord {
        let paths = [
            PathBuf::from("/nix/store/k-alpha-kernel"),
            PathBuf::from("/nix/store/r-alpha-netboot-ramdisk"),
            PathBuf::from("/nix/store/t-alpha-toplevel"),
        ];
        draft_generation(b, paths, SystemTime::UNIX_EPOCH)
    }

    /// What the flake says of a host is checked before a build is recorded: the error names the
    /// host, the field and why, and says the previous generation stays current.
    #[test]
    fn a_build_whose_values_a_boot_script_cannot_carry_is_not_a_generation() {
        assert!(check_generation(&draft(&build("alpha", "bzImage", &["console=ttyS0"]))).is_ok());
        for (b, field) in [
            (
                build("alpha", "bzImage", &["root=${x}"]),
                "kernel_params[0]",
            ),
            (
                build("alpha", "bzImage", &["quiet", "||", "shell"]),
                "kernel_params[1]",
            ),
            (
                build("alpha", "bzImage", &["quiet\nkernel x"]),
                "kernel_params[0]",
            ),
            (build("alpha", "/etc/shadow", &[]), "kernel_file"),
            (build("alpha", "../../../etc/shadow", &[]), "kernel_file"),
            (build(&"a".repeat(64), "bzImage", &[]), "name"),
        ] {
            let err = check_generation(&draft(&b)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("; {field}: ")) || err.contains(&format!(": {field}: ")),
                "{err}"
            );
            assert!(err.ends_with("(the previous one stays current)"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn build_output_is_read_by_derivation() {
        // Captured from nix 2.8 evaluating and building the fixture's alpha, the build's results
        // reordered (toplevel first): the evaluation names each output's derivation.
        let derivations = br#"{"kernel":{"drvPath":"/nix/store/1lv3qb1vlcl30yv1g7v1fywaccq4s3h0-alpha-kernel.drv","outputName":"out"},"netbootRamdisk":{"drvPath":"/nix/store/8f7srwhrwq9r5gfp3k9y6af54glmc2dn-alpha-netboot-ramdisk.drv","outputName":"out"},"toplevel":{"drvPath":"/nix/store/i7wvmxi95gkpz1d29yzx124ri3pc28mi-alpha-toplevel.drv","outputName":"out"}}"#;
        let built = br#"[{"drvPath":"/nix/store/i7wvmxi95gkpz1d29yzx124ri3pc28mi-alpha-toplevel.drv","outputs":{"out":"/nix/store/840jbidk8xdx47aj3mcvvaypwdy50qx3-alpha-toplevel"}},{"drvPath":"/nix/store/1lv3qb1vlcl30yv1g7v1fywaccq4s3h0-alpha-kernel.drv","outputs":{"out":"/nix/store/cvha88ylqrjrm1jfdzxhrb63cq854f4h-alpha-kernel"}},{"drvPath":"/nix/store/8f7srwhrwq9r5gfp3k9y6af54glmc2dn-alpha-netboot-ramdisk.drv","outputs":{"out":"/nix/store/vvyx234hycbhbcc8hbvi44kn5nk2ym0p-alpha-netboot-ramdisk"}}]"#;
        let [k, r, t] = built_outputs(derivations, built).unwrap();
        assert!(k.ends_with("cvha88ylqrjrm1jfdzxhrb63cq854f4h-alpha-kernel"));
        assert!(r.ends_with("vvyx234hycbhbcc8hbvi44kn5nk2ym0p-alpha-netboot-ramdisk"));
        assert!(t.ends_with("840jbidk8xdx47aj3mcvvaypwdy50qx3-alpha-toplevel"));
        for bad in [&b"[]"[..], b"{}", b"garbage"] {
            assert!(matches!(
                built_outputs(derivations, bad),
                Err(GenerationError::Outputs(_))
            ));
            assert!(built_outputs(bad, built).is_err());
        }
    }

    #[test]
    fn roots_are_listed_next_to_the_paths_they_hold() {
        let paths = ["/nix/store/k-c", "/nix/store/r-a", "/nix/store/t-b"].map(PathBuf::from);
        // nix names the roots in its own order (by name: r-a, t-b, k-c).
        let links = [
            ("/g/1", "/nix/store/r-a"),
            ("/g/1-1", "/nix/store/t-b"),
            ("/g/1-2", "/nix/store/k-c"),
        ]
        .map(|(l, t)| (PathBuf::from(l), PathBuf::from(t)));
        assert_eq!(
            roots_in_order(&paths, &links),
            Ok(["/g/1-2", "/g/1", "/g/1-1"].map(PathBuf::from).to_vec())
        );
        assert_eq!(
            roots_in_order(&paths, &links[..2]),
            Err(PathBuf::from("/nix/store/k-c"))
        );
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
