//! What the UI, API and CLI ask of the LAN itself: release a machine's DHCP lease, and wake a
//! machine (Wake-on-LAN). The boot services keep [`LanActions`] current: the running DHCP
//! server's [`LeaseControl`] (a release goes through its pool, so the address is free at once)
//! and the LAN port in use (where magic packets go out).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use flakeboot_catalogue::MacAddr;
use flakeboot_dhcp::server::{LeaseControl, LeaseControlError};
use flakeboot_store::{Store, StoreError};
pub use flakeboot_wol::Sent;
use flakeboot_wol::WakeError;

use crate::dhcp_servers::DhcpServers;

/// Why a LAN action failed.
#[derive(Debug, thiserror::Error)]
pub enum LanActionError {
    /// The store failed (a release with no router-mode server running).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The router-mode server could not delete the leases from the store.
    #[error(transparent)]
    Leases(#[from] LeaseControlError),
    /// Sending the magic packet failed.
    #[error(transparent)]
    Wake(#[from] WakeError),
    /// No LAN port is known yet (the boot services have not started).
    #[error("the boot services have no LAN port yet")]
    NoLan,
    /// A blocking task died.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Lease releases and Wake-on-LAN; cheap to clone.
#[derive(Debug, Clone)]
pub struct LanActions {
    store: Store,
    dhcp_servers: DhcpServers,
    inner: Arc<Mutex<Current>>,
}

#[derive(Debug, Default)]
struct Current {
    dhcp: Option<LeaseControl>,
    interface: Option<String>,
}

impl LanActions {
    /// Actions over `store`; the boot services fill in the rest when they start.
    pub fn new(store: Store) -> LanActions {
        LanActions {
            store,
            dhcp_servers: DhcpServers::default(),
            inner: Arc::new(Mutex::new(Current::default())),
        }
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The DHCP server now running (router mode answers releases; proxy mode never does).
    pub(crate) fn set_dhcp(&self, control: Option<LeaseControl>) {
        self.current().dhcp = control;
    }

    /// The LAN port the boot services serve now.
    pub(crate) fn set_interface(&self, interface: &str) {
        self.current().interface = Some(interface.to_owned());
    }

    /// The LAN's other DHCP servers, as the watcher sees them.
    pub fn dhcp_servers(&self) -> &DhcpServers {
        &self.dhcp_servers
    }

    /// The LAN port magic packets go out on.
    pub fn interface(&self) -> Option<String> {
        self.current().interface.clone()
    }

    /// Releases every bound lease of `mac`: through the running router-mode pool (the address
    /// is free for the next client at once), else in the store (leases of an earlier
    /// router-mode run). The addresses released; empty when it held none.
    pub async fn release_lease(&self, mac: MacAddr) -> Result<Vec<Ipv4Addr>, LanActionError> {
        let control = self.current().dhcp.clone();
        if let Some(control) = control {
            match control.release(mac).await {
                Ok(ips) => return Ok(ips),
                Err(LeaseControlError::NotRunning) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let store = self.store.clone();
        let ips = tokio::task::spawn_blocking(move || store.release_leases_of(mac))
            .await
            .map_err(|e| LanActionError::Task(e.to_string()))??;
        if !ips.is_empty() {
            tracing::info!(%mac, released = ?ips, "leases released by the user (no router-mode server running)");
        }
        Ok(ips)
    }

    /// Sends the Wake-on-LAN magic packet for `mac` on the LAN port (UDP broadcast to port 9
    /// and an EtherType 0x0842 frame).
    pub async fn wake(&self, mac: MacAddr) -> Result<Sent, LanActionError> {
        let interface = self.interface().ok_or(LanActionError::NoLan)?;
        tokio::task::spawn_blocking(move || flakeboot_wol::send(&interface, mac))
            .await
            .map_err(|e| LanActionError::Task(e.to_string()))?
            .map_err(Into::into)
    }
}
