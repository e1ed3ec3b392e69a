//! The gate in front of password hashing. An argon2 run takes 19 MiB and tens of milliseconds
//! of a core; a few of them at a time, and a short queue behind them, is all the appliance
//! gives sign-in. A request that finds the queue full, or waits too long, is refused (429)
//! rather than queued without bound, so a burst of sign-ins from many addresses can neither
//! exhaust memory nor starve the boot services.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How many password hashes may run at once by default.
pub const DEFAULT_PERMITS: usize = 2;
/// How many requests may wait for a permit by default.
pub const DEFAULT_QUEUE: usize = 8;
/// How long a request waits for a permit by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// Why a password check did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashGateError {
    /// Too many checks running or waiting.
    #[error("too many password checks at once")]
    Busy,
    /// The blocking task died.
    #[error("the password hashing task failed: {0}")]
    Task(String),
}

/// Limits of a [`HashGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashes running at once.
    pub permits: usize,
    /// Requests waiting for one of them.
    pub queue: usize,
    /// Longest wait for a permit.
    pub wait: Duration,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            permits: DEFAULT_PERMITS,
            queue: DEFAULT_QUEUE,
            wait: DEFAULT_WAIT,
        }
    }
}

/// Runs password hashes on the blocking pool, at most `permits` at a time.
#[derive(Debug)]
pub struct HashGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: HashLimits,
    runs: AtomicU64,
}

/// Counts a waiting request for as long as it waits (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    /// A gate with these limits (at least one permit).
    pub fn new(limits: HashLimits) -> HashGate {
        HashGate {
            permits: Arc::new(Semaphore::new(limits.permits.max(1))),
            waiting: AtomicUsize::new(0),
            limits,
            runs: AtomicU64::new(0),
        }
    }

    /// Runs `hash` (a password hash or verification) on the blocking pool once a permit is
    /// free. The permit is held until `hash` returns, even if the caller goes away.
    pub async fn run<T, F>(&self, hash: F) -> Result<T, HashGateError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashGateError::Busy);
                }
                let _waiting = Waiting(&self.waiting);
                let acquire = Arc::clone(&self.permits).acquire_owned();
                match tokio::time::timeout(self.limits.wait, acquire).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return Err(HashGateError::Busy),
                }
            }
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash()
        })
        .await
        .map_err(|e| HashGateError::Task(e.to_string()))
    }

    /// How many hashes have run (a metric: refused sign-ins must not add to it).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// How many hashes are running now.
    pub fn running(&self) -> usize {
        self.limits
            .permits
            .max(1)
            .saturating_sub(self.permits.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Barrier;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_permits_run_a_few_wait_and_the_rest_are_refused_at_once() {
        let gate = Arc::new(HashGate::new(HashLimits {
            permits: 2,
            queue: 3,
            wait: Duration::from_secs(30),
        }));
        // Two hashes that block until released.
        let release = Arc::new(Barrier::new(3));
        let mut running = Vec::new();
        for _ in 0..2 {
            let (gate, release) = (Arc::clone(&gate), Arc::clone(&release));
            running.push(tokio::spawn(async move {
                gate.run(move || {
                    release.wait();
                })
                .await
            }));
        }
        while gate.running() < 2 {
            tokio::task::yield_now().await;
        }
        // Three wait; the rest are refused without waiting.
        let mut queued = Vec::new();
        for _ in 0..3 {
            let gate = Arc::clone(&gate);
            queued.push(tokio::spawn(async move { gate.run(|| ()).await }));
        }
        while gate.waiting.load(Ordering::Acquire) < 3 {
            tokio::task::yield_now().await;
        }
        for _ in 0..20 {
            assert!(matches!(gate.run(|| ()).await, Err(HashGateError::Busy)));
        }
        assert_eq!(gate.runs(), 2);
        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        for task in running.into_iter().chain(queued) {
            task.await.unwrap().unwrap();
        }
        assert_eq!(gate.runs(), 5);
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_request_that_waits_too_long_is_refused_and_stops_waiting() {
        let gate = Arc::new(HashGate::new(HashLimits {
            permits: 1,
            queue: 4,
            wait: Duration::from_millis(50),
        }));
        let held = Arc::clone(&gate.permits).try_acquire_owned().unwrap();
        assert!(matches!(gate.run(|| ()).await, Err(HashGateError::Busy)));
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        drop(held);
        assert_eq!(gate.run(|| 7).await.unwrap(), 7);
    }
}
