//! The DNS forwarder as the appliance runs it (`[dns]`): on the LAN address with the boot
//! services, its local names made from what the appliance knows and its upstream from the
//! config or the system, both refreshed every [`REFRESH`] while it runs.
//!
//! Local names: a machine's name (its settings' or `[[machines]]` `hostname`, else a
//! reservation's, else the one its DHCP client sent) -> the address of its bound router-mode
//! lease, or its reservation's address. Names the user set win a name shared with a client's.
//!
//! Upstream: `[dns] upstream`, else a static WAN's `dns`, else the name servers of
//! `/etc/resolv.conf` (on the image networkd writes the WAN lease's servers there), never the
//! LAN address itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flakeboot_catalogue::MacAddr;
use flakeboot_config::Config;
use flakeboot_dns::{DnsState, LocalEntry, LocalNames, Upstream};
use flakeboot_store::{LeaseRecord, LeaseState, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::lan::LanInfo;

/// How often the local names and the upstream servers are read again, at most.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The names are read again no sooner than this many times as long as their last read took:
/// the refresh takes at most 1 % of a core. A read decodes every lease, so with 50,000 of them
/// (a flood, or the benchmark's table) it takes about 65 ms here and the names are read every
/// 6.5 s; with a LAN's few hundred, every [`REFRESH`].
const REFRESH_SHARE: u32 = 100;

/// The longest wait between two reads of the names, however long a read took: a new lease's
/// name is answered at most this late.
const REFRESH_MAX: Duration = Duration::from_secs(30);

/// How long to wait after a read that took `took`.
fn next_refresh(took: Duration) -> Duration {
    took.saturating_mul(REFRESH_SHARE)
        .clamp(REFRESH, REFRESH_MAX)
}

/// Where the system's name servers are read when nothing else names them.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The servers forwarded to (port 53): `[dns] upstream`, a static WAN's `dns`, or `resolv_conf`'s.
pub fn upstream_servers(config: &Config, lan: Ipv4Addr, resolv_conf: &Path) -> Vec<SocketAddr> {
    let configured = if config.dns.upstream.is_empty() {
        crate::wan::upstream_dns(config)
    } else {
        config.dns.upstream.clone()
    };
    let servers: Vec<IpAddr> = if configured.is_empty() {
        flakeboot_dns::resolv_conf_servers(resolv_conf, lan)
    } else {
        configured
            .into_iter()
            .filter(|s| *s != lan)
            .map(IpAddr::V4)
            .collect()
    };
    servers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The names the appliance knows, from `config` (machines, reservations) and the store's
/// leases and machine settings, at `now`; newest lease first among client-sent names.
pub fn local_entries(
    config: &Config,
    leases: &[LeaseRecord],
    machine_names: &[(MacAddr, String)],
    now: SystemTime,
) -> Vec<LocalEntry> {
    // The user's name of each MAC: the config file's machine wins over the stored settings.
    let mut named: HashMap<MacAddr, String> = machine_names.iter().cloned().collect();
    for m in &config.machines {
        if let Some(name) = &m.hostname {
            named.insert(m.mac, name.clone());
        }
    }
    let mut bound: Vec<&LeaseRecord> = leases
        .iter()
        .filter(|l| l.state == LeaseState::Bound && l.expires > now)
        .collect();
    bound.sort_by_key(|l| std::cmp::Reverse(l.expires));
    let mut entries = Vec::new();
    for lease in &bound {
        match (named.get(&lease.mac), &lease.hostname) {
            (Some(name), _) => entries.push(LocalEntry {
                hostname: name.clone(),
                address: lease.ip,
                configured: true,
            }),
            (None, Some(sent)) => entries.push(LocalEntry {
                hostname: sent.clone(),
                address: lease.ip,
                configured: false,
            }),
            (None, None) => {}
        }
    }
    for r in &config.dhcp.reservations {
        if let Some(name) = named.get(&r.mac).or(r.hostname.as_ref()) {
            entries.push(LocalEntry {
                hostname: name.clone(),
                address: r.address,
                configured: true,
            });
        }
    }
    entries
}

/// The LAN subnet of `lan` (its address and prefix length).
fn subnet(lan: &LanInfo) -> (Ipv4Addr, u8) {
    let prefix = u32::from(lan.netmask).count_ones();
    (lan.address, u8::try_from(prefix).unwrap_or(32))
}

/// The table for `config` on `lan`, reading the store (blocking).
pub fn read_names(config: &Config, lan: &LanInfo, store: &Store) -> Result<LocalNames, StoreError> {
    let leases = store.leases()?;
    let machine_names: Vec<(MacAddr, String)> = store
        .all_machine_options()?
        .into_iter()
        .filter_map(|(mac, o)| o.hostname.map(|h| (mac, h)))
        .collect();
    let entries = local_entries(config, &leases, &machine_names, SystemTime::now());
    Ok(LocalNames::new(
        config.dhcp.domain.as_deref(),
        Some(subnet(lan)),
        entries,
    ))
}

/// Keeps `state`'s names and upstream current until `stop`: the names every [`REFRESH`] (or
/// less often when reading them takes long: [`next_refresh`]), the upstream rebuilt (its cache
/// with it) only when the servers change.
pub async fn refresh(
    state: Arc<DnsState>,
    config: Config,
    lan: LanInfo,
    store: Store,
    stop: CancellationToken,
) {
    let mut servers: Option<Vec<SocketAddr>> = None;
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let (c, l, s) = (config.clone(), lan.clone(), store.clone());
        let read = tokio::task::spawn_blocking(move || {
            // The read itself, not its wait for a blocking thread.
            let started = std::time::Instant::now();
            let names = read_names(&c, &l, &s);
            let took = started.elapsed();
            let upstream = upstream_servers(&c, l.address, Path::new(RESOLV_CONF));
            (names, upstream, took)
        })
        .await;
        let Ok((names, upstream, took)) = read else {
            wait = REFRESH;
            continue;
        };
        wait = next_refresh(took);
        match names {
            Ok(names) => state.set_names(names),
            Err(e) => {
                tracing::warn!(error = %e, "DNS: the leases could not be read: the local names stay as they were")
            }
        }
        if servers.as_ref() != Some(&upstream) {
            if upstream.is_empty() {
                tracing::warn!(
                    "DNS: no upstream name server ([dns] upstream, a static [wan] dns or /etc/resolv.conf): only local names are answered"
                );
                state.set_upstream(None);
            } else {
                match Upstream::new(upstream.clone(), config.dns.cache_size) {
                    Ok(u) => {
                        tracing::info!(servers = ?upstream, "DNS: forwarding to these name servers");
                        state.set_upstream(Some(u));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "DNS: the upstream resolver could not be made")
                    }
                }
            }
            servers = Some(upstream);
        }
    }
}

#[cfg(test)]
mod tests;
