//! The load generators, run in the client namespace: curl (TFTP and HTTP, one process per
//! transfer) and the `tftpd` crate's windowsize client (in a thread that joined the namespace).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, require_tool};

use crate::error::{BenchError, Result};

/// One completed transfer: bytes received and wall time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    pub secs: f64,
}

/// Parse curl's `-w '%{http_code} %{size_download} %{time_total}'` line.
pub fn parse_curl_write_out(text: &str) -> Option<(u32, u64, f64)> {
    let mut it = text.split_whitespace();
    let code = it.next()?.parse().ok()?;
    let size = it.next()?.parse::<f64>().ok()? as u64;
    let secs = it.next()?.parse().ok()?;
    Some((code, size, secs))
}

/// A curl command (in `ns`) that downloads `url` to nowhere and prints code, size and time.
pub fn curl_command(ns: &Netns, url: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = ns.command(require_tool("curl"));
    cmd.args(["-s", "-S", "-o", "/dev/null", "--max-time", "600"])
        .args(["-w", "%{http_code} %{size_download} %{time_total}"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null());
    cmd
}

/// Download `url` with curl once; fails unless exactly `expect` bytes arrived.
pub fn curl(ns: &Netns, url: &str, extra: &[&str], expect: u64) -> Result<Transfer> {
    let out = curl_command(ns, url, extra)
        .output()
        .map_err(BenchError::io("running curl"))?;
    check_curl(url, &out, expect)
}

/// Judge a finished curl process: success, and exactly `expect` bytes.
pub fn check_curl(url: &str, out: &std::process::Output, expect: u64) -> Result<Transfer> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(BenchError::Tool {
            tool: format!("curl {url}"),
            status: out.status.to_string(),
            output: format!("{stdout} {stderr}"),
        });
    }
    let (_, bytes, secs) = parse_curl_write_out(&stdout).ok_or_else(|| BenchError::Parse {
        tool: "curl".to_owned(),
        what: "size and time".to_owned(),
        output: stdout.to_string(),
    })?;
    if bytes != expect {
        return Err(BenchError::Incomplete {
            what: format!("curl {url}"),
            detail: format!("{bytes} bytes, expected {expect}"),
        });
    }
    Ok(Transfer { bytes, secs })
}

/// Run `n` copies of a curl download at once; returns how many completed with `expect` bytes,
/// the wall time of the whole batch, and the per-transfer times of the successful ones.
pub fn curl_parallel(
    ns: &Netns,
    url: &str,
    extra: &[&str],
    n: usize,
    expect: u64,
) -> Result<(usize, f64, Vec<f64>)> {
    let start = Instant::now();
    let children = (0..n)
        .map(|_| {
            curl_command(ns, url, extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(BenchError::io("starting curl"))?;
    let mut times = Vec::new();
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(BenchError::io("waiting for curl"))?;
        if let Ok(t) = check_curl(url, &out, expect) {
            times.push(t.secs);
        }
    }
    Ok((times.len(), start.elapsed().as_secs_f64(), times))
}

/// Fetch `name` from `server` with the `tftpd` crate's client (blksize, windowsize) inside
/// `ns`, into `dir`; checks the size against `expect`.
pub fn tftpd_get(
    ns: &Netns,
    server: &str,
    name: &str,
    dir: &Path,
    blksize: u16,
    window: u16,
    expect: u64,
) -> Result<Transfer> {
    let target = dir.join(name);
    let _ = std::fs::remove_file(&target);
    let args: Vec<String> = [
        "-i",
        server,
        "-p",
        "69",
        "-b",
        &blksize.to_string(),
        "-w",
        &window.to_string(),
        "-t",
        "1",
        "-rd",
        &dir.display().to_string(),
        "-q",
        name,
    ]
    .map(String::from)
    .to_vec();
    let handle = ns
        .thread(move || {
            let start = Instant::now();
            let result = tftpd::ClientConfig::new(args.into_iter())
                .and_then(|cfg| tftpd::Client::new(&cfg)?.run())
                .map_err(|e| e.to_string());
            (result, start.elapsed())
        })
        .map_err(BenchError::io("tftpd client thread"))?;
    let (result, took) = handle.join().map_err(|_| BenchError::Incomplete {
        what: format!("tftpd client {name}"),
        detail: "the client thread panicked".to_owned(),
    })?;
    let ok = result.map_err(|e| BenchError::Incomplete {
        what: format!("tftpd client {name}"),
        detail: e,
    })?;
    let got = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    if !ok || got != expect {
        return Err(BenchError::Incomplete {
            what: format!("tftpd client {name} (window {window})"),
            detail: format!("success {ok}, {got} bytes, expected {expect}"),
        });
    }
    Ok(Transfer {
        bytes: got,
        secs: took.as_secs_f64(),
    })
}

/// Percentile `p` (0..=100) of `values` (nearest rank); 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied().unwrap_or(0.0)
}

/// A short pause between runs, so one server's sockets are gone before the next binds.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_write_out_lines() {
        assert_eq!(
            parse_curl_write_out("200 104857600 0.412345"),
            Some((200, 104_857_600, 0.412345))
        );
        // TFTP has no status code: curl prints 000.
        assert_eq!(parse_curl_write_out("000 1024 0.5"), Some((0, 1024, 0.5)));
        assert_eq!(parse_curl_write_out("200 x 1"), None);
        assert_eq!(parse_curl_write_out(""), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
