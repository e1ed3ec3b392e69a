//! One WireGuard interface: the kernel module through `defguard_wireguard_rs` (netlink) where it
//! exists, else userspace WireGuard (boringtun, inside this process, see [`crate::userspace`]);
//! addresses and routes through netlink either way. Blocking netlink and socket calls run in
//! `spawn_blocking`.
//!
//! The interface lives as long as its [`Tunnel`]: [`Tunnel::down`] (or dropping the last clone)
//! removes it, and with it its address and routes.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};

use crate::keys::{PrivateKey, PublicKey};
use crate::net::Ipv4Net;
use crate::userspace::UserspaceDevice;

/// How the interface is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The kernel module, configured over netlink.
    Kernel,
    /// Userspace WireGuard (boringtun) in this process, on a TUN device.
    Userspace,
}

impl Implementation {
    /// `kernel` or `userspace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Kernel => "kernel",
            Implementation::Userspace => "userspace",
        }
    }
}

/// One peer of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Its public key.
    pub public_key: PublicKey,
    /// Where to send to before it has sent anything (`host:port`, resolved when applied);
    /// `None` for peers that dial in.
    pub endpoint: Option<String>,
    /// Addresses it may use inside the tunnel.
    pub allowed_ips: Vec<Ipv4Net>,
    /// Persistent keepalive in seconds (0 or `None`: off).
    pub keepalive: Option<u16>,
}

/// Everything needed to bring an interface up.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// The interface name (machine-wide for userspace: its control socket path has it).
    pub interface: String,
    /// The interface's private key.
    pub private_key: PrivateKey,
    /// UDP port to listen on; 0: any free port (for an interface that only dials out).
    pub listen_port: u16,
    /// The interface's own address and prefix.
    pub address: Ipv4Net,
    /// Its peers.
    pub peers: Vec<PeerSpec>,
}

/// Live figures of one peer, read from the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// Its public key.
    pub public_key: PublicKey,
    /// The last completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Where its packets last came from.
    pub endpoint: Option<SocketAddr>,
}

/// Why an interface operation failed, in words for the admin.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// Neither the kernel nor userspace WireGuard could create the interface.
    #[error(
        "cannot create the WireGuard interface {interface}: {message}; flakeboot needs root and /dev/net/tun (or the wireguard kernel module)"
    )]
    Create {
        /// The interface.
        interface: String,
        /// What each implementation said.
        message: String,
    },
    /// The interface exists but could not be configured (often: the UDP port is in use).
    #[error(
        "cannot configure the WireGuard interface {interface}: {message}; check that UDP port {port} is free and the address is not used elsewhere"
    )]
    Configure {
        /// The interface.
        interface: String,
        /// The listen port asked for.
        port: u16,
        /// The cause.
        message: String,
    },
    /// A peer's endpoint could not be resolved.
    #[error(
        "cannot resolve the endpoint {endpoint}: {message}; check the name or give an IP address"
    )]
    Resolve {
        /// The endpoint as given.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// Adding, changing or removing a peer failed.
    #[error("cannot change the peers of {interface}: {message}")]
    Peer {
        /// The interface.
        interface: String,
        /// Why.
        message: String,
    },
    /// Reading the interface's figures failed.
    #[error("cannot read the state of {interface}: {message}")]
    Read {
        /// The interface.
        interface: String,
        /// Why.
        message: String,
    },
    /// The blocking task ended abnormally.
    #[error("the WireGuard task for {interface} failed: {message}")]
    Task {
        /// The interface.
        interface: String,
        /// Why.
        message: String,
    },
}

enum Api {
    Kernel(WGApi<Kernel>),
    /// boringtun in this process; addresses and routes still go through netlink (`net`).
    Userspace {
        device: UserspaceDevice,
        net: WGApi<Kernel>,
    },
}

impl Api {
    fn configure(&self, config: &InterfaceConfiguration) -> Result<(), String> {
        match self {
            Api::Kernel(api) => api.configure_interface(config).map_err(|e| e.to_string())?,
            Api::Userspace { device, net } => {
                for address in &config.addresses {
                    net.assign_address(address).map_err(|e| e.to_string())?;
                }
                let host = Host::try_from(config).map_err(|e| e.to_string())?;
                device.set_host(&host).map_err(|e| e.to_string())?;
            }
        }
        self.routes(&config.peers)
    }

    fn routes(&self, peers: &[Peer]) -> Result<(), String> {
        let net = match self {
            Api::Kernel(api) => api,
            Api::Userspace { net, .. } => net,
        };
        net.configure_peer_routing(peers).map_err(|e| e.to_string())
    }

    fn set_peer(&self, peer: &Peer) -> Result<(), String> {
        match self {
            Api::Kernel(api) => api.configure_peer(peer).map_err(|e| e.to_string())?,
            Api::Userspace { device, .. } => device.set_peer(peer).map_err(|e| e.to_string())?,
        }
        self.routes(std::slice::from_ref(peer))
    }

