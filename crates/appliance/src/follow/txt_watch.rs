//! The one task that asks the flakes' `notify_txt` records (every `[updates] txt_every`, a
//! minute by default) and starts an update (trigger `dns`) when a record names another
//! revision than the flake's locked one ([`Notices`] decides). One lookup at a time, through
//! hickory-resolver (`flakeboot_dns::Upstream`, the DNS forwarder's: UDP, TCP when truncated,
//! 2 s a try, two tries a server); the updates it starts run beside it (at most
//! one per flake, [`Updates::run`]). What the last check found is kept for the API
//! ([`Updates::dns_status`]); nothing here stops the task but `stop`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use flakeboot_config::UpdatesConfig;
use flakeboot_dns::{Upstream, resolv_conf_servers};
use flakeboot_store::UpdateTrigger;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::notice::read_notice;
use super::notify::{Action, DnsStatus, Notices};
use super::{FollowError, Started, Updates};

/// The system's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Asked when the system names no name server (as glibc does).
pub const DEFAULT_NAMESERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53);

/// Which name servers are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// The system's: the `nameserver` lines of this resolv.conf, read at every round (a DHCP
    /// client may rewrite it); none, or no file: 127.0.0.1:53.
    System(PathBuf),
    /// `[updates] resolver`.
    Fixed(SocketAddr),
}

impl Resolver {
    /// `[updates] resolver`, else the system's (`/etc/resolv.conf`).
    pub fn from_config(updates: &UpdatesConfig) -> Resolver {
        match updates.resolver() {
            Some(addr) => Resolver::Fixed(addr),
            None => Resolver::System(PathBuf::from(RESOLV_CONF)),
        }
    }

    /// The servers to ask now, in order.
    pub async fn servers(&self) -> Vec<SocketAddr> {
        match self {
            Resolver::Fixed(addr) => vec![*addr],
            Resolver::System(path) => {
                let path = path.clone();
                let read = tokio::task::spawn_blocking(move || {
                    resolv_conf_servers(&path, std::net::Ipv4Addr::UNSPECIFIED)
                })
                .await
                .unwrap_or_default();
                let servers: Vec<SocketAddr> =
                    read.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect();
                if servers.is_empty() {
                    debug!(
                        "no name server in the system's resolver configuration: asking 127.0.0.1:53"
                    );
                    return vec![DEFAULT_NAMESERVER];
                }
                servers
            }
        }
    }
}

/// How the records are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtWatch {
    /// The name servers.
    pub resolver: Resolver,
    /// How often each record is asked.
    pub every: Duration,
}

impl TxtWatch {
    /// From `[updates]`.
    pub fn from_config(updates: &UpdatesConfig) -> TxtWatch {
        TxtWatch {
            resolver: Resolver::from_config(updates),
            every: updates.txt_every,
        }
    }
}

/// A flake whose record is asked.
#[derive(Debug)]
struct Watched {
    name: String,
    record: String,
    check_every: Duration,
    locked: Option<String>,
}

