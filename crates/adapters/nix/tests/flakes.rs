//! Add, lock, discover, build and follow the log, with real nix on the fixture flake in a
//! private git repository (no network: `substituters = ''`, `git+file://`).

// Test helpers outside #[test] functions fail loudly too (clippy's test allowances do
// not reach them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use flakeboot_config::FlakeConfig;
use flakeboot_nix::{FlakeError, Flakes, LocalSourceError, RunnerError};
use flakeboot_store::BuildState;

#[tokio::test(flavor = "multi_thread")]
async fn add_locks_the_flake_and_discovers_every_host() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("add");
    let rev = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));

    let flake = flakes.add(&repo.url(), Some("lab")).await.unwrap();
    assert_eq!(flake.name, "lab");
    assert_eq!(flake.revision.as_deref(), Some(rev.as_str()));
    let locked = flake.locked_url.clone().unwrap();
    assert!(locked.contains(&format!("rev={rev}")), "{locked}");

    let hosts: Vec<(&str, Option<&str>)> = flake
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.unbootable.as_deref()))
        .collect();
    assert_eq!(hosts.len(), 7, "{hosts:?}");
    for bootable in ["alpha", "beta", "broken", "slow", "sleepy"] {
        assert!(hosts.contains(&(bootable, None)), "{bootable}: {hosts:?}");
    }
    let alpha = flake.hosts.iter().find(|h| h.name == "alpha").unwrap();
    assert_eq!(alpha.kernel_file, "bzImage");
    assert_eq!(alpha.kernel_params, ["console=ttyS0", "quiet"]);
    let reason = |name: &str| {
        hosts
            .iter()
            .find(|(h, _)| *h == name)
            .and_then(|(_, r)| *r)
            .unwrap()
    };
    assert!(
        reason("diskonly").contains("no kernel, netbootRamdisk"),
        "{hosts:?}"
    );
    assert!(
        reason("evalfail").contains("does not evaluate"),
        "{hosts:?}"
    );

    // Adding it again (a restart re-reading the config) changes nothing; another URL under the
    // same name is refused.
    assert_eq!(flakes.add(&repo.url(), Some("lab")).await.unwrap(), flake);
    let err = flakes
        .add("github:acme/else", Some("lab"))
        .await
        .unwrap_err();
    assert!(matches!(err, FlakeError::NameTaken { .. }), "{err}");
    // The default name comes from the URL: the repository directory.
    let default = flakes.add(&repo.url(), None).await.unwrap();
    assert!(
        default.name.starts_with("flakeboot-nix-test-"),
        "{}",
        default.name
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_and_unreachable_flakes_are_clear_errors() {
    let _nix = NIX_STORE_LOCK.read().await;
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));

    let err = flakes.add("--impure", None).await.unwrap_err();
    assert!(matches!(err, FlakeError::BadRef(_)), "{err}");
    let err = flakes.add("github:only-owner", None).await.unwrap_err();
    assert!(err.to_string().contains("owner and a repository"), "{err}");

    // Well-formed but not there.
    let missing = fixtures_root().join(format!("no-such-repo-{}", std::process::id()));
    let err = flakes
        .add(&format!("git+file://{}", missing.display()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FlakeError::NotAllowed(LocalSourceError::Missing { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");

    // There but not a repository: nix's own message comes through.
    let empty = fixture_dir("empty-");
    let err = flakes
        .add(&format!("git+file://{}", empty.path().display()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, FlakeError::Lock(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
    assert!(msg.contains("flake metadata failed"), "{msg}");

    // A directory without flake.nix.
    let err = flakes
        .add(&format!("path:{}", empty.path().display()), Some("empty"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("flake.nix"), "{err}");

    // Local flakes only from [nix] allowed_paths, never /etc or the state directory.
    for (url, needle) in [
        ("path:/etc".to_owned(), "never built from /etc"),
        (format!("path:{}", state.display()), "never built from"),
        (
            format!("path:{}", std::env::temp_dir().display()),
            "never built from",
        ),
        (
            "path:/usr/share".to_owned(),
            "is not under [nix] allowed_paths",
        ),
        (
            "git+file:///nonexistent/repo".to_owned(),
            "is not under [nix] allowed_paths",
        ),
    ] {
        let err = flakes.add(&url, None).await.unwrap_err();
        assert!(matches!(err, FlakeError::NotAllowed(_)), "{url}: {err}");
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
    assert!(flakes.runner().store().flakes().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_becomes_a_generation_with_roots_log_and_cmdline() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("build");
    let rev = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    let id = flakes.build("lab", "alpha").unwrap();
    // The same host at the same lock joins the queued build.
    assert_eq!(flakes.build("lab", "alpha").unwrap(), id);
    let mut status = flakes.runner().status(id).unwrap();
    let mut live = flakes.runner().follow(id).unwrap();
    let follower = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = live.next_line().await {
            lines.push(line);
        }
        lines
    });
    let record = tokio::time::timeout(Duration::from_secs(120), flakes.runner().wait(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, BuildState::Succeeded, "{record:?}");
    assert_eq!(record.generation, Some(1));
    let final_status = status
        .wait_for(|s| !s.state.is_active())
        .await
        .map(|s| s.clone())
        .unwrap_or_else(|_| status.borrow().clone());
    // The ramdisk and toplevel embed this test's marker: built now. The kernel does not (it may
    // have been built by an earlier test).
    let p = &final_status.progress;
    assert!(p.done == p.total && (2..=3).contains(&p.total), "{p:?}");

    // Live log: nix's activities, then flakeboot's verdict; the stream ends with the build.
    let lines = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .unwrap()
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("alpha-netboot-ramdisk.drv")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("[flakeboot: build succeeded: generation 1]")
    );
    // A late follower reads the same log from disk.
    let mut late = flakes.runner().follow(id).unwrap();
    let mut late_lines = Vec::new();
    while let Some(line) = late.next_line().await {
        late_lines.push(line);
    }
    assert_eq!(late_lines, lines);

    // The generation: real files in the store, held by GC roots.
    let generations = flakes.generations("lab#alpha").unwrap();
    assert_eq!(generations.len(), 1);
    let g = &generations[0];
    assert_eq!(g.revision.as_deref(), Some(rev.as_str()));
    assert_eq!(
        read(&g.kernel),
        read(&repo.path().join("kernel")),
        "the kernel is the fixture's"
    );
    assert!(g.kernel.starts_with("/nix/store/") && g.kernel.ends_with("bzImage"));
    let initrd = read(&g.initrd);
    assert!(initrd.starts_with(b"070701"), "initrd is a newc cpio");
    let marker = format!("alpha {}-rev1", repo.marker);
    assert!(
        initrd.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "initrd holds the marker"
    );
    assert!(g.init.ends_with("init") && g.init.is_file());
    assert_eq!(g.gc_roots.len(), 3);
    for (root, path) in g.gc_roots.iter().zip(&g.store_paths) {
        assert_eq!(&std::fs::read_link(root).unwrap(), path);
        assert!(root.starts_with(state.join("gcroots/lab/alpha")));
    }
    let registered: Vec<_> = std::fs::read_dir("/nix/var/nix/gcroots/auto")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    for root in &g.gc_roots {
        assert!(
            registered.contains(root),
            "{} is not registered with nix",
            root.display()
        );
    }

    // The boot services' view.
    let boot = flakes.current().boot("alpha", false).unwrap().unwrap();
    assert_eq!(boot.kernel, g.kernel);
    assert_eq!(boot.initrd, g.initrd);
    assert_eq!(
        boot.cmdline,
        format!(
            "init={} console=ttyS0 quiet flakeboot.host=alpha flakeboot.generation=1 flakeboot.rev={}",
            g.init.display(),
            &rev[..12]
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_is_recorded_with_nix_message_and_makes_no_generation() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("broken");
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    let id = flakes.build("lab", "broken").unwrap();
    let record = flakes.runner().wait(id).await.unwrap();
    assert_eq!(record.state, BuildState::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("failed with exit code 3"), "{error}");
    assert!(flakes.generations("lab#broken").unwrap().is_empty());
    assert_eq!(flakes.current().boot("broken", false).unwrap(), None);
    let log = std::fs::read_to_string(&record.log).unwrap();
    assert!(log.contains("broken-toplevel: about to fail"), "{log}");

    // Hosts that cannot netboot are refused before nix runs.
    let err = flakes.build("lab", "diskonly").unwrap_err();
    assert!(err.to_string().contains("cannot netboot"), "{err}");
    let err = flakes.build("lab", "nope").unwrap_err();
    assert!(matches!(err, FlakeError::NoSuchHost { .. }), "{err}");
    let err = flakes.runner().follow(999).unwrap_err();
    assert!(matches!(err, RunnerError::NoSuchBuild { id: 999 }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_flakes_are_added_and_their_hosts_built_once() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("config");
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    let config = [
        FlakeConfig {
            url: repo.url(),
            name: Some("lab".into()),
            ..FlakeConfig::default()
        },
        FlakeConfig {
            url: "-rf".into(),
            name: None,
            ..FlakeConfig::default()
        },
    ];
    let errors = flakes.sync_config(&config).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(errors[0], FlakeError::BadRef(_)), "{}", errors[0]);
    let active = |flakes: &Flakes| -> Vec<(u64, String)> {
        let builds = flakes.runner().store().builds().unwrap();
        builds
            .into_iter()
            .filter(|b| b.state.is_active())
            .map(|b| (b.id, b.host))
            .collect()
    };
    let queued = active(&flakes);
    let hosts: Vec<&str> = queued.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(hosts, ["alpha", "beta", "broken", "sleepy", "slow"]);
    // Syncing again (a config reload) joins the same builds.
    assert!(flakes.sync_config(&config[..1]).await.is_empty());
    assert_eq!(active(&flakes), queued);
    for (id, _) in &queued {
        flakes.runner().cancel(*id).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_flake_is_labelled_by_its_content_hash() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("path");
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    let url = format!("path:{}", repo.path().display());
    let flake = flakes.add(&url, None).await.unwrap();
    assert_eq!(flake.revision, None);
    let locked = flake.locked_url.unwrap();
    assert!(locked.contains("narHash=sha256-"), "{locked}");

    let id = flakes.build(&flake.name, "beta").unwrap();
    assert_eq!(
        flakes.runner().wait(id).await.unwrap().state,
        BuildState::Succeeded
    );
    let boot = flakes.current().boot("beta", false).unwrap().unwrap();
    assert_eq!(boot.rev.len(), 12);
    assert!(boot.rev.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(
        boot.cmdline.ends_with(&format!(
            "flakeboot.host=beta flakeboot.generation=1 flakeboot.rev={}",
            boot.rev
        )),
        "{}",
        boot.cmdline
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_flake_drops_its_generations_roots_and_pins() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("remove");
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();
    let id = flakes.build("lab", "alpha").unwrap();
    let record = tokio::time::timeout(Duration::from_secs(120), flakes.runner().wait(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, BuildState::Succeeded, "{record:?}");
    flakes.rollback("lab#alpha", 1).unwrap();
    let roots = flakes.generations("lab#alpha").unwrap()[0].gc_roots.clone();
    assert!(!roots.is_empty() && roots.iter().all(|r| r.is_symlink()));

    let removed = flakes.remove("lab").unwrap();
    assert_eq!(removed.name, "lab");
    assert_eq!(removed.hosts, ["lab#alpha"]);
    assert_eq!(removed.generations, 1);
    assert!(removed.cancelled_builds.is_empty());
    assert!(
        roots.iter().all(|r| !r.exists() && !r.is_symlink()),
        "{roots:?}"
    );
    let store = flakes.runner().store();
    assert!(store.flake("lab").unwrap().is_none());
    assert!(store.generations("lab#alpha").unwrap().is_empty());
    assert_eq!(store.pinned_generation("lab#alpha").unwrap(), None);
    assert!(flakes.current().hosts().is_empty());
    assert!(matches!(
        flakes.remove("lab"),
        Err(flakeboot_nix::FlakeError::NoSuchFlake { .. })
    ));
}