    fn remove_peer(&self, key: &Key) -> Result<(), String> {
        match self {
            Api::Kernel(api) => api.remove_peer(key).map_err(|e| e.to_string()),
            Api::Userspace { device, .. } => device.remove_peer(key).map_err(|e| e.to_string()),
        }
    }

    fn read(&self) -> Result<Host, String> {
        match self {
            Api::Kernel(api) => api.read_interface_data().map_err(|e| e.to_string()),
            Api::Userspace { device, .. } => device.read().map_err(|e| e.to_string()),
        }
    }
}

struct Inner {
    /// `None` once the interface is removed.
    api: Option<Api>,
    interface: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            remove(&self.interface, api);
        }
    }
}

/// A WireGuard interface this process made. Cheap to clone; the interface is removed by
/// [`Tunnel::down`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Tunnel {
    inner: Arc<Mutex<Inner>>,
    interface: Arc<str>,
    implementation: Implementation,
    listen_port: u16,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("interface", &self.interface)
            .field("implementation", &self.implementation)
            .field("listen_port", &self.listen_port)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Creates and configures the interface (kernel first, userspace when the module is
    /// missing), assigns its address, adds its peers and routes to their allowed IPs.
    pub async fn up(spec: TunnelSpec) -> Result<Tunnel, TunnelError> {
        let interface = spec.interface.clone();
        tokio::task::spawn_blocking(move || up_blocking(spec))
            .await
            .map_err(|e| TunnelError::Task {
                interface,
                message: e.to_string(),
            })?
    }

    /// The interface's name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Kernel or userspace.
    pub fn implementation(&self) -> Implementation {
        self.implementation
    }

    /// The UDP port it listens on as asked for (0: any).
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    async fn with_api<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Api, &str) -> Result<T, TunnelError> + Send + 'static,
    ) -> Result<T, TunnelError> {
        let inner = self.inner.clone();
        let interface = self.interface.to_string();
        tokio::task::spawn_blocking(move || {
            let guard = inner.lock().unwrap_or_else(PoisonError::into_inner);
            match &guard.api {
                Some(api) => f(api, &guard.interface),
                None => Err(TunnelError::Read {
                    interface: guard.interface.clone(),
                    message: "the interface was removed".into(),
                }),
            }
        })
        .await
        .map_err(|e| TunnelError::Task {
            interface,
            message: e.to_string(),
        })?
    }

    /// Adds a peer, or replaces the one with the same key (its sessions stay).
    pub async fn set_peer(&self, peer: PeerSpec) -> Result<(), TunnelError> {
        self.with_api(move |api, interface| {
            let peer = to_peer(&peer)?;
            api.set_peer(&peer).map_err(|message| TunnelError::Peer {
                interface: interface.to_owned(),
                message,
            })
        })
        .await
    }

    /// Removes a peer at once: its sessions end and its packets are dropped from now on.
    pub async fn remove_peer(&self, key: PublicKey) -> Result<(), TunnelError> {
        self.with_api(move |api, interface| {
            api.remove_peer(key.key())
                .map_err(|message| TunnelError::Peer {
                    interface: interface.to_owned(),
                    message,
                })
        })
        .await
    }

    /// Every peer's handshake, traffic and endpoint as the interface reports them now.
    pub async fn peers(&self) -> Result<Vec<PeerStats>, TunnelError> {
        self.with_api(|api, interface| {
            let host = api.read().map_err(|message| TunnelError::Read {
                interface: interface.to_owned(),
                message,
            })?;
            Ok(host
                .peers
                .into_values()
                .map(|p| PeerStats {
                    public_key: PublicKey::from_key(p.public_key),
                    // WireGuard reports "never" as the epoch.
                    last_handshake: p.last_handshake.filter(|t| *t > SystemTime::UNIX_EPOCH),
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                    endpoint: p.endpoint,
                })
                .collect())
        })
        .await
    }

    /// Removes the interface (its address and routes go with it) and waits until it is gone,
    /// so the name can be used again at once.
    pub async fn down(self) {
        let inner = self.inner.clone();
        let interface = self.interface.to_string();
        drop(self);
        let _ = tokio::task::spawn_blocking(move || {
            let api = inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .api
                .take();
            if let Some(api) = api {
                remove(&interface, api);
            }
        })
        .await;
    }
}

fn to_peer(spec: &PeerSpec) -> Result<Peer, TunnelError> {
    let mut peer = Peer::new(spec.public_key.key().clone());
    peer.allowed_ips = spec
        .allowed_ips
        .iter()
        .map(|n| IpAddrMask::new(n.addr.into(), n.prefix))
        .collect();
    peer.persistent_keepalive_interval = spec.keepalive.filter(|k| *k > 0);
    if let Some(endpoint) = &spec.endpoint {
        peer.endpoint = Some(resolve(endpoint)?);
    }
    Ok(peer)
}

fn resolve(endpoint: &str) -> Result<SocketAddr, TunnelError> {
    let err = |message: String| TunnelError::Resolve {
        endpoint: endpoint.to_owned(),
        message,
    };
    let mut addrs = endpoint.to_socket_addrs().map_err(|e| err(e.to_string()))?;
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
        .ok_or_else(|| err("the name has no address".into()))
}

