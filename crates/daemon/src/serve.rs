//! `flakeboot serve`: load the config, open the store, bind every service, run until a signal.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use flakeboot_appliance::LanActions;
use flakeboot_appliance::access_tokens::AccessTokens;
use flakeboot_appliance::boot_policy::{BootPolicy, PolicyState, stored_policies};
use flakeboot_appliance::boot_services::{BootContext, BootServices, RedirectRoutes, http_base};
use flakeboot_appliance::firmware::{Firmware, ImagePaths};
use flakeboot_appliance::follow::Updates;
use flakeboot_appliance::listen_addrs::ManagementAddrs;
use flakeboot_appliance::metrics::ServiceMetrics;
use flakeboot_appliance::settings::apply::{Changes, SettingsApplier, resolve_start_lan};
use flakeboot_appliance::settings::plan::effective_config;
use flakeboot_appliance::setup_restore::SetupRestore;
use flakeboot_appliance::vpn::{VpnManager, VpnOptions};
use flakeboot_appliance::wan::{WanFirewall, WanSide};
use flakeboot_appliance::{DaemonStatus, ServiceState, ServiceStatus, events};
use flakeboot_config::Config;
use flakeboot_store::{Store, StoreOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use flakeboot_nix::{Flakes, LocalSources, Runner, RunnerConfig};

use crate::cli::ServeArgs;
use crate::web;

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(&args.config)?;
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    // Local flakes only from [nix] allowed_paths, never /etc or the state directory: judged
    // with symlinks resolved, before anything runs.
    let refused = LocalSources::from_config(&config).problems(&config.flakes);
    if !refused.is_empty() {
        anyhow::bail!("{}: {}", args.config.display(), refused.join("\n  "));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(serve(config, &args.config))? {
        Ending::Stopped => Ok(ExitCode::SUCCESS),
        Ending::Restart => {
            // A fresh appliance (nothing builds yet): its tasks get 5 s to end, then the
            // process is replaced.
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            Err(start_again())
        }
    }
}

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A signal: the daemon stops.
    Stopped,
    /// A backup was restored from the setup page: the daemon starts again on it.
    Restart,
}

/// Replaces this process with a new run of the same binary and arguments (the same PID, so
/// systemd or whoever started it goes on watching it). Returns only when that fails.
fn start_again() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "flakeboot".into());
    tracing::info!("starting again on the restored state");
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .exec();
    anyhow::Error::new(err).context("starting again on the restored backup")
}

/// The store's bounds from `[boot]` and `[logs]`; the machines the config file names are never forgotten.
fn store_options(config: &Config) -> StoreOptions {
    let pinned = config
        .machines
        .iter()
        .map(|m| m.mac)
        .chain(config.dhcp.reservations.iter().map(|r| r.mac));
    StoreOptions {
        max_machines: config.boot.max_machines,
        events_per_machine: config.boot.events_per_machine,
        pinned_machines: pinned.collect(),
        log_lines_per_machine: config.logs.lines_per_machine,
        max_log_lines: config.logs.max_lines,
        ..StoreOptions::default()
    }
}

