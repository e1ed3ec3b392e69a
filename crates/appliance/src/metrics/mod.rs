//! `/metrics`: the boot services' counters and the appliance's state in the Prometheus text
//! format. The counters are the ones the services keep anyway ([`DhcpStats`], [`TftpStats`],
//! [`HttpBootStats`], the boot port's [`ConnStats`], [`BootCounters`] fed by the boot
//! policy); [`ServiceMetrics`] holds them across service restarts, so a counter never goes
//! back when settings move a service. The gauges ([`StateGauges`]) are read at scrape time.
//!
//! Pre-flight checks do not exist yet: when they do, their counts go beside the builds'
//! (`flakeboot_preflights_total{outcome}`) in [`render`].

pub mod boots;
pub mod hooks;
pub mod text;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flakeboot_dhcp::server::{DhcpStats, DhcpStatsSnapshot, latency};
use flakeboot_dns::{DnsStats, DnsStatsSnapshot};
use flakeboot_httpboot::{HttpBootCounts, HttpBootStats};
use flakeboot_logs::Proto;
use flakeboot_logs::server::{Dropped, LogStats};
use flakeboot_tftp::{TftpStats, TftpStatsSnapshot};

use crate::http_serve::{ConnStats, ConnStatsSnapshot};
use crate::wire::Storage;
pub use boots::{BootCounters, BootsSnapshot};
pub use hooks::{HookCounters, HookOutcome, HookSnapshot};
use text::{Exposition, HistogramValues, Kind, Labels};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The live counters, shared by the boot services (which count) and `/metrics` (which reads).
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ServiceMetrics {
    pub dhcp: Arc<DhcpStats>,
    pub tftp: Arc<TftpStats>,
    pub http: Arc<HttpBootStats>,
    /// The HTTP boot port's connections.
    pub http_conns: Arc<ConnStats>,
    pub boots: Arc<BootCounters>,
    /// The flakes' push webhook calls.
    pub hooks: Arc<HookCounters>,
    /// The DNS forwarder's queries.
    pub dns: Arc<DnsStats>,
    /// The machines' log lines received and dropped.
    pub logs: Arc<LogStats>,
    /// Addresses in the router-mode pool (0 when DHCP is not in router mode).
    pool_addresses: Arc<AtomicU64>,
}

impl ServiceMetrics {
    /// Record the router-mode pool's size (0: no pool).
    pub fn set_pool_addresses(&self, n: u64) {
        self.pool_addresses.store(n, Ordering::Relaxed);
    }

    /// Every counter now, with the gauges read for this scrape.
    pub fn snapshot(&self, state: StateGauges) -> Snapshot {
        Snapshot {
            dhcp: self.dhcp.snapshot(),
            tftp: self.tftp.snapshot(),
            http: self.http.snapshot(),
            http_conns: self.http_conns.snapshot(),
            boots: self.boots.snapshot(),
            hooks: self.hooks.snapshot(),
            dns: self.dns.snapshot(),
            logs: LogsSnapshot::of(&self.logs),
            pool_addresses: self.pool_addresses.load(Ordering::Relaxed),
            state,
        }
    }
}

/// The log receiver's counters now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsSnapshot {
    /// Lines received, by protocol (`rfc5424`, `rfc3164`, `netconsole`).
    pub lines: BTreeMap<&'static str, u64>,
    /// Lines dropped, by reason (`unattributed`, `rate_source`, `rate_total`, `overflow`,
    /// `no_machine`).
    pub dropped: BTreeMap<&'static str, u64>,
}

impl LogsSnapshot {
    fn of(stats: &LogStats) -> LogsSnapshot {
        LogsSnapshot {
            lines: Proto::ALL
                .iter()
                .map(|p| (p.as_str(), stats.lines(*p)))
                .collect(),
            dropped: Dropped::ALL
                .iter()
                .map(|d| (d.as_str(), stats.dropped(*d)))
                .collect(),
        }
    }
}

