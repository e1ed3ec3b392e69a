use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process this test started. Its stdout and stderr go to one log file; on drop it gets
/// SIGTERM, then SIGKILL after 3 s, by its own PID only.
#[derive(Debug)]
pub struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct WaitError {
    pub what: String,
    pub log_tail: String,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n--- log tail ---\n{}", self.what, self.log_tail)
    }
}

impl std::error::Error for WaitError {}

impl Proc {
    pub fn spawn(label: &str, mut cmd: Command) -> io::Result<Proc> {
        let dir = tempfile::Builder::new().prefix("fbt-proc-").tempdir()?;
        let log = dir.path().join(format!("{label}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {label} ({cmd:?}): {e}"))
            })?;
        Ok(Proc {
            label: label.to_owned(),
            child,
            log,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of output.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Wait until the output contains `needle`; on timeout or exit, an error with the log tail.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, WaitError> {
        let start = Instant::now();
        loop {
            let out = self.output();
            if let Some(pos) = out.find(needle) {
                let line_end = out[pos..].find('\n').map_or(out.len(), |e| pos + e);
                let line_start = out[..pos].rfind('\n').map_or(0, |s| s + 1);
                return Ok(out[line_start..line_end].to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.wait_error(format!(
                    "{} exited ({status}) before printing {needle:?}",
                    self.label
                )));
            }
            if start.elapsed() > timeout {
                return Err(self.wait_error(format!(
                    "{} did not print {needle:?} within {timeout:?}",
                    self.label
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, WaitError> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                return Err(
                    self.wait_error(format!("{} still running after {timeout:?}", self.label))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send a signal to this process (by its PID).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with our own child's PID has no memory-safety preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// SIGTERM and wait for exit (SIGKILL after 3 s); returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    fn wait_error(&self, what: String) -> WaitError {
        WaitError {
            what,
            log_tail: self.tail(40),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