async fn serve(file_config: Config, config_file: &std::path::Path) -> anyhow::Result<Ending> {
    let store = Store::open_with(&file_config.state_dir, store_options(&file_config))?;
    // Settings saved in the web UI or API win over the file's (they are the file's until saved).
    let settings = match store.appliance_settings()? {
        Some(saved) => saved,
        None => flakeboot_appliance::settings_from_config(&file_config),
    };
    let mut config = effective_config(&file_config, &settings);
    // Saved settings are checked when they are saved; ones an older version saved may not pass.
    for problem in flakeboot_config::problems(&config, None) {
        tracing::warn!(%problem, "the settings saved in the UI or API have a problem: save them again in Settings");
    }
    let (lan, lan_warning) = resolve_start_lan(&file_config, &mut config)?;
    tracing::info!(
        interface = %lan.interface, address = %lan.address, netmask = %lan.netmask, mac = %lan.mac,
        mode = ?config.dhcp.mode, state_dir = %config.state_dir.display(), "starting flakeboot"
    );

    // The SSH deploy key nix's git uses for git+ssh:// flakes (made on the first start).
    let deploy_key = deploy_key(&config.state_dir);
    // Flakes: the build runner requeues builds a crash interrupted and keeps the flake
    // catalogue current; config flakes are synced in the background once serving.
    let runner = Runner::start(
        store.clone(),
        RunnerConfig::from_config(&config.nix, &config.state_dir),
    )
    .context("starting the nix build runner")?;
    let flakes = Flakes::new(runner);
    // Automatic updates: the one update path (schedule, webhook, users); the config file's
    // follow settings are laid over the store's at every start.
    let updates = Updates::new(flakes.clone());
    updates
        .sync_config(&config.flakes)
        .context("saving the config file's follow settings")?;

    let http_base = http_base(lan.address, config.http.port);
    let (events_tx, events_rx) = mpsc::channel(4096);
    // The counters /metrics shows, kept across boot-service restarts.
    let metrics = ServiceMetrics::default();
    let catalogue = Arc::new(
        BootPolicy::new(
            PolicyState::from_config(
                &config,
                stored_policies(&store)?,
                flakes.current().clone(),
                http_base.clone(),
            ),
            events_tx,
        )
        .with_store(store.clone())
        .with_boot_counters(metrics.boots.clone()),
    );
    let writer = tokio::spawn(events::run(events_rx, store.clone(), metrics.boots.clone()));
    // The machines' log lines: the receiver (beside the boot services) -> one writer task.
    let (logs_tx, logs_rx) = mpsc::channel(flakeboot_appliance::logs::QUEUE);
    tokio::spawn(flakeboot_appliance::logs::run(
        logs_rx,
        store.clone(),
        metrics.logs.clone(),
    ));

    // The WAN side ([wan]): the firewall table, router mode's forwarding and NAT, a static
    // address; undone at stop.
    let wan = match start_wan(&config, &lan.interface, &store).await {
        Ok(wan) => wan,
        // The WAN saved in Settings (an unplugged port): the file's, so the appliance starts
        // and stays reachable to fix it; the next saved change tries the saved WAN again.
        Err(err) if config.wan != file_config.wan => {
            tracing::error!(
                error = format!("{err:#}"),
                "the WAN settings saved in Settings cannot be used: the config file's [wan] is in effect until they are saved again"
            );
            config.wan = file_config.wan.clone();
            start_wan(&config, &lan.interface, &store).await?
        }
        Err(err) => return Err(err),
    };

    let shutdown = CancellationToken::new();
    start_preflight(&config, &store, &flakes, &catalogue, &shutdown);
    let mut services: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();

    // The web UI over HTTPS on the LAN address; the plain-HTTP port only redirects to it.
    let (status_tx, status_rx) = watch::channel(DaemonStatus::default());
    wan.report_to(status_tx.clone()).await;
    tokio::spawn(
        wan.clone()
            .refresh_every(std::time::Duration::from_secs(5), shutdown.clone()),
    );
    // The UI and API get the config file: saved settings are laid over it, and checked with
    // its rules, before they are saved (`SettingsCheck`). Settings do not touch `[web]`.
    let web = if config.web.enabled {
        Some(web::prepare(
            &file_config,
            config_file,
            &lan,
            &store,
            &updates,
            status_rx,
        )?)
    } else {
        None
    };
    let api_state = match &web {
        Some(web) => web.state.clone(),
        None => web::api_only(
            &file_config,
            config_file,
            &store,
            &updates,
            status_tx.subscribe(),
        )?,
    };

    // Lease releases and Wake-on-LAN from the UI and API follow the boot services.
    let lan_actions = LanActions::new(store.clone());
    api_state.set_lan_actions(lan_actions.clone());
    api_state.set_metrics(metrics.clone());
    api_state.set_deploy_key(deploy_key);
    api_state.set_firmware(Firmware::new(&config.state_dir, ImagePaths::default()));
    // A fresh appliance can take a backup from its setup page; the daemon then starts again
    // on the restored state.
    let setup_restore = SetupRestore::new(&config.state_dir, config_file);
    let restart = setup_restore.restart_requested();
    api_state.set_setup_restore(setup_restore);
    api_state.set_access_tokens(AccessTokens::new(
        &config.state_dir,
        config.nix.access_tokens_file.clone(),
    ));
    // The boot services (HTTP boot, TFTP, DHCP) on the LAN port: moved or restarted when the
    // settings change (settings_apply.rs).
    let boot = BootServices::start(
        BootContext {
            store: store.clone(),
            catalogue: catalogue.clone(),
            web: web.as_ref().map(|_| {
                let redirect: RedirectRoutes = Arc::new(flakeboot_webui::redirect_router);
                (config.web.port, redirect)
            }),
            shutdown: shutdown.clone(),
            status: status_tx.clone(),
            lan_actions,
            metrics,
            logs: Some(logs_tx),
        },
        config.clone(),
        lan.clone(),
        lan_warning,
    )
    .await?;

    let mut changes = Changes::default();
    let mut management = None;
    let mut vpn = None;
    if let Some(web) = web {
        status_tx.send_modify(|s| s.services.push(running("Web UI", &web.https_base)));
        changes.settings = Some(web.state.settings_changes());
        changes.machines = Some(web.state.machine_changes());
        // Management listens on the LAN port and on each VPN tunnel while it is up (vpn.rs).
        let (mgmt_addrs, mgmt_rx) = ManagementAddrs::new(web.lan, &lan.interface);
        // The LAN entry follows the LAN port when the settings move it (settings_apply.rs).
        management = Some(mgmt_addrs.clone());
        let manager = VpnManager::start(
            store.clone(),
            VpnOptions {
                wan: Some(wan.clone()),
                ..VpnOptions::from_config(&config, &lan)
            },
            mgmt_addrs,
        )
        .await
        .context("starting remote management over WireGuard")?;
        web.state.set_vpn(manager.clone());
        vpn = Some(manager);
        // Bound before "serving" is logged: the UI answers once the daemon says it serves.
        let server = flakeboot_webui::bind_tls_on(mgmt_rx, web.state, web.tls, shutdown.clone())
            .await
            .context("starting the web UI")?;
        services.spawn(async move { ("web", server.run().await.context("web UI")) });
    }
    // Settings, assignments and machine options changed in the UI or API take effect at once.
    let applier = SettingsApplier {
        file: file_config,
        services: boot,
        catalogue: catalogue.clone(),
        store: store.clone(),
        flakes: flakes.clone(),
        management,
        status: status_tx.clone(),
        wan: Some(wan.clone()),
    };
    let stop = shutdown.clone();
    services.spawn(async move {
        (
            "boot services",
            applier.run(changes, stop).await.map_err(Into::into),
        )
    });

    // The API on the owner-only socket (the CLI on this machine), bound once every service
    // is: `flakeboot health` answering means the daemon serves.
    let socket = config.state_dir.join(flakeboot_webui::API_SOCKET);
    let api_socket = flakeboot_webui::bind_api_socket(&socket)
        .with_context(|| format!("binding the API socket {}", socket.display()))?;
    // Sessions live in the store (they survive a restart); the expired ones are dropped now
    // and then.
    tokio::spawn(flakeboot_webui::expire_sessions_every(
        api_state.clone(),
        std::time::Duration::from_secs(600),
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    services.spawn(async move {
        flakeboot_webui::serve_api_socket(api_socket, api_state, stop).await;
        ("API socket", Ok(()))
    });
    // Following flakes are re-locked every check_every (one task; it only triggers updates).
    tokio::spawn(flakeboot_appliance::follow::scheduler::run(
        updates.clone(),
        shutdown.clone(),
    ));
    // Flakes with a notify_txt record: the record is asked every [updates] txt_every (one
    // task; it only triggers updates).
    tokio::spawn(flakeboot_appliance::follow::txt_watch::run(
        updates.clone(),
        flakeboot_appliance::follow::TxtWatch::from_config(&config.updates),
        shutdown.clone(),
    ));
    if !config.flakes.is_empty() {
        let flakes = flakes.clone();
        let wanted = config.flakes.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                errors = flakes.sync_config(&wanted) => {
                    for err in &errors {
                        tracing::error!(error = %err, "a configured flake could not be added");
                    }
                    tracing::info!(flakes = wanted.len(), failed = errors.len(), "flake synced");
                }
            }
        });
    }

    tracing::info!(
        http = %http_base, tftp = config.tftp.enabled, dhcp = ?config.dhcp.mode,
        "serving"
    );

    let outcome = tokio::select! {
        signal = wait_for_signal() => {
            tracing::info!(signal, "stopping");
            Ok(Ending::Stopped)
        }
        _ = restart.cancelled() => {
            tracing::info!("a backup was restored: stopping to start again on it");
            Ok(Ending::Restart)
        }
        Some(done) = services.join_next() => match done {
            Ok((name, Ok(()))) => Err(anyhow::anyhow!("{name} stopped unexpectedly")),
            Ok((name, Err(err))) => Err(err.context(format!("{name} failed"))),
            Err(err) => Err(anyhow::anyhow!("a service task failed: {err}")),
        },
    };
    shutdown.cancel();
    while let Some(done) = services.join_next().await {
        if let Ok((name, Err(err))) = done {
            tracing::warn!(
                service = name,
                error = crate::logging::chain(&err),
                "service ended with an error"
            );
        }
    }
    // WireGuard interfaces go with the daemon (a kernel one would otherwise outlive it).
    if let Some(vpn) = vpn {
        vpn.stop().await;
    }
    // The firewall table, forwarding and a static WAN address go with the daemon.
    wan.stop().await;
    let dropped = catalogue.dropped_events();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "boot events were dropped because the store fell behind"
        );
    }
    let claims = catalogue.unbound_claims();
    if claims > 0 {
        tracing::info!(
            claims,
            "boot requests named a MAC their address was not bound to (attributed by address)"
        );
    }
    // The last catalogue reference goes; the writer drains what is queued and ends.
    drop(catalogue);
    let _ = writer.await;
    tracing::info!("stopped");
    outcome
}

