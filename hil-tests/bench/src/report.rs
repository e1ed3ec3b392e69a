//! Result rows (metric, flakeboot's figure, each peer's figure, ratio), printed as a table and
//! written as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{BenchError, Result};

/// Whether a larger figure is better (rates, throughput) or worse (times, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One peer's figure for a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerFigure {
    pub peer: String,
    pub value: f64,
}

/// One measured metric: flakeboot against every peer measured in the same run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The comparison (subcommand) this row belongs to: `dhcp`, `tftp`, ...
    pub comparison: String,
    /// What was measured, e.g. `32 MiB, curl blksize 1468`.
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub flakeboot: f64,
    pub peers: Vec<PeerFigure>,
    /// Free-form remark (e.g. "perfdhcp gives no p99 at this rate").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Row {
    /// A row without peers yet.
    pub fn new(comparison: &str, metric: impl Into<String>, unit: &str, better: Better) -> Row {
        Row {
            comparison: comparison.to_owned(),
            metric: metric.into(),
            unit: unit.to_owned(),
            better,
            flakeboot: 0.0,
            peers: Vec::new(),
            note: String::new(),
        }
    }

    /// Set flakeboot's figure.
    pub fn flakeboot(mut self, value: f64) -> Row {
        self.flakeboot = value;
        self
    }

    /// Add a peer's figure.
    pub fn peer(mut self, peer: &str, value: f64) -> Row {
        self.peers.push(PeerFigure {
            peer: peer.to_owned(),
            value,
        });
        self
    }

    /// Attach a remark.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// How much better flakeboot is than `peer`: >1 means flakeboot wins, whatever the
    /// direction of the metric. `None` when a figure is zero.
    pub fn advantage(&self, peer: &PeerFigure) -> Option<f64> {
        if self.flakeboot <= 0.0 || peer.value <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Higher => self.flakeboot / peer.value,
            Better::Lower => peer.value / self.flakeboot,
        })
    }
}

/// Every row of one harness run, with where and when it ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub smoke: bool,
    pub rows: Vec<Row>,
    /// Comparisons that failed, with why.
    pub failures: Vec<(String, String)>,
}

/// The machine the figures come from (they mean little without it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub date_utc: String,
}

impl Machine {
    /// Read the machine's facts from /proc (and `date`).
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mem_total_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            mem_total_kib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            loadavg_start: load_average(),
            loadavg_end: String::new(),
            date_utc: utc_now(),
        }
    }
}

/// The 1/5/15-minute load averages, as /proc/loadavg prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    /// The table people read: one line per (metric, peer) with the advantage ratio.
    pub fn table(&self) -> String {
        let mut lines = vec![[
            "comparison".to_owned(),
            "metric".to_owned(),
            "unit".to_owned(),
            "flakeboot".to_owned(),
            "peer".to_owned(),
            "peer figure".to_owned(),
            "advantage".to_owned(),
        ]];
        for row in &self.rows {
            if row.peers.is_empty() {
                lines.push([
                    row.comparison.clone(),
                    row.metric.clone(),
                    row.unit.clone(),
                    fmt_value(row.flakeboot),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                ]);
            }
            for peer in &row.peers {
                lines.push([
                    row.comparison.clone(),
                    row.metric.clone(),
                    row.unit.clone(),
                    fmt_value(row.flakeboot),
                    peer.peer.clone(),
                    fmt_value(peer.value),
                    row.advantage(peer)
                        .map_or_else(|| "n/a".to_owned(), |a| format!("{a:.2}x")),
                ]);
            }
        }
        let mut widths = [0usize; 7];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        for row in self.rows.iter().filter(|r| !r.note.is_empty()) {
            let _ = writeln!(
                out,
                "note [{}] {}: {}",
                row.comparison, row.metric, row.note
            );
        }
        for (comparison, why) in &self.failures {
            let _ = writeln!(out, "FAILED [{comparison}]: {why}");
        }
        out
    }

    /// The table as Markdown (for docs/benchmarks.md).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| comparison | metric | unit | flakeboot | peer | peer's figure | advantage |\n\
             |---|---|---|---:|---|---:|---:|\n",
        );
        for row in &self.rows {
            for peer in &row.peers {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    row.comparison,
                    row.metric,
                    row.unit,
                    fmt_value(row.flakeboot),
                    peer.peer,
                    fmt_value(peer.value),
                    row.advantage(peer)
                        .map_or_else(|| "n/a".to_owned(), |a| format!("{a:.2}x")),
                );
            }
        }
        out
    }

    /// Write the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| BenchError::Io {
            what: "encoding the report".to_owned(),
            source: e.into(),
        })?;
        std::fs::write(path, text).map_err(BenchError::io(format!("writing {}", path.display())))
    }
}

