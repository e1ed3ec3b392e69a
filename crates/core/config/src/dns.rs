//! `[dns]`: the caching DNS forwarder on the LAN address. On by default in router mode (the
//! appliance is then the LAN's DHCP server and hands itself out as the DNS server, option 6,
//! unless `[dhcp] dns` names others); off otherwise unless `enabled = true`. It answers
//! `<hostname>.<[dhcp] domain>` (and the bare host name) from router-mode leases and machine
//! settings itself, and forwards every other name to `upstream`: by default a static WAN's
//! `dns`, else the name servers in the system's `/etc/resolv.conf`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

use crate::DhcpMode;
use crate::problem::{Field, Problem};

/// `[dns]` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Run the forwarder; unset: in router mode only.
    pub enabled: Option<bool>,
    /// UDP and TCP port on the LAN address (DHCP's option 6 can only name port 53).
    pub port: u16,
    /// Name servers every name that is not local is forwarded to; empty: a static WAN's `dns`,
    /// else the name servers of `/etc/resolv.conf`.
    pub upstream: Vec<Ipv4Addr>,
    /// Answers the cache holds (hickory-resolver's cache, by name and type).
    pub cache_size: u64,
    /// The TTL of the local names' answers.
    #[serde(with = "humantime_serde")]
    pub local_ttl: Duration,
    /// Forwarded queries waiting for an upstream answer, from all clients; beyond: REFUSED.
    pub max_queries: usize,
    /// Forwarded queries waiting for an upstream answer, from one client address.
    pub max_queries_per_client: usize,
    /// Open TCP connections, from all clients; the next one is closed at once.
    pub max_tcp_connections: usize,
    /// Open TCP connections from one client address.
    pub max_tcp_per_client: usize,
    /// A TCP connection with no complete query for this long is closed.
    #[serde(with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: None,
            port: 53,
            upstream: Vec::new(),
            cache_size: 4096,
            local_ttl: Duration::from_secs(60),
            max_queries: 256,
            max_queries_per_client: 32,
            max_tcp_connections: 64,
            max_tcp_per_client: 8,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

impl DnsConfig {
    /// Whether the forwarder runs with DHCP in `mode`.
    pub fn is_on(&self, mode: DhcpMode) -> bool {
        self.enabled.unwrap_or(mode == DhcpMode::Router)
    }
}

/// Problems in `[dns]` from the file alone. `lan_address`: `[lan] address` when it is set.
pub(crate) fn problems(dns: &DnsConfig, lan_address: Option<Ipv4Addr>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let field = |key: &str| Field::key("dns").then(key);
    let mut add = |f: Field, m: String| problems.push(Problem::new(f, m));
    if dns.port == 0 {
        add(
            field("port"),
            "must be a port number: 53 unless something else serves DNS there".into(),
        );
    }
    for (i, server) in dns.upstream.iter().enumerate() {
        if server.is_unspecified() || server.is_broadcast() || server.is_multicast() {
            add(
                field("upstream").at(i),
                format!("{server} is not a name server's address"),
            );
        }
    }
    if let Some(lan) = lan_address {
        problems.extend(upstream_problems(dns, lan));
    }
    let mut add = |f: Field, m: String| problems.push(Problem::new(f, m));
    if !(1..=1_000_000).contains(&dns.cache_size) {
        add(
            field("cache_size"),
            format!("{} must be between 1 and 1000000", dns.cache_size),
        );
    }
    if dns.local_ttl > Duration::from_secs(86_400) {
        add(field("local_ttl"), "must be at most 24h".into());
    }
    if !(1..=65_536).contains(&dns.max_queries) {
        add(
            field("max_queries"),
            format!("{} must be between 1 and 65536", dns.max_queries),
        );
    }
    if dns.max_queries_per_client == 0 || dns.max_queries_per_client > dns.max_queries {
        add(
            field("max_queries_per_client"),
            format!(
                "max_queries_per_client = {} must be between 1 and max_queries ({})",
                dns.max_queries_per_client, dns.max_queries
            ),
        );
    }
    if !(1..=4096).contains(&dns.max_tcp_connections) {
        add(
            field("max_tcp_connections"),
            format!("{} must be between 1 and 4096", dns.max_tcp_connections),
        );
    }
    if dns.max_tcp_per_client == 0 || dns.max_tcp_per_client > dns.max_tcp_connections {
        add(
            field("max_tcp_per_client"),
            format!(
                "max_tcp_per_client = {} must be between 1 and max_tcp_connections ({})",
                dns.max_tcp_per_client, dns.max_tcp_connections
            ),
        );
    }
    if dns.tcp_idle_timeout < Duration::from_secs(1)
        || dns.tcp_idle_timeout > Duration::from_secs(300)
    {
        add(
            field("tcp_idle_timeout"),
            "must be between 1s and 5m".into(),
        );
    }
    problems
}

/// An upstream server that is the appliance's LAN address `lan`.
pub(crate) fn upstream_problems(dns: &DnsConfig, lan: Ipv4Addr) -> Vec<Problem> {
    dns.upstream
        .iter()
        .enumerate()
        .filter(|(_, server)| **server == lan)
        .map(|(i, server)| {
            Problem::new(
                Field::key("dns").then("upstream").at(i),
                format!(
                    "{server} is the appliance's LAN address: the forwarder would ask itself; name the WAN's servers"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DnsConfig {
        toml::from_str(text).unwrap()
    }

    fn messages(text: &str, lan: Option<Ipv4Addr>) -> Vec<String> {
        problems(&parse(text), lan)
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn on_by_default_in_router_mode_only() {
        let d = parse("");
        assert!(d.is_on(DhcpMode::Router));
        assert!(!d.is_on(DhcpMode::Proxy) && !d.is_on(DhcpMode::Off));
        assert!(parse("enabled = true").is_on(DhcpMode::Proxy));
        assert!(!parse("enabled = false").is_on(DhcpMode::Router));
        assert!(messages("", None).is_empty());
        assert_eq!(d.port, 53);
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_syntax_errors() {
        assert!(toml::from_str::<DnsConfig>("forward = true").is_err());
        assert!(toml::from_str::<DnsConfig>("upstream = [\"dns.example\"]").is_err());
    }

    #[test]
    fn each_rule_says_what_to_do() {
        let lan = Some(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            messages("upstream = [\"0.0.0.0\", \"10.0.0.2\", \"1.1.1.1\"]", lan),
            [
                "dns.upstream[0]: 0.0.0.0 is not a name server's address",
                "dns.upstream[1]: 10.0.0.2 is the appliance's LAN address: the forwarder would ask itself; name the WAN's servers",
            ]
        );
        assert_eq!(
            messages("max_queries = 8\nmax_queries_per_client = 9", None),
            [
                "dns.max_queries_per_client: max_queries_per_client = 9 must be between 1 and max_queries (8)"
            ]
        );
        assert_eq!(
            messages("cache_size = 0\nlocal_ttl = \"2d\"\nport = 0", None).len(),
            3
        );
        assert_eq!(
            messages("max_tcp_connections = 0\ntcp_idle_timeout = \"10m\"", None),
            [
                "dns.max_tcp_connections: 0 must be between 1 and 4096",
                "dns.max_tcp_per_client: max_tcp_per_client = 8 must be between 1 and max_tcp_connections (0)",
                "dns.tcp_idle_timeout: must be between 1s and 5m",
            ]
        );
    }
}