/// What is read from the store and the nix runner at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateGauges {
    /// The nix store's disk (as `/api/v1/status` shows it).
    pub storage: Option<Storage>,
    /// Router-mode leases bound now (not expired).
    pub leases_bound: u64,
    /// Addresses quarantined after a DHCPDECLINE.
    pub leases_declined: u64,
    /// Machine records.
    pub machines: u64,
    /// Builds in the store by state (`queued`, `running`, `succeeded`, ...).
    pub builds: BTreeMap<&'static str, u64>,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub dhcp: DhcpStatsSnapshot,
    pub tftp: TftpStatsSnapshot,
    pub http: HttpBootCounts,
    pub http_conns: ConnStatsSnapshot,
    pub boots: BootsSnapshot,
    pub hooks: HookSnapshot,
    pub dns: DnsStatsSnapshot,
    pub logs: LogsSnapshot,
    pub pool_addresses: u64,
    pub state: StateGauges,
}

/// The name of a build state as a label value.
pub fn build_state_label(state: flakeboot_store::BuildState) -> &'static str {
    use flakeboot_store::BuildState as B;
    match state {
        B::Queued => "queued",
        B::Running => "running",
        B::Succeeded => "succeeded",
        B::Failed => "failed",
        B::Cancelled => "cancelled",
        B::TimedOut => "timed_out",
    }
}

fn n(v: u64) -> f64 {
    v as f64
}

/// The metrics page.
pub fn render(s: &Snapshot) -> String {
    let mut e = Exposition::new();
    dhcp(&mut e, &s.dhcp, s.pool_addresses, &s.state);
    tftp(&mut e, &s.tftp);
    http(&mut e, &s.http, &s.http_conns);
    boots(&mut e, &s.boots);
    hooks(&mut e, &s.hooks);
    dns(&mut e, &s.dns);
    logs(&mut e, &s.logs);
    state(&mut e, &s.state);
    e.finish()
}

fn dns(e: &mut Exposition, d: &DnsStatsSnapshot) {
    use Kind::Counter;
    e.family(
        "flakeboot_dns_queries_total",
        Counter,
        "DNS queries on the LAN by answer (local: the LAN's own names; forwarded: upstream or its cache; failed: SERVFAIL; refused: over a budget or not taken).",
        &[
            (&[("answer", "local")], n(d.local)),
            (&[("answer", "forwarded")], n(d.forwarded)),
            (&[("answer", "failed")], n(d.failed)),
            (&[("answer", "refused")], n(d.refused)),
        ],
    );
    e.single(
        "flakeboot_dns_malformed_packets_total",
        Counter,
        "DNS packets that were no DNS message (dropped).",
        n(d.malformed),
    );
    e.single(
        "flakeboot_dns_tcp_refused_total",
        Counter,
        "DNS TCP connections closed at once (over the connection caps).",
        n(d.tcp_refused),
    );
}

