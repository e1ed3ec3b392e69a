//! Remote management over WireGuard: the [`VpnService`] seam the UI, API and CLI use, and
//! [`VpnManager`], its implementation over `flakeboot_vpn` and the store.

mod manager;
mod service;

pub use manager::{VpnManager, VpnOptions, VpnStartError};
pub use service::{
    NewPeer, TunnelState, VpnHubSettings, VpnHubView, VpnPeerView, VpnServerSettings, VpnService,
    VpnServiceError, VpnStatus,
};
