//! QEMU's human monitor (HMP) on a unix socket (`-monitor unix:PATH,server=on,wait=off`): what
//! a hung VM's vCPUs are executing, for a test's failure message.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The QEMU arguments that put the monitor on `socket`.
pub fn monitor_args(socket: &Path) -> [String; 2] {
    [
        "-monitor".to_owned(),
        format!("unix:{},server=on,wait=off", socket.display()),
    ]
}

/// The answer to one HMP command (everything QEMU printed within `wait`).
pub fn hmp(socket: &Path, command: &str, wait: Duration) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Each vCPU's instruction pointer and mode (`info registers -a`, the `CPU#`, `RIP`/`EIP`
/// and `CR0` lines), or why they could not be read.
pub fn cpu_pointers(socket: &Path) -> String {
    match hmp(socket, "info registers -a", Duration::from_secs(2)) {
        Ok(text) => {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.starts_with("CPU#")
                        || l.starts_with("RIP=")
                        || l.starts_with("EIP=")
                        || l.starts_with("CR0=")
                })
                .collect();
            if lines.is_empty() {
                format!("(no registers in the monitor's answer: {text:?})")
            } else {
                lines.join("\n")
            }
        }
        Err(e) => format!("(QEMU monitor {}: {e})", socket.display()),
    }
}
