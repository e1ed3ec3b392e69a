//! Nix settings replaced on a running runner (substituters saved in the web UI) apply to the
//! next build, with real nix on the fixture flake. The proof is nix's own: a `file://`
//! substituter is a local binary cache that nix creates (with its `nix-cache-info`) the first
//! time it consults it, which it does for every output it is about to build.

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
use std::time::Duration;

use common::*;
use flakeboot_nix::Flakes;
use flakeboot_store::BuildState;

async fn build_alpha(flakes: &Flakes) {
    let id = flakes.build("lab", "alpha").unwrap();
    let record = tokio::time::timeout(Duration::from_secs(120), flakes.runner().wait(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, BuildState::Succeeded, "{record:?}");
}

fn consulted(cache: &Path) -> bool {
    cache.join("nix-cache-info").is_file()
}

#[tokio::test(flavor = "multi_thread")]
async fn new_substituters_apply_to_the_next_build() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("subst");
    let (tmp, state) = state_dir();
    let (cache_a, cache_b) = (tmp.path().join("cache-a"), tmp.path().join("cache-b"));
    let mut config = runner_config(&state);
    config.settings = config
        .settings
        .with_option("substituters", &format!("file://{}", cache_a.display()));
    let flakes = Flakes::new(start(&state, config));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    build_alpha(&flakes).await;
    assert!(
        consulted(&cache_a),
        "the first build did not consult its cache"
    );
    assert!(!consulted(&cache_b));

    // The UI saves other substituters: the running runner takes them for the next build.
    let next = flakes
        .runner()
        .settings()
        .as_ref()
        .clone()
        .with_option("substituters", &format!("file://{}", cache_b.display()));
    flakes.runner().set_settings(next.clone());
    assert_eq!(*flakes.runner().settings(), next);
    std::fs::remove_dir_all(&cache_a).unwrap();

    // A new commit: new outputs to build, so nix consults its substituters again.
    repo.commit("rev2");
    flakes.relock("lab").await.unwrap();
    build_alpha(&flakes).await;
    assert!(
        consulted(&cache_b),
        "the build after the change did not use the new substituter"
    );
    assert!(
        !consulted(&cache_a),
        "the build after the change still used the old substituter"
    );
}