/// Runs until `stop`.
pub async fn run(updates: Updates, watch: TxtWatch, stop: CancellationToken) {
    let mut notices = Notices::default();
    loop {
        let listed = {
            let u = updates.clone();
            tokio::task::spawn_blocking(move || watched(&u)).await
        };
        let list = match listed {
            Ok(Ok(list)) => list,
            Ok(Err(e)) => {
                warn!("cannot read which flakes have a notify_txt record: {e}");
                Vec::new()
            }
            Err(_) => return,
        };
        let names: Vec<String> = list.iter().map(|w| w.name.clone()).collect();
        notices.retain(&names);
        updates.set_dns_status(&names, None);
        if !list.is_empty() {
            // A resolver of its own each round (its cache lives one round: a changed record
            // is read at the next round, whatever its TTL).
            let servers = watch.resolver.servers().await;
            let upstream = Upstream::new(servers, 64).map_err(|e| e.to_string());
            for w in list {
                let read = tokio::select! {
                    _ = stop.cancelled() => return,
                    read = check(&upstream, &w.record) => read,
                };
                let action = notices.judge(
                    &w.name,
                    read.as_deref().map_err(String::as_str),
                    w.locked.as_deref(),
                    w.check_every,
                    Instant::now().into_std(),
                    SystemTime::now(),
                );
                act(&updates, &w, &read, &action);
                let status = DnsStatus {
                    record: w.record.clone(),
                    checked_at: SystemTime::now(),
                    rev: read.as_ref().ok().cloned(),
                    error: read.err(),
                    acted_on: notices.acted_on(&w.name),
                };
                updates.set_dns_status(&names, Some((w.name, status)));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(watch.every) => {}
            _ = updates.txt_changed() => {}
        }
    }
}

/// The revision `record` names, or why it names none.
async fn check(upstream: &Result<Upstream, String>, record: &str) -> Result<String, String> {
    let upstream = upstream.as_ref().map_err(Clone::clone)?;
    let records = upstream.txt(record).await.map_err(|e| e.to_string())?;
    read_notice(&records)
        .map(|n| n.rev)
        .map_err(|e| e.to_string())
}

/// Logs a check and starts the update it asks for.
fn act(updates: &Updates, w: &Watched, read: &Result<String, String>, action: &Action) {
    let (flake, record) = (&w.name, &w.record);
    match (action, read) {
        (Action::Failed { warn: true }, Err(why)) => {
            warn!(%flake, %record, "cannot read the flake's notify_txt record: {why}");
        }
        (Action::Failed { .. }, Err(why)) => {
            debug!(%flake, %record, "cannot read the flake's notify_txt record (still): {why}");
        }
        (Action::Current, _) => debug!(%flake, %record, "notify_txt names the locked revision"),
        (Action::Wait, Ok(rev)) => {
            debug!(%flake, %record, %rev, locked = ?w.locked, "notify_txt still names a revision an update was started for: retried after check_every");
        }
        (Action::Update, Ok(rev)) => {
            info!(%flake, %record, %rev, locked = ?w.locked, "notify_txt names another revision: updating");
            let (updates, name) = (updates.clone(), flake.clone());
            tokio::spawn(async move {
                match updates.run(&name, UpdateTrigger::Dns).await {
                    Ok(Started::Ran(r)) => {
                        debug!(flake = %name, state = r.state.as_str(), "dns update");
                    }
                    Ok(Started::Queued) => {}
                    Err(e) => warn!(flake = %name, "dns update failed: {e}"),
                }
            });
        }
        _ => {}
    }
}

/// Every existing flake that follows with a `notify_txt` record, with its locked revision.
fn watched(updates: &Updates) -> Result<Vec<Watched>, FollowError> {
    let store = updates.flakes().runner().store();
    let flakes = store.flakes()?;
    Ok(store
        .flake_follows()?
        .into_iter()
        .filter(|(_, f)| f.follow)
        .filter_map(|(name, f)| {
            let flake = flakes.iter().find(|r| r.name == name)?;
            Some(Watched {
                record: f.notify_txt?,
                check_every: f.check_every,
                locked: flake.revision.clone(),
                name,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_system_resolver_is_read_from_resolv_conf() {
        let none = UpdatesConfig::default();
        assert_eq!(
            Resolver::from_config(&none),
            Resolver::System(PathBuf::from("/etc/resolv.conf"))
        );
        let fixed = UpdatesConfig {
            resolver: Some("10.77.0.50:5353".into()),
            ..UpdatesConfig::default()
        };
        let addr: SocketAddr = "10.77.0.50:5353".parse().unwrap();
        assert_eq!(Resolver::from_config(&fixed), Resolver::Fixed(addr));
        assert_eq!(Resolver::Fixed(addr).servers().await, vec![addr]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "search lan\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n",
        )
        .unwrap();
        let servers = Resolver::System(path.clone()).servers().await;
        let shown: Vec<String> = servers.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["192.0.2.53:53", "[2001:db8::53]:53"]);
        // No file: the local server, as glibc does.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            Resolver::System(path).servers().await,
            vec![DEFAULT_NAMESERVER]
        );
        assert_eq!(TxtWatch::from_config(&none).every, Duration::from_secs(60));
    }
}
