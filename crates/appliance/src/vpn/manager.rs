//! Remote management over WireGuard: the web UI's [`VpnService`] over `flakeboot-vpn` (keys,
//! validation, interfaces) and the store (settings and peers). At start the saved server and hub
//! interfaces come back up with every peer; a tunnel's address joins the management addresses
//! while it is up. Boot services never listen on a tunnel.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::service::{
    NewPeer, TunnelState, VpnHubSettings, VpnHubView, VpnPeerView, VpnServerSettings, VpnService,
    VpnServiceError, VpnStatus,
};
use flakeboot_store::{Store, StoreError, VpnHubRecord, VpnPeerRecord, VpnServerRecord};
use flakeboot_vpn::{
    Invalid, Ipv4Net, PeerConfig, PeerSpec, PeerStats, PrivateKey, Tunnel, TunnelSpec, validate,
};
use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use crate::listen_addrs::ManagementAddrs;

/// Names in [`ManagementAddrs`] and key file names.
const SERVER: &str = "server";
const HUB: &str = "hub";

/// What the VPN needs from the daemon.
#[derive(Debug, Clone)]
pub struct VpnOptions {
    /// Keys live in `<state_dir>/wireguard/`.
    pub state_dir: PathBuf,
    /// Server-mode interface name (`[vpn] server_interface`).
    pub server_interface: String,
    /// Hub-mode interface name (`[vpn] hub_interface`).
    pub hub_interface: String,
    /// The web UI's port (it listens on each tunnel address too).
    pub web_port: u16,
    /// The LAN's prefix: a tunnel may not overlap it.
    pub lan: Ipv4Net,
    /// The WAN firewall, told the server's port as it changes (`None`: no WAN).
    pub wan: Option<crate::wan::WanFirewall>,
}

impl VpnOptions {
    /// From the config file's `[vpn]`, `[web] port`, state directory, and the LAN.
    pub fn from_config(config: &flakeboot_config::Config, lan: &crate::lan::LanInfo) -> VpnOptions {
        VpnOptions {
            state_dir: config.state_dir.clone(),
            server_interface: config.vpn.server_interface.clone(),
            hub_interface: config.vpn.hub_interface.clone(),
            web_port: config.web.port,
            lan: Ipv4Net {
                addr: lan.address,
                prefix: u32::from(lan.netmask).count_ones().min(32) as u8,
            },
            wan: None,
        }
    }
}

/// One tunnel's live state.
#[derive(Debug, Default)]
struct Side {
    tunnel: Option<Tunnel>,
    /// Enabled but not up: why.
    failed: Option<String>,
}

impl Side {
    fn state(&self, enabled: bool) -> TunnelState {
        match (&self.tunnel, &self.failed) {
            (Some(t), _) => TunnelState::Up {
                interface: t.interface().to_owned(),
                implementation: t.implementation().as_str().to_owned(),
            },
            (None, Some(message)) if enabled => TunnelState::Failed {
                message: message.clone(),
            },
            _ => TunnelState::Off,
        }
    }
}

#[derive(Debug, Default)]
struct Live {
    server: Side,
    hub: Side,
}

/// The daemon's [`VpnService`].
#[derive(Debug)]
pub struct VpnManager {
    store: Store,
    options: VpnOptions,
    server_key: PrivateKey,
    hub_key: PrivateKey,
    addrs: ManagementAddrs,
    /// Held across every change, so two requests never interleave.
    live: Mutex<Live>,
}

fn invalid(e: Invalid) -> VpnServiceError {
    VpnServiceError::Invalid {
        field: e.field,
        message: e.message,
    }
}

