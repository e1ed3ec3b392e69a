//! Router mode's pool settings: the config file's `[dhcp]` section resolved against the LAN.

use flakeboot_config::Config;
use flakeboot_dhcp::lease::PoolConfig;
use flakeboot_dhcp::ra::{RaConfig, ula_prefix_from_mac};

use crate::lan::LanInfo;

pub fn pool_config(config: &Config, lan: &LanInfo) -> PoolConfig {
    let d = &config.dhcp;
    let ra = d.ipv6_ra.enabled.then(|| RaConfig {
        prefix: d
            .ipv6_ra
            .prefix
            .unwrap_or_else(|| ula_prefix_from_mac(lan.mac.octets())),
        interval: d.ipv6_ra.interval,
    });
    PoolConfig {
        server_ip: lan.address,
        ranges: d.all_ranges().into_iter().map(|[a, b]| (a, b)).collect(),
        netmask: d.netmask.unwrap_or(lan.netmask),
        router: Some(d.router.unwrap_or(lan.address)),
        // Unset: the upstream's (a static WAN's `dns`).
        dns: if d.dns.is_empty() {
            crate::wan::upstream_dns(config)
        } else {
            d.dns.clone()
        },
        domain: d.domain.clone(),
        lease_time: d.lease_time,
        decline_quarantine: d.decline_quarantine,
        reservations: d
            .reservations
            .iter()
            .map(|r| (r.mac, r.address, r.hostname.clone()))
            .collect(),
        ra,
    }
}
