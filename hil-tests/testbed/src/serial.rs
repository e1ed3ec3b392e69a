//! A guest's serial console read from a pipe, every line stamped with the time since the VM
//! started, so a test can wait for a line and report when each boot stage showed up.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One console line: `at` is when its newline arrived, relative to the VM's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    pub at: Duration,
    pub text: String,
}

impl fmt::Display for SerialLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:7.3}s] {}", self.at.as_secs_f64(), self.text)
    }
}

/// Why [`SerialConsole::wait_for`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("{console}: {needle:?} did not appear on the serial console within {timeout:?}")]
    Timeout {
        console: String,
        needle: String,
        timeout: Duration,
    },
    #[error("{console}: the VM ended (console closed) without printing {needle:?}")]
    Closed { console: String, needle: String },
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<SerialLine>,
    /// Text after the last newline (a progress line still being drawn).
    partial: String,
    closed: bool,
}

/// A console being captured. Cheap to clone; the capture thread ends with the pipe.
#[derive(Debug, Clone)]
pub struct SerialConsole {
    name: String,
    log: PathBuf,
    state: Arc<Mutex<State>>,
}

impl SerialConsole {
    /// Start a thread that reads `reader` to its end, splitting lines, stripping terminal escape
    /// sequences, stamping each line against `started` and appending it to the file `log`.
    pub fn capture<R: Read + Send + 'static>(
        name: &str,
        mut reader: R,
        started: Instant,
        log: &Path,
    ) -> io::Result<(SerialConsole, JoinHandle<()>)> {
        let mut file = File::create(log)?;
        let console = SerialConsole {
            name: name.to_owned(),
            log: log.to_path_buf(),
            state: Arc::default(),
        };
        let state = Arc::clone(&console.state);
        let handle = std::thread::Builder::new()
            .name(format!("serial-{name}"))
            .spawn(move || {
                let mut splitter = LineSplitter::default();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let at = started.elapsed();
                    let lines = splitter.push(buf.get(..n).unwrap_or_default());
                    let mut st = lock(&state);
                    for text in lines {
                        let line = SerialLine { at, text };
                        let _ = writeln!(file, "{line}");
                        st.lines.push(line);
                    }
                    st.partial = splitter.partial().to_owned();
                }
                let mut st = lock(&state);
                if !splitter.partial().is_empty() {
                    let line = SerialLine {
                        at: started.elapsed(),
                        text: splitter.partial().to_owned(),
                    };
                    let _ = writeln!(file, "{line}");
                    st.lines.push(line);
                    st.partial.clear();
                }
                st.closed = true;
            })?;
        Ok((console, handle))
    }

    /// The name given at capture (the VM's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timestamped console log on disk.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The first complete line containing `needle`, if it has arrived.
    pub fn find(&self, needle: &str) -> Option<SerialLine> {
        lock(&self.state)
            .lines
            .iter()
            .find(|l| l.text.contains(needle))
            .cloned()
    }

    /// Every complete line so far.
    pub fn lines(&self) -> Vec<SerialLine> {
        lock(&self.state).lines.clone()
    }

    /// Wait until a line containing `needle` arrives (polling every 20 ms).
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<SerialLine, SerialError> {
        let start = Instant::now();
        loop {
            {
                let st = lock(&self.state);
                if let Some(line) = st.lines.iter().find(|l| l.text.contains(needle)) {
                    return Ok(line.clone());
                }
                if st.closed {
                    return Err(SerialError::Closed {
                        console: self.name.clone(),
                        needle: needle.to_owned(),
                    });
                }
            }
            if start.elapsed() > timeout {
                return Err(SerialError::Timeout {
                    console: self.name.clone(),
                    needle: needle.to_owned(),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines (and any unfinished line), one per line, with their timestamps.
    pub fn tail(&self, n: usize) -> String {
        let st = lock(&self.state);
        let skip = st.lines.len().saturating_sub(n);
        let mut out: Vec<String> = st.lines.iter().skip(skip).map(|l| l.to_string()).collect();
        if !st.partial.is_empty() {
            out.push(format!("[ (unfinished) ] {}", st.partial));
        }
        if out.is_empty() {
            out.push("(nothing on the serial console)".to_owned());
        }
        out.join("\n")
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits console bytes into lines: drops `\r`, terminal escape sequences (SeaBIOS, OVMF and
/// iPXE draw with them) and other control characters.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: String,
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ ...` until a final byte (0x40..=0x7e).
    Csi,
}

impl LineSplitter {
    /// Feed bytes; returns the lines they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for &b in bytes {
            match self.escape {
                Escape::Start => {
                    self.escape = if b == b'[' { Escape::Csi } else { Escape::None };
                    continue;
                }
                Escape::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::None => {}
            }
            match b {
                0x1b => self.escape = Escape::Start,
                b'\n' => {
                    self.partial.push_str(&String::from_utf8_lossy(&pending));
                    pending.clear();
                    done.push(std::mem::take(&mut self.partial).trim_end().to_owned());
                }
                b'\t' => pending.push(b' '),
                0..=0x1f | 0x7f => {}
                _ => pending.push(b),
            }
        }
        self.partial.push_str(&String::from_utf8_lossy(&pending));
        done
    }

    /// The unfinished line.
    pub fn partial(&self) -> &str {
        &self.partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of OVMF + iPXE's console output as captured from QEMU's serial port.
    const IPXE_BANNER: &[u8] = b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\r\n\r\n\
        \x1b[1m\x1b[37m\x1b[40miPXE 1.0.0+git-20190125.36a4c85-5.1\x1b[0m\x1b[37m\x1b[40m -- \
        Open Source Network Boot Firmware\r\n\
        Configuring (net0 52:54:00:12:34:56)...... ok\r\n\
        http://10.77.0.1/boot.ipxe... 4";

    #[test]
    fn strips_escapes_and_carriage_returns() {
        let mut s = LineSplitter::default();
        let lines = s.push(IPXE_BANNER);
        assert_eq!(
            lines,
            vec![
                "",
                "",
                "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware",
                "Configuring (net0 52:54:00:12:34:56)...... ok",
            ]
        );
        assert_eq!(s.partial(), "http://10.77.0.1/boot.ipxe... 4");
    }

    #[test]
    fn escape_split_across_reads() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"ab\x1b[0").is_empty());
        assert_eq!(s.push(b"1;01Hcd\n"), vec!["abcd"]);
    }

    #[test]
    fn capture_stamps_lines_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let input: &'static [u8] = b"first\r\nFLAKEBOOT-MARKER x:y cmdline=a\r\nlast";
        let (console, handle) = SerialConsole::capture("vm", input, Instant::now(), &log).unwrap();
        handle.join().unwrap();
        let line = console
            .wait_for("FLAKEBOOT-MARKER x:y", Duration::from_secs(1))
            .unwrap();
        assert_eq!(line.text, "FLAKEBOOT-MARKER x:y cmdline=a");
        assert!(matches!(
            console.wait_for("never", Duration::from_secs(1)),
            Err(SerialError::Closed { .. })
        ));
        assert_eq!(console.lines().last().unwrap().text, "last");
        assert!(std::fs::read_to_string(&log).unwrap().contains("] first"));
    }
}