/// Sets the WAN side up (blocking work off the runtime): the WireGuard server's port, when it
/// is enabled in the saved VPN settings, is the one that stays open on the WAN.
async fn start_wan(config: &Config, lan: &str, store: &Store) -> anyhow::Result<WanFirewall> {
    let server = store
        .vpn_server()
        .context("reading the VPN settings for the WAN firewall")?;
    let ports: Vec<u16> = server
        .filter(|s| s.enabled)
        .map(|s| s.listen_port)
        .into_iter()
        .collect();
    let (config, lan) = (config.clone(), lan.to_owned());
    let side = {
        let (config, lan, ports) = (config.clone(), lan.clone(), ports.clone());
        tokio::task::spawn_blocking(move || WanSide::start(&config, &lan, ports))
            .await
            .context("setting up the WAN")?
            .context("setting up the WAN side ([wan])")?
    };
    Ok(WanFirewall::new(side, config, lan, ports))
}

fn running(name: &str, detail: &str) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state: ServiceState::Running,
        detail: detail.to_owned(),
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon could not stop cleanly: wait forever on Ctrl-C.
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Loads or makes the SSH deploy key (`<state>/ssh/deploy_key`); its public half for the UI,
/// API and CLI, or why git+ssh:// flakes cannot use it (logged; the appliance still starts).
/// Pre-flight (issue #16): with `[preflight] enabled` (default: QEMU is installed), new
/// generations start `queued` and the queue boots each in QEMU on the daemon's own network
/// before it may become current; otherwise they are `skipped`.
fn start_preflight(
    config: &flakeboot_config::Config,
    store: &Store,
    flakes: &Flakes,
    catalogue: &Arc<BootPolicy>,
    shutdown: &CancellationToken,
) {
    use flakeboot_appliance::preflight::{PreflightQueue, QemuPreflight, QueueSettings, find_qemu};
    let qemu = find_qemu("qemu-system-x86_64");
    if !config.preflight.enabled(qemu.is_some()) {
        tracing::info!("pre-flight is off: new generations are skipped");
        return;
    }
    let Some(qemu) = qemu else {
        tracing::warn!(
            "[preflight] enabled = true, but qemu-system-x86_64 is not installed: new generations are skipped"
        );
        return;
    };
    let runner = flakes.runner();
    runner.preflight_gate().set_enabled(true);
    let vm = QemuPreflight {
        store: store.clone(),
        policy: catalogue.clone(),
        base: config.clone(),
        settings: config.preflight.clone(),
        qemu,
        work_dir: config.state_dir.join("preflight"),
        kvm_failed: Default::default(),
    };
    PreflightQueue::start(
        store.clone(),
        flakes.current().clone(),
        Arc::new(vm),
        QueueSettings {
            timeout: config.preflight.timeout,
            log_dir: config.state_dir.join("preflight"),
        },
        runner.generations_changed(),
        shutdown.clone(),
    );
    tracing::info!(
        timeout = ?config.preflight.timeout,
        firmware = config.preflight.firmware.as_str(),
        "pre-flight is on: each new generation boots in a VM before it becomes current"
    );
}

fn deploy_key(state_dir: &std::path::Path) -> Result<flakeboot_appliance::wire::DeployKey, String> {
    let comment = format!("flakeboot@{}", hostname());
    let key = flakeboot_nix::deploy_key::load_or_create(state_dir, &comment)
        .and_then(|key| flakeboot_nix::GitSsh::under(state_dir).map(|_| key));
    match key {
        Ok(key) => {
            tracing::info!(fingerprint = %key.fingerprint, "SSH deploy key for git+ssh:// flakes");
            Ok((&key).into())
        }
        Err(e) => {
            tracing::warn!("{e}");
            Err(e.to_string())
        }
    }
}

/// This machine's host name, for the deploy key's comment (letters, digits, `.` and `-` only).
fn hostname() -> String {
    let name: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    if name.is_empty() {
        "appliance".into()
    } else {
        name
    }
}
