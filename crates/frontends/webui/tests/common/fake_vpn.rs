//! A VpnService fake that records every call: peers with made-up keys (each private key carries
//! a marker the tests look for, to prove it never shows up again), simple input checks that
//! answer per field like the real service, and switches for a tunnel that cannot come up and
//! for internal failures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flakeboot_appliance::{
    NewPeer, TunnelState, VpnHubSettings, VpnHubView, VpnPeerView, VpnServerSettings, VpnService,
    VpnServiceError, VpnStatus,
};
use futures_util::future::BoxFuture;

/// Every private key the fake makes starts with this.
pub const PRIVATE_MARKER: &str = "PRIVfake";
/// The appliance's server public key.
pub const SERVER_KEY: &str = "c2VydmVyLXB1YmxpYy1rZXktb2YtdGhlLWFwcGxpYW5j=";
/// The appliance's hub public key.
pub const HUB_KEY: &str = "aHViLXB1YmxpYy1rZXktb2YtdGhlLWFwcGxpYW5jZSA=";

#[derive(Default)]
struct Inner {
    calls: Vec<String>,
    server: VpnServerSettings,
    hub: VpnHubSettings,
    peers: Vec<VpnPeerView>,
    next_id: u64,
    /// Settings calls save, then fail with `Unavailable` and this message.
    unavailable: Option<String>,
    /// Adding a device fails with `Unavailable` and this message.
    add_unavailable: Option<String>,
    /// Every call fails with `Internal` and this cause.
    internal: Option<String>,
}

/// The fake. Clones share state.
#[derive(Clone, Default)]
pub struct FakeVpn {
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(kind: &str, n: u64) -> String {
    let mut k = format!("{kind}{n:04}");
    while k.len() < 43 {
        k.push('x');
    }
    k.push('=');
    k
}

fn tunnel(enabled: bool, interface: &str) -> TunnelState {
    if enabled {
        TunnelState::Up {
            interface: interface.into(),
            implementation: "userspace".into(),
        }
    } else {
        TunnelState::Off
    }
}

impl FakeVpn {
    pub fn new() -> FakeVpn {
        FakeVpn::default()
    }

    /// The calls so far, like `set_server(true, 51820)`, `add_peer(laptop)`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.inner).calls.clone()
    }

    /// Settings calls save, then report that the tunnel cannot come up.
    pub fn unavailable(&self, message: &str) {
        lock(&self.inner).unavailable = Some(message.to_owned());
    }

    /// Adding a device fails: the live interface cannot take it.
    pub fn add_unavailable(&self, message: &str) {
        lock(&self.inner).add_unavailable = Some(message.to_owned());
    }

    /// Every later call fails with an internal error (the cause must not reach a page).
    pub fn fail_with(&self, cause: &str) {
        lock(&self.inner).internal = Some(cause.to_owned());
    }

    /// Gives a peer a handshake `secs_ago` and traffic.
    pub fn traffic(&self, id: u64, secs_ago: u64, rx: u64, tx: u64) {
        let mut inner = lock(&self.inner);
        if let Some(p) = inner.peers.iter_mut().find(|p| p.id == id) {
            p.last_handshake = Some(SystemTime::now() - Duration::from_secs(secs_ago));
            p.rx_bytes = rx;
            p.tx_bytes = tx;
        }
    }

    pub fn server(&self) -> VpnServerSettings {
        lock(&self.inner).server.clone()
    }

    pub fn hub(&self) -> VpnHubSettings {
        lock(&self.inner).hub.clone()
    }

    pub fn peer_names(&self) -> Vec<String> {
        lock(&self.inner)
            .peers
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    fn call(&self, what: String) -> Result<std::sync::MutexGuard<'_, Inner>, VpnServiceError> {
        let mut inner = lock(&self.inner);
        inner.calls.push(what);
        if let Some(cause) = &inner.internal {
            return Err(VpnServiceError::Internal {
                message: cause.clone(),
            });
        }
        Ok(inner)
    }
}

fn check_name(name: &str, inner: &Inner, except: Option<u64>) -> Result<(), VpnServiceError> {
    let invalid = |message: &str| {
        Err(VpnServiceError::Invalid {
            field: "name",
            message: message.into(),
        })
    };
    if name.is_empty() || name.chars().count() > 32 {
        return invalid("Give the device a name of 1 to 32 characters.");
    }
    if inner
        .peers
        .iter()
        .any(|p| p.name == name && Some(p.id) != except)
    {
        return invalid("Another device has that name already.");
    }
    Ok(())
}

fn cidr(field: &'static str, value: &str) -> Result<(), VpnServiceError> {
    match value.split_once('/') {
        Some((ip, len)) if ip.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok() => {
            Ok(())
        }
        _ => Err(VpnServiceError::Invalid {
            field,
            message: format!("“{value}” is not an address with a prefix, like 10.77.0.1/24."),
        }),
    }
}