fn internal(e: impl std::fmt::Display) -> VpnServiceError {
    VpnServiceError::Internal {
        message: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, VpnServiceError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(internal)?
        .map_err(internal)
}

fn server_settings(r: Option<VpnServerRecord>) -> VpnServerSettings {
    match r {
        Some(r) => VpnServerSettings {
            enabled: r.enabled,
            listen_port: r.listen_port,
            address: r.address,
            endpoint: r.endpoint,
        },
        None => VpnServerSettings::default(),
    }
}

fn hub_settings(r: Option<VpnHubRecord>) -> VpnHubSettings {
    match r {
        Some(r) => VpnHubSettings {
            enabled: r.enabled,
            endpoint: r.endpoint,
            public_key: r.public_key,
            allowed_ips: r.allowed_ips,
            keepalive: r.keepalive,
            address: r.address,
        },
        None => VpnHubSettings::default(),
    }
}

/// Server settings, checked: the address and port to use.
struct ServerPlan {
    address: Ipv4Net,
    listen_port: u16,
    endpoint: Option<validate::Endpoint>,
}

fn check_server(s: &VpnServerSettings) -> Result<ServerPlan, Invalid> {
    let listen_port = validate::listen_port(s.listen_port)?;
    let address = validate::interface_address("address", &s.address)?;
    let endpoint = match s.endpoint.trim() {
        "" => None,
        e => Some(validate::endpoint(e, false)?),
    };
    Ok(ServerPlan {
        address,
        listen_port,
        endpoint,
    })
}

/// Hub settings, checked.
struct HubPlan {
    address: Ipv4Net,
    peer: PeerSpec,
}

fn check_hub(s: &VpnHubSettings) -> Result<HubPlan, Invalid> {
    let endpoint = validate::endpoint(&s.endpoint, true)?;
    let public_key = validate::public_key(&s.public_key)?;
    let address = validate::interface_address("address", &s.address)?;
    let allowed_ips = validate::allowed_ips(&s.allowed_ips)?;
    let keepalive = validate::keepalive(s.keepalive)?;
    Ok(HubPlan {
        address,
        peer: PeerSpec {
            public_key,
            endpoint: Some(endpoint.to_string()),
            allowed_ips,
            keepalive: Some(keepalive),
        },
    })
}

fn overlap_error(field: &'static str, net: Ipv4Net, other: Ipv4Net, what: &str) -> Invalid {
    Invalid {
        field,
        message: format!(
            "{net} overlaps {what} ({}): pick a prefix of its own, e.g. 10.78.0.1/24 or 10.99.0.5/24",
            other.normalized()
        ),
    }
}

fn peer_spec(p: &VpnPeerRecord) -> Result<PeerSpec, VpnServiceError> {
    Ok(PeerSpec {
        public_key: flakeboot_vpn::PublicKey::from_base64(&p.public_key)
            .map_err(|e| internal(format!("stored peer {} has a bad public key: {e}", p.id)))?,
        endpoint: None,
        allowed_ips: vec![Ipv4Net {
            addr: p.address,
            prefix: 32,
        }],
        keepalive: None,
    })
}

fn peer_view(p: VpnPeerRecord, stats: &[PeerStats]) -> VpnPeerView {
    let live = stats
        .iter()
        .find(|s| s.public_key.to_base64() == p.public_key);
    VpnPeerView {
        id: p.id,
        name: p.name,
        public_key: p.public_key,
        address: p.address.to_string(),
        created: p.created,
        last_handshake: live.and_then(|s| s.last_handshake),
        rx_bytes: live.map_or(0, |s| s.rx_bytes),
        tx_bytes: live.map_or(0, |s| s.tx_bytes),
        endpoint: live.and_then(|s| s.endpoint).map(|e| e.to_string()),
    }
}

/// Why remote management could not start.
#[derive(Debug, thiserror::Error)]
pub enum VpnStartError {
    /// The appliance's WireGuard keys could not be read or made.
    #[error("loading the WireGuard keys: {0}")]
    Keys(String),
    /// The saved tunnels could not be read.
    #[error("reading the saved tunnels: {0}")]
    Saved(#[from] VpnServiceError),
}

impl VpnManager {
    /// Loads (or makes) the appliance's keys and brings the saved tunnels back up with every
    /// peer. A tunnel that cannot come up is reported on the VPN page, not fatal.
    pub async fn start(
        store: Store,
        options: VpnOptions,
        addrs: ManagementAddrs,
    ) -> Result<Arc<VpnManager>, VpnStartError> {
        let dir = options.state_dir.clone();
        let (server_key, hub_key) = tokio::task::spawn_blocking(move || {
            Ok::<_, flakeboot_vpn::KeyError>((
                flakeboot_vpn::load_or_create(&dir, SERVER)?,
                flakeboot_vpn::load_or_create(&dir, HUB)?,
            ))
        })
        .await
        .map_err(|e| VpnStartError::Keys(e.to_string()))?
        .map_err(|e| VpnStartError::Keys(e.to_string()))?;
        let manager = Arc::new(VpnManager {
            store,
            options,
            server_key,
            hub_key,
            addrs,
            live: Mutex::new(Live::default()),
        });
        let mut live = manager.live.lock().await;
        let server = server_settings(blocking(&manager.store, Store::vpn_server).await?);
        if server.enabled
            && let Err(e) = manager.apply_server(&mut live, &server).await
        {
            tracing::error!("VPN server mode did not come up: {e}");
        }
        let hub = hub_settings(blocking(&manager.store, Store::vpn_hub).await?);
        if hub.enabled
            && let Err(e) = manager.apply_hub(&mut live, &hub).await
        {
            tracing::error!("VPN hub mode did not come up: {e}");
        }
        drop(live);
        Ok(manager)
    }

    /// Takes both tunnels down (at shutdown).
    pub async fn stop(&self) {
        let mut live = self.live.lock().await;
        self.take_down(&mut live.server, SERVER).await;
        self.take_down(&mut live.hub, HUB).await;
    }

    async fn take_down(&self, side: &mut Side, name: &'static str) {
        side.failed = None;
        if let Some(tunnel) = side.tunnel.take() {
            self.addrs.set_tunnel(name, None);
            tunnel.down().await;
        }
    }

    /// Brings the server interface (re)up for these settings with every stored peer, or keeps
    /// it down when disabled.
    async fn apply_server(
        &self,
        live: &mut Live,
        settings: &VpnServerSettings,
    ) -> Result<(), VpnServiceError> {
        self.take_down(&mut live.server, SERVER).await;
        if !settings.enabled {
            self.wan_ports(Vec::new()).await;
            return Ok(());
        }
        let plan = check_server(settings).map_err(invalid)?;
        // Open on the WAN before it listens.
        self.wan_ports(vec![plan.listen_port]).await;
        let peers = blocking(&self.store, Store::vpn_peers).await?;
        let spec = TunnelSpec {
            interface: self.options.server_interface.clone(),
            private_key: self.server_key.clone(),
            listen_port: plan.listen_port,
            address: plan.address,
            peers: peers.iter().map(peer_spec).collect::<Result<_, _>>()?,
        };
        self.bring_up(&mut live.server, SERVER, spec).await
    }

    /// Tells the WAN firewall which WireGuard port stays open there.
    async fn wan_ports(&self, ports: Vec<u16>) {
        if let Some(wan) = &self.options.wan {
            wan.set_wireguard_ports(ports).await;
        }
    }

    async fn apply_hub(
        &self,
        live: &mut Live,
        settings: &VpnHubSettings,
    ) -> Result<(), VpnServiceError> {
        self.take_down(&mut live.hub, HUB).await;
        if !settings.enabled {
            return Ok(());
        }
        let plan = check_hub(settings).map_err(invalid)?;
        let spec = TunnelSpec {
            interface: self.options.hub_interface.clone(),
            private_key: self.hub_key.clone(),
            listen_port: 0,
            address: plan.address,
            peers: vec![plan.peer],
        };
        self.bring_up(&mut live.hub, HUB, spec).await
    }

    async fn bring_up(
        &self,
        side: &mut Side,
        name: &'static str,
        spec: TunnelSpec,
    ) -> Result<(), VpnServiceError> {
        let address = spec.address.addr;
        match Tunnel::up(spec).await {
            Ok(tunnel) => {
                let listen = SocketAddr::new(address.into(), self.options.web_port);
                self.addrs
                    .set_tunnel(name, Some((listen, tunnel.interface())));
                side.tunnel = Some(tunnel);
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(mode = name, "VPN interface not up: {message}");
                side.failed = Some(message.clone());
                Err(VpnServiceError::Unavailable { message })
            }
        }
    }

    /// Checks that a tunnel prefix overlaps neither the LAN nor the other tunnel.
    fn check_overlaps(
        &self,
        net: Ipv4Net,
        other: Option<Ipv4Net>,
        other_what: &str,
    ) -> Result<(), VpnServiceError> {
        if net.overlaps(self.options.lan) {
            return Err(invalid(overlap_error(
                "address",
                net,
                self.options.lan,
                "the LAN",
            )));
        }
        if let Some(other) = other.filter(|o| net.overlaps(*o)) {
            return Err(invalid(overlap_error("address", net, other, other_what)));
        }
        Ok(())
    }

    async fn set_server_inner(&self, settings: VpnServerSettings) -> Result<(), VpnServiceError> {
        let plan = check_server(&settings).map_err(invalid)?;
        let mut live = self.live.lock().await;
        let hub = hub_settings(blocking(&self.store, Store::vpn_hub).await?);
        let hub_net = if hub.enabled {
            Ipv4Net::parse(&hub.address)
        } else {
            None
        };
        self.check_overlaps(plan.address, hub_net, "the hub network")?;
        let peers = blocking(&self.store, Store::vpn_peers).await?;
        let outside: Vec<String> = peers
            .iter()
            .filter(|p| !plan.address.contains(p.address) || p.address == plan.address.addr)
            .map(|p| format!("{} ({})", p.name, p.address))
            .collect();
        if !outside.is_empty() {
            return Err(invalid(Invalid {
                field: "address",
                message: format!(
                    "{} does not fit the peers {}: keep their prefix, or revoke them first",
                    plan.address,
                    outside.join(", ")
                ),
            }));
        }
        let record = VpnServerRecord {
            enabled: settings.enabled,
            listen_port: plan.listen_port,
            address: plan.address.to_string(),
            endpoint: settings.endpoint.trim().to_owned(),
        };
        blocking(&self.store, move |s| s.put_vpn_server(&record)).await?;
        tracing::info!(
            enabled = settings.enabled, listen_port = plan.listen_port, address = %plan.address,
            "VPN server settings saved"
        );
        self.apply_server(&mut live, &settings).await
    }

    async fn set_hub_inner(&self, settings: VpnHubSettings) -> Result<(), VpnServiceError> {
        let mut live = self.live.lock().await;
        if settings.enabled {
            let plan = check_hub(&settings).map_err(invalid)?;
            let server = server_settings(blocking(&self.store, Store::vpn_server).await?);
            let server_net = if server.enabled {
                Ipv4Net::parse(&server.address)
            } else {
                None
            };
            self.check_overlaps(plan.address, server_net, "the server-mode network")?;
        }
        let record = VpnHubRecord {
            enabled: settings.enabled,
            endpoint: settings.endpoint.trim().to_owned(),
            public_key: settings.public_key.trim().to_owned(),
            allowed_ips: settings.allowed_ips.clone(),
            keepalive: settings.keepalive,
            address: settings.address.trim().to_owned(),
        };
        blocking(&self.store, move |s| s.put_vpn_hub(&record)).await?;
        tracing::info!(
            enabled = settings.enabled, endpoint = %settings.endpoint.trim(),
            "VPN hub settings saved"
        );
        self.apply_hub(&mut live, &settings).await
    }

    async fn add_peer_inner(&self, name: &str) -> Result<NewPeer, VpnServiceError> {
        let name = validate::peer_name(name).map_err(invalid)?;
        let live = self.live.lock().await;
        let server = server_settings(blocking(&self.store, Store::vpn_server).await?);
        let plan = check_server(&server).map_err(invalid)?;
        if plan.endpoint.is_none() {
            // A config without `Endpoint =` cannot dial the appliance, and its private key is
            // shown only once: refuse rather than hand out a useless config.
            return Err(invalid(Invalid {
                field: "endpoint",
                message: NO_ENDPOINT.into(),
            }));
        }
        let peers = blocking(&self.store, Store::vpn_peers).await?;
        let used: Vec<Ipv4Addr> = peers.iter().map(|p| p.address).collect();
        let Some(address) = flakeboot_vpn::next_free_address(plan.address, &used) else {
            return Err(invalid(Invalid {
                field: "address",
                message: format!(
                    "every address of {} is taken: revoke a peer or use a larger prefix",
                    plan.address.normalized()
                ),
            }));
        };
        let key = PrivateKey::generate();
        let record = VpnPeerRecord {
            id: 0,
            name: name.clone(),
            public_key: key.public_key().to_base64(),
            address,
            created: SystemTime::now(),
        };
        let record = blocking(&self.store, move |s| s.insert_vpn_peer(&record)).await?;
        if let Some(tunnel) = &live.server.tunnel
            && let Err(e) = tunnel.set_peer(peer_spec(&record)?).await
        {
            let id = record.id;
            let _ = blocking(&self.store, move |s| s.remove_vpn_peer(id)).await;
            return Err(VpnServiceError::Unavailable {
                message: e.to_string(),
            });
        }
        tracing::info!(
            id = record.id, name = %record.name, public_key = %record.public_key,
            address = %record.address, "VPN peer added"
        );
        let config = flakeboot_vpn::render(&PeerConfig {
            name: &record.name,
            private_key: &key,
            address,
            server_public_key: &self.server_key.public_key(),
            server_address: plan.address,
            endpoint: plan.endpoint.as_ref(),
            listen_port: plan.listen_port,
        });
        Ok(NewPeer {
            peer: peer_view(record, &[]),
            config,
        })
    }

    async fn revoke_peer_inner(&self, id: u64) -> Result<(), VpnServiceError> {
        let live = self.live.lock().await;
        let Some(record) = blocking(&self.store, move |s| s.remove_vpn_peer(id)).await? else {
            return Err(VpnServiceError::NotFound {
                what: format!("peer {id}"),
            });
        };
        if let Some(tunnel) = &live.server.tunnel {
            let key = peer_spec(&record)?.public_key;
            if let Err(e) = tunnel.remove_peer(key).await {
                tracing::error!(
                    id,
                    "revoked peer could not be removed from the interface: {e}"
                );
                return Err(VpnServiceError::Unavailable {
                    message: format!("the peer is revoked but still on the interface: {e}"),
                });
            }
        }
        tracing::info!(id, name = %record.name, public_key = %record.public_key, "VPN peer revoked");
        Ok(())
    }

    async fn status_inner(&self) -> Result<VpnStatus, VpnServiceError> {
        let (server_tunnel, hub_tunnel, server_failed, hub_failed) = {
            let live = self.live.lock().await;
            (
                live.server.tunnel.clone(),
                live.hub.tunnel.clone(),
                live.server.failed.clone(),
                live.hub.failed.clone(),
            )
        };
        let server = server_settings(blocking(&self.store, Store::vpn_server).await?);
        let hub = hub_settings(blocking(&self.store, Store::vpn_hub).await?);
        let peers = blocking(&self.store, Store::vpn_peers).await?;
        let stats = |t: Option<Tunnel>| async move {
            match t {
                Some(t) => t.peers().await.unwrap_or_else(|e| {
                    tracing::warn!("{e}");
                    Vec::new()
                }),
                None => Vec::new(),
            }
        };
        let server_stats = stats(server_tunnel.clone()).await;
        let hub_stats = stats(hub_tunnel.clone()).await;
        let server_side = Side {
            tunnel: server_tunnel,
            failed: server_failed,
        };
        let hub_side = Side {
            tunnel: hub_tunnel,
            failed: hub_failed,
        };
        let hub_peer = flakeboot_vpn::PublicKey::from_base64(&hub.public_key)
            .ok()
            .and_then(|k| hub_stats.iter().find(|s| s.public_key == k).cloned());
        Ok(VpnStatus {
            server_tunnel: server_side.state(server.enabled),
            server_public_key: self.server_key.public_key().to_base64(),
            peers: peers
                .into_iter()
                .map(|p| peer_view(p, &server_stats))
                .collect(),
            hub: VpnHubView {
                tunnel: hub_side.state(hub.enabled),
                public_key: self.hub_key.public_key().to_base64(),
                last_handshake: hub_peer.as_ref().and_then(|p| p.last_handshake),
                rx_bytes: hub_peer.as_ref().map_or(0, |p| p.rx_bytes),
                tx_bytes: hub_peer.as_ref().map_or(0, |p| p.tx_bytes),
                settings: hub,
            },
            server,
        })
    }
}

impl VpnService for VpnManager {
    fn status(&self) -> BoxFuture<'_, Result<VpnStatus, VpnServiceError>> {
        Box::pin(self.status_inner())
    }

    fn set_server(
        &self,
        settings: VpnServerSettings,
    ) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(self.set_server_inner(settings))
    }

    fn add_peer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NewPeer, VpnServiceError>> {
        Box::pin(self.add_peer_inner(name))
    }

    fn rename_peer<'a>(
        &'a self,
        id: u64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), VpnServiceError>> {
        Box::pin(async move {
            let name = validate::peer_name(name).map_err(invalid)?;
            let _live = self.live.lock().await;
            let shown = name.clone();
            if blocking(&self.store, move |s| s.rename_vpn_peer(id, &name)).await? {
                tracing::info!(id, name = %shown, "VPN peer renamed");
                Ok(())
            } else {
                Err(VpnServiceError::NotFound {
                    what: format!("peer {id}"),
                })
            }
        })
    }

    fn revoke_peer(&self, id: u64) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(self.revoke_peer_inner(id))
    }

    fn set_hub(&self, settings: VpnHubSettings) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(self.set_hub_inner(settings))
    }
}

