//! Disk space with real nix, in a store of the test's own (`--store <dir>`: the machine's
//! /nix/store is never collected by a test): garbage collection frees what no root reaches and
//! is reported; below `[nix] min_free` a build is refused with a message saying what to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flakeboot_nix::command::run_nix;
use flakeboot_nix::{NixSettings, Storage};
use tokio_util::sync::CancellationToken;

fn own_store(dir: &std::path::Path) -> NixSettings {
    NixSettings::default()
        .with_option("store", &dir.join("store").display().to_string())
        .with_option("substituters", "")
}

#[tokio::test]
async fn garbage_collection_frees_unrooted_paths_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = own_store(dir.path());
    let file = dir.path().join("blob");
    std::fs::write(&file, vec![7u8; 256 * 1024]).unwrap();
    let cancel = CancellationToken::new();
    let added = run_nix(
        &settings,
        &["store".into(), "add-file".into(), file.clone().into()],
        &cancel,
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&added).contains("/nix/store/"));

    let storage = Storage::new(dir.path(), None, true);
    assert!(storage.report().last_gc.is_none());
    storage.collect(&settings, &cancel, "after a build").await;
    let report = storage.report();
    let gc = report.last_gc.expect("a collection report");
    assert_eq!(gc.paths, 1, "{gc:?}");
    assert!(gc.freed >= 256 * 1024, "{gc:?}");
    assert_eq!(gc.reason, "after a build");
    let usage = report.usage.unwrap();
    assert!(usage.total > 0 && usage.free <= usage.total);
}

#[tokio::test]
async fn below_min_free_a_build_is_refused_after_collecting() {
    let dir = tempfile::tempdir().unwrap();
    let settings = own_store(dir.path());
    let cancel = CancellationToken::new();
    // Enough free space: nothing happens.
    let roomy = Storage::new(dir.path(), Some(1), false);
    roomy.before_build(&settings, &cancel).await.unwrap();
    assert!(roomy.report().last_gc.is_none());
    // More than any disk has: nix collects first, then the build is refused.
    let full = Storage::new(dir.path(), Some(u64::MAX / 2), false);
    let refused = full.before_build(&settings, &cancel).await.unwrap_err();
    assert!(refused.contains("[nix] min_free"), "{refused}");
    assert!(refused.contains("keep_generations"), "{refused}");
    assert_eq!(
        full.report().last_gc.map(|g| g.reason),
        Some("below min_free".to_owned())
    );
}

#[tokio::test]
async fn a_collection_waits_for_builds_whose_outputs_are_not_rooted_yet() {
    let dir = tempfile::tempdir().unwrap();
    let settings = own_store(dir.path());
    let file = dir.path().join("built");
    std::fs::write(&file, vec![3u8; 64 * 1024]).unwrap();
    let cancel = CancellationToken::new();
    // What a build just made: in the store, no root yet.
    let added = run_nix(
        &settings,
        &["store".into(), "add-file".into(), file.into()],
        &cancel,
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    let store_path = String::from_utf8_lossy(&added).trim().to_owned();
    let on_disk = dir
        .path()
        .join("store")
        .join(store_path.trim_start_matches('/'));
    assert!(on_disk.exists(), "{}", on_disk.display());

    let storage = std::sync::Arc::new(Storage::new(dir.path(), None, true));
    let in_flight = storage.build_in_flight().await;
    let gc = {
        let (storage, settings, cancel) = (storage.clone(), settings.clone(), cancel.clone());
        tokio::spawn(async move { storage.collect(&settings, &cancel, "after a build").await })
    };
    // Another build's collection must not run while this build is unrooted.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!gc.is_finished(), "the collection ran during a build");
    assert!(on_disk.exists(), "collected before the build rooted it");
    assert!(storage.report().last_gc.is_none());
    // The build is done (here: it failed, so nothing roots it): the collection goes ahead.
    drop(in_flight);
    gc.await.unwrap();
    assert!(
        !on_disk.exists(),
        "the collection should run once no build is in flight"
    );
    assert_eq!(storage.report().last_gc.map(|g| g.paths), Some(1));
}
