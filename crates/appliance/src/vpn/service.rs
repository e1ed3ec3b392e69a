//! The seam between the web UI and remote management over WireGuard. The daemon wires the real
//! implementation (the `flakeboot-vpn` crate: keys in the state directory, the interface through
//! the kernel or userspace WireGuard); tests wire a fake.
//!
//! Two ways in, both optional and independent:
//! - **server**: the appliance listens on a UDP port; the admin adds peers here, each with a key
//!   pair generated on the appliance and a config shown exactly once;
//! - **hub**: the appliance dials out to a WireGuard endpoint the admin gives (for sites behind
//!   NAT), and is managed through that hub.

use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Why a VPN operation failed, sorted by what the UI does with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpnServiceError {
    /// The user's input is wrong (a bad key, port, address or endpoint): shown next to the form
    /// field `field`.
    #[error("{message}")]
    Invalid {
        /// The form field the message belongs to (`listen_port`, `address`, `endpoint`,
        /// `public_key`, `allowed_ips`, `keepalive`, `name`).
        field: &'static str,
        /// What is wrong and what to do, in words for the user.
        message: String,
    },
    /// No such peer.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `peer 3`.
        what: String,
    },
    /// The settings were saved but the tunnel could not be brought up (no TUN device, the port
    /// is taken): shown on the page as the interface's state, with this message.
    #[error("{message}")]
    Unavailable {
        /// What went wrong and what to do.
        message: String,
    },
    /// Something failed on the appliance (the store, the key files): logged, not shown.
    #[error("VPN service failed: {message}")]
    Internal {
        /// The cause, for the log (never a private key).
        message: String,
    },
}

/// Server mode: the appliance listens for admins' devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnServerSettings {
    /// Whether the appliance listens at all.
    pub enabled: bool,
    /// The UDP port it listens on (the only port that answers on the WAN side).
    pub listen_port: u16,
    /// The appliance's own address in the tunnel, with the tunnel's prefix, e.g. `10.78.0.1/24`.
    /// Peers get the next free addresses in that prefix.
    pub address: String,
    /// The host (and optional `:port`) peers dial, written into each peer's config, e.g.
    /// `office.example.net` or `203.0.113.7:51820`. Empty: no device can be added (its config
    /// could not connect).
    pub endpoint: String,
}

impl Default for VpnServerSettings {
    fn default() -> Self {
        VpnServerSettings {
            enabled: false,
            listen_port: 51820,
            address: "10.78.0.1/24".into(),
            endpoint: String::new(),
        }
    }
}

/// Hub mode: the appliance dials out to a WireGuard endpoint the admin runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnHubSettings {
    /// Whether the appliance dials the hub.
    pub enabled: bool,
    /// The hub's `host:port`.
    pub endpoint: String,
    /// The hub's public key (base64, as `wg` prints it).
    pub public_key: String,
    /// What is reached through the hub, e.g. `["10.99.0.0/24"]`.
    pub allowed_ips: Vec<String>,
    /// Persistent keepalive in seconds (keeps the NAT mapping open; 25 is usual, 0 is off).
    pub keepalive: u16,
    /// The appliance's own address in the hub's network, with prefix, e.g. `10.99.0.5/24`.
    pub address: String,
}

impl Default for VpnHubSettings {
    fn default() -> Self {
        VpnHubSettings {
            enabled: false,
            endpoint: String::new(),
            public_key: String::new(),
            allowed_ips: Vec::new(),
            keepalive: 25,
            address: String::new(),
        }
    }
}

/// Whether a tunnel interface is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TunnelState {
    /// Not enabled.
    Off,
    /// Up on this interface, through the kernel module or userspace WireGuard.
    Up {
        /// The interface name.
        interface: String,
        /// `kernel` or `userspace`.
        implementation: String,
    },
    /// Enabled but could not be brought up.
    Failed {
        /// Why, and what to do.
        message: String,
    },
}

/// One admin device allowed in through server mode. Never holds its private key: that is shown
/// once, when the peer is added, and not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpnPeerView {
    /// Stable id (for rename and revoke).
    pub id: u64,
    /// The admin's name for the device.
    pub name: String,
    /// Its public key (base64).
    pub public_key: String,
    /// Its address in the tunnel, without prefix, e.g. `10.77.0.2`.
    pub address: String,
    /// When it was added.
    #[serde(with = "crate::wire::time::rfc3339")]
    pub created: SystemTime,
    /// The last completed handshake, if any since the interface came up.
    #[serde(with = "crate::wire::time::rfc3339_opt")]
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Where its packets last came from (`ip:port`).
    pub endpoint: Option<String>,
}

/// The hub connection as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpnHubView {
    /// What the admin configured.
    pub settings: VpnHubSettings,
    /// The interface's state.
    pub tunnel: TunnelState,
    /// The appliance's public key for this connection: the admin adds it as a peer on the hub.
    pub public_key: String,
    /// The last completed handshake with the hub.
    #[serde(with = "crate::wire::time::rfc3339_opt")]
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the hub.
    pub rx_bytes: u64,
    /// Bytes sent to the hub.
    pub tx_bytes: u64,
}

/// Everything the VPN page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpnStatus {
    /// Server-mode settings.
    pub server: VpnServerSettings,
    /// The server interface's state.
    pub server_tunnel: TunnelState,
    /// The appliance's server public key (peers' configs carry it).
    pub server_public_key: String,
    /// Every peer, oldest first, with live handshake and traffic figures.
    pub peers: Vec<VpnPeerView>,
    /// Hub mode.
    pub hub: VpnHubView,
}

/// A peer just added: the one time its config (with its private key) exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPeer {
    /// The stored peer.
    pub peer: VpnPeerView,
    /// A complete `wg-quick` config for the admin's device (`[Interface]` with its private key
    /// and address, `[Peer]` with the appliance's key, endpoint and allowed IPs). Shown once as
    /// text, a download and a QR code; never stored or logged.
    pub config: String,
}

/// Remote management over WireGuard, as the UI and API need it.
pub trait VpnService: Send + Sync + 'static {
    /// Settings, interface states, peers with live figures, and the hub connection.
    fn status(&self) -> BoxFuture<'_, Result<VpnStatus, VpnServiceError>>;

    /// Saves server-mode settings and applies them (brings the interface up, down, or changes
    /// its port or address). `Unavailable` when saved but not brought up.
    fn set_server(&self, settings: VpnServerSettings)
    -> BoxFuture<'_, Result<(), VpnServiceError>>;

    /// Adds a peer named `name`: generates its key pair, gives it the next free address, adds it
    /// to the live interface, and returns its config (the only time the private key exists).
    fn add_peer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NewPeer, VpnServiceError>>;

    /// Renames a peer.
    fn rename_peer<'a>(
        &'a self,
        id: u64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), VpnServiceError>>;

    /// Revokes a peer: removed from the store and the live interface at once.
    fn revoke_peer(&self, id: u64) -> BoxFuture<'_, Result<(), VpnServiceError>>;

    /// Saves hub-mode settings and applies them.
    fn set_hub(&self, settings: VpnHubSettings) -> BoxFuture<'_, Result<(), VpnServiceError>>;
}