/// Why a device cannot be added before the server settings name the endpoint devices dial.
pub const NO_ENDPOINT: &str = "Set the public endpoint (the host name or address, and port, that devices dial) in the server settings first: a device config without one cannot connect.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_hub_settings_are_checked_field_by_field() {
        let mut s = VpnServerSettings::default();
        assert!(check_server(&s).is_ok());
        s.listen_port = 0;
        assert_eq!(check_server(&s).err().map(|e| e.field), Some("listen_port"));
        s.listen_port = 51820;
        s.endpoint = "bad host".into();
        assert_eq!(check_server(&s).err().map(|e| e.field), Some("endpoint"));

        let mut h = VpnHubSettings {
            enabled: true,
            endpoint: "203.0.113.9:51820".into(),
            public_key: "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=".into(),
            allowed_ips: vec!["10.99.0.0/24".into()],
            keepalive: 25,
            address: "10.99.0.5/24".into(),
        };
        let plan = check_hub(&h).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.peer.endpoint.as_deref(), Some("203.0.113.9:51820"));
        assert_eq!(plan.peer.keepalive, Some(25));
        h.endpoint = "203.0.113.9".into();
        assert_eq!(check_hub(&h).err().map(|e| e.field), Some("endpoint"));
        h.endpoint = "203.0.113.9:51820".into();
        h.public_key = "nope".into();
        assert_eq!(check_hub(&h).err().map(|e| e.field), Some("public_key"));
    }

    #[test]
    fn views_take_live_figures_by_public_key() {
        let key = PrivateKey::generate().public_key();
        let record = VpnPeerRecord {
            id: 7,
            name: "laptop".into(),
            public_key: key.to_base64(),
            address: Ipv4Addr::new(10, 77, 0, 2),
            created: SystemTime::UNIX_EPOCH,
        };
        let stats = PeerStats {
            public_key: key,
            last_handshake: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(9)),
            rx_bytes: 10,
            tx_bytes: 20,
            endpoint: Some("192.0.2.7:40000".parse().unwrap_or_else(|e| panic!("{e}"))),
        };
        let view = peer_view(record.clone(), &[stats]);
        assert_eq!((view.rx_bytes, view.tx_bytes), (10, 20));
        assert_eq!(view.endpoint.as_deref(), Some("192.0.2.7:40000"));
        assert_eq!(view.address, "10.77.0.2");
        let idle = peer_view(record, &[]);
        assert_eq!((idle.last_handshake, idle.rx_bytes), (None, 0));
    }
}

