//! The WAN side as the daemon runs it (`[wan]`): a static address and default route (mode
//! `static`), flakeboot's nftables table (the WAN firewall whenever there is a WAN; in router
//! mode also forwarding from the LAN to the WAN with NAT) and IPv4 forwarding (router mode).
//! Everything is undone at stop: the table removed, forwarding put back as it was, a static
//! address and route the daemon added taken away. A change of the settings (`[wan]` saved in
//! the UI or API, router mode, the LAN port) goes from what is set up to what is asked for
//! without a restart: a WAN may appear, go, move to another port or change its address.
//!
//! What the table says is decided here ([`ruleset`], pure); `flakeboot-firewall` writes and
//! loads it; `flakeboot-netif` applies the static address.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use flakeboot_config::{Config, DhcpMode, WanMode};
use flakeboot_firewall::{FirewallError, IpForward, Ruleset};
use flakeboot_netif::NetifError;
use tokio::sync::watch;

use crate::status::{DaemonStatus, ServiceState, ServiceStatus};

/// Why the WAN side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    #[error("the WAN port {0:?} does not exist: check [wan] interface")]
    NoInterface(String),
    #[error("the WAN port: {0}")]
    Netif(#[from] NetifError),
    #[error("the WAN firewall: {0}")]
    Firewall(#[from] FirewallError),
}

/// The table for `config` with the LAN port `lan` and the WireGuard server's UDP ports, or
/// `None` without a WAN.
pub fn ruleset(config: &Config, lan: &str, wireguard_ports: Vec<u16>) -> Option<Ruleset> {
    let wan = config.wan.interface.as_ref()?;
    Some(Ruleset {
        lan: lan.to_owned(),
        wan: wan.clone(),
        wireguard_ports,
        forward: config.dhcp.mode == DhcpMode::Router,
        wan_dhcp: config.wan.mode == WanMode::Dhcp,
    })
}

/// The upstream DNS servers router-mode DHCP hands out when `[dhcp] dns` is empty: a static
/// WAN's `dns`.
pub fn upstream_dns(config: &Config) -> Vec<Ipv4Addr> {
    match config.wan.mode {
        WanMode::Static if config.wan.interface.is_some() => config.wan.dns.clone(),
        _ => Vec::new(),
    }
}

/// What the daemon did to the WAN side, to undo at stop.
#[derive(Debug)]
pub struct WanSide {
    /// The static address it added (interface index, address, prefix).
    address: Option<(u32, Ipv4Addr, u8)>,
    /// The default route it added (interface index, gateway).
    route: Option<(u32, Ipv4Addr)>,
    /// Forwarding it turned on (router mode), with the value before.
    forward: Option<IpForward>,
    table: bool,
}

impl WanSide {
    /// Sets the WAN side up for `config` (blocking: netlink and `nft`). `Ok` with nothing to
    /// undo without a `[wan] interface`.
    pub fn start(
        config: &Config,
        lan: &str,
        wireguard_ports: Vec<u16>,
    ) -> Result<WanSide, WanError> {
        let mut side = WanSide {
            address: None,
            route: None,
            forward: None,
            table: false,
        };
        match side.update(config, lan, wireguard_ports) {
            Ok(()) => Ok(side),
            Err(e) => {
                side.stop();
                Err(e)
            }
        }
    }

    /// Goes to `config` from whatever was set up before (blocking): the table replaced in one
    /// nft transaction (loaded when a WAN appears, removed with everything else when it goes),
    /// a static address and route that changed taken away and the new ones added, forwarding
    /// turned on or put back as router mode comes or goes.
    pub fn update(
        &mut self,
        config: &Config,
        lan: &str,
        wireguard_ports: Vec<u16>,
    ) -> Result<(), WanError> {
        let Some(ruleset) = ruleset(config, lan, wireguard_ports) else {
            if self.table || self.address.is_some() || self.route.is_some() {
                tracing::info!(
                    "no WAN port any more: its firewall, forwarding and static address are taken away"
                );
            }
            self.stop();
            return Ok(());
        };
        // The firewall first: the port never answers before it is filtered.
        flakeboot_firewall::apply(&ruleset)?;
        self.table = true;
        match (ruleset.forward, self.forward.take()) {
            (true, None) => {
                let forward = IpForward::enable()?;
                tracing::info!(
                    wan = %ruleset.wan, lan = %ruleset.lan, was_on = forward.was_on(),
                    "router mode: the LAN is forwarded to the WAN with NAT"
                );
                self.forward = Some(forward);
            }
            (false, Some(before)) => before.restore()?,
            (_, kept) => self.forward = kept,
        }
        tracing::info!(
            wan = %ruleset.wan, forward = ruleset.forward, wireguard = ?ruleset.wireguard_ports,
            "WAN firewall loaded (table inet flakeboot)"
        );
        // Last: a port that is not there (unplugged) still gets its firewall and forwarding.
        self.static_address(config, &ruleset.wan)
    }

    /// The static address and default route `config` asks for on the port `wan`: what the
    /// daemon added before and is no longer asked for is taken away (the route first), then
    /// what is new is added. An address or route that was there already is left to whoever
    /// put it there.
    fn static_address(&mut self, config: &Config, wan: &str) -> Result<(), WanError> {
        let (want_address, want_route) = match (config.wan.mode, config.wan.address) {
            (WanMode::Static, Some(cidr)) => {
                let index = flakeboot_netif::interface(wan)?
                    .ok_or_else(|| WanError::NoInterface(wan.to_owned()))?
                    .index;
                (
                    Some((index, cidr.address, cidr.prefix_len)),
                    config.wan.gateway.map(|g| (index, g)),
                )
            }
            _ => (None, None),
        };
        // The kernel drops a route through the gateway with the address it is reached by:
        // an address that changes takes the route along, added again after it.
        let address_changes = self.address.is_some() && self.address != want_address;
        if let Some((index, gateway)) = self.route
            && (self.route != want_route || address_changes)
        {
            flakeboot_netif::del_default_route(index, gateway)?;
            self.route = None;
        }
        if let Some((index, address, prefix)) = self.address
            && self.address != want_address
        {
            flakeboot_netif::del_ipv4(index, address, prefix)?;
            self.address = None;
        }
        if let Some((index, address, prefix)) = want_address
            && self.address != want_address
            && flakeboot_netif::add_ipv4(index, address, prefix)?
        {
            self.address = want_address;
        }
        if let Some((index, gateway)) = want_route
            && self.route != want_route
        {
            if flakeboot_netif::add_default_route(index, gateway)? {
                self.route = want_route;
            } else {
                tracing::warn!(%gateway, "there is a default route already: [wan] gateway is not added");
            }
        }
        Ok(())
    }

    /// Undoes everything (blocking); a step that fails is logged and the others still run.
    pub fn stop(&mut self) {
        if let Some(forward) = self.forward.take()
            && let Err(e) = forward.restore()
        {
            tracing::warn!(error = %e, "IPv4 forwarding could not be put back");
        }
        if std::mem::take(&mut self.table)
            && let Err(e) = flakeboot_firewall::remove()
        {
            tracing::warn!(error = %e, "flakeboot's nftables table could not be removed");
        }
        if let Some((index, gateway)) = self.route.take()
            && let Err(e) = flakeboot_netif::del_default_route(index, gateway)
        {
            tracing::warn!(error = %e, "the WAN's default route could not be removed");
        }
        if let Some((index, address, prefix)) = self.address.take()
            && let Err(e) = flakeboot_netif::del_ipv4(index, address, prefix)
        {
            tracing::warn!(error = %e, "the WAN's static address could not be removed");
        }
    }
}

/// The running WAN side, shared by what changes its inputs: the settings (router mode, the LAN
/// port) and the VPN (the WireGuard server's port). Each change replaces the table in one nft
/// transaction; one that fails keeps the table that was loaded and is logged.
#[derive(Debug, Clone)]
pub struct WanFirewall(Arc<Mutex<Running>>);

#[derive(Debug)]
struct Running {
    side: WanSide,
    config: Config,
    lan: String,
    ports: Vec<u16>,
    /// The dashboard's report, where the "WAN" line goes.
    status: Option<watch::Sender<DaemonStatus>>,
    /// Why the last change could not be applied (shown on the dashboard until one is).
    failure: Option<String>,
    /// The warning last put on the dashboard (to replace it, and only it).
    published: Option<String>,
}

impl Running {
    /// The dashboard's "WAN" line (blocking: the WAN's addresses from netlink), or `None`
    /// without a WAN.
    fn line(&self) -> Option<ServiceStatus> {
        let name = self.config.wan.interface.as_ref()?;
        let (addresses, gateway): (Vec<String>, _) = match flakeboot_netif::interface(name) {
            Ok(Some(port)) => (
                port.addresses
                    .iter()
                    .filter(|a| a.address.is_ipv4())
                    .map(|a| format!("{}/{}", a.address, a.prefix_len))
                    .collect(),
                flakeboot_netif::default_gateway(port.index).ok().flatten(),
            ),
            Ok(None) => (vec!["missing".to_owned()], None),
            Err(e) => (vec![format!("unknown ({e})")], None),
        };
        let mut address = if addresses.is_empty() {
            "no address yet".to_owned()
        } else {
            addresses.join(", ")
        };
        if let Some(gateway) = gateway {
            address.push_str(&format!(" via {gateway}"));
        }
        let mut detail = format!("{name} {address}: firewall on");
        if self.config.dhcp.mode == DhcpMode::Router {
            detail.push_str(&format!(", {} forwarded with NAT", self.lan));
        }
        if !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            detail.push_str(&format!(", WireGuard UDP {} open", ports.join(", ")));
        }
        Some(ServiceStatus {
            name: "WAN".to_owned(),
            state: ServiceState::Running,
            detail,
        })
    }

    /// Puts the "WAN" line (none without a WAN) and the warning of a change that failed on the
    /// dashboard.
    fn report(&mut self) {
        let Some(status) = &self.status else {
            return;
        };
        let line = self.line();
        let warning = self.failure.as_ref().map(|e| {
            format!("The WAN settings could not be applied: {e}. The firewall and addresses set up before stay; check the WAN port in Settings.")
        });
        let old = std::mem::replace(&mut self.published, warning.clone());
        status.send_modify(|s| {
            match (s.services.iter_mut().find(|l| l.name == "WAN"), line) {
                (Some(old), Some(line)) => *old = line,
                (None, Some(line)) => s.services.push(line),
                (Some(_), None) => s.services.retain(|l| l.name != "WAN"),
                (None, None) => {}
            }
            s.warnings.retain(|w| Some(w) != old.as_ref());
            s.warnings.extend(warning);
        });
    }
}

