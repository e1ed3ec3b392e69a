//! Changes saved in the web UI or API take effect without a restart. One task owns the boot
//! services and the configuration in effect; on each change it works out what differs
//! ([`Plan`]) and applies just that:
//!
//! - LAN port, DHCP mode, ranges, reservations: the boot services move or DHCP restarts
//!   ([`BootServices::apply`]);
//! - menu default and timeout, machine assignments and options: the catalogue is rebuilt (the
//!   next menu fetched has them);
//! - substituters and builders: the build runner gets new nix settings for its next build.
//!
//! A change that cannot be applied is logged and shown on the dashboard; it never stops the
//! daemon. A boot service that dies by itself still does (as at start-up), so the service
//! manager restarts the daemon.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::status::DaemonStatus;
use flakeboot_config::Config;
use flakeboot_nix::Flakes;
use flakeboot_store::{ApplianceSettings, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::boot_policy::{BootPolicy, PolicyState, stored_policies};
use crate::boot_services::BootServiceError;
use crate::boot_services::{BootServices, http_base, https_base};
use crate::lan::{LanError, LanInfo};
use crate::listen_addrs::ManagementAddrs;
use crate::settings::plan::{Plan, effective_config, nix_settings};

/// What the settings task changes.
#[derive(Debug)]
pub struct SettingsApplier {
    /// The config file as loaded: saved settings are laid over it each time.
    pub file: Config,
    pub services: BootServices,
    pub catalogue: Arc<BootPolicy>,
    pub store: Store,
    pub flakes: Flakes,
    /// Where the web UI listens (with the UI on): its LAN entry follows the LAN port.
    pub management: Option<ManagementAddrs>,
    /// The dashboard's report (the "Web UI" line names the address it moved to).
    pub status: watch::Sender<DaemonStatus>,
}

/// A boot service stopped by itself.
#[derive(Debug, thiserror::Error)]
#[error("{service} failed: {source}")]
pub struct ServiceStopped {
    /// Which one.
    pub service: &'static str,
    /// Why.
    pub source: BootServiceError,
}

/// Where changes come from (the web UI; `None` when it is off).
#[derive(Debug, Default)]
pub struct Changes {
    pub settings: Option<watch::Receiver<ApplianceSettings>>,
    pub machines: Option<watch::Receiver<u64>>,
}

impl SettingsApplier {
    /// Apply changes until `shutdown`, then stop the boot services. Returns an error only when
    /// a boot service stopped by itself.
    pub async fn run(
        mut self,
        mut changes: Changes,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceStopped> {
        loop {
            tokio::select! {
                // Shutdown first: the services stop with it, and that is not a failure.
                biased;
                () = shutdown.cancelled() => break,
                next = next_value(&mut changes.settings) => match next {
                    Some(settings) => self.apply(&settings).await,
                    None => changes.settings = None,
                },
                next = next_value(&mut changes.machines) => match next {
                    Some(_) => self.rebuild_catalogue("machine assignments changed"),
                    None => changes.machines = None,
                },
                (name, result) = self.services.exited() => {
                    self.services.stop().await;
                    if shutdown.is_cancelled() {
                        return Ok(());
                    }
                    return result.map_err(|source| ServiceStopped { service: name, source });
                }
            }
        }
        self.services.stop().await;
        Ok(())
    }

    /// Apply one saved version of the settings.
    pub async fn apply(&mut self, settings: &ApplianceSettings) {
        let next = effective_config(&self.file, settings);
        let before = self.services.config().clone();
        let plan = Plan::between(&before, &next);
        if plan.is_empty() {
            tracing::debug!("settings saved: nothing changes for the running services");
        } else {
            tracing::info!(?plan, "applying saved settings");
        }
        // The boot services keep the configuration in effect (their old LAN port if the new
        // one cannot be used): everything below reads it from them. Called even when nothing
        // changed: going back to the LAN port in use clears the warning about another one.
        let done = self.services.apply(&next).await;
        if done.move_lan {
            self.management_follows_lan();
            // Command lines name the boot server (`flakeboot.server=`) on the LAN address.
            self.rebuild_catalogue("the LAN port moved");
        } else if plan.rebuild_catalogue {
            self.rebuild_catalogue("menu settings changed");
        }
        if plan.nix {
            let runner = self.flakes.runner();
            runner.set_settings(nix_settings(self.services.config(), &runner.settings()));
        }
    }

    /// The web UI listens on the new LAN address (on the new port) instead of the old one.
    fn management_follows_lan(&self) {
        let Some(management) = &self.management else {
            return;
        };
        let lan = self.services.lan();
        let port = self.services.config().web.port;
        management.set_lan(SocketAddr::new(lan.address.into(), port), &lan.interface);
        let url = https_base(lan.address, port);
        tracing::info!(%url, "the web UI follows the LAN port");
        self.status.send_modify(|status| {
            if let Some(line) = status.services.iter_mut().find(|l| l.name == "Web UI") {
                line.detail = url;
            }
        });
    }

    /// Rebuild the catalogue from the configuration in effect and the store's assignments.
    fn rebuild_catalogue(&self, why: &str) {
        match stored_policies(&self.store) {
            Ok(policies) => {
                let config = self.services.config();
                self.catalogue.replace(PolicyState::from_config(
                    config,
                    policies,
                    self.flakes.current().clone(),
                    http_base(self.services.lan().address, config.http.port),
                ));
                tracing::debug!(why, "catalogue rebuilt");
            }
            Err(err) => tracing::error!(error = %err, why, "could not rebuild the catalogue"),
        }
    }
}

/// The LAN port at start-up. A port saved in the settings that cannot be used (unplugged
/// adapter, renamed interface) falls back to the config file's, with a warning for the
/// dashboard: the appliance stays reachable to fix it. `config.lan` becomes the port in use.
pub fn resolve_start_lan(
    file: &Config,
    config: &mut Config,
) -> Result<(LanInfo, Option<String>), LanError> {
    match LanInfo::resolve(&config.lan.interface, config.lan.address) {
        Ok(lan) => Ok((lan, None)),
        Err(err) if config.lan != file.lan => {
            let warning = format!(
                "The LAN port “{}” saved in Settings cannot be used ({err:#}). flakeboot serves \
                 on {} from its config file: choose another port in Settings.",
                config.lan.interface, file.lan.interface
            );
            tracing::error!("{warning}");
            config.lan = file.lan.clone();
            let lan = LanInfo::resolve(&config.lan.interface, config.lan.address)?;
            Ok((lan, Some(warning)))
        }
        Err(err) => Err(err),
    }
}

/// The next value a watch announces; `None` once its sender is gone. Pending forever without
/// a receiver.
async fn next_value<T: Clone>(rx: &mut Option<watch::Receiver<T>>) -> Option<T> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    match rx.changed().await {
        Ok(()) => Some(rx.borrow_and_update().clone()),
        Err(_) => None,
    }
}
