//! The upstream: hickory-resolver asking the WAN's name servers (UDP, TCP on truncation), with
//! its cache by name and type. The resolver is replaced whole when the servers change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::Query;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

/// How long one upstream server gets per try.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the resolver: {0}")]
    Resolver(#[from] NetError),
}

/// The resolver and the servers it asks.
#[derive(Clone)]
pub struct Upstream {
    servers: Vec<SocketAddr>,
    resolver: TokioResolver,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A resolver asking `servers` with a cache of `cache_size` answers. The hosts file and
    /// search domains play no part: every name is asked as it came.
    pub fn new(servers: Vec<SocketAddr>, cache_size: u64) -> Result<Upstream, UpstreamError> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                config
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
        let mut options = ResolverOpts::default();
        options.cache_size = cache_size;
        options.use_hosts_file = ResolveHosts::Never;
        options.preserve_intermediates = true;
        options.timeout = TRY_TIMEOUT;
        options.attempts = 2;
        options.ndots = 0;
        options.recursion_desired = true;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()?;
        Ok(Upstream { servers, resolver })
    }

    /// The servers it asks.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The answer to `query` from the cache or the servers.
    pub async fn lookup(&self, query: &Query) -> Result<Lookup, NetError> {
        self.resolver
            .lookup(query.name().clone(), query.query_type())
            .await
    }
}

/// The name servers of a resolv.conf file, leaving out `except` (the appliance's own LAN
/// address: it would ask itself); empty when the file cannot be read.
pub fn resolv_conf_servers(path: &Path, except: Ipv4Addr) -> Vec<IpAddr> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok((config, _)) = hickory_resolver::system_conf::parse_resolv_conf(text) else {
        return Vec::new();
    };
    let mut servers: Vec<IpAddr> = Vec::new();
    for server in config.name_servers() {
        if server.ip != IpAddr::V4(except) && !servers.contains(&server.ip) {
            servers.push(server.ip);
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers_leave_the_appliance_out() {
        let dir = std::env::temp_dir().join(format!("fb-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("resolv.conf");
        std::fs::write(
            &file,
            "# written by networkd\nnameserver 203.0.113.53\nnameserver 10.0.0.2\nnameserver 2001:db8::53\nsearch lan\n",
        )
        .unwrap();
        let servers = resolv_conf_servers(&file, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            servers,
            [
                "203.0.113.53".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        assert!(resolv_conf_servers(&dir.join("missing"), Ipv4Addr::LOCALHOST).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