impl WanFirewall {
    /// The side [`WanSide::start`] set up with these inputs.
    pub fn new(side: WanSide, config: Config, lan: String, ports: Vec<u16>) -> WanFirewall {
        WanFirewall(Arc::new(Mutex::new(Running {
            side,
            config,
            lan,
            ports,
            status: None,
            failure: None,
            published: None,
        })))
    }

    /// Shows the WAN on the dashboard (a "WAN" line, kept current with each change).
    pub async fn report_to(&self, status: watch::Sender<DaemonStatus>) {
        self.change(move |r| r.status = Some(status)).await;
    }

    async fn change(&self, f: impl FnOnce(&mut Running) + Send + 'static) {
        let shared = self.0.clone();
        let done = tokio::task::spawn_blocking(move || {
            let Ok(mut running) = shared.lock() else {
                tracing::error!("the WAN firewall's state is poisoned: not changed");
                return;
            };
            f(&mut running);
            let Running {
                side,
                config,
                lan,
                ports,
                ..
            } = &mut *running;
            running.failure = match side.update(config, lan, ports.clone()) {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "the WAN side could not be changed: what was set up before stays");
                    Some(e.to_string())
                }
            };
            running.report();
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "the WAN firewall change did not finish");
        }
    }

    /// The WireGuard server's UDP ports changed (enabled, disabled, another port).
    pub async fn set_wireguard_ports(&self, ports: Vec<u16>) {
        self.change(move |r| r.ports = ports).await;
    }

    /// The settings changed (router or proxy mode, the LAN port, `[wan]`).
    pub async fn follow_settings(&self, config: &Config, lan: &str) {
        let (config, lan) = (config.clone(), lan.to_owned());
        self.change(move |r| {
            r.config = config;
            r.lan = lan;
        })
        .await;
    }

    /// Reads the WAN's addresses and gateway again every `period` for the dashboard (a DHCP
    /// client on the WAN gets and renews them on its own), until `stop`.
    pub async fn refresh_every(
        self,
        period: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let shared = self.0.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(mut running) = shared.lock() {
                    running.report();
                }
            })
            .await;
        }
    }

    /// Undoes everything (at stop).
    pub async fn stop(&self) {
        let shared = self.0.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut running) = shared.lock() {
                running.side.stop();
            }
        })
        .await;
    }
}

