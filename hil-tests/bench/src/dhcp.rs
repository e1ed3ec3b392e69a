//! DHCP router mode under perfdhcp: the highest rate with under 0.1 % drops, latency
//! percentiles and CPU time at a fixed rate. Servers, one after the other on `lan0`: flakeboot
//! (leases durable before the ACK), dnsmasq with its lease file, dnsmasq with `--leasefile-ro`
//! (not durable), and Kea (memfile, persisted).

use crate::clients::settle;
use crate::error::Result;
use crate::knobs::Knobs;
use flakeboot_testbed::TestLan;

use crate::lan::{CLIENT_IF, subdir, veth_lan};
use crate::perfdhcp::{self, PerfReport};
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup, Server};
use crate::udp_counters;

/// The most drops a rate may cause and still count as sustained, in percent.
pub const MAX_DROP_PERCENT: f64 = 0.1;
/// The share of the asked rate perfdhcp must achieve for the rate to count.
const MIN_RATE_SHARE: f64 = 0.95;

/// The DHCP servers compared, by name in the table.
pub const SERVERS: [&str; 4] = [
    "flakeboot",
    "dnsmasq (lease file)",
    "dnsmasq --leasefile-ro",
    "kea (memfile)",
];

/// Run the router-mode DHCP comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("dhcp")?;
    let mut c = Collector::new("dhcp");
    for name in SERVERS.into_iter().filter(|name| k.runs(name)) {
        let server = match start(&lan, k, name) {
            Ok(s) => s,
            Err(e) => {
                c.add_result(
                    "highest rate, < 0.1 % drops",
                    "DORA/s",
                    Better::Higher,
                    name,
                    Err(e),
                );
                continue;
            }
        };
        measure(&lan, k, &mut c, name, &server, &[]);
        server.stop();
        settle();
    }
    Ok(c.rows())
}

/// Start one of [`SERVERS`] in router mode.
pub fn start(lan: &TestLan, k: &Knobs, name: &str) -> Result<Server> {
    match name {
        "flakeboot" => {
            let files = subdir(lan, "files")?;
            let file = files.join("kernel");
            crate::lan::write_pattern(&file, 4096)?;
            servers::flakeboot(
                lan,
                &k.flakeboot_bin,
                &FlakebootSetup {
                    dhcp: DhcpMode::Router,
                    ipxe_dir: files.clone(),
                    kernel: file.clone(),
                    initrd: file,
                    cmdline: String::new(),
                    machines: Vec::new(),
                    ra: false,
                },
            )
        }
        "kea (memfile)" => servers::kea(lan),
        other => servers::dnsmasq(
            lan,
            "dnsmasq",
            &DnsmasqSetup {
                router: true,
                durable: other == "dnsmasq (lease file)",
                ..DnsmasqSetup::default()
            },
        ),
    }
}

/// Step the rate up through `rates` until drops pass [`MAX_DROP_PERCENT`] (or the
/// rate is not achieved), then bisect twice between the last clean rate and the first failing
/// one; returns the highest achieved clean rate (0 if none).
pub fn highest_rate(lan: &TestLan, k: &Knobs, rates: &[u32], extra: &[&str]) -> Result<f64> {
    let try_rate = |rate: u32| -> Result<Option<f64>> {
        let before = (
            udp_counters::read(&lan.server),
            udp_counters::read(lan.client()),
        );
        let r = perfdhcp::run(
            lan.client(),
            CLIENT_IF,
            rate,
            k.dhcp_seconds,
            k.dhcp_clients,
            false,
            extra,
        )?;
        let clean =
            r.drop_percent() < MAX_DROP_PERCENT && r.rate >= f64::from(rate) * MIN_RATE_SHARE;
        let losses = match (
            before,
            udp_counters::read(&lan.server),
            udp_counters::read(lan.client()),
        ) {
            ((Some(s0), Some(c0)), Some(s1), Some(c1)) => {
                format!(" ({})", udp_counters::losses(s1.since(s0), c1.since(c0)))
            }
            _ => String::new(),
        };
        eprintln!(
            "   rate {rate}/s: achieved {:.0}/s, drops {:.3} %{}{losses}",
            r.rate,
            r.drop_percent(),
            if clean { "" } else { " (not sustained)" }
        );
        Ok(clean.then_some(r.rate))
    };
    let mut best = (0u32, 0.0);
    let mut failed = None;
    for &rate in rates {
        match try_rate(rate)? {
            Some(achieved) => best = (rate, achieved),
            None => {
                failed = Some(rate);
                break;
            }
        }
    }
    if let Some(mut high) = failed {
        for _ in 0..2 {
            let mid = best.0 + (high - best.0) / 2;
            if mid <= best.0 || mid >= high {
                break;
            }
            match try_rate(mid)? {
                Some(achieved) => best = (mid, achieved),
                None => high = mid,
            }
        }
    }
    Ok(best.1)
}

/// Measure one server: highest clean rate, then latency and CPU at the fixed rate.
pub fn measure(
    lan: &TestLan,
    k: &Knobs,
    c: &mut Collector,
    name: &str,
    server: &Server,
    extra: &[&str],
) {
    eprintln!("-- {name}");
    let best = highest_rate(lan, k, &k.dhcp_rates, extra);
    c.add_result(
        "highest rate, < 0.1 % drops",
        "DORA/s",
        Better::Higher,
        name,
        best,
    );
    let rate = k.dhcp_latency_rate;
    let (fixed, cpu) = perfdhcp::run_with_cpu(lan, k, rate, true, extra, || server.cpu_seconds());
    match fixed {
        Ok(r) => add_fixed(c, name, rate, &r, cpu),
        Err(e) => c.add_result(
            &format!("p99 REQUEST-ACK at {rate}/s"),
            "ms",
            Better::Lower,
            name,
            Err(e),
        ),
    }
}

fn add_fixed(c: &mut Collector, name: &str, rate: u32, r: &PerfReport, cpu: f64) {
    let Some(ra) = &r.request_ack else {
        c.note(
            &format!("p99 REQUEST-ACK at {rate}/s"),
            &format!("{name}: no REQUEST-ACK exchanges"),
        );
        return;
    };
    let ms = "ms";
    c.add(
        &format!("p50 DISCOVER-OFFER at {rate}/s"),
        ms,
        Better::Lower,
        name,
        r.discover_offer.percentile_ms(50.0),
    );
    c.add(
        &format!("p99 DISCOVER-OFFER at {rate}/s"),
        ms,
        Better::Lower,
        name,
        r.discover_offer.percentile_ms(99.0),
    );
    c.add(
        &format!("p50 REQUEST-ACK at {rate}/s"),
        ms,
        Better::Lower,
        name,
        ra.percentile_ms(50.0),
    );
    c.add(
        &format!("p99 REQUEST-ACK at {rate}/s"),
        ms,
        Better::Lower,
        name,
        ra.percentile_ms(99.0),
    );
    c.add(
        &format!("max REQUEST-ACK at {rate}/s"),
        ms,
        Better::Lower,
        name,
        ra.max_ms,
    );
    c.add(
        &format!("drops at {rate}/s"),
        "%",
        Better::Lower,
        name,
        r.drop_percent(),
    );
    let exchanges = ra.received as f64;
    if exchanges > 0.0 {
        c.add(
            "CPU seconds per 1,000 DORA",
            "s",
            Better::Lower,
            name,
            cpu * 1000.0 / exchanges,
        );
    }
}