impl VpnService for FakeVpn {
    fn status(&self) -> BoxFuture<'_, Result<VpnStatus, VpnServiceError>> {
        Box::pin(async move {
            let inner = self.call("status".into())?;
            Ok(VpnStatus {
                server: inner.server.clone(),
                server_tunnel: tunnel(inner.server.enabled, "fb-wg0"),
                server_public_key: SERVER_KEY.into(),
                peers: inner.peers.clone(),
                hub: VpnHubView {
                    settings: inner.hub.clone(),
                    tunnel: tunnel(inner.hub.enabled, "fb-hub0"),
                    public_key: HUB_KEY.into(),
                    last_handshake: inner
                        .hub
                        .enabled
                        .then(|| SystemTime::now() - Duration::from_secs(3 * 3600 + 5)),
                    rx_bytes: 1536,
                    tx_bytes: 23 * 1024 * 1024,
                },
            })
        })
    }

    fn set_server(
        &self,
        settings: VpnServerSettings,
    ) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(async move {
            let mut inner = self.call(format!(
                "set_server({}, {})",
                settings.enabled, settings.listen_port
            ))?;
            cidr("address", &settings.address)?;
            if settings.endpoint.contains(char::is_whitespace) {
                return Err(VpnServiceError::Invalid {
                    field: "endpoint",
                    message: "An endpoint is a host name or address, with an optional :port."
                        .into(),
                });
            }
            inner.server = settings;
            match &inner.unavailable {
                Some(m) => Err(VpnServiceError::Unavailable { message: m.clone() }),
                None => Ok(()),
            }
        })
    }

    fn add_peer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NewPeer, VpnServiceError>> {
        Box::pin(async move {
            let mut inner = self.call(format!("add_peer({name})"))?;
            check_name(name, &inner, None)?;
            if let Some(m) = &inner.add_unavailable {
                return Err(VpnServiceError::Unavailable { message: m.clone() });
            }
            inner.next_id += 1;
            let id = inner.next_id;
            let private = key(PRIVATE_MARKER, id);
            let peer = VpnPeerView {
                id,
                name: name.to_owned(),
                public_key: key("PUBfake", id),
                address: format!("10.77.0.{}", id + 1),
                created: SystemTime::now(),
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
                endpoint: None,
            };
            let endpoint = if inner.server.endpoint.is_empty() {
                "ENDPOINT:51820".to_owned()
            } else {
                inner.server.endpoint.clone()
            };
            let config = format!(
                "[Interface]\nPrivateKey = {private}\nAddress = {}/32\n\n[Peer]\n\
                 PublicKey = {SERVER_KEY}\nEndpoint = {endpoint}\nAllowedIPs = 10.77.0.1/32\n\
                 PersistentKeepalive = 25\n",
                peer.address
            );
            inner.peers.push(peer.clone());
            Ok(NewPeer { peer, config })
        })
    }

    fn rename_peer<'a>(
        &'a self,
        id: u64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), VpnServiceError>> {
        Box::pin(async move {
            let mut inner = self.call(format!("rename_peer({id}, {name})"))?;
            if !inner.peers.iter().any(|p| p.id == id) {
                return Err(VpnServiceError::NotFound {
                    what: format!("peer {id}"),
                });
            }
            check_name(name, &inner, Some(id))?;
            if let Some(p) = inner.peers.iter_mut().find(|p| p.id == id) {
                p.name = name.to_owned();
            }
            Ok(())
        })
    }

    fn revoke_peer(&self, id: u64) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(async move {
            let mut inner = self.call(format!("revoke_peer({id})"))?;
            let before = inner.peers.len();
            inner.peers.retain(|p| p.id != id);
            if inner.peers.len() == before {
                return Err(VpnServiceError::NotFound {
                    what: format!("peer {id}"),
                });
            }
            Ok(())
        })
    }

    fn set_hub(&self, settings: VpnHubSettings) -> BoxFuture<'_, Result<(), VpnServiceError>> {
        Box::pin(async move {
            let mut inner = self.call(format!(
                "set_hub({}, {})",
                settings.enabled, settings.endpoint
            ))?;
            if settings.enabled
                && (settings.public_key.len() != 44 || !settings.public_key.ends_with('='))
            {
                return Err(VpnServiceError::Invalid {
                    field: "public_key",
                    message: "That is not a WireGuard public key (44 characters of base64).".into(),
                });
            }
            for ip in &settings.allowed_ips {
                cidr("allowed_ips", ip)?;
            }
            inner.hub = settings;
            match &inner.unavailable {
                Some(m) => Err(VpnServiceError::Unavailable { message: m.clone() }),
                None => Ok(()),
            }
        })
    }
}
