//! Changes saved in the web UI or API take effect without a restart. One task owns the boot
//! services and the configuration in effect; on each change it works out what differs
//! ([`Plan`]) and applies just that:
//!
//! - LAN port, DHCP mode, ranges, reservations: the boot services move or DHCP restarts
//!   ([`BootServices::apply`]);
//! - menu default and timeout, machine assignments and options: the catalogue is rebuilt (the
//!   next menu fetched has them);
//! - substituters and builders: the build runner gets new nix settings for its next build;
//! - the WAN port (`[wan]`: port, DHCP or static address, gateway, name servers): the WAN side
//!   goes to it ([`crate::wan::WanFirewall::follow_settings`]: the firewall table replaced, a
//!   static address and route swapped, forwarding and NAT with router mode);
//! - the DNS forwarder (on, off, upstream; a static WAN's name servers are its default
//!   upstream): it restarts on the LAN address with them, and router-mode DHCP restarts when
//!   the DNS servers it hands out (option 6) change.
//!
//! Settings are checked before they are saved ([`crate::settings::check`]); settings that
//! still break one of the config's rules are logged and not applied. A change that cannot be
//! applied is logged and shown on the dashboard; it never stops the daemon. A boot service
//! that dies by itself still does (as at start-up), so the service manager restarts the
//! daemon.

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
    /// The WAN firewall (`[wan]`): router mode's forwarding comes and goes with the mode.
    pub wan: Option<crate::wan::WanFirewall>,
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
        // The UI and API check settings before saving them (`SettingsCheck`); settings that
        // still break a rule are not applied.
        let problems = flakeboot_config::problems(&next, None);
        if !problems.is_empty() {
            for problem in &problems {
                tracing::error!(%problem, "saved settings not applied");
            }
            return;
        }
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
        if let Some(wan) = &self.wan {
            wan.follow_settings(self.services.config(), &self.services.lan().interface)
                .await;
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

/// Settings applied to running services, as an ordinary user: HTTP boot on the loopback
/// interface (DHCP and TFTP off), a real store in a temporary directory and a real build runner
/// (no build is queued, so nix never runs).
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flakeboot_catalogue::{BootSpec, Catalogue};
    use flakeboot_nix::{Runner, RunnerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;
    use crate::boot_services::BootContext;
    use crate::settings::from_config::settings_from_config;

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    async fn get(port: u16, path: &str) -> String {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_saved_menu_and_nix_settings_take_effect_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, initrd) = (dir.path().join("k"), dir.path().join("i"));
        std::fs::write(&kernel, b"kernel").unwrap();
        std::fs::write(&initrd, b"initrd").unwrap();
        let port = free_port();
        let text = format!(
            "state_dir = {state:?}\n[lan]\ninterface = \"lo\"\n[dhcp]\nmode = \"off\"\n\
             [tftp]\nenabled = false\n[http]\nport = {port}\n[web]\nenabled = false\n\
             [menu]\ntimeout = \"5s\"\n[[hosts]]\nname = \"demo\"\nkernel = {kernel:?}\n\
             initrd = {initrd:?}\n",
            state = dir.path().join("state"),
        );
        let file = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let store = Store::open(&file.state_dir).unwrap();
        let lan = LanInfo::resolve("lo", None).unwrap();
        let flakes = Flakes::new(
            Runner::start(
                store.clone(),
                RunnerConfig::from_config(&file.nix, &file.state_dir),
            )
            .unwrap(),
        );
        let (events, _events_rx) = mpsc::channel(64);
        let policy = Arc::new(BootPolicy::new(
            PolicyState::from_config(
                &file,
                Vec::new(),
                flakes.current().clone(),
                http_base(lan.address, port),
            ),
            events,
        ));
        let (status, _status_rx) = watch::channel(DaemonStatus::default());
        let shutdown = CancellationToken::new();
        let services = BootServices::start(
            BootContext {
                store: store.clone(),
                catalogue: policy.clone(),
                web: None,
                shutdown: shutdown.clone(),
                status: status.clone(),
                lan_actions: crate::LanActions::new(store.clone()),
                metrics: Default::default(),
                logs: None,
            },
            file.clone(),
            lan,
            None,
        )
        .await
        .unwrap();
        assert!(get(port, "/boot.ipxe").await.contains("timeout 5000"));

        let mut applier = SettingsApplier {
            file: file.clone(),
            services,
            catalogue: policy.clone(),
            store,
            flakes: flakes.clone(),
            management: None,
            wan: None,
            status,
        };
        let mut settings = settings_from_config(&file);
        settings.menu_timeout_secs = 9;
        settings.substituters = vec!["file:///srv/cache".into()];
        applier.apply(&settings).await;

        // The running HTTP boot service answers with the new menu; nothing restarted it.
        let BootSpec::Menu(menu) = policy.boot_spec(None) else {
            panic!("no menu")
        };
        assert_eq!(menu.timeout, Duration::from_secs(9));
        assert!(get(port, "/boot.ipxe").await.contains("timeout 9000"));
        // The next build uses the new substituters.
        let nix = flakes.runner().settings();
        assert!(
            nix.options
                .iter()
                .any(|(k, v)| k == "substituters" && v.contains("file:///srv/cache")),
            "{:?}",
            nix.options
        );
        // Settings that break a rule (saved around the checks) are not applied.
        settings.menu_timeout_secs = 7200;
        settings.menu_default = Some("ghost".into());
        applier.apply(&settings).await;
        assert!(get(port, "/boot.ipxe").await.contains("timeout 9000"));
        shutdown.cancel();
        applier.services.stop().await;
    }
}
