//! Generations with real nix: update to a new revision, rollback, a failed update that keeps
//! the current generation, keeping the last N, and `nix-collect-garbage` sparing what a
//! machine may boot.

// Test helpers outside #[test] functions fail loudly too (clippy's test allowances do
// not reach them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use flakeboot_nix::{FlakeError, Flakes, Runner, RunnerConfig};
use flakeboot_store::{BuildRecord, BuildState};
use flakeboot_testbed::require_tool;

async fn wait_all(flakes: &Flakes, ids: &[u64]) -> Vec<BuildRecord> {
    let mut out = Vec::new();
    for id in ids {
        let record = tokio::time::timeout(Duration::from_secs(120), flakes.runner().wait(*id))
            .await
            .unwrap()
            .unwrap();
        out.push(record);
    }
    out
}

/// Build alpha at the flake's current lock; returns its record.
async fn build_alpha(flakes: &Flakes) -> BuildRecord {
    let id = flakes.build("lab", "alpha").unwrap();
    wait_all(flakes, &[id]).await.remove(0)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn update_rollback_and_a_failed_update() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("update");
    let rev1 = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();
    assert_eq!(build_alpha(&flakes).await.generation, Some(1));

    // A second revision: update re-locks to it and builds every netbootable host.
    let rev2 = repo.commit("rev2");
    let ids = flakes.update("lab").await.unwrap();
    assert_eq!(ids.len(), 5, "alpha, beta, broken, sleepy, slow");
    let slow = flakes.build("lab", "slow").unwrap();
    assert!(
        ids.contains(&slow),
        "the queued slow build is joined, not duplicated"
    );
    assert!(flakes.runner().cancel(slow).unwrap());
    let records = wait_all(&flakes, &ids).await;
    let alpha = records.iter().find(|r| r.host == "alpha").unwrap();
    assert_eq!(alpha.state, BuildState::Succeeded, "{alpha:?}");
    assert_eq!(alpha.revision.as_deref(), Some(rev2.as_str()));
    assert_eq!(alpha.generation, Some(2));

    let current = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!(current.generation, 2);
    assert!(
        current
            .cmdline
            .ends_with(&format!("flakeboot.rev={}", &rev2[..12]))
    );
    assert!(contains(
        &read(&current.initrd),
        &format!("{}-rev2", repo.marker)
    ));

    // Rollback: pin generation 1; it is what the boot services serve.
    flakes.rollback("lab#alpha", 1).unwrap();
    let pinned = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!((pinned.generation, pinned.pinned), (1, true));
    assert!(
        pinned
            .cmdline
            .contains(&format!("flakeboot.rev={}", &rev1[..12]))
    );
    assert!(contains(
        &read(&pinned.initrd),
        &format!("{}-rev1", repo.marker)
    ));
    let err = flakes.rollback("alpha", 9).unwrap_err();
    assert!(
        matches!(err, FlakeError::NoSuchGeneration { number: 9, .. }),
        "{err}"
    );

    // Forward again, then a broken revision: the failed build does not replace generation 2.
    flakes.unpin("alpha").unwrap();
    assert_eq!(
        flakes
            .current()
            .boot("alpha", false)
            .unwrap()
            .unwrap()
            .generation,
        2
    );
    repo.break_builds();
    flakes.update("lab").await.unwrap();
    assert!(
        flakes
            .runner()
            .cancel(flakes.build("lab", "slow").unwrap())
            .unwrap()
    );
    let failed = build_alpha(&flakes).await;
    assert_eq!(failed.state, BuildState::Failed);
    assert!(failed.error.unwrap().contains("exit code 1"));
    let current = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!(current.generation, 2);
    assert_eq!(flakes.generations("alpha").unwrap().len(), 2);
}