/// Remote management without a tunnel up (server mode saved but off): keys, peers, validation
/// and persistence against a real store in a temporary directory; no root needed.
#[cfg(test)]
mod manager_tests {
    use super::*;

    fn options(dir: &std::path::Path) -> VpnOptions {
        VpnOptions {
            state_dir: dir.to_owned(),
            server_interface: "fb-wg".into(),
            hub_interface: "fb-hub".into(),
            web_port: 443,
            lan: Ipv4Net {
                addr: Ipv4Addr::new(192, 168, 1, 2),
                prefix: 24,
            },
            wan: None,
        }
    }

    async fn manager(dir: &std::path::Path) -> Arc<VpnManager> {
        let store = Store::open(&dir.join("state")).unwrap();
        let (addrs, _rx) = ManagementAddrs::new("192.168.1.2:443".parse().unwrap(), "lan0");
        VpnManager::start(store, options(dir), addrs).await.unwrap()
    }

    fn server(enabled: bool, address: &str) -> VpnServerSettings {
        VpnServerSettings {
            enabled,
            listen_port: 51820,
            address: address.into(),
            endpoint: "office.example.net".into(),
        }
    }

    #[tokio::test]
    async fn no_device_config_is_made_without_an_endpoint_to_dial() {
        let dir = tempfile::tempdir().unwrap();
        let vpn = manager(dir.path()).await;
        let mut settings = server(false, "10.78.0.1/24");
        settings.endpoint = String::new();
        vpn.set_server(settings).await.unwrap();
        match vpn.add_peer("laptop").await {
            Err(VpnServiceError::Invalid { field, message }) => {
                assert_eq!((field, message.as_str()), ("endpoint", NO_ENDPOINT));
            }
            other => panic!("added without an endpoint: {:?}", other.map(|n| n.peer)),
        }
        assert!(vpn.status().await.unwrap().peers.is_empty());
    }