/// Whether the kernel has WireGuard (loaded, built in, or a module it can load).
fn kernel_module_available() -> bool {
    if std::path::Path::new("/sys/module/wireguard").exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = std::path::Path::new("/lib/modules").join(release.trim());
    ["modules.dep", "modules.builtin"].iter().any(|f| {
        std::fs::read_to_string(dir.join(f))
            .map(|text| text.contains("/wireguard.ko"))
            .unwrap_or(false)
    })
}

fn up_blocking(spec: TunnelSpec) -> Result<Tunnel, TunnelError> {
    let name = spec.interface.clone();
    let create_err = |message: String| TunnelError::Create {
        interface: name.clone(),
        message,
    };
    let mut kernel_failure = None;
    let mut api = None;
    if kernel_module_available() {
        match WGApi::<Kernel>::new(name.clone()).and_then(|mut k| {
            k.create_interface()?;
            Ok(k)
        }) {
            Ok(k) => api = Some(Api::Kernel(k)),
            Err(e) => kernel_failure = Some(format!("kernel WireGuard: {e}")),
        }
    } else {
        kernel_failure = Some("the wireguard kernel module is not available".to_owned());
    }
    let api = match api {
        Some(api) => api,
        None => {
            let kernel = kernel_failure.unwrap_or_default();
            tracing::info!(interface = %name, "{kernel}: using userspace WireGuard");
            let device = UserspaceDevice::create(&name)
                .map_err(|e| create_err(format!("{kernel}; userspace WireGuard: {e}")))?;
            let net = WGApi::<Kernel>::new(name.clone())
                .map_err(|e| create_err(format!("{kernel}; userspace WireGuard: {e}")))?;
            Api::Userspace { device, net }
        }
    };
    let implementation = match api {
        Api::Kernel(_) => Implementation::Kernel,
        Api::Userspace { .. } => Implementation::Userspace,
    };
    // From here on, dropping `inner` removes the interface again.
    let inner = Inner {
        api: Some(api),
        interface: name.clone(),
    };
    let configure_err = |message: String| TunnelError::Configure {
        interface: name.clone(),
        port: spec.listen_port,
        message,
    };
    let peers = spec
        .peers
        .iter()
        .map(to_peer)
        .collect::<Result<Vec<_>, _>>()?;
    let config = InterfaceConfiguration {
        name: name.clone(),
        prvkey: spec.private_key.expose_base64(),
        addresses: vec![IpAddrMask::new(
            spec.address.addr.into(),
            spec.address.prefix,
        )],
        port: spec.listen_port,
        peers: peers.clone(),
        mtu: None,
        fwmark: None,
    };
    if let Some(api) = &inner.api {
        api.configure(&config).map_err(configure_err)?;
    }
    tracing::info!(
        interface = %name, implementation = implementation.as_str(), address = %spec.address,
        listen_port = spec.listen_port, peers = peers.len(), "WireGuard interface up"
    );
    kick_handshakes(&spec);
    Ok(Tunnel {
        inner: Arc::new(Mutex::new(inner)),
        interface: Arc::from(name.as_str()),
        implementation,
        listen_port: spec.listen_port,
    })
}

/// Starts the handshake with every peer we dial (endpoint and keepalive set) at once, by sending
/// one datagram into the tunnel towards it. Kernel WireGuard sends a keepalive as soon as one is
/// configured; userspace WireGuard waits a whole keepalive interval, during which a hub could
/// not reach the appliance (it learns our endpoint from our first packet).
fn kick_handshakes(spec: &TunnelSpec) {
    for peer in &spec.peers {
        if peer.endpoint.is_none() || peer.keepalive.unwrap_or(0) == 0 {
            continue;
        }
        let Some(net) = peer.allowed_ips.first() else {
            continue;
        };
        let target = if net.prefix >= 31 {
            net.addr
        } else {
            let first = std::net::Ipv4Addr::from(u32::from(net.network()).saturating_add(1));
            if first == spec.address.addr {
                std::net::Ipv4Addr::from(u32::from(first).saturating_add(1))
            } else {
                first
            }
        };
        // The discard port: whatever answers (or not) does not matter, the handshake does.
        let sent = std::net::UdpSocket::bind((spec.address.addr, 0))
            .and_then(|s| s.send_to(&[0], (target, 9)));
        if let Err(e) = sent {
            tracing::debug!(interface = %spec.interface, %target, "could not start the handshake early: {e}");
        }
    }
}

/// Removes the interface and waits (up to 3 s) until the name is free again.
fn remove(interface: &str, api: Api) {
    if let Api::Kernel(k) = &api
        && let Err(e) = k.remove_interface()
    {
        tracing::warn!(interface, "removing the WireGuard interface: {e}");
    }
    // Userspace: dropping the device handle stops its threads, which closes the TUN device.
    drop(api);
    let deadline = Instant::now() + Duration::from_secs(3);
    while nix::net::if_::if_nametoindex(interface).is_ok() {
        if Instant::now() > deadline {
            tracing::warn!(
                interface,
                "the WireGuard interface is still there after removal"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(interface, "WireGuard interface down");
}
