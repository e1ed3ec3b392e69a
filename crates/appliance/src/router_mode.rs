//! Router mode's pool settings: the config file's `[dhcp]` section resolved against the LAN.

use flakeboot_config::Config;
use flakeboot_dhcp::lease::PoolConfig;
use flakeboot_dhcp::ra::{RaConfig, ula_prefix_from_mac};

use crate::lan::LanInfo;

/// Option 6: `[dhcp] dns` when set; else the appliance itself when its DNS forwarder runs on
/// port 53; else the upstream's (a static WAN's `dns`).
pub fn dns_servers(config: &Config, lan: &LanInfo) -> Vec<std::net::Ipv4Addr> {
    if !config.dhcp.dns.is_empty() {
        config.dhcp.dns.clone()
    } else if config.dns.is_on(config.dhcp.mode) && config.dns.port == 53 {
        vec![lan.address]
    } else {
        crate::wan::upstream_dns(config)
    }
}

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
        dns: dns_servers(config, lan),
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use flakeboot_catalogue::MacAddr;

    use super::*;

    fn lan() -> LanInfo {
        LanInfo {
            interface: "lan0".into(),
            address: Ipv4Addr::new(10, 0, 0, 2),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        }
    }

    fn servers(extra: &str) -> Vec<Ipv4Addr> {
        let config = Config::parse_unchecked(
            &format!(
                "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\nrange = [\"10.0.0.100\", \"10.0.0.120\"]\n{extra}\n\
                 [wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ndns = [\"203.0.113.53\"]\n"
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        pool_config(&config, &lan()).dns
    }

    #[test]
    fn option_6_is_the_forwarder_unless_configured_otherwise() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(servers(""), [ip("10.0.0.2")]);
        assert_eq!(servers("dns = [\"1.1.1.1\"]"), [ip("1.1.1.1")]);
        assert_eq!(servers("[dns]\nenabled = false"), [ip("203.0.113.53")]);
        assert_eq!(servers("[dns]\nport = 5353"), [ip("203.0.113.53")]);
    }
}