impl Drop for WanSide {
    /// A daemon that fails after the WAN side was set up still leaves the host as it was.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse_unchecked(
            &format!("[lan]\ninterface = \"lan0\"\n{text}"),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    /// The dashboard: a change that failed is a warning until one succeeds; the "WAN" line goes
    /// with the WAN.
    #[test]
    fn a_failed_change_warns_and_the_line_goes_with_the_wan() {
        let (status, rx) = watch::channel(DaemonStatus::default());
        let mut running = Running {
            side: WanSide {
                address: None,
                route: None,
                forward: None,
                table: false,
            },
            config: config("[wan]\ninterface = \"nosuchwan9\"\n"),
            lan: "lan0".into(),
            ports: Vec::new(),
            status: Some(status),
            failure: Some("the WAN port \"nosuchwan9\" does not exist".into()),
            published: None,
        };
        running.report();
        let s = rx.borrow().clone();
        let line = s.services.iter().find(|l| l.name == "WAN").unwrap();
        assert!(line.detail.starts_with("nosuchwan9 missing"), "{line:?}");
        assert_eq!(s.warnings.len(), 1, "{s:?}");
        assert!(s.warnings[0].starts_with("The WAN settings could not be applied: the WAN port"));
        // Reported again (every few seconds): still one warning.
        running.report();
        assert_eq!(rx.borrow().warnings.len(), 1);
        running.failure = None;
        running.config = config("");
        running.report();
        let s = rx.borrow().clone();
        assert!(s.services.iter().all(|l| l.name != "WAN"), "{s:?}");
        assert!(s.warnings.is_empty(), "{s:?}");
    }

    #[test]
    fn no_wan_no_table() {
        assert_eq!(ruleset(&config(""), "lan0", vec![51820]), None);
    }

    #[test]
    fn router_mode_forwards_and_proxy_mode_only_filters() {
        let router = config(
            "[dhcp]\nmode = \"router\"\nrange = [\"10.0.0.10\", \"10.0.0.20\"]\n[wan]\ninterface = \"wan0\"\n",
        );
        let r = ruleset(&router, "lan0", vec![51820]).unwrap();
        assert!(r.forward && r.wan_dhcp);
        assert_eq!((r.lan.as_str(), r.wan.as_str()), ("lan0", "wan0"));
        assert_eq!(r.wireguard_ports, [51820]);
        let proxy = config(
            "[wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ndns = [\"203.0.113.53\"]\n",
        );
        let r = ruleset(&proxy, "lan0", vec![]).unwrap();
        assert!(!r.forward && !r.wan_dhcp);
        assert_eq!(upstream_dns(&proxy), [Ipv4Addr::new(203, 0, 113, 53)]);
        assert!(upstream_dns(&router).is_empty());
    }
}
