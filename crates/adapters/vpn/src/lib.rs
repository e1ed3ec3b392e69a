//! Remote management over WireGuard, without any web types: the daemon maps these to the web
//! UI's `VpnService`.
//!
//! - [`keys`]: x25519 keys as `wg` prints them; the appliance's key files in
//!   `<state dir>/wireguard/` (0700/0600, written atomically); a `Debug` that hides private keys.
//! - [`validate`]: what the admin typed (port, `addr/prefix`, endpoint, key, allowed IPs,
//!   keepalive, peer name), with messages that say what to enter.
//! - [`net`]: IPv4 prefixes and the next free peer address.
//! - [`peer_config`]: the `wg-quick` config a new peer's device gets, once.
//! - [`tunnel`]: one interface through `defguard_wireguard_rs`, kernel module first, userspace
//!   (boringtun, in this process, on a private control channel) where the module is missing.

pub mod keys;
pub mod net;
pub mod peer_config;
pub mod tunnel;
mod userspace;
pub mod validate;

pub use keys::{KeyError, PrivateKey, PublicKey, load_or_create};
pub use net::{Ipv4Net, next_free_address};
pub use peer_config::{PeerConfig, render};
pub use tunnel::{Implementation, PeerSpec, PeerStats, Tunnel, TunnelError, TunnelSpec};
pub use validate::{Endpoint, Invalid};