    #[tokio::test]
    async fn peers_get_one_time_configs_and_persist_without_their_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let vpn = manager(dir.path()).await;
        vpn.set_server(server(false, "10.78.0.1/24")).await.unwrap();

        let new = vpn.add_peer("laptop").await.unwrap();
        assert_eq!(new.peer.address, "10.78.0.2");
        assert!(new.config.contains("PrivateKey = "), "{}", new.config);
        assert!(
            new.config.contains("Address = 10.78.0.2/32"),
            "{}",
            new.config
        );
        assert!(
            new.config.contains("Endpoint = office.example.net"),
            "{}",
            new.config
        );
        let private = new
            .config
            .lines()
            .find_map(|l| l.strip_prefix("PrivateKey = "))
            .unwrap()
            .to_owned();
        let second = vpn.add_peer("phone").await.unwrap();
        assert_eq!(second.peer.address, "10.78.0.3");

        vpn.rename_peer(new.peer.id, "work-laptop").await.unwrap();
        vpn.revoke_peer(second.peer.id).await.unwrap();
        let err = vpn.add_peer("").await.unwrap_err();
        assert!(matches!(err, VpnServiceError::Invalid { .. }), "{err:?}");

        // A restart (a new manager over the same state) has the same keys and peers; the
        // device's private key was never kept anywhere.
        let public = vpn.status().await.unwrap().server_public_key;
        drop(vpn);
        let again = manager(dir.path()).await;
        let status = again.status().await.unwrap();
        assert_eq!(status.server_public_key, public);
        let names: Vec<&str> = status.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["work-laptop"]);
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes
                    .windows(private.len())
                    .any(|w| w == private.as_bytes()),
                "the device's private key is in {}",
                entry.display()
            );
        }
    }

    #[tokio::test]
    async fn a_tunnel_prefix_that_overlaps_the_lan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vpn = manager(dir.path()).await;
        let err = vpn
            .set_server(server(false, "192.168.1.200/24"))
            .await
            .unwrap_err();
        match err {
            VpnServiceError::Invalid { field, .. } => assert_eq!(field, "address"),
            other => panic!("{other:?}"),
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_owned()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }
}
