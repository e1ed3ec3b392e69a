//! The LAN's other DHCP servers: the watcher ([`flakeboot_dhcp::server::watch`]) runs beside
//! the boot services on the LAN port; [`DhcpServers`] is the shared table the API lists and
//! the warnings the dashboard shows ([`warnings`], pure).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flakeboot_catalogue::{Catalogue, MacAddr};
use flakeboot_config::DhcpMode;
use flakeboot_dhcp::seen::{SeenLimits, SeenServer, SeenServers, ServerKind};
use flakeboot_dhcp::server::watch::{self, ProbeTrigger, SharedSeen, WatchConfig};
use serde::Serialize;
use tokio::sync::watch as tokio_watch;
use tokio_util::sync::CancellationToken;

use crate::status::DaemonStatus;
use crate::wire::time::rfc3339;

/// How long after the watcher starts the absence of a full server counts (the first probe's
/// answers arrive within a second or two).
const FIRST_PROBE_GRACE: Duration = Duration::from_secs(10);

/// The table of other DHCP servers and the trigger of the running watcher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DhcpServers {
    seen: SharedSeen,
    trigger: ProbeTrigger,
}

impl Default for DhcpServers {
    fn default() -> DhcpServers {
        DhcpServers {
            seen: SharedSeen::new(SeenServers::new(SeenLimits::default())),
            trigger: ProbeTrigger::default(),
        }
    }
}

impl DhcpServers {
    /// The servers seen and not expired, by address.
    pub fn list(&self) -> Vec<DhcpServerView> {
        let now = SystemTime::now();
        let mut table = self.seen.lock();
        table.expire(now);
        table.list(now).iter().map(DhcpServerView::from).collect()
    }

    /// Probe now (the DHCP mode changed).
    pub fn probe(&self) {
        self.trigger.probe();
    }

    fn set_expiry(&self, expiry: Duration) {
        let mut table = self.seen.lock();
        let limits = table.limits();
        table.set_limits(SeenLimits { expiry, ..limits });
    }
}

/// One other DHCP server, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DhcpServerView {
    /// Its server identifier.
    pub address: Ipv4Addr,
    /// Its MAC, when the neighbour table knows it.
    pub mac: Option<MacAddr>,
    /// `full` (hands out addresses) or `proxy` (boot information only).
    pub kind: String,
    /// It answers PXE clients (a boot file, option 60 `PXEClient` or option 43).
    pub pxe: bool,
    /// The lowest and highest address it was seen offering.
    pub range_seen: Option<[Ipv4Addr; 2]>,
    /// The router (option 3) it hands out.
    pub router: Option<Ipv4Addr>,
    /// The boot file it hands out.
    pub boot_file: Option<String>,
    #[serde(with = "rfc3339")]
    pub first_seen: SystemTime,
    #[serde(with = "rfc3339")]
    pub last_seen: SystemTime,
}

impl From<&SeenServer> for DhcpServerView {
    fn from(s: &SeenServer) -> DhcpServerView {
        DhcpServerView {
            address: s.address,
            mac: s.mac,
            kind: s.kind.as_str().to_owned(),
            pxe: s.pxe,
            range_seen: s.range_seen.map(|(a, b)| [a, b]),
            router: s.router,
            boot_file: s.boot_file.clone(),
            first_seen: s.first_seen,
            last_seen: s.last_seen,
        }
    }
}

/// Switching to router mode (from proxy or off) while another full DHCP server answers on the
/// LAN needs an explicit confirmation: the message that asks for it, naming the servers, or
/// `None` when nothing needs confirming (pure).
pub fn router_switch_conflict(
    current: DhcpMode,
    next: DhcpMode,
    servers: &[DhcpServerView],
) -> Option<String> {
    if next != DhcpMode::Router || current == DhcpMode::Router {
        return None;
    }
    let full: Vec<String> = servers
        .iter()
        .filter(|s| s.kind == ServerKind::Full.as_str())
        .map(|s| s.address.to_string())
        .collect();
    (!full.is_empty()).then(|| {
        format!(
            "Another DHCP server answers on the LAN ({}): in router mode machines would get \
             addresses from either. Turn it off first, or confirm to switch anyway.",
            full.join(", ")
        )
    })
}

/// The dashboard's warnings about the other servers in `mode`. `probed`: the first probe's
/// answers had time to arrive (before that, no full server is no news). The router-mode warning
/// starts with the words exactly ("two DHCP servers: ..."): other tools match on them.
pub fn warnings(mode: DhcpMode, servers: &[DhcpServerView], probed: bool) -> Vec<String> {
    let list = |kind: &str| -> Vec<String> {
        servers
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.address.to_string())
            .collect()
    };
    let full = list(ServerKind::Full.as_str());
    let pxe: Vec<String> = servers
        .iter()
        .filter(|s| s.pxe || s.kind == ServerKind::Proxy.as_str())
        .map(|s| s.address.to_string())
        .collect();
    let mut out = Vec::new();
    match mode {
        DhcpMode::Router if !full.is_empty() => out.push(format!(
            "two DHCP servers: machines get addresses from either; switch to proxy mode or turn \
             the other off (another DHCP server answers on the LAN: {}).",
            full.join(", ")
        )),
        DhcpMode::Proxy if full.is_empty() && probed => out.push(
            "No DHCP server answers on the LAN in proxy mode: machines get no address. Start \
             one, or switch flakeboot to router mode."
                .to_owned(),
        ),
        _ => {}
    }
    if mode != DhcpMode::Off && !pxe.is_empty() {
        out.push(format!(
            "Another PXE or proxyDHCP server answers on the LAN ({}): machines may boot from it \
             instead of flakeboot.",
            pxe.join(", ")
        ));
    }
    out
}

