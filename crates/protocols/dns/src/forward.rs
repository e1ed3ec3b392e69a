//! The upstream: hickory-resolver asking the WAN's name servers (UDP, TCP on truncation), with
//! its cache by name and type. The resolver is replaced whole when the servers change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RData, RecordType};
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

/// Why [`Upstream::txt`] found no answer.
#[derive(Debug, thiserror::Error)]
pub enum TxtError {
    #[error("{name} is not a DNS name: {reason}")]
    Name { name: String, reason: String },
    #[error("no such name: {0}")]
    NoSuchName(String),
    #[error("asking {}: {source}", shown(servers))]
    Lookup {
        servers: Vec<SocketAddr>,
        #[source]
        source: NetError,
    },
}

fn shown(servers: &[SocketAddr]) -> String {
    if servers.is_empty() {
        return "no name server".to_owned();
    }
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

    /// The TXT records of `name` (each its character-strings in order); none when the name
    /// exists without one. No such name, and every failure, is an error that says which.
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<Vec<u8>>>, TxtError> {
        let asked = Name::from_ascii(name).map_err(|e| TxtError::Name {
            name: name
                .chars()
                .take(64)
                .flat_map(char::escape_default)
                .collect(),
            reason: e.to_string(),
        })?;
        let lookup = match self.resolver.lookup(asked, RecordType::TXT).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => return Err(TxtError::NoSuchName(name.to_owned())),
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => {
                return Err(TxtError::Lookup {
                    servers: self.servers.clone(),
                    source: e,
                });
            }
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => None,
            })
            .collect())
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

#[cfg(test)]
mod txt_tests {
    use hickory_proto::op::{Message, OpCode, ResponseCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::TXT;
    use tokio::net::UdpSocket;

    use super::*;

    /// A server on loopback that answers each query with what `reply` makes of it.
    async fn server(reply: fn(&Message) -> Message) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            loop {
                let (len, from) = socket.recv_from(&mut buf).await.unwrap();
                let query = Message::from_vec(&buf[..len]).unwrap();
                let bytes = reply(&query).to_vec().unwrap();
                socket.send_to(&bytes, from).await.unwrap();
            }
        });
        addr
    }

    fn response(query: &Message) -> Message {
        let mut m = Message::response(query.metadata.id, OpCode::Query);
        m.add_queries(query.queries.clone());
        m
    }

    #[tokio::test]
    async fn txt_records_come_with_their_strings_and_a_missing_name_says_so() {
        let addr = server(|q| {
            let mut m = response(q);
            match q.queries[0].name().to_ascii().as_str() {
                "_flakeboot.test.lan." => {
                    m.add_answer(Record::from_rdata(
                        q.queries[0].name().clone(),
                        60,
                        RData::TXT(TXT::new(vec!["rev=ab".into(), "cd".into()])),
                    ));
                }
                "empty.test.lan." => {}
                _ => {
                    m.metadata.response_code = ResponseCode::NXDomain;
                }
            }
            m
        })
        .await;
        let upstream = Upstream::new(vec![addr], 16).unwrap();
        let records = upstream.txt("_flakeboot.test.lan").await.unwrap();
        assert_eq!(records, vec![vec![b"rev=ab".to_vec(), b"cd".to_vec()]]);
        assert!(upstream.txt("empty.test.lan").await.unwrap().is_empty());
        let err = upstream.txt("nothing.test.lan").await.unwrap_err();
        assert!(matches!(err, TxtError::NoSuchName(_)), "{err}");
        let err = upstream.txt("bad..name").await.unwrap_err();
        assert!(matches!(err, TxtError::Name { .. }), "{err}");
    }
}
