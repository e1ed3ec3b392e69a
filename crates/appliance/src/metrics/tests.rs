use std::time::Duration;

use flakeboot_catalogue::{BootEvent, BootStage, Outcome};

use super::*;

fn sample() -> Snapshot {
    let m = ServiceMetrics::default();
    DhcpStats::bump(&m.dhcp.received);
    DhcpStats::bump(&m.dhcp.received);
    DhcpStats::bump(&m.dhcp.replied);
    DhcpStats::bump(&m.dhcp.malformed);
    DhcpStats::add_bytes(&m.dhcp.received_bytes, 600);
    m.dhcp.reply_latency.observe(Duration::from_micros(300));
    m.boots
        .observe(&BootEvent::new(BootStage::Tftp, Outcome::Ok, "").bytes(4096));
    m.set_pool_addresses(21);
    m.hooks.count(HookOutcome::Refused);
    m.hooks.count(HookOutcome::Refused);
    m.hooks.count(HookOutcome::Accepted);
    m.dns.count(flakeboot_dns::stats::Count::Forwarded);
    m.dns.count(flakeboot_dns::stats::Count::Local);
    m.dns.count(flakeboot_dns::stats::Count::Local);
    m.logs.drop_lines(Dropped::RateSource, 7);
    m.logs.drop_lines(Dropped::NoMachine, 1);
    let mut builds = BTreeMap::new();
    builds.insert("succeeded", 2);
    m.snapshot(StateGauges {
        storage: Some(Storage {
            total_bytes: Some(1000),
            free_bytes: Some(400),
            min_free_bytes: None,
            gc: true,
            last_gc: None,
        }),
        leases_bound: 3,
        leases_declined: 0,
        machines: 5,
        builds,
    })
}

#[test]
fn the_page_shows_each_counter_where_it_was_counted() {
    let page = render(&sample());
    for line in [
        "flakeboot_dhcp_requests_total 2",
        "flakeboot_dhcp_replies_total 1",
        "flakeboot_dhcp_unanswered_total{reason=\"malformed\"} 1",
        "flakeboot_dhcp_bytes_total{direction=\"received\"} 600",
        "flakeboot_dhcp_reply_duration_seconds_bucket{le=\"0.0001\"} 0",
        "flakeboot_dhcp_reply_duration_seconds_bucket{le=\"0.0005\"} 1",
        "flakeboot_dhcp_reply_duration_seconds_count 1",
        "flakeboot_dhcp_pool_addresses 21",
        "flakeboot_dhcp_leases{state=\"bound\"} 3",
        "flakeboot_tftp_transfers_total{outcome=\"ok\"} 0",
        "flakeboot_boot_events_total{stage=\"tftp\",outcome=\"ok\"} 1",
        "flakeboot_boot_served_bytes_total{stage=\"tftp\"} 4096",
        "flakeboot_boot_duration_seconds_count 0",
        "flakeboot_builds{state=\"succeeded\"} 2",
        "flakeboot_machines 5",
        "flakeboot_webhook_calls_total{outcome=\"accepted\"} 1",
        "flakeboot_webhook_calls_total{outcome=\"refused\"} 2",
        "flakeboot_webhook_calls_total{outcome=\"limited\"} 0",
        "flakeboot_dns_queries_total{answer=\"local\"} 2",
        "flakeboot_dns_queries_total{answer=\"forwarded\"} 1",
        "flakeboot_dns_queries_total{answer=\"refused\"} 0",
        "flakeboot_logs_lines_total{proto=\"rfc5424\"} 0",
        "flakeboot_logs_lines_total{proto=\"netconsole\"} 0",
        "flakeboot_logs_dropped_total{reason=\"rate_source\"} 7",
        "flakeboot_logs_dropped_total{reason=\"no_machine\"} 1",
        "flakeboot_logs_dropped_total{reason=\"unattributed\"} 0",
        "flakeboot_storage_free_bytes 400",
        "flakeboot_storage_total_bytes 1000",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
    // An unknown value is left out, not shown as 0.
    assert!(!page.contains("flakeboot_storage_min_free_bytes"), "{page}");
}

#[test]
fn every_family_follows_the_naming_conventions() {
    let page = render(&sample());
    let mut families = 0;
    for line in page.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        families += 1;
        assert!(name.starts_with("flakeboot_"), "{line}");
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{line}"),
            "histogram" => assert!(name.ends_with("_seconds"), "{line}"),
            "gauge" => assert!(!name.ends_with("_total"), "{line}"),
            other => panic!("unexpected type {other}"),
        }
        assert!(
            page.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        // Every sample of the family follows its header.
        assert!(
            page.lines()
                .any(|l| !l.starts_with('#') && l.starts_with(name)),
            "no sample of {name}"
        );
    }
    assert!(families >= 18, "{families} families:\n{page}");
}