/// What the watcher needs to start.
#[derive(Debug, Clone)]
pub(crate) struct WatchStart {
    pub interface: String,
    pub mac: MacAddr,
    pub own: Ipv4Addr,
    pub mode: DhcpMode,
    pub probe_interval: Duration,
    pub expiry: Duration,
}

/// Run the watcher and keep its warnings on the dashboard until `stop`; they are removed then.
/// A watcher that cannot bind the client port is logged and leaves no warning.
pub(crate) async fn run(
    servers: DhcpServers,
    start: WatchStart,
    catalogue: Arc<dyn Catalogue>,
    status: tokio_watch::Sender<DaemonStatus>,
    stop: CancellationToken,
) {
    servers.set_expiry(start.expiry);
    let cfg = WatchConfig::new(
        start.interface.clone(),
        start.mac,
        vec![start.own],
        start.probe_interval,
    );
    let watcher = watch::run(
        cfg,
        servers.seen.clone(),
        servers.trigger.clone(),
        catalogue,
        stop.clone(),
    );
    let began = Instant::now();
    let mut published: Vec<String> = Vec::new();
    let publisher = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = warnings(
                start.mode,
                &servers.list(),
                began.elapsed() >= FIRST_PROBE_GRACE,
            );
            if now != published {
                replace(&status, &published, &now);
                published = now;
            }
        }
    };
    tokio::select! {
        result = watcher => {
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot watch for other DHCP servers on the LAN");
            }
        }
        () = publisher => {}
    }
    replace(&status, &published, &[]);
}

fn replace(status: &tokio_watch::Sender<DaemonStatus>, old: &[String], new: &[String]) {
    status.send_modify(|s| {
        s.warnings.retain(|w| !old.contains(w));
        s.warnings.extend(new.iter().cloned());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(addr: [u8; 4], kind: ServerKind, pxe: bool) -> DhcpServerView {
        DhcpServerView {
            address: Ipv4Addr::from(addr),
            mac: None,
            kind: kind.as_str().to_owned(),
            pxe,
            range_seen: None,
            router: None,
            boot_file: None,
            first_seen: SystemTime::UNIX_EPOCH,
            last_seen: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn switching_to_router_mode_beside_a_full_server_needs_a_confirmation() {
        let full = [server([10, 0, 0, 2], ServerKind::Full, false)];
        let proxy = [server([10, 0, 0, 3], ServerKind::Proxy, true)];
        let asked = router_switch_conflict(DhcpMode::Proxy, DhcpMode::Router, &full);
        assert!(asked.is_some_and(|m| m.contains("(10.0.0.2)") && m.contains("confirm")));
        assert!(router_switch_conflict(DhcpMode::Off, DhcpMode::Router, &full).is_some());
        // Already router mode (saving other settings), leaving it, or only a proxy server: no.
        assert_eq!(
            router_switch_conflict(DhcpMode::Router, DhcpMode::Router, &full),
            None
        );
        assert_eq!(
            router_switch_conflict(DhcpMode::Router, DhcpMode::Proxy, &full),
            None
        );
        assert_eq!(
            router_switch_conflict(DhcpMode::Proxy, DhcpMode::Router, &proxy),
            None
        );
        assert_eq!(
            router_switch_conflict(DhcpMode::Proxy, DhcpMode::Router, &[]),
            None
        );
    }

    #[test]
    fn router_mode_beside_a_full_server_warns_of_two_servers() {
        let w = warnings(
            DhcpMode::Router,
            &[server([10, 0, 0, 2], ServerKind::Full, false)],
            true,
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with(
            "two DHCP servers: machines get addresses from either; switch to proxy mode or turn the other off"
        ));
        assert!(w[0].contains("10.0.0.2"));
        assert!(warnings(DhcpMode::Router, &[], true).is_empty());
    }

    #[test]
    fn proxy_mode_without_a_full_server_warns_once_probed() {
        let w = warnings(DhcpMode::Proxy, &[], true);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("machines get no address"));
        assert!(warnings(DhcpMode::Proxy, &[], false).is_empty());
        assert!(
            warnings(
                DhcpMode::Proxy,
                &[server([10, 0, 0, 1], ServerKind::Full, false)],
                true
            )
            .is_empty()
        );
    }

    #[test]
    fn another_pxe_server_is_a_warning_unless_dhcp_is_off() {
        let servers = [
            server([10, 0, 0, 1], ServerKind::Full, false),
            server([10, 0, 0, 3], ServerKind::Proxy, true),
        ];
        let w = warnings(DhcpMode::Proxy, &servers, true);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("Another PXE or proxyDHCP server") && w[0].contains("10.0.0.3"));
        assert!(warnings(DhcpMode::Off, &servers, true).is_empty());
    }
}
