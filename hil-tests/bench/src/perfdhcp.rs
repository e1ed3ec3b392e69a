//! perfdhcp (Kea's DHCP load generator, Debian's `kea-admin`): run it in the client namespace
//! and read its report: achieved rate, per-exchange drops, min/avg/max delay, and (with `-x t`)
//! every exchange's send/receive timestamps, from which we compute percentiles ourselves.

use std::process::Stdio;

use flakeboot_testbed::{Netns, TestLan, require_tool};

use crate::clients::percentile;
use crate::error::{BenchError, Result};
use crate::knobs::Knobs;
use crate::lan::CLIENT_IF;

/// perfdhcp's receive buffer while it runs. It sets none of its own, so its sockets take
/// `net.core.rmem_default`, 208 KiB by the kernel's default: about 90 replies, 11 ms at
/// 8,000/s, less than its receiving thread may wait for one of a 2-core machine's cores, and
/// replies the server sent were dropped in perfdhcp's socket and counted against the server
/// (docs/benchmarks.md, "perfdhcp's own socket"). The default is raised only while perfdhcp
/// runs: the servers' sockets, made when they started, keep theirs (dnsmasq's the kernel's
/// default, flakeboot's the 1 MiB it asks for).
const CLIENT_RECV_BUFFER: u64 = 4 * 1024 * 1024;

/// The sysctl new sockets take their receive buffer from (one for the whole machine: it
/// cannot be set in a namespace of its own).
const RMEM_DEFAULT: &str = "/proc/sys/net/core/rmem_default";

/// `net.core.rmem_default` raised to [`CLIENT_RECV_BUFFER`] until dropped, then put back.
struct ClientBuffer {
    previous: Option<String>,
}

impl ClientBuffer {
    fn raise() -> ClientBuffer {
        let previous = std::fs::read_to_string(RMEM_DEFAULT).ok();
        let low = previous
            .as_deref()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|v| v < CLIENT_RECV_BUFFER);
        if !low {
            return ClientBuffer { previous: None };
        }
        match std::fs::write(RMEM_DEFAULT, CLIENT_RECV_BUFFER.to_string()) {
            Ok(()) => ClientBuffer { previous },
            Err(e) => {
                eprintln!(
                    "   cannot raise {RMEM_DEFAULT} for perfdhcp ({e}): its own socket may drop replies"
                );
                ClientBuffer { previous: None }
            }
        }
    }
}

impl Drop for ClientBuffer {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous
            && let Err(e) = std::fs::write(RMEM_DEFAULT, previous.trim())
        {
            eprintln!(
                "   cannot put {RMEM_DEFAULT} back to {}: {e}",
                previous.trim()
            );
        }
    }
}

/// One exchange kind's statistics (`DISCOVER-OFFER` or `REQUEST-ACK`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    pub sent: u64,
    pub received: u64,
    pub drops: u64,
    pub avg_ms: f64,
    pub max_ms: f64,
    /// Delays of every timed exchange (from `-x t`), in ms.
    pub delays_ms: Vec<f64>,
}

impl Exchange {
    /// Dropped share of sent packets, in percent.
    pub fn drop_percent(&self) -> f64 {
        if self.sent == 0 {
            100.0
        } else {
            self.drops as f64 * 100.0 / self.sent as f64
        }
    }

    /// Percentile `p` of the timed delays, in ms.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.delays_ms, p)
    }
}

/// A perfdhcp run's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerfReport {
    /// Achieved exchanges per second (perfdhcp's figure; [`run`] replaces it with completed
    /// exchanges over the sending period).
    pub rate: f64,
    pub discover_offer: Exchange,
    /// Absent when perfdhcp ran 2-way exchanges only (`-i`).
    pub request_ack: Option<Exchange>,
}

impl PerfReport {
    /// Exchanges that completed: ACKs received (4-way), or OFFERs (2-way, `-i`).
    pub fn completed(&self) -> u64 {
        self.request_ack
            .as_ref()
            .map_or(self.discover_offer.received, |ra| ra.received)
    }

    /// The larger drop share of the two exchanges, in percent.
    pub fn drop_percent(&self) -> f64 {
        let ra = self
            .request_ack
            .as_ref()
            .map_or(0.0, Exchange::drop_percent);
        self.discover_offer.drop_percent().max(ra)
    }
}

/// Parse perfdhcp's text report (with or without `-x t`).
pub fn parse(text: &str) -> Option<PerfReport> {
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Rate:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(PerfReport {
        rate,
        discover_offer: exchange(text, "DISCOVER-OFFER")?,
        request_ack: exchange(text, "REQUEST-ACK"),
    })
}

fn section<'a>(text: &'a str, header: &str) -> Option<&'a str> {
    let start = text.find(header)? + header.len();
    let rest = text.get(start..)?;
    Some(
        rest.find("***")
            .map_or(rest, |end| rest.get(..end).unwrap_or(rest)),
    )
}

