//! What the daemon tells the dashboard about itself: its services and warnings. The daemon
//! owns the `watch::Sender<DaemonStatus>` and updates it; the UI only reads.

use serde::Serialize;

/// The state of one boot service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Serving.
    Running,
    /// Turned off in the settings.
    Disabled,
    /// Starting or restarting.
    Starting,
    /// It stopped with an error (see the detail).
    Failed,
}

impl ServiceState {
    /// The word shown on the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Disabled => "disabled",
            ServiceState::Starting => "starting",
            ServiceState::Failed => "failed",
        }
    }
}

/// One service on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// "DHCP (proxy)", "TFTP", "HTTP boot".
    pub name: String,
    /// Its state.
    pub state: ServiceState,
    /// Where it listens, or why it failed.
    pub detail: String,
}

/// Everything the daemon reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaemonStatus {
    /// The boot services.
    pub services: Vec<ServiceStatus>,
    /// Problems the user should know of, e.g. "another DHCP server (10.0.0.1) answers on the
    /// LAN while flakeboot is in router mode".
    pub warnings: Vec<String>,
}
