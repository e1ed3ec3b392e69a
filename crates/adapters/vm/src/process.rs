//! QEMU as a direct child process in its own process group, its serial console copied into a
//! bounded owner-only log.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::args::{VmSpec, args};

/// Starting or watching the VM failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU could not be started (not installed, not executable).
    #[error("cannot start {}: {source}; install QEMU (qemu-system-x86) or set [preflight] enabled = false", qemu.display())]
    Spawn {
        /// The binary.
        qemu: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The console log could not be created.
    #[error("cannot create the console log {}: {source}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for QEMU failed.
    #[error("cannot wait for QEMU: {source}")]
    Wait {
        /// Why.
        source: std::io::Error,
    },
}

/// A running pre-flight VM. Dropping it kills QEMU's process group.
#[derive(Debug)]
pub struct RunningVm {
    child: Child,
    pgid: Option<Pid>,
    console: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// The most of QEMU's own error output kept (for the failure reason).
const MAX_STDERR: usize = 4096;

impl RunningVm {
    /// Starts QEMU for `spec` (arguments only, its own process group), its serial console
    /// going to `log` (created 0600, truncated), at most `max_log` bytes of it.
    pub fn start(spec: &VmSpec, log: &Path, max_log: u64) -> Result<RunningVm, VmError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(log)
            .map_err(|source| VmError::Log {
                path: log.to_owned(),
                source,
            })?;
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(args(spec))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| VmError::Spawn {
            qemu: spec.qemu.clone(),
            source,
        })?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let console = child
            .stdout
            .take()
            .map(|out| tokio::spawn(copy_bounded(out, tokio::fs::File::from_std(file), max_log)));
        let stderr = child.stderr.take().map(|err| tokio::spawn(tail(err)));
        Ok(RunningVm {
            child,
            pgid,
            console,
            stderr,
        })
    }

    /// Waits until QEMU exits by itself; returns its status and the end of its error output.
    pub async fn exited(&mut self) -> Result<(ExitStatus, String), VmError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| VmError::Wait { source })?;
        self.pgid = None;
        Ok((status, self.finish_output().await))
    }

    /// Kills QEMU's whole process group and reaps it; the console log is complete afterwards.
    pub async fn kill(mut self) -> Result<(), VmError> {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH: it already exited (it is reaped below).
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        self.child
            .wait()
            .await
            .map_err(|source| VmError::Wait { source })?;
        self.finish_output().await;
        Ok(())
    }

    /// QEMU's process id (for logs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn finish_output(&mut self) -> String {
        if let Some(console) = self.console.take() {
            let _ = console.await;
        }
        match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Copies `from` into `to` up to `max` bytes, then notes the cut once and drains the rest (so
/// QEMU never blocks on a full pipe).
async fn copy_bounded(mut from: impl AsyncRead + Unpin, mut to: tokio::fs::File, max: u64) {
    let mut written: u64 = 0;
    let mut cut = false;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut {
            continue;
        }
        let room = usize::try_from(max.saturating_sub(written)).unwrap_or(usize::MAX);
        let take = n.min(room);
        if to
            .write_all(buf.get(..take).unwrap_or_default())
            .await
            .is_err()
        {
            cut = true;
            continue;
        }
        written += take as u64;
        if take < n {
            cut = true;
            let note = format!("\n[flakeboot: console log cut at {max} bytes]\n");
            let _ = to.write_all(note.as_bytes()).await;
        }
    }
    let _ = to.flush().await;
}

/// The last [`MAX_STDERR`] bytes of `from`, as text.
async fn tail(mut from: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                if kept.len() > MAX_STDERR {
                    let extra = kept.len() - MAX_STDERR;
                    kept.drain(..extra);
                }
            }
        }
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}
