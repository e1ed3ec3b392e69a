//! Single-threaded event loops of their own for the boot port's connections, as nginx runs one
//! event loop per worker process.
//!
//! Why: on the daemon's multi-thread runtime a lone download's task is woken by whichever
//! worker holds the I/O driver and can move from worker to worker; against nginx one client's
//! download ran at 0.91-0.99x in eight runs, and at 0.99-1.07x with the whole runtime on one
//! worker (docs/benchmarks.md, "The boot port's connections on event loops of their own"). Here
//! a connection stays on one loop, one thread, for its life.
//!
//! [`EventLoops::per_core`] makes one loop per core (at most [`MAX_LOOPS`]); connections are
//! handed out in turn. A loop's thread starts with its first connection (an idle daemon has
//! none) and ends when the [`EventLoops`] is dropped, dropping what still runs on it. A loop
//! that cannot start leaves its connections to the caller's runtime, with a warning.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc::{self, UnboundedSender};

/// A connection's work, sent to a loop.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The most loops, whatever the number of cores.
pub const MAX_LOOPS: usize = 4;

/// Threads of a loop's blocking pool (boot routes look a file up or store a report there).
const BLOCKING_THREADS: usize = 32;

/// A set of event loops, each on a thread of its own.
#[derive(Debug)]
pub struct EventLoops {
    /// Thread names: `{name}-{index}`, its blocking pool's `{name}-pool`.
    name: &'static str,
    /// Each loop's queue once started (`None`: it could not start).
    loops: Vec<OnceLock<Option<UnboundedSender<Job>>>>,
    next: AtomicUsize,
}

impl EventLoops {
    /// `count` loops (at least one) named `name` (at most 9 bytes: Linux keeps 15 of a
    /// thread's name).
    pub fn new(name: &'static str, count: usize) -> EventLoops {
        EventLoops {
            name,
            loops: (0..count.max(1)).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// One loop per core this process may run on, at most [`MAX_LOOPS`].
    pub fn per_core(name: &'static str) -> EventLoops {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        EventLoops::new(name, cores.min(MAX_LOOPS))
    }

    /// Runs `job` on the next loop in turn (on the caller's runtime if that loop could not
    /// start). Call it from within a tokio runtime.
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        let job: Job = Box::pin(job);
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.loops.len();
        let queue = self.loops.get(turn).and_then(|slot| {
            slot.get_or_init(|| match start(self.name, turn) {
                Ok(queue) => Some(queue),
                Err(e) => {
                    tracing::warn!(
                        "cannot start the event loop {}-{turn}, its connections run on the \
                         daemon's runtime: {e}",
                        self.name
                    );
                    None
                }
            })
            .as_ref()
        });
        let unsent = match queue {
            Some(queue) => queue.send(job).err().map(|mpsc::error::SendError(job)| job),
            None => Some(job),
        };
        // No loop, or its thread is gone (it ends only when its queue closes): run it here.
        if let Some(job) = unsent {
            drop(tokio::spawn(job));
        }
    }
}

/// Starts loop `index`: a current-thread runtime on a thread of its own that runs every job
/// its queue brings until the queue closes.
///
/// The runtime is built on that thread, which says whether it could: a runtime must not be
/// dropped where the caller runs (inside a runtime), as it would be if the thread could not
/// start. The caller waits for that answer, once per loop, well under a millisecond.
fn start(name: &str, index: usize) -> io::Result<UnboundedSender<Job>> {
    // Unbounded: a job is a connection the accept loop admitted (within its per-address
    // slots), and the loop spawns each one as soon as it arrives.
    let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
    let (built, ready) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    let pool = format!("{name}-pool");
    std::thread::Builder::new()
        .name(format!("{name}-{index}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .thread_name(pool)
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = built.send(Err(e));
                    return;
                }
            };
            let _ = built.send(Ok(()));
            runtime.block_on(async move {
                while let Some(job) = jobs.recv().await {
                    drop(tokio::spawn(job));
                }
            });
            // The runtime drops here, and with it whatever still runs on it.
        })?;
    ready.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the loop's thread ended before it started",
        ))
    })?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The names of this process's threads that start with `prefix`.
    fn threads(prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// Where each of `count` jobs ran, in the order they were spawned.
    async fn run_jobs(loops: &EventLoops, count: usize) -> Vec<String> {
        let mut ran = Vec::new();
        for _ in 0..count {
            let (tx, rx) = tokio::sync::oneshot::channel();
            loops.spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send(name.unwrap_or_default()).unwrap();
            });
            ran.push(rx.await.unwrap());
        }
        ran
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_take_turns_on_loops_that_start_with_their_first_job_and_end_when_dropped() {
        let loops = EventLoops::new("evl-a", 2);
        assert_eq!(
            threads("evl-a-"),
            Vec::<String>::new(),
            "no thread before a job"
        );
        let ran = run_jobs(&loops, 5).await;
        assert_eq!(ran, ["evl-a-0", "evl-a-1", "evl-a-0", "evl-a-1", "evl-a-0"]);
        assert_eq!(threads("evl-a-"), ["evl-a-0", "evl-a-1"]);

        // A job still waiting when the loops go is dropped with its loop.
        let (held, hold) = tokio::sync::oneshot::channel::<()>();
        let (dropped, was_dropped) = tokio::sync::oneshot::channel::<()>();
        loops.spawn(async move {
            let _on_drop = dropped;
            let _ = hold.await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(loops);
        assert!(
            was_dropped.await.is_err(),
            "the job was dropped, not finished"
        );
        drop(held);
        let until = Instant::now() + Duration::from_secs(10);
        while !threads("evl-a-").is_empty() {
            assert!(
                Instant::now() < until,
                "threads left: {:?}",
                threads("evl-a-")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_loop_at_least_and_timers_and_blocking_work_on_a_loop() {
        let loops = EventLoops::new("evl-b", 0);
        let (tx, rx) = tokio::sync::oneshot::channel();
        loops.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let pool =
                tokio::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                    .await
                    .unwrap();
            tx.send((std::thread::current().name().map(str::to_owned), pool))
                .unwrap();
        });
        let (name, pool) = rx.await.unwrap();
        assert_eq!(name.as_deref(), Some("evl-b-0"));
        assert_eq!(pool.as_deref(), Some("evl-b-pool"));
        assert!(EventLoops::per_core("evl-c").loops.len() <= MAX_LOOPS);
    }
}
