//! The `[nix] allowed_paths` check against the race it used to lose, with real nix: a flake
//! added through a symlinked directory under the allowed one, and the symlink swapped to a directory
//! outside it after the check, at the worst moment (by a wrapper that swaps it, then runs the
//! real nix). nix still reads the directory that was judged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use flakeboot_nix::Flakes;
use flakeboot_testbed::require_tool;

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_swapped_after_the_check_does_not_redirect_nix() {
    let _nix = NIX_STORE_LOCK.read().await;
    let nix = require_tool("nix");
    let repo = FixtureRepo::new("race");
    // The flake is named through a symlinked directory: `<links>/d/<repo>`, `d` -> the
    // fixtures' directory (allowed).
    let links = fixture_dir("race-links-");
    let link = links.path().join("d");
    let repo_name = repo.path().file_name().unwrap().to_owned();
    std::os::unix::fs::symlink(repo.path().parent().unwrap(), &link).unwrap();
    let given = link.join(&repo_name);
    // Outside [nix] allowed_paths, under the same name: a flake too, with no hosts and a
    // secret beside it.
    let outside = tempfile::tempdir().unwrap();
    let bait = outside.path().join(&repo_name);
    std::fs::create_dir(&bait).unwrap();
    std::fs::write(
        bait.join("flake.nix"),
        "{ outputs = { self }: { nixosConfigurations = { }; }; }\n",
    )
    .unwrap();
    std::fs::write(bait.join("secret"), "not for the nix store\n").unwrap();

    // Every nix run first points the symlink outside: after the check, before nix reads.
    let wrapper = links.path().join("nix-swapping");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nln -sfn '{}' '{}'\nexec '{}' \"$@\"\n",
            outside.path().display(),
            link.display(),
            nix.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (_tmp, state) = state_dir();
    let mut config = runner_config(&state);
    config.settings.nix_bin = wrapper.clone();
    let flakes = Flakes::new(start(&state, config));
    let flake = flakes
        .add(&format!("path:{}", given.display()), Some("lab"))
        .await
        .unwrap();

    // The swap happened: the link now points outside.
    assert_eq!(std::fs::read_link(&link).unwrap(), outside.path());
    // nix read the judged directory: the fixture's hosts, its path in the lock.
    let locked = flake.locked_url.clone().unwrap();
    let real = std::fs::canonicalize(repo.path()).unwrap();
    assert!(
        locked.starts_with(&format!("path:{}?", real.display())),
        "{locked}"
    );
    assert!(flake.hosts.iter().any(|h| h.name == "alpha"), "{flake:?}");
    // The user's reference is kept as given.
    assert_eq!(flake.url, format!("path:{}", given.display()));
    // A re-lock now checks the swapped link and refuses it.
    let err = flakes.relock("lab").await.unwrap_err();
    assert!(
        err.to_string().contains("is not under [nix] allowed_paths"),
        "{err}"
    );
}
