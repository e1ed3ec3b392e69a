//! HTTP: a big initrd with one client and with many at once (curl, and wrk), and Range
//! requests. flakeboot (port 80) and nginx (port 8080) run side by side on `lan0`, serving the
//! same file, and take turns: each curl measurement alternates between them round by round, so
//! whatever else the machine does at a moment weighs on both alike. One client's download of
//! 100 MiB takes 25-65 ms here with either server: where the client, the server and the
//! kernel's TCP work land on the two cores decides it (both servers at 1.5-1.7 GB/s when pinned
//! to the client's core, 1.3-5 GB/s when not), so that figure is the median of 101 downloads
//! each; medians of 21 still differed by up to a fifth between the servers from set to set.
//! wrk's runs, 10 s each, go one server after the other.

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
/// nginx's port here (flakeboot's boot port is 80).
const NGINX_PORT: u16 = 8080;
/// Downloads by one client per server (the figure is their median).
const SINGLE_ROUNDS: usize = 101;
/// Rounds of many clients at once per server (the figure is the median round).
const MANY_ROUNDS: usize = 3;

/// A server under test and its file's URL.
struct Side {
    name: &'static str,
    server: Server,
    url: String,
}

/// Run the HTTP comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("http")?;
    let www = subdir(&lan, "www")?;
    let size = mib(k.http_mib);
    write_pattern(&www.join("initrd"), size as usize)?;
    write_pattern(&www.join("kernel"), 1024 * 1024)?;
    let mut sides = Vec::new();
    for name in ["flakeboot", "nginx"].into_iter().filter(|n| k.runs(n)) {
        let (server, url) = match name {
            "flakeboot" => (
                servers::flakeboot(
                    &lan,
                    &k.flakeboot_bin,
                    &FlakebootSetup::serving(DhcpMode::Off, &www),
                )?,
                url(name, "initrd"),
            ),
            _ => (
                servers::nginx_on(&lan, &www, NGINX_PORT)?,
                format!("http://{SERVER_IP}:{NGINX_PORT}/initrd"),
            ),
        };
        sides.push(Side { name, server, url });
    }
    let mut c = Collector::new("http");
    let label = format!("{} MiB", k.http_mib);
    single(&lan, &mut c, &sides, &label, size);
    many(&lan, k, &mut c, &sides, &label, size);
    for side in &sides {
        settle();
        wrk_rows(&lan, k, &mut c, side, &label);
    }
    for side in sides {
        side.server.stop();
    }
    Ok(c.rows())
}

/// The initrd's (or kernel's) URL on each server, nginx on port 80 (the storm's).
pub fn url(server: &str, file: &str) -> String {
    if server == "flakeboot" {
        format!("http://{SERVER_IP}/boot/demo/static/{file}")
    } else {
        format!("http://{SERVER_IP}/{file}")
    }
}

/// `rounds` results of `measure` per side, the sides taking turns in each round; a side's
/// first failure ends its measurements and is its result.
fn in_turns<T>(
    sides: &[Side],
    rounds: usize,
    mut measure: impl FnMut(&Side) -> Result<T>,
) -> Vec<Result<Vec<T>>> {
    let mut got: Vec<Result<Vec<T>>> = sides.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..rounds {
        for (side, got) in sides.iter().zip(got.iter_mut()) {
            let Ok(values) = got else { continue };
            match measure(side) {
                Ok(v) => values.push(v),
                Err(e) => *got = Err(e),
            }
        }
    }
    got
}

/// One client: the median of [`SINGLE_ROUNDS`] downloads per server.
fn single(lan: &TestLan, c: &mut Collector, sides: &[Side], label: &str, size: u64) {
    let got = in_turns(sides, SINGLE_ROUNDS, |side| {
        curl(lan.client(), &side.url, &[], size).map(|t| mb_per_s(t.bytes, t.secs))
    });
    for (side, got) in sides.iter().zip(got) {
        c.add_result(
            &format!("{label}, 1 curl client"),
            "MB/s",
            Better::Higher,
            side.name,
            got.map(|v| percentile(&v, 50.0)),
        );
    }
}

/// One round of many clients at once.
struct Many {
    completed: usize,
    mb_per_s: f64,
    times: Vec<f64>,
    cpu_seconds: f64,
    bytes: u64,
}

/// Many clients at once, [`MANY_ROUNDS`] rounds per server: the median round's aggregate, the
/// p99 of every client's time, and the server's CPU per GB over all rounds.
fn many(lan: &TestLan, k: &Knobs, c: &mut Collector, sides: &[Side], label: &str, size: u64) {
    let n = k.http_clients;
    let got = in_turns(sides, MANY_ROUNDS, |side| {
        let cpu_before = side.server.cpu_seconds();
        let (completed, wall, times) = curl_parallel(lan.client(), &side.url, &[], n, size)?;
        let bytes = size * completed as u64;
        Ok(Many {
            completed,
            mb_per_s: mb_per_s(bytes, wall),
            times,
            cpu_seconds: side.server.cpu_seconds() - cpu_before,
            bytes,
        })
    });
    let metric = format!("{label}, {n} curl clients at once: aggregate");
    for (side, got) in sides.iter().zip(got) {
        let name = side.name;
        let rounds = match got {
            Ok(rounds) => rounds,
            Err(e) => {
                c.add_result(&metric, "MB/s", Better::Higher, name, Err(e));
                continue;
            }
        };
        // The server's own CPU (user + system, its children included) per GB it sent; only
        // from 1 GB a round up: CPU time comes in 10 ms ticks (the smoke run sends 32 MiB).
        let gb = rounds.iter().map(|r| r.bytes).sum::<u64>() as f64 / 1e9;
        if size * n as u64 >= 1_000_000_000 && gb > 0.0 {
            c.add(
                &format!("{label}, {n} curl clients at once: server CPU per GB"),
                "s",
                Better::Lower,
                name,
                rounds.iter().map(|r| r.cpu_seconds).sum::<f64>() / gb,
            );
        }
        let rates: Vec<f64> = rounds.iter().map(|r| r.mb_per_s).collect();
        c.add(
            &metric,
            "MB/s",
            Better::Higher,
            name,
            percentile(&rates, 50.0),
        );
        let times: Vec<f64> = rounds
            .iter()
            .flat_map(|r| r.times.iter().copied())
            .collect();
        c.add(
            &format!("{label}, {n} curl clients at once: p99 per client"),
            "s",
            Better::Lower,
            name,
            percentile(&times, 99.0),
        );
        let failed: usize = rounds.iter().map(|r| n - r.completed).sum();
        if failed > 0 {
            let asked = n * rounds.len();
            c.note(&metric, &format!("{name}: {failed} of {asked} failed"));
        }
    }
}

/// wrk's full downloads, then its Range requests (after one curl checks the bytes).
fn wrk_rows(lan: &TestLan, k: &Knobs, c: &mut Collector, side: &Side, label: &str) {
    let (name, url, n) = (side.name, side.url.as_str(), k.http_clients);
    let wrk_full = wrk(lan, url, n, k.http_seconds, None);
    c.add_result(
        &format!("{label}, wrk {n} connections"),
        "MB/s",
        Better::Higher,
        name,
        wrk_full.map(|w| w.mb_per_s),
    );
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