fn dhcp(e: &mut Exposition, d: &DhcpStatsSnapshot, pool: u64, st: &StateGauges) {
    use Kind::{Counter, Gauge};
    e.single(
        "flakeboot_dhcp_requests_total",
        Counter,
        "DHCP datagrams received (ports 67 and 4011).",
        n(d.received),
    );
    e.single(
        "flakeboot_dhcp_replies_total",
        Counter,
        "DHCP replies sent.",
        n(d.replied),
    );
    let unanswered: [(Labels<'_>, f64); 4] = [
        (&[("reason", "not_boot_client")], n(d.ignored_non_boot)),
        (&[("reason", "ignored")], n(d.ignored)),
        (&[("reason", "malformed")], n(d.malformed)),
        (&[("reason", "declined")], n(d.declined)),
    ];
    e.family(
        "flakeboot_dhcp_unanswered_total",
        Counter,
        "DHCP datagrams not answered, by reason (malformed: not a valid DHCP request; declined: a boot client flakeboot has no binary for).",
        &unanswered,
    );
    e.single(
        "flakeboot_dhcp_pool_exhausted_total",
        Counter,
        "Router mode: DISCOVERs left without an offer because the pool was full.",
        n(d.pool_exhausted),
    );
    e.family(
        "flakeboot_dhcp_bytes_total",
        Counter,
        "DHCP bytes received and sent.",
        &[
            (&[("direction", "received")], n(d.received_bytes)),
            (&[("direction", "sent")], n(d.sent_bytes)),
        ],
    );
    let l = &d.reply_latency;
    e.histogram(
        "flakeboot_dhcp_reply_duration_seconds",
        "From a DHCP request's arrival to its reply sent (router mode: the lease written to disk first).",
        &HistogramValues {
            bounds: &latency::BUCKETS,
            cumulative: &l.cumulative,
            count: l.count,
            sum: l.sum_seconds,
        },
    );
    e.single(
        "flakeboot_dhcp_pool_addresses",
        Gauge,
        "Addresses in the router-mode pool (0 when flakeboot hands out no addresses).",
        n(pool),
    );
    e.family(
        "flakeboot_dhcp_leases",
        Gauge,
        "Router-mode leases by state: bound (not expired) or declined (quarantined).",
        &[
            (&[("state", "bound")], n(st.leases_bound)),
            (&[("state", "declined")], n(st.leases_declined)),
        ],
    );
}

fn tftp(e: &mut Exposition, t: &TftpStatsSnapshot) {
    use Kind::Counter;
    e.family(
        "flakeboot_tftp_transfers_total",
        Counter,
        "TFTP transfers by outcome (aborted: the client ended it after the OACK, the PXE size probe; evicted: ended to give its slot to a lighter client).",
        &[
            (&[("outcome", "ok")], n(t.transfers_ok)),
            (&[("outcome", "aborted")], n(t.transfers_aborted)),
            (&[("outcome", "failed")], n(t.transfers_failed)),
            (&[("outcome", "evicted")], n(t.transfers_evicted)),
        ],
    );
    let busy = t.refused_client_busy + t.refused_server_busy;
    e.family(
        "flakeboot_tftp_refused_total",
        Counter,
        "TFTP requests answered with an ERROR, by reason (refused: a name not served, a write, ...).",
        &[
            (&[("reason", "client_busy")], n(t.refused_client_busy)),
            (&[("reason", "server_busy")], n(t.refused_server_busy)),
            (
                &[("reason", "refused")],
                n(t.requests_refused.saturating_sub(busy)),
            ),
        ],
    );
    e.single(
        "flakeboot_tftp_duplicate_requests_total",
        Counter,
        "TFTP requests dropped unanswered: a transfer to that address and port was running.",
        n(t.duplicate_requests),
    );
    e.single(
        "flakeboot_tftp_malformed_packets_total",
        Counter,
        "TFTP datagrams that were malformed or unexpected.",
        n(t.bad_packets),
    );
    e.single(
        "flakeboot_tftp_retransmissions_total",
        Counter,
        "TFTP DATA and OACK packets sent again after a timeout.",
        n(t.retransmissions),
    );
}

fn http(e: &mut Exposition, h: &HttpBootCounts, c: &ConnStatsSnapshot) {
    use Kind::Counter;
    e.family(
        "flakeboot_http_requests_total",
        Counter,
        "HTTP boot requests answered, by kind (file: kernels, initrds, iPXE binaries; report: accepted system reports).",
        &[
            (&[("kind", "script")], n(h.scripts)),
            (&[("kind", "file")], n(h.files)),
            (&[("kind", "report")], n(h.reports)),
        ],
    );
    e.family(
        "flakeboot_http_errors_total",
        Counter,
        "HTTP boot requests refused or failed, by kind (not_found 404, bad_request 400, report_refused 403, server 500).",
        &[
            (&[("kind", "not_found")], n(h.not_found)),
            (&[("kind", "bad_request")], n(h.bad_requests)),
            (&[("kind", "report_refused")], n(h.refused_reports)),
            (&[("kind", "server")], n(h.errors)),
        ],
    );
    e.family(
        "flakeboot_http_connections_total",
        Counter,
        "HTTP boot port connections: accepted, refused (the address had its maximum open), closed idle.",
        &[
            (&[("outcome", "accepted")], n(c.accepted)),
            (&[("outcome", "refused_per_client")], n(c.refused_per_client)),
            (&[("outcome", "closed_idle")], n(c.closed_idle)),
        ],
    );
}

fn boots(e: &mut Exposition, b: &BootsSnapshot) {
    let events: Vec<(Vec<(&str, &str)>, f64)> = b
        .events
        .iter()
        .map(|((stage, outcome), v)| (vec![("stage", *stage), ("outcome", *outcome)], n(*v)))
        .collect();
    let events: Vec<(Labels<'_>, f64)> = events.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    e.family(
        "flakeboot_boot_events_total",
        Kind::Counter,
        "Boot steps by stage (dhcp, pxe-boot-server, tftp, script, kernel, initrd, http-ipxe, system: the booted system's report) and outcome (ok, declined, failed).",
        &events,
    );
    let bytes: Vec<([(&str, &str); 1], f64)> = b
        .bytes
        .iter()
        .map(|(stage, v)| ([("stage", *stage)], n(*v)))
        .collect();
    let bytes: Vec<(Labels<'_>, f64)> = bytes.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    e.family(
        "flakeboot_boot_served_bytes_total",
        Kind::Counter,
        "Bytes of boot files sent over TFTP and HTTP, by stage.",
        &bytes,
    );
    let not_recorded: Vec<([(&str, &str); 1], f64)> = ["new_machine", "no_machine"]
        .iter()
        .map(|r| {
            let v = b.not_recorded.get(r).copied().unwrap_or_default();
            ([("reason", *r)], n(v))
        })
        .collect();
    let not_recorded: Vec<(Labels<'_>, f64)> = not_recorded
        .iter()
        .map(|(l, v)| (l.as_slice(), *v))
        .collect();
    e.family(
        "flakeboot_boot_events_not_recorded_total",
        Kind::Counter,
        "Boot events the timeline did not keep, by reason: new_machine (their MAC a new machine past the budget of new machine records), no_machine (events of no machine past their budget); counted in flakeboot_boot_events_total too.",
        &not_recorded,
    );
    e.histogram(
        "flakeboot_boot_duration_seconds",
        "Boots that reported up: from the machine's first DHCP exchange to its system's report.",
        &HistogramValues {
            bounds: &boots::DURATION_BUCKETS,
            cumulative: &b.durations_cumulative,
            count: b.durations_count,
            sum: b.durations_sum,
        },
    );
}

fn hooks(e: &mut Exposition, h: &HookSnapshot) {
    e.family(
        "flakeboot_webhook_calls_total",
        Kind::Counter,
        "Calls of the flakes' push webhooks, by outcome (accepted, refused: 401, limited: 429).",
        &[
            (&[("outcome", "accepted")], n(h.accepted)),
            (&[("outcome", "refused")], n(h.refused)),
            (&[("outcome", "limited")], n(h.limited)),
        ],
    );
}

fn logs(e: &mut Exposition, l: &LogsSnapshot) {
    for (name, label, help, counts) in [
        (
            "flakeboot_logs_lines_total",
            "proto",
            "Lines of the machines' logs received, by protocol (rfc5424, rfc3164, netconsole).",
            &l.lines,
        ),
        (
            "flakeboot_logs_dropped_total",
            "reason",
            "Lines of the machines' logs dropped, by reason (unattributed: from an address no machine holds; rate_source, rate_total: over the rate limits; overflow: the writer was behind; no_machine: no machine record).",
            &l.dropped,
        ),
    ] {
        let labels: Vec<([(&str, &str); 1], f64)> =
            counts.iter().map(|(k, v)| ([(label, *k)], n(*v))).collect();
        let samples: Vec<(Labels<'_>, f64)> =
            labels.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        e.family(name, Kind::Counter, help, &samples);
    }
}

fn state(e: &mut Exposition, s: &StateGauges) {
    use Kind::Gauge;
    let builds: Vec<([(&str, &str); 1], f64)> = s
        .builds
        .iter()
        .map(|(state, v)| ([("state", *state)], n(*v)))
        .collect();
    let builds: Vec<(Labels<'_>, f64)> = builds.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    e.family(
        "flakeboot_builds",
        Gauge,
        "Builds the store holds, by state (queued, running, succeeded, failed, cancelled, timed_out).",
        &builds,
    );
    // Pre-flight checks: none exist yet; their family goes here when they do.
    e.single(
        "flakeboot_machines",
        Gauge,
        "Machine records.",
        n(s.machines),
    );
    if let Some(storage) = &s.storage {
        for (name, help, value) in [
            (
                "flakeboot_storage_total_bytes",
                "Size of the nix store's file system.",
                storage.total_bytes,
            ),
            (
                "flakeboot_storage_free_bytes",
                "Bytes free on the nix store's file system.",
                storage.free_bytes,
            ),
            (
                "flakeboot_storage_min_free_bytes",
                "[nix] min_free: builds are refused below it.",
                storage.min_free_bytes,
            ),
        ] {
            if let Some(v) = value {
                e.single(name, Gauge, help, n(v));
            }
        }
    }
}

#[cfg(test)]
mod tests;
