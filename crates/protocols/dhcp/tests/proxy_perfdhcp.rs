//! Load on the proxy: perfdhcp (ISC Kea's load generator, an independent DHCP implementation)
//! sends PXE DISCOVERs (its `-o` options add vendor class `PXEClient:Arch:00000:UNDI:002001`
//! and client architecture 0) from many simulated clients; every one must get flakeboot's
//! proxy offer (`-i`: DISCOVER/OFFER only, there are no addresses to request).
//!
//! A proxy-only LAN (no dnsmasq), so every offer perfdhcp sees is flakeboot's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod dhcp_server;
mod proxy_common;

use flakeboot_testbed::require_tool;
use proxy_common::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The number after `label` on its line in perfdhcp's report.
fn stat(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in perfdhcp's report:\n{report}"))
}

#[test]
fn perfdhcp_pxe_discovers_all_get_proxy_offers() {
    let perfdhcp = require_tool("perfdhcp");
    let lan = Lan::start_opts(LanKind::Veth, false);
    lan.net.client().addr(CLIENT_IF, "10.77.0.9/24").unwrap();
    let rate = 200;
    let count = 1000;
    let vendor = format!("60,{}", hex(b"PXEClient:Arch:00000:UNDI:002001"));
    let started = std::time::Instant::now();
    let args = [
        "-4",
        "-l",
        CLIENT_IF,
        "-i",
        "-r",
        &rate.to_string(),
        "-n",
        &count.to_string(),
        "-R",
        "500",
        "-o",
        &vendor,
        "-o",
        "93,0000",
    ];
    // Exit status 3 means "some exchanges not completed": the report says which.
    let output = lan
        .net
        .client()
        .command(&perfdhcp)
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "perfdhcp exit: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let elapsed = started.elapsed();
    eprintln!("{out}");
    let sent = stat(&out, "sent packets:");
    let received = stat(&out, "received packets:");
    let drops = stat(&out, "drops:");
    eprintln!(
        "perfdhcp: {sent} PXE DISCOVERs at {rate}/s, {received} proxy offers, {drops} drops, {elapsed:?}"
    );
    assert_eq!(sent, count);
    // flakeboot answered every DISCOVER...
    let stats = lan.stats_once(|s| s.replied >= count);
    assert_eq!(stats.received, count, "{stats:?}");
    assert_eq!(stats.replied, count, "{stats:?}");
    // ...and perfdhcp saw them all but possibly the very last: perfdhcp 2.2 rejects `-W`
    // (exit wait) together with `-i`, so it may exit before the last offer arrives.
    assert!(drops <= 1, "{out}");
    assert!(received + 1 >= sent, "{out}");
    assert_eq!(stats.malformed, 0);
    assert_eq!(
        lan.events().len() as u64,
        count,
        "one boot event per decision"
    );
}
