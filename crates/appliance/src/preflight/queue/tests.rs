//! The queue with a fake VM: one at a time, in build order, results recorded, the current
//! follows the rule, interrupted pre-flights run again, new generations wake it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use futures_util::future::BoxFuture;

use super::*;

/// Passes every generation except those whose revision starts with `bad`; counts how many
/// boot at once.
#[derive(Default)]
struct FakeVm {
    booted: Mutex<Vec<(String, u32)>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl PreflightVm for FakeVm {
    fn boot<'a>(
        &'a self,
        g: &'a GenerationRecord,
        log: &'a Path,
        _timeout: Duration,
        _cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            std::fs::write(log, format!("booting {} {}\n", g.host, g.number)).unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.booted.lock().unwrap().push((g.host.clone(), g.number));
            self.now.fetch_sub(1, Ordering::SeqCst);
            if g.revision.as_deref().is_some_and(|r| r.starts_with("bad")) {
                Err("no report".into())
            } else {
                Ok(())
            }
        })
    }
}

fn generation(host: &str, rev: &str, at: u64, state: PreflightState) -> GenerationRecord {
    GenerationRecord {
        host: host.into(),
        number: 0,
        flake_url: "path:/f".into(),
        locked_url: "path:/f".into(),
        revision: Some(rev.into()),
        kernel: "/nix/store/k/bzImage".into(),
        initrd: "/nix/store/r/initrd".into(),
        init: "/nix/store/t/init".into(),
        store_paths: vec![],
        kernel_params: vec![],
        built_at: UNIX_EPOCH + Duration::from_secs(at),
        build_id: at,
        log: "/l".into(),
        gc_roots: vec![],
        preflight: PreflightRecord {
            state,
            ..PreflightRecord::queued()
        },
    }
}

fn state(store: &Store, host: &str, n: u32) -> PreflightState {
    store.generation(host, n).unwrap().unwrap().preflight.state
}

async fn until_idle(store: &Store) {
    for _ in 0..500 {
        if store.unfinished_preflights().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the queue did not finish");
}

fn start(
    store: &Store,
    vm: Arc<FakeVm>,
    dir: &Path,
) -> (
    PreflightQueue,
    CurrentGenerations,
    watch::Sender<u64>,
    CancellationToken,
) {
    let current = CurrentGenerations::load(store).unwrap();
    let (wake, rx) = watch::channel(0);
    let shutdown = CancellationToken::new();
    let queue = PreflightQueue::start(
        store.clone(),
        current.clone(),
        vm,
        QueueSettings {
            timeout: Duration::from_secs(5),
            log_dir: dir.join("preflight"),
        },
        rx,
        shutdown.clone(),
    );
    (queue, current, wake, shutdown)
}

#[tokio::test]
async fn one_at_a_time_in_build_order_and_a_failure_never_becomes_current() {
    use PreflightState::*;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .add_generation(&generation("lab#a", "old", 1, Skipped))
        .unwrap();
    store
        .add_generation(&generation("lab#a", "good", 2, Queued))
        .unwrap();
    store
        .add_generation(&generation("lab#b", "good", 3, Queued))
        .unwrap();
    store
        .add_generation(&generation("lab#a", "bad", 4, Queued))
        .unwrap();
    let vm = Arc::new(FakeVm::default());
    let (queue, current, _wake, shutdown) = start(&store, vm.clone(), tmp.path());
    let mut ended = queue.ended();
    until_idle(&store).await;
    // The last refresh happens right after the last record.
    while *ended.borrow_and_update() < 3 {
        ended.changed().await.unwrap();
    }
    assert_eq!(
        *vm.booted.lock().unwrap(),
        vec![
            ("lab#a".into(), 2),
            ("lab#b".into(), 1),
            ("lab#a".into(), 3)
        ]
    );
    assert_eq!(vm.most.load(Ordering::SeqCst), 1, "never two VMs at once");
    assert_eq!(state(&store, "lab#a", 2), Passed);
    assert_eq!(state(&store, "lab#b", 1), Passed);
    let failed = store.generation("lab#a", 3).unwrap().unwrap().preflight;
    assert_eq!(failed.state, Failed);
    assert_eq!(failed.reason.as_deref(), Some("no report"));
    assert!(failed.started_at.is_some() && failed.finished_at >= failed.started_at);
    // The failed generation 3 is not what lab#a boots; the passed 2 is.
    assert_eq!(current.boot("lab#a", false).unwrap().unwrap().generation, 2);
    assert_eq!(current.boot("lab#b", false).unwrap().unwrap().generation, 1);
    assert_eq!(
        store.current_generation("lab#a").unwrap().unwrap().number,
        2
    );
    // Its console log is owner-only and holds what the VM wrote.
    let log = failed.log.unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "booting lab#a 3\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(log.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    shutdown.cancel();
}

#[tokio::test]
async fn an_interrupted_preflight_runs_again_and_new_generations_wake_the_queue() {
    use PreflightState::*;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .add_generation(&generation("lab#a", "good", 1, Running))
        .unwrap();
    let vm = Arc::new(FakeVm::default());
    let (_queue, _current, wake, shutdown) = start(&store, vm.clone(), tmp.path());
    until_idle(&store).await;
    assert_eq!(state(&store, "lab#a", 1), Passed);
    // The queue sleeps until the build runner says a generation was made.
    store
        .add_generation(&generation("lab#a", "bad", 2, Queued))
        .unwrap();
    wake.send_modify(|n| *n += 1);
    until_idle(&store).await;
    assert_eq!(state(&store, "lab#a", 2), Failed);
    assert_eq!(vm.booted.lock().unwrap().len(), 2);
    shutdown.cancel();
}