fn exchange(text: &str, kind: &str) -> Option<Exchange> {
    let stats = section(text, &format!("***Statistics for: {kind}***"))?;
    let field = |key: &str| -> Option<f64> {
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let delays_ms = section(text, &format!("***Timestamps for packets: {kind}***"))
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let (sent, received) =
                        l.trim().strip_prefix("sent / received:")?.split_once('/')?;
                    let sent: f64 = sent.trim().parse().ok()?;
                    let received: f64 = received.trim().parse().ok()?;
                    Some((received - sent) * 1000.0)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Exchange {
        sent: field("sent packets:")? as u64,
        received: field("received packets:")? as u64,
        drops: field("drops:")? as u64,
        avg_ms: field("avg delay:").unwrap_or(0.0),
        max_ms: field("max delay:").unwrap_or(0.0),
        delays_ms,
    })
}

/// [`run`] from `lan`'s client at `rate` for the knobs' seconds and clients, with the CPU
/// seconds `cpu` (a server's, or a group's) counted meanwhile.
pub fn run_with_cpu(
    lan: &TestLan,
    k: &Knobs,
    rate: u32,
    timed: bool,
    extra: &[&str],
    cpu: impl Fn() -> f64,
) -> (Result<PerfReport>, f64) {
    let before = cpu();
    let report = run(
        lan.client(),
        CLIENT_IF,
        rate,
        k.dhcp_seconds,
        k.dhcp_clients,
        timed,
        extra,
    );
    (report, cpu() - before)
}

/// Run perfdhcp in `ns` on `iface` at `rate` exchanges/s for `secs` seconds with `clients`
/// distinct MACs; `extra` adds options (e.g. `-o` for PXE vendor class). `timed` adds `-x t`.
pub fn run(
    ns: &Netns,
    iface: &str,
    rate: u32,
    secs: u64,
    clients: u32,
    timed: bool,
    extra: &[&str],
) -> Result<PerfReport> {
    let mut cmd = ns.command(require_tool("perfdhcp"));
    cmd.args([
        "-4",
        "-l",
        iface,
        "-r",
        &rate.to_string(),
        "-p",
        &secs.to_string(),
        "-R",
        &clients.to_string(),
        // Wait 1 s after the run for answers still in flight: they are late, not dropped.
        "-W",
        "1000000",
    ]);
    if timed {
        cmd.args(["-x", "t"]);
    }
    let buffer = ClientBuffer::raise();
    let out = cmd
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .map_err(BenchError::io("running perfdhcp"));
    drop(buffer);
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // perfdhcp exits non-zero when packets were dropped: that is a figure, not a failure.
    let mut report = parse(&text).ok_or_else(|| BenchError::Parse {
        tool: "perfdhcp".to_owned(),
        what: "its statistics".to_owned(),
        output: format!(
            "exit {}: {}{}",
            out.status,
            text.chars().take(2000).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
        ),
    })?;
    // perfdhcp's own rate divides by the run plus the exit wait: count completed exchanges
    // over the sending period instead.
    report.rate = report.completed() as f64 / secs.max(1) as f64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perfdhcp 2.2 (Debian 12) against dnsmasq, `-r 200 -p 2 -x t`, cut short.
    const OUTPUT: &str = "Running: perfdhcp -4 -l eth0 -r 200 -p 2 -R 1000 -x t
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 199.439 4-way exchanges/second, expected rate: 200

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 399
received packets: 399
drops: 0
drops ratio: 0 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.031 ms
avg delay: 0.339 ms
max delay: 7.531 ms
std deviation: 0.879 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 400
received packets: 398
drops: 2
drops ratio: 0.500 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.025 ms
avg delay: 0.264 ms
max delay: 6.249 ms
std deviation: 0.813 ms
collected packets: 0

***Timestamps for packets: DISCOVER-OFFER***
sent / received: 000000.000073 / 000000.000709
sent / received: 000000.010093 / 000000.010226
***Timestamps for packets: REQUEST-ACK***
sent / received: 000000.001000 / 000000.001500
sent / received: 000000.011000 / 000000.013000
sent / received: 000000.021000 / 000000.021250
";

    #[test]
    fn reads_rate_drops_delays_and_timestamps() {
        let r = parse(OUTPUT).unwrap();
        assert_eq!(r.rate, 199.439);
        assert_eq!(r.discover_offer.sent, 399);
        assert_eq!(r.discover_offer.drops, 0);
        assert_eq!(r.discover_offer.avg_ms, 0.339);
        let ra = r.request_ack.clone().unwrap();
        assert_eq!(ra.received, 398);
        assert_eq!(ra.drops, 2);
        assert_eq!(ra.max_ms, 6.249);
        assert!((r.drop_percent() - 0.5).abs() < 1e-9);
        assert_eq!(r.completed(), 398);
        assert_eq!(r.discover_offer.delays_ms.len(), 2);
        assert!((r.discover_offer.delays_ms[0] - 0.636).abs() < 1e-6);
        assert!((ra.percentile_ms(99.0) - 2.0).abs() < 1e-6);
        assert!((ra.percentile_ms(50.0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn no_statistics_is_no_report() {
        assert_eq!(parse("Error running perfdhcp: no such interface"), None);
        assert_eq!(parse(&OUTPUT.replace("DISCOVER-OFFER", "X")), None);
        // Two-way runs (-i) have no REQUEST-ACK section.
        let two_way = parse(&OUTPUT.replace("REQUEST-ACK", "X")).unwrap();
        assert_eq!(two_way.request_ack, None);
        assert_eq!(two_way.drop_percent(), 0.0);
    }

    #[test]
    fn nothing_sent_is_all_dropped() {
        assert_eq!(Exchange::default().drop_percent(), 100.0);
    }
}