/// Figures with a sensible number of digits.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_follows_the_direction_of_the_metric() {
        let rate = Row::new("dhcp", "DORA/s", "1/s", Better::Higher)
            .flakeboot(3000.0)
            .peer("dnsmasq", 1000.0);
        assert_eq!(rate.advantage(&rate.peers[0]), Some(3.0));
        let time = Row::new("boot", "marker", "s", Better::Lower)
            .flakeboot(10.0)
            .peer("dnsmasq+nginx", 12.0);
        assert_eq!(time.advantage(&time.peers[0]), Some(1.2));
        let zero = Row::new("x", "y", "s", Better::Lower).peer("p", 1.0);
        assert_eq!(zero.advantage(&zero.peers[0]), None);
    }

    #[test]
    fn table_has_a_line_per_peer_and_json_round_trips() {
        let report = Report {
            rows: vec![
                Row::new("tftp", "32 MiB blksize 1468", "MB/s", Better::Higher)
                    .flakeboot(20.0)
                    .peer("dnsmasq", 10.0)
                    .peer("tftp-hpa", 5.0)
                    .note("lock-step"),
            ],
            ..Report::default()
        };
        let table = report.table();
        assert!(table.contains("2.00x"), "{table}");
        assert!(table.contains("4.00x"), "{table}");
        assert!(table.contains("note [tftp]"), "{table}");
        let md = report.markdown();
        assert_eq!(md.lines().count(), 4, "{md}");
        assert!(
            md.contains("| tftp | 32 MiB blksize 1468 | MB/s | 20.0 | tftp-hpa | 5.00 | 4.00x |"),
            "{md}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][0]["peers"][1]["peer"], "tftp-hpa");
    }
}

/// One metric's figures while collecting: (metric, unit, better, [(server, value)]).
type Metric = (String, String, Better, Vec<(String, f64)>);

/// Gathers figures server by server (each server runs once, measuring every metric), then
/// turns them into rows with flakeboot's figure against each peer's.
#[derive(Debug, Default)]
pub struct Collector {
    comparison: String,
    /// Every metric, in first-seen order.
    metrics: Vec<Metric>,
    notes: Vec<(String, String)>,
}

impl Collector {
    /// A collector for one comparison (subcommand).
    pub fn new(comparison: &str) -> Collector {
        Collector {
            comparison: comparison.to_owned(),
            ..Collector::default()
        }
    }

    /// Record `server`'s figure for `metric`.
    pub fn add(&mut self, metric: &str, unit: &str, better: Better, server: &str, value: f64) {
        let idx = match self.metrics.iter().position(|m| m.0 == metric) {
            Some(i) => i,
            None => {
                self.metrics
                    .push((metric.to_owned(), unit.to_owned(), better, Vec::new()));
                self.metrics.len() - 1
            }
        };
        if let Some(m) = self.metrics.get_mut(idx) {
            m.3.push((server.to_owned(), value));
        }
    }

    /// Record the outcome of a measurement: its value, or 0 and a note saying why it failed.
    pub fn add_result(
        &mut self,
        metric: &str,
        unit: &str,
        better: Better,
        server: &str,
        value: Result<f64>,
    ) {
        match value {
            Ok(v) => self.add(metric, unit, better, server, v),
            Err(e) => {
                eprintln!("[{}] {server}: {metric}: {e}", self.comparison);
                self.add(metric, unit, better, server, 0.0);
                self.note(metric, &format!("{server} failed: {e}"));
            }
        }
    }

    /// Attach a remark to a metric.
    pub fn note(&mut self, metric: &str, note: &str) {
        self.notes.push((metric.to_owned(), note.to_owned()));
    }

    /// The rows: flakeboot's figure (0 when it has none) against every other server's.
    pub fn rows(self) -> Vec<Row> {
        let notes = self.notes;
        self.metrics
            .into_iter()
            .map(|(metric, unit, better, figures)| {
                let mut row = Row::new(&self.comparison, metric.clone(), &unit, better);
                for (server, value) in figures {
                    if server == "flakeboot" {
                        row.flakeboot = value;
                    } else {
                        row = row.peer(&server, value);
                    }
                }
                let note: Vec<&str> = notes
                    .iter()
                    .filter(|(m, _)| *m == metric)
                    .map(|(_, n)| n.as_str())
                    .collect();
                row.note(note.join("; "))
            })
            .collect()
    }
}

#[cfg(test)]
mod collector_tests {
    use super::*;

    #[test]
    fn figures_become_rows_with_flakeboot_against_peers() {
        let mut c = Collector::new("tftp");
        c.add("a", "MB/s", Better::Higher, "flakeboot", 2.0);
        c.add("b", "s", Better::Lower, "flakeboot", 1.0);
        c.add("a", "MB/s", Better::Higher, "dnsmasq", 1.0);
        c.add_result(
            "b",
            "s",
            Better::Lower,
            "dnsmasq",
            Err(BenchError::Incomplete {
                what: "x".into(),
                detail: "timeout".into(),
            }),
        );
        let rows = c.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].flakeboot, 2.0);
        assert_eq!(rows[0].peers[0].value, 1.0);
        assert_eq!(rows[1].peers[0].value, 0.0);
        assert!(rows[1].note.contains("dnsmasq failed"), "{:?}", rows[1]);
    }
}
