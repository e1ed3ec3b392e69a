//! Boot artifacts the hil-tests build themselves: the pinned Debian kernel (fetched once into
//! `hil-tests/.cache/`) and busybox marker initramfs images. The work is done by the scripts in
//! `qemu/` (the demo uses the same ones), so the kernel pin lives in one place: `qemu/kernel.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::workspace_root;

/// A script in `qemu/` failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot run {script}: {message}")]
    Spawn { script: PathBuf, message: String },
    #[error("{script} failed ({status}): {stderr}")]
    Failed {
        script: PathBuf,
        status: String,
        stderr: String,
    },
}

/// The repository's `qemu/` directory: the one place QEMU command lines and artifact recipes live.
pub fn qemu_dir() -> PathBuf {
    workspace_root().join("qemu")
}

/// Where fetched artifacts are cached between runs: `$FLAKEBOOT_HIL_CACHE`, else
/// `hil-tests/.cache/` (gitignored).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("FLAKEBOOT_HIL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("hil-tests/.cache"))
}

/// The pinned kernel's vmlinuz (downloaded, extracted and sha256-checked by `qemu/kernel.sh` on
/// first use; later calls in this process reuse the answer).
pub fn kernel() -> Result<PathBuf, ArtifactError> {
    static KERNEL: OnceLock<Result<PathBuf, ArtifactError>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let cache = cache_dir();
            run_script("kernel.sh", &[cache.as_os_str()]).map(|out| PathBuf::from(out.trim()))
        })
        .clone()
}

/// Build a marker initramfs at `out`. Its /init prints
/// `FLAKEBOOT-MARKER <token>:<fbt.marker from the command line> cmdline=<...>` then powers off.
pub fn marker_initramfs(out: &Path, token: &str) -> Result<(), ArtifactError> {
    run_script(
        "initramfs.sh",
        &["marker".as_ref(), out.as_os_str(), token.as_ref()],
    )
    .map(drop)
}

/// The line a marker initramfs prints for the client booted with `fbt.marker=<client>`.
pub fn marker_line(token: &str, client: &str) -> String {
    format!("FLAKEBOOT-MARKER {token}:{client} ")
}

/// A token no earlier run printed: process id and clock.
pub fn unique_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}x{nanos:x}", std::process::id())
}

/// Run `qemu/<name>` with `args`; its stdout, or an error with its stderr.
pub(crate) fn run_script(name: &str, args: &[&std::ffi::OsStr]) -> Result<String, ArtifactError> {
    let script = qemu_dir().join(name);
    let out = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ArtifactError::Spawn {
            script: script.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ArtifactError::Failed {
            script,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
