//! A queued or running build as followers see it: its cancel switch, its status and its log
//! (every line so far, then live lines), and the log file that outlives it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use flakeboot_store::BuildRecord;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::progress::BuildProgress;
use crate::runner::BuildStatus;

/// Lines a live follower may fall behind before it misses some (it is told how many).
const LOG_CHANNEL: usize = 4096;

/// Locks a mutex; a poisoned one is still used (its data is a log or a queue, always valid).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A build that is queued or running.
#[derive(Debug)]
pub(crate) struct LiveBuild {
    /// (locked reference, host): identical requests join this build.
    pub(crate) key: (String, String),
    pub(crate) cancel: CancellationToken,
    pub(crate) status: watch::Sender<BuildStatus>,
    /// Every line so far; a follower copies it and subscribes under this lock, so it misses
    /// no line and sees none twice.
    log: Mutex<(Vec<String>, broadcast::Sender<String>)>,
}

impl LiveBuild {
    pub(crate) fn new(record: &BuildRecord) -> LiveBuild {
        let (status, _) = watch::channel(BuildStatus {
            state: record.state,
            progress: BuildProgress::default(),
            error: record.error.clone(),
            generation: None,
        });
        let (lines, _) = broadcast::channel(LOG_CHANNEL);
        LiveBuild {
            key: (record.locked_url.clone(), record.host.clone()),
            cancel: CancellationToken::new(),
            status,
            log: Mutex::new((Vec::new(), lines)),
        }
    }

    /// Lines of an earlier run (a build interrupted by a restart), shown before new ones.
    pub(crate) fn preload(&self, lines: impl IntoIterator<Item = String>) {
        lock(&self.log).0.extend(lines);
    }

    /// Append a line and send it to the followers.
    pub(crate) fn push_line(&self, line: String) {
        let mut log = lock(&self.log);
        // No receiver is not an error: nobody is following.
        let _ = log.1.send(line.clone());
        log.0.push(line);
    }

    /// A follower that gets every line so far, then live ones until the build ends.
    pub(crate) fn follow(&self) -> LogFollower {
        let log = lock(&self.log);
        LogFollower {
            backlog: log.0.iter().cloned().collect(),
            live: Some(log.1.subscribe()),
        }
    }
}

/// A follower of one build's log: the backlog first, then live lines until the build ends.
#[derive(Debug)]
pub struct LogFollower {
    backlog: VecDeque<String>,
    live: Option<broadcast::Receiver<String>>,
}

impl LogFollower {
    /// A follower of a build that has ended: its log file's lines.
    pub(crate) fn finished(text: &str) -> LogFollower {
        LogFollower {
            backlog: text.lines().map(str::to_owned).collect(),
            live: None,
        }
    }

    /// The next line, or `None` once the build has ended and every line was read. A follower
    /// that fell more than 4096 lines behind gets a line saying how many it missed.
    pub async fn next_line(&mut self) -> Option<String> {
        if let Some(line) = self.backlog.pop_front() {
            return Some(line);
        }
        let live = self.live.as_mut()?;
        match live.recv().await {
            Ok(line) => Some(line),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(format!(
                "[flakeboot: {n} log lines skipped: follower too slow]"
            )),
            Err(broadcast::error::RecvError::Closed) => {
                self.live = None;
                None
            }
        }
    }
}

/// The build log on disk (appended; a build requeued after a restart continues its file).
/// Write errors are logged once and then the file is given up: the live log goes on.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: Option<File>,
    id: u64,
}

impl LogFile {
    pub(crate) fn open(id: u64, path: &Path) -> LogFile {
        let open = || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let file = match open() {
            Ok(f) => Some(f),
            Err(e) => {
                warn!(id, path = %path.display(), "cannot open the build log: {e}");
                None
            }
        };
        LogFile { file, id }
    }

    pub(crate) fn write_line(&mut self, line: &str) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = writeln!(f, "{line}")
        {
            warn!(id = self.id, "cannot write the build log: {e}");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use std::time::SystemTime;

    use flakeboot_store::BuildState;

    fn record() -> BuildRecord {
        BuildRecord {
            id: 1,
            flake: "f".into(),
            host: "h".into(),
            flake_url: "path:/f".into(),
            locked_url: "path:/f?narHash=x".into(),
            revision: None,
            kernel_file: "bzImage".into(),
            kernel_params: vec![],
            state: BuildState::Queued,
            queued_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            error: None,
            interruptions: 0,
            generation: None,
            log: PathBuf::new(),
        }
    }

    #[tokio::test]
    async fn followers_get_the_backlog_then_live_lines_then_the_end() {
        let live = LiveBuild::new(&record());
        live.preload(["earlier run".to_owned()]);
        live.push_line("one".into());
        let mut early = live.follow();
        live.push_line("two".into());
        let mut late = live.follow();
        drop(live); // the build ended
        for follower in [&mut early, &mut late] {
            let mut got = Vec::new();
            while let Some(line) = follower.next_line().await {
                got.push(line);
            }
            assert_eq!(got, ["earlier run", "one", "two"]);
        }
    }

    #[tokio::test]
    async fn a_slow_follower_is_told_what_it_missed() {
        let live = LiveBuild::new(&record());
        let mut slow = live.follow();
        for i in 0..LOG_CHANNEL + 10 {
            live.push_line(format!("line {i}"));
        }
        drop(live);
        let first = slow.next_line().await.unwrap();
        assert_eq!(
            first,
            "[flakeboot: 10 log lines skipped: follower too slow]"
        );
        assert_eq!(slow.next_line().await.unwrap(), "line 10");
    }
}