fn nix_store(args: &[&str]) -> (bool, String) {
    let out = Command::new(require_tool("nix-store"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_last_generations_keep_roots_and_gc_spares_them() {
    // Nothing else in this test binary may build while the garbage collector runs.
    let _nix = NIX_STORE_LOCK.write().await;
    let repo = FixtureRepo::new("gc");
    let (_tmp, state) = state_dir();
    let config = RunnerConfig {
        keep_generations: 2,
        ..runner_config(&state)
    };
    let flakes = Flakes::new(start(&state, config));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();
    build_alpha(&flakes).await;
    let first = flakes.generations("alpha").unwrap().remove(0);
    for label in ["rev2", "rev3"] {
        repo.commit(label);
        flakes.relock("lab").await.unwrap();
        assert_eq!(build_alpha(&flakes).await.state, BuildState::Succeeded);
    }

    let kept = flakes.generations("alpha").unwrap();
    let numbers: Vec<u32> = kept.iter().map(|g| g.number).collect();
    assert_eq!(numbers, vec![2, 3]);
    for root in &first.gc_roots {
        assert!(!exists(root), "{} should be gone", root.display());
    }
    for g in &kept {
        for root in &g.gc_roots {
            assert!(exists(root), "{} should be kept", root.display());
        }
    }

    // Roll back to generation 2, then collect garbage.
    flakes.rollback("alpha", 2).unwrap();
    let (ok, out) = nix_store(&["--gc", "--print-dead"]);
    assert!(ok, "{out}");
    let first_initrd_out = first.store_paths[1].display().to_string();
    assert!(
        out.contains(&first_initrd_out),
        "generation 1's initrd is garbage"
    );
    for g in &kept {
        for path in &g.store_paths {
            assert!(
                !out.contains(&path.display().to_string()),
                "{} is live",
                path.display()
            );
        }
    }
    let gc = Command::new(require_tool("nix-collect-garbage"))
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert!(
        !exists(&first.store_paths[1]),
        "generation 1's initrd was collected"
    );
    for g in &kept {
        assert!(g.kernel.is_file() && g.initrd.is_file() && g.init.is_file());
    }
    let current = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!(current.generation, 2);
    assert!(current.kernel.is_file() && current.initrd.is_file());
    // A path a generation holds cannot be deleted by hand either.
    let (ok, out) = nix_store(&["--delete", &kept[1].store_paths[1].display().to_string()]);
    assert!(!ok, "deleting a rooted path must fail: {out}");
}

/// `nix build --json` answers in its own order (nix 2.8 sorts by derivation name), not in the
/// order of the installables: with derivations named in every order, each generation's kernel,
/// initrd and init must still be the host's kernel, initrd and init, and each GC root must
/// hold the store path recorded next to it. No `build-users-group` is configured: as root
/// without a nixbld group (this test machine), flakeboot must empty it by itself.
#[tokio::test(flavor = "multi_thread")]
async fn outputs_are_matched_by_derivation_whatever_their_names() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::of("permuted", "permuted");
    let (_tmp, state) = state_dir();
    let config = RunnerConfig {
        settings: offline_settings(),
        ..runner_config(&state)
    };
    let flakes = Flakes::new(start(&state, config));
    flakes.add(&repo.url(), Some("order")).await.unwrap();
    let hosts = ["krt", "ktr", "rkt", "rtk", "tkr", "trk"];
    let ids: Vec<u64> = hosts
        .iter()
        .map(|h| flakes.build("order", h).unwrap())
        .collect();
    for (host, record) in hosts.iter().zip(wait_all(&flakes, &ids).await) {
        assert_eq!(record.state, BuildState::Succeeded, "{host}: {record:?}");
        let g = flakes.generations(host).unwrap().remove(0);
        let says = |path: &Path, what: &str| {
            let text = String::from_utf8_lossy(&read(path)).into_owned();
            assert!(
                text.starts_with(&format!("{what} of {host} ")),
                "{host}'s {what} is {} holding {text:?}",
                path.display()
            );
        };
        says(&g.kernel, "kernel");
        says(&g.initrd, "initrd");
        says(&g.init, "init");
        assert_eq!(g.gc_roots.len(), g.store_paths.len(), "{host}: {g:?}");
        for (root, path) in g.gc_roots.iter().zip(&g.store_paths) {
            assert_eq!(
                &std::fs::read_link(root).unwrap(),
                path,
                "{host}: {} roots another path",
                root.display()
            );
        }
        let current = flakes.current().boot(host, false).unwrap().unwrap();
        assert_eq!((&current.kernel, &current.initrd), (&g.kernel, &g.initrd));
    }
}

/// As on a new appliance a backup was restored onto: the generation's record, but neither its
/// GC roots nor its store paths. A runner started on that state builds it again from its
/// locked revision, gets the very paths it recorded and roots them; a record whose paths no
/// build gives is reported and left as it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_generation_whose_store_paths_are_gone_is_rebuilt_at_start() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("rebuild");
    let (_tmp, state) = state_dir();
    let g = {
        let flakes = Flakes::new(start(&state, runner_config(&state)));
        flakes.add(&repo.url(), Some("lab")).await.unwrap();
        assert_eq!(build_alpha(&flakes).await.state, BuildState::Succeeded);
        flakes.generations("alpha").unwrap().remove(0)
    };
    // A new commit after the build: the rebuild must use the locked revision, not the branch.
    repo.commit("after-the-backup");

    // The ramdisk and toplevel carry this test's marker (the kernel may be another test's).
    std::fs::remove_dir_all(state.join("gcroots")).unwrap();
    let gone: Vec<String> = g.store_paths[1..]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let (ok, out) = nix_store(
        &[
            &["--delete"][..],
            &gone.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert!(ok, "nix-store --delete: {out}");
    assert!(g.store_paths[1..].iter().all(|p| !exists(p)));

    let runner = Runner::start(reopen(&state), runner_config(&state)).unwrap();
    let rebuilt = eventually(Duration::from_secs(240), || {
        g.store_paths.iter().all(|p| exists(p))
            && g.gc_roots
                .iter()
                .zip(&g.store_paths)
                .all(|(root, path)| std::fs::read_link(root).ok().as_ref() == Some(path))
    });
    assert!(rebuilt, "generation 1 was not rebuilt and rooted: {g:#?}");
    let flakes = Flakes::new(runner);
    let now = flakes.generations("alpha").unwrap();
    assert_eq!(now.len(), 1, "no new generation: {now:#?}");
    assert_eq!(now[0].store_paths, g.store_paths);
    let current = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!(current.generation, 1);
    // Rooted: the garbage collector would keep every path.
    let (ok, dead) = nix_store(&["--gc", "--print-dead"]);
    assert!(ok, "{dead}");
    for path in &gone {
        assert!(!dead.contains(path.as_str()), "{path} is not rooted");
    }
    drop(flakes);

    // A record no build matches (as if the flake's build read the clock): reported, kept.
    let store = reopen(&state);
    let mut odd = g.clone();
    odd.store_paths[2] = "/nix/store/00000000000000000000000000000000-not-this".into();
    store.put_generation(&odd).unwrap();
    let settings = runner_config(&state).settings;
    let done = flakeboot_nix::rebuild::rebuild_missing(
        &store,
        &settings,
        &state,
        &tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(240),
    )
    .await
    .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    let err = done[0].result.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("not reproducible") && err.contains("not-this"),
        "{err}"
    );
    assert_eq!(
        store.generations("lab#alpha").unwrap()[0].store_paths,
        odd.store_paths
    );
}
