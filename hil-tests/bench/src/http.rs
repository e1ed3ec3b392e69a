//! HTTP: a big initrd with one client and with many at once (curl, and wrk), and Range
//! requests. Servers, one after the other on `lan0` port 80: flakeboot and nginx, serving the
//! same file.

use std::process::Stdio;

use flakeboot_testbed::{TestLan, require_tool};

use crate::clients::{curl, curl_parallel, percentile, settle};
use crate::error::{BenchError, Result};
use crate::knobs::{Knobs, mib};
use crate::lan::{SERVER_IP, mb_per_s, subdir, veth_lan, write_pattern};
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, FlakebootSetup, Server};

/// Bytes asked for by each Range request.
const RANGE_LEN: u64 = 64 * 1024;

/// Run the HTTP comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("http")?;
    let www = subdir(&lan, "www")?;
    let size = mib(k.http_mib);
    write_pattern(&www.join("initrd"), size as usize)?;
    write_pattern(&www.join("kernel"), 1024 * 1024)?;
    let mut c = Collector::new("http");
    for name in ["flakeboot", "nginx"].into_iter().filter(|n| k.runs(n)) {
        let server = start(&lan, k, name, &www)?;
        let url = url(name, "initrd");
        measure(&lan, k, &mut c, &server, &url, size);
        server.stop();
        settle();
    }
    Ok(c.rows())
}

/// The initrd's (or kernel's) URL on each server.
pub fn url(server: &str, file: &str) -> String {
    if server == "flakeboot" {
        format!("http://{SERVER_IP}/boot/demo/static/{file}")
    } else {
        format!("http://{SERVER_IP}/{file}")
    }
}

fn start(lan: &TestLan, k: &Knobs, name: &str, www: &std::path::Path) -> Result<Server> {
    if name == "flakeboot" {
        servers::flakeboot(
            lan,
            &k.flakeboot_bin,
            &FlakebootSetup {
                dhcp: DhcpMode::Off,
                ipxe_dir: www.to_owned(),
                kernel: www.join("kernel"),
                initrd: www.join("initrd"),
                cmdline: String::new(),
                machines: Vec::new(),
                ra: false,
            },
        )
    } else {
        servers::nginx(lan, www)
    }
}

fn measure(lan: &TestLan, k: &Knobs, c: &mut Collector, server: &Server, url: &str, size: u64) {
    let name = server.name.as_str();
    let label = format!("{} MiB", k.http_mib);
    // One client: the median of three downloads.
    let single: Result<f64> = (0..3)
        .map(|_| curl(lan.client(), url, &[], size).map(|t| mb_per_s(t.bytes, t.secs)))
        .collect::<Result<Vec<f64>>>()
        .map(|v| percentile(&v, 50.0));
    c.add_result(
        &format!("{label}, 1 curl client"),
        "MB/s",
        Better::Higher,
        name,
        single,
    );
    let n = k.http_clients;
    let metric = format!("{label}, {n} curl clients at once: aggregate");
    let cpu_before = server.cpu_seconds();
    match curl_parallel(lan.client(), url, &[], n, size) {
        Ok((ok, wall, times)) => {
            // The server's own CPU (user + system, its children included) per GB it sent;
            // only from 1 GB up: CPU time comes in 10 ms ticks (the smoke run sends 32 MiB).
            let gb = (size * ok as u64) as f64 / 1e9;
            if (size * n as u64) >= 1_000_000_000 && gb > 0.0 {
                c.add(
                    &format!("{label}, {n} curl clients at once: server CPU per GB"),
                    "s",
                    Better::Lower,
                    name,
                    (server.cpu_seconds() - cpu_before) / gb,
                );
            }
            c.add(
                &metric,
                "MB/s",
                Better::Higher,
                name,
                mb_per_s(size * ok as u64, wall),
            );
            c.add(
                &format!("{label}, {n} curl clients at once: p99 per client"),
                "s",
                Better::Lower,
                name,
                percentile(&times, 99.0),
            );
            if ok < n {
                c.note(&metric, &format!("{name}: {} of {n} failed", n - ok));
            }
        }
        Err(e) => c.add_result(&metric, "MB/s", Better::Higher, name, Err(e)),
    }
    let wrk_full = wrk(lan, url, n, k.http_seconds, None);
    c.add_result(
        &format!("{label}, wrk {n} connections"),
        "MB/s",
        Better::Higher,
        name,
        wrk_full.map(|w| w.mb_per_s),
    );
    // Range: correctness with curl, then the request rate with wrk.
    let range = format!("bytes=4096-{}", 4096 + RANGE_LEN - 1);
    let check = curl(
        lan.client(),
        url,
        &["-H", &format!("Range: {range}")],
        RANGE_LEN,
    );
    let metric = format!("Range {} KiB, wrk {n} connections", RANGE_LEN / 1024);
    match check {
        Ok(_) => {
            let w = wrk(lan, url, n, k.http_seconds, Some(&range));
            c.add_result(
                &metric,
                "req/s",
                Better::Higher,
                name,
                w.map(|w| w.requests),
            );
        }
        Err(e) => c.add_result(&metric, "req/s", Better::Higher, name, Err(e)),
    }
}

/// What wrk reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wrk {
    pub requests: f64,
    pub mb_per_s: f64,
}

fn wrk(lan: &TestLan, url: &str, conns: usize, secs: u64, range: Option<&str>) -> Result<Wrk> {
    let mut cmd = lan.client().command(require_tool("wrk"));
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--timeout",
        "60s",
    ]);
    if let Some(r) = range {
        cmd.args(["-H", &format!("Range: {r}")]);
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(BenchError::io("running wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Tool {
            tool: "wrk".to_owned(),
            status: out.status.to_string(),
            output: format!("{text} {}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    if text.contains("Non-2xx or 3xx responses") || text.contains("Socket errors") {
        return Err(BenchError::Incomplete {
            what: "wrk".to_owned(),
            detail: text,
        });
    }
    parse_wrk(&text).ok_or(BenchError::Parse {
        tool: "wrk".to_owned(),
        what: "Requests/sec and Transfer/sec".to_owned(),
        output: text,
    })
}

/// Read `Requests/sec:` and `Transfer/sec:` (binary units: KB = 1024 B) from wrk's summary.
pub fn parse_wrk(text: &str) -> Option<Wrk> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
    };
    let requests = value("Requests/sec:")?.parse().ok()?;
    let transfer = value("Transfer/sec:")?;
    let split = transfer.find(|ch: char| ch.is_ascii_alphabetic())?;
    let (num, unit) = transfer.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(Wrk {
        requests,
        mb_per_s: num * scale / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 10s test @ http://10.77.0.1/initrd
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23s   200.00ms   1.90s    70.00%
    Req/Sec     3.00      2.00    10.00     80.00%
  54 requests in 10.01s, 5.27GB read
Requests/sec:      5.39
Transfer/sec:    539.12MB
";

    #[test]
    fn wrk_summary_in_decimal_megabytes() {
        let w = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(w.requests, 5.39);
        assert!((w.mb_per_s - 565.31).abs() < 0.01, "{w:?}");
        let gb = WRK_OUTPUT.replace("539.12MB", "1.50GB");
        assert!((parse_wrk(&gb).unwrap().mb_per_s - 1610.61).abs() < 0.01);
        assert_eq!(parse_wrk("Requests/sec: 1\n"), None);
        assert_eq!(parse_wrk(&WRK_OUTPUT.replace("539.12MB", "1TB")), None);
    }
}
