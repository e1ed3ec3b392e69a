//! The Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Why not the `prometheus-client` crate: every counter already exists as a relaxed atomic in
//! its protocol crate (`DhcpStats`, `TftpStats`, `HttpBootStats`, `ConnStats`), which must not
//! depend on a metrics library, and the gauges (disk, leases, builds) are read from the store
//! at scrape time. With the crate each would need a custom collector re-encoding a snapshot,
//! i.e. only its encoder would be used; the format it encodes is this file's few rules.

use std::fmt::Write as _;

/// What a metric family is (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One label set, e.g. `[("kind", "script")]`.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A histogram's values, cumulative per bound as Prometheus has them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValues<'a> {
    /// Upper bounds in seconds, ascending (`le`).
    pub bounds: &'a [f64],
    /// Observations at or under each bound (same length as `bounds`).
    pub cumulative: &'a [u64],
    /// Every observation (`+Inf`, `_count`).
    pub count: u64,
    /// Their sum (`_sum`).
    pub sum: f64,
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// A family with one sample per label set.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help, &[(&[], value)]);
    }

    /// A histogram family with one unlabelled histogram.
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramValues<'_>) {
        self.header(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in h.bounds.iter().zip(h.cumulative) {
            let le = number(*bound);
            self.sample(&bucket, &[("le", &le)], *count as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }

    /// The text, ready to serve as `text/plain; version=0.0.4`.
    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let mut e = Exposition::new();
        e.family(
            "flakeboot_x_total",
            Kind::Counter,
            "Things.\nMore",
            &[(&[("kind", "a\"b\\c\nd")], 3.0), (&[("kind", "e")], 0.5)],
        );
        e.single("flakeboot_y_bytes", Kind::Gauge, "Bytes.", 1e12);
        assert_eq!(
            e.finish(),
            "# HELP flakeboot_x_total Things.\\nMore\n# TYPE flakeboot_x_total counter\n\
             flakeboot_x_total{kind=\"a\\\"b\\\\c\\nd\"} 3\nflakeboot_x_total{kind=\"e\"} 0.5\n\
             # HELP flakeboot_y_bytes Bytes.\n# TYPE flakeboot_y_bytes gauge\n\
             flakeboot_y_bytes 1000000000000\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.histogram(
            "flakeboot_t_seconds",
            "Time.",
            &HistogramValues {
                bounds: &[0.001, 1.0],
                cumulative: &[1, 2],
                count: 3,
                sum: 4.25,
            },
        );
        assert_eq!(
            e.finish(),
            "# HELP flakeboot_t_seconds Time.\n# TYPE flakeboot_t_seconds histogram\n\
             flakeboot_t_seconds_bucket{le=\"0.001\"} 1\nflakeboot_t_seconds_bucket{le=\"1\"} 2\n\
             flakeboot_t_seconds_bucket{le=\"+Inf\"} 3\nflakeboot_t_seconds_sum 4.25\n\
             flakeboot_t_seconds_count 3\n"
        );
    }

    #[test]
    fn special_values() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.0001), "0.0001");
    }
}
