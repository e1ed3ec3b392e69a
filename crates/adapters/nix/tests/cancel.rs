//! Cancel, timeout and a restart mid-build, with real nix: nothing nix started survives, the
//! reason is recorded, and an interrupted build is requeued and completes.

// Test helpers outside #[test] functions fail loudly too (clippy's test allowances do
// not reach them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flakeboot_nix::{Flakes, Runner, RunnerConfig};
use flakeboot_store::BuildState;

/// Start a build of `host` and wait until its builder printed `started`; returns the build id,
/// nix's process group and the builder's environment marker.
async fn start_slow_build(
    flakes: &Flakes,
    repo: &FixtureRepo,
    host: &str,
    started: &str,
) -> (u64, i32, String) {
    let id = flakes.build("lab", host).unwrap();
    let mut log = flakes.runner().follow(id).unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = log.next_line().await {
            if line.contains(started) {
                return;
            }
        }
        panic!("the build ended before its builder started");
    })
    .await
    .expect("the builder did not start within 60 s");
    let builder_env = format!("name={host}-toplevel-{}-rev1", repo.marker);
    assert!(
        !pids_with_env(&builder_env).is_empty(),
        "the builder runs (found by its environment {builder_env})"
    );
    // nix's command line holds the locked URL, which holds the repository's path.
    let nix = pids_with_cmdline(&repo.path().display().to_string());
    let (_, pgid) = *nix.first().expect("nix runs");
    assert!(!pgrep_group(pgid).is_empty());
    (id, pgid, builder_env)
}

fn assert_all_gone(pgid: i32, builder_env: &str) {
    assert!(
        eventually(Duration::from_secs(5), || pgrep_group(pgid).is_empty()),
        "processes left in nix's group {pgid}: {}",
        pgrep_group(pgid)
    );
    assert!(
        eventually(Duration::from_secs(5), || pids_with_env(builder_env)
            .is_empty()),
        "the builder survived: {:?}",
        pids_with_env(builder_env)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_kills_nix_and_every_process_it_started() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("cancel");
    let (_tmp, state) = state_dir();
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    let (id, pgid, builder) = start_slow_build(&flakes, &repo, "slow", "slow build started").await;
    // A second request queued behind it is cancelled without ever running.
    let queued = flakes.build("lab", "beta").unwrap();
    assert!(flakes.runner().cancel(queued).unwrap());

    let asked = Instant::now();
    assert!(flakes.runner().cancel(id).unwrap());
    let record = tokio::time::timeout(Duration::from_secs(30), flakes.runner().wait(id))
        .await
        .unwrap()
        .unwrap();
    let took = asked.elapsed();
    eprintln!("cancel took {took:?}");
    // nix stops its builder on SIGTERM: the 5 s SIGKILL fallback is not needed.
    assert!(took < Duration::from_secs(4), "cancel took {took:?}");
    assert_eq!(record.state, BuildState::Cancelled);
    assert_eq!(record.error.as_deref(), Some("cancelled by the user"));
    assert_all_gone(pgid, &builder);
    assert!(!flakes.runner().cancel(id).unwrap(), "already ended");

    let queued = flakes.runner().wait(queued).await.unwrap();
    assert_eq!(queued.state, BuildState::Cancelled);
    assert!(queued.started_at.is_none());
    let log = std::fs::read_to_string(&record.log).unwrap();
    assert!(log.contains("slow build started"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_kills_the_build_and_records_why() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("timeout");
    let (_tmp, state) = state_dir();
    let config = RunnerConfig {
        timeout: Duration::from_secs(3),
        ..runner_config(&state)
    };
    let flakes = Flakes::new(start(&state, config));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    let (id, pgid, builder) = start_slow_build(&flakes, &repo, "slow", "slow build started").await;
    let record = tokio::time::timeout(Duration::from_secs(30), flakes.runner().wait(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, BuildState::TimedOut);
    let error = record.error.unwrap();
    assert!(error.contains("timed out after 3s"), "{error}");
    assert_all_gone(pgid, &builder);
}

#[test]
fn a_restart_mid_build_requeues_it_and_it_completes() {
    let repo = FixtureRepo::new("restart");
    let (_tmp, state) = state_dir();

    // First life: start the build, then "crash" (the runtime and every task are dropped).
    let first = tokio::runtime::Runtime::new().unwrap();
    let (id, pgid, builder) = first.block_on(async {
        let _nix = NIX_STORE_LOCK.read().await;
        let flakes = Flakes::new(start(&state, runner_config(&state)));
        flakes.add(&repo.url(), Some("lab")).await.unwrap();
        // Returning drops the runner mid-build; the runtime's shutdown drops every task.
        start_slow_build(&flakes, &repo, "sleepy", "sleepy build started").await
    });
    first.shutdown_timeout(Duration::from_secs(5));
    assert_all_gone(pgid, &builder);

    // Second life: the store says the build was running; it is requeued and completes.
    let store = reopen(&state);
    let record = store.build(id).unwrap().unwrap();
    assert_eq!(record.state, BuildState::Running);
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let _nix = NIX_STORE_LOCK.read().await;
        let runner = Runner::start(store, runner_config(&state)).unwrap();
        // A follower of the requeued build gets the interrupted run's lines first.
        let mut follower = runner.follow(id).unwrap();
        let first_line = follower.next_line().await.unwrap();
        assert!(first_line.contains("building"), "{first_line}");
        let mut followed = vec![first_line];
        while let Some(line) = follower.next_line().await {
            followed.push(line);
        }
        let record = tokio::time::timeout(Duration::from_secs(60), runner.wait(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, BuildState::Succeeded, "{record:?}");
        assert_eq!(record.interruptions, 1);
        assert_eq!(record.generation, Some(1));
        let log = std::fs::read_to_string(&record.log).unwrap();
        assert!(
            log.contains("[flakeboot: restarted after 1 interruption(s)]"),
            "{log}"
        );
        assert_eq!(log.matches("sleepy build started").count(), 2, "{log}");
        assert_eq!(
            followed.join("\n") + "\n",
            log,
            "the follower saw the whole log"
        );
        let flakes = Flakes::new(runner);
        let boot = flakes.current().boot("lab#sleepy", false).unwrap().unwrap();
        assert_eq!(boot.generation, 1);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn max_concurrent_builds_run_side_by_side() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("concurrent");
    let (_tmp, state) = state_dir();
    let config = RunnerConfig {
        max_concurrent: 2,
        ..runner_config(&state)
    };
    let flakes = Flakes::new(start(&state, config));
    flakes.add(&repo.url(), Some("lab")).await.unwrap();

    let slow = flakes.build("lab", "slow").unwrap();
    let sleepy = flakes.build("lab", "sleepy").unwrap();
    let mut a = flakes.runner().status(slow).unwrap();
    let mut b = flakes.runner().status(sleepy).unwrap();
    let both = async {
        a.wait_for(|s| s.state == BuildState::Running)
            .await
            .unwrap();
        b.wait_for(|s| s.state == BuildState::Running)
            .await
            .unwrap();
        // Both at once: the first is still running while the second runs.
        assert_eq!(a.borrow().state, BuildState::Running);
    };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("two builds did not run at once");
    let record = flakes.runner().wait(sleepy).await.unwrap();
    assert_eq!(record.state, BuildState::Succeeded);
    flakes.runner().cancel(slow).unwrap();
    let slow = flakes.runner().wait(slow).await.unwrap();
    assert_eq!(slow.state, BuildState::Cancelled);
}
