//! flakeboot's application layer: what the appliance does, whoever asks (the web UI, the JSON
//! API, the CLI over the API). The daemon binary only wires it; the web UI only renders it.
//!
//! - [`boot_policy`]: the [`flakeboot_catalogue::Catalogue`] the boot services ask ("what does
//!   MAC x boot now?"), answered from a snapshot of config hosts, assignments and flake
//!   generations; [`events`] stores the boot events it records; [`logs`] stores the machines'
//!   log lines the receiver attributes through it.
//! - [`boot_services`]: HTTP boot, TFTP and DHCP on the LAN port, started, moved and restarted
//!   as one set; [`router_mode`] their router-mode configuration; [`lan`] the LAN port;
//!   [`lan_actions`] releasing a machine's lease and waking a machine (Wake-on-LAN);
//!   [`dhcp_servers`] the LAN's other DHCP servers and the dashboard's warnings about them;
//!   [`dns`] the caching DNS forwarder beside them (`flakeboot_dns`): its local names from
//!   leases and machine settings, its upstream from the config or the system.
//! - [`settings`]: settings from the config file and the store, checked before they are saved
//!   ([`settings::check`], the config's own rules), what a change needs ([`settings::plan`])
//!   and applying it live ([`settings::apply`]).
//! - [`system`]: this machine (interfaces, files) for the config's checks.
//! - [`flakes`]: the [`FlakeService`] seam and its implementation over `flakeboot_nix`;
//!   [`follow`]: automatic updates (a flake following its branch: the schedule, the one update
//!   path the schedule, the webhook and users take, and the update history);
//!   [`access_tokens`]: tokens for private GitHub/GitLab flakes set from the UI, API or CLI.
//! - [`wan`]: the WAN side: a static WAN address and route, flakeboot's nftables table (the
//!   WAN firewall; router mode's forwarding and NAT) and IPv4 forwarding, undone at stop.
//! - [`vpn`]: remote management over WireGuard: the [`VpnService`] seam and [`vpn::VpnManager`].
//! - [`http_serve`]: the accept loop of the HTTP boot and management listeners: header-read
//!   and idle timeouts, a per-address connection cap; boot connections on event loops of
//!   their own ([`http_serve::event_loops`]).
//! - [`listen_addrs`]: where management listens (LAN plus tunnels), each bound to its interface.
//! - [`backup`]: the state directory and config as one passphrase-encrypted archive, and its
//!   restore into a new state directory.
//! - [`status`]: what the daemon reports about itself; [`firmware`]: the appliance's A/B
//!   slots and signed updates uploaded through the API.
//! - [`attempts`]: a machine's boot events folded into boot attempts, and how each ended;
//!   [`overview`]: every machine with its last boot, searched, filtered and paged.

pub mod access_tokens;
pub mod attempts;
pub mod backup;
pub mod boot_policy;
pub mod boot_services;
pub mod dhcp_servers;
pub mod dns;
pub mod events;
pub mod firmware;
pub mod flakes;
pub mod follow;
pub mod http_serve;
pub mod lan;
pub mod lan_actions;
pub mod listen_addrs;
pub mod logs;
pub mod metrics;
pub mod overview;
pub mod preflight;
pub mod router_mode;
pub mod settings;
pub mod setup_restore;
pub mod status;
pub mod system;
pub mod upload;
pub mod vpn;
pub mod wan;
pub mod wire;

pub use flakes::{BuildProgressView, FlakeService, FlakeServiceError, NixFlakeService};
pub use lan_actions::{LanActionError, LanActions};
pub use listen_addrs::{ListenAddr, ManagementAddrs, bind_listener};
pub use settings::check::{FieldError, MachineSettings, SettingsCheck};
pub use settings::from_config::settings_from_config;
pub use status::{DaemonStatus, ServiceState, ServiceStatus};
pub use vpn::{
    NewPeer, TunnelState, VpnHubSettings, VpnHubView, VpnPeerView, VpnServerSettings, VpnService,
    VpnServiceError, VpnStatus,
};
