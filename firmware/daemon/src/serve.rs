//! `flakeboot serve`: load the config, open the store, bind every service, run until a signal.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use flakeboot_catalogue::{Catalogue, IpxeBinary};
use flakeboot_config::{Config, DhcpMode, UefiBinary};
use flakeboot_dhcp::boot::BootConfig;
use flakeboot_dhcp::server::{DhcpServer, DhcpServerConfig, ServerMode};
use flakeboot_store::Store;
use flakeboot_tftp::{TftpServer, TftpServerConfig};
use flakeboot_webui::{DaemonStatus, ServiceState, ServiceStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use flakeboot_nix::{Flakes, Runner, RunnerConfig};

use crate::catalogue::{CatalogueState, DaemonCatalogue, stored_policies};
use crate::cli::ServeArgs;
use crate::lan::LanInfo;
use crate::{control, event_writer, router_mode, web};

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(&args.config)?;
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.state_dir)?;
    let lan = LanInfo::resolve(&config.lan.interface, config.lan.address)?;
    tracing::info!(
        interface = %lan.interface, address = %lan.address, netmask = %lan.netmask, mac = %lan.mac,
        mode = ?config.dhcp.mode, state_dir = %config.state_dir.display(), "starting flakeboot"
    );

    // Flakes: the build runner requeues builds a crash interrupted and keeps the flake
    // catalogue current; config flakes are synced in the background once serving.
    let runner = Runner::start(
        store.clone(),
        RunnerConfig::from_config(&config.nix, &config.state_dir),
    )
    .context("starting the nix build runner")?;
    let flakes = Flakes::new(runner);

    let (events_tx, events_rx) = mpsc::channel(4096);
    let catalogue = Arc::new(DaemonCatalogue::new(
        CatalogueState::from_config(
            &config,
            stored_policies(&store)?,
            flakes.catalogue().clone(),
        ),
        events_tx,
    ));
    let writer = tokio::spawn(event_writer::run(events_rx, store.clone()));

    let shutdown = CancellationToken::new();
    let mut services: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    let http_base = http_base(lan.address, config.http.port);
    let dyn_catalogue: Arc<dyn Catalogue> = catalogue.clone();

    // The web UI over HTTPS on the LAN address; the plain-HTTP port only redirects to it.
    let (status_tx, status_rx) = watch::channel(DaemonStatus::default());
    let web = if config.web.enabled {
        Some(web::prepare(&config, &lan, &store, &flakes, status_rx)?)
    } else {
        None
    };

    // HTTP boot: scripts, kernels, initrds, iPXE binaries for UEFI HTTP boot.
    let http_addr = SocketAddr::new(IpAddr::V4(lan.address), config.http.port);
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("binding the HTTP boot server to {http_addr}"))?;
    let boot_state = flakeboot_httpboot::HttpBootState {
        catalogue: dyn_catalogue.clone(),
        base_url: http_base.clone(),
    };
    let app = match &web {
        Some(web) => flakeboot_httpboot::boot_router(boot_state, Default::default())
            .merge(flakeboot_webui::redirect_router(&web.https_base)),
        None => flakeboot_httpboot::router(boot_state),
    };
    let stop = shutdown.clone();
    services.spawn(async move {
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .context("HTTP boot server");
        ("http", result)
    });

    // TFTP: only the iPXE binaries, for firmware that is not iPXE yet.
    if config.tftp.enabled {
        let tftp = TftpServer::bind(TftpServerConfig {
            bind: SocketAddr::new(IpAddr::V4(lan.address), config.tftp.port),
            interface: Some(lan.interface.clone()),
            max_transfers: config.tftp.max_transfers,
            timeout: config.tftp.timeout,
            retries: config.tftp.retries,
            max_blksize: config.tftp.max_blksize,
            max_windowsize: config.tftp.max_windowsize,
            mtu: Some(lan.mtu),
        })
        .await
        .with_context(|| {
            format!(
                "binding the TFTP server to {}:{}",
                lan.address, config.tftp.port
            )
        })?;
        let cat = dyn_catalogue.clone();
        let stop = shutdown.clone();
        services.spawn(async move {
            let result = tftp.run(cat, stop).await.context("TFTP server");
            ("tftp", result)
        });
    }

    // DHCP: proxy (boot information only) or router (addresses too), and PXE port 4011.
    if config.dhcp.mode != DhcpMode::Off {
        let mode = match config.dhcp.mode {
            DhcpMode::Router => ServerMode::Router(router_mode::pool_config(&config, &lan)),
            _ => ServerMode::Proxy,
        };
        let dhcp = DhcpServer::bind(DhcpServerConfig {
            interface: lan.interface.clone(),
            server_ip: lan.address,
            port: config.dhcp.port,
            pxe_port: config.dhcp.pxe_port,
            boot: BootConfig {
                server_ip: lan.address,
                http_base: http_base.clone(),
                uefi_binary: match config.ipxe.uefi_binary {
                    UefiBinary::IpxeEfi => IpxeBinary::IpxeEfi,
                    UefiBinary::SnponlyEfi => IpxeBinary::SnponlyEfi,
                },
                arm64_efi: config.ipxe.arm64_efi.is_some(),
            },
            mode,
        })
        .await
        .with_context(|| format!("binding the DHCP server on {}", lan.interface))?;
        let cat = dyn_catalogue.clone();
        let store = store.clone();
        let stop = shutdown.clone();
        services.spawn(async move {
            let result = dhcp.run(cat, store, stop).await.context("DHCP server");
            ("dhcp", result)
        });
    }
    drop(dyn_catalogue);

    let mut status = DaemonStatus::default();
    status.services.push(running("HTTP boot", &http_base));
    status.services.push(if config.tftp.enabled {
        running("TFTP", &format!("{}:{}", lan.address, config.tftp.port))
    } else {
        disabled("TFTP")
    });
    status.services.push(match config.dhcp.mode {
        DhcpMode::Off => disabled("DHCP"),
        mode => running(
            &format!(
                "DHCP ({})",
                if mode == DhcpMode::Router {
                    "router"
                } else {
                    "proxy"
                }
            ),
            &lan.interface,
        ),
    });
    if let Some(web) = web {
        status.services.push(running("Web UI", &web.https_base));
        let state = web.state.clone();
        let stop = shutdown.clone();
        services.spawn(async move {
            let result = flakeboot_webui::serve_tls(web.addrs, web.state, web.tls, stop)
                .await
                .context("web UI");
            ("web", result)
        });
        // Assignments and per-machine options changed in the UI or API take effect at once.
        let mut changes = state.machine_changes();
        let (catalogue, store, config, flake_catalogue) = (
            catalogue.clone(),
            store.clone(),
            config.clone(),
            flakes.catalogue().clone(),
        );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                match stored_policies(&store) {
                    Ok(policies) => catalogue.replace(CatalogueState::from_config(
                        &config,
                        policies,
                        flake_catalogue.clone(),
                    )),
                    Err(err) => {
                        tracing::error!(error = %err, "could not reload machine assignments")
                    }
                }
            }
        });
    }
    status_tx.send_replace(status);

    // The local control socket (`flakeboot flake ...`).
    let control = control::bind(&config.state_dir)?;
    let stop = shutdown.clone();
    let control_flakes = flakes.clone();
    services.spawn(async move {
        control::serve(control, control_flakes, stop).await;
        ("control", Ok(()))
    });
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
            Ok(())
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
                error = format!("{err:#}"),
                "service ended with an error"
            );
        }
    }
    let dropped = catalogue.dropped_events();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "boot events were dropped because the store fell behind"
        );
    }
    // The last catalogue reference goes; the writer drains what is queued and ends.
    drop(catalogue);
    let _ = writer.await;
    tracing::info!("stopped");
    outcome
}

fn running(name: &str, detail: &str) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state: ServiceState::Running,
        detail: detail.to_owned(),
    }
}

fn disabled(name: &str) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state: ServiceState::Disabled,
        detail: "off in the configuration".to_owned(),
    }
}

fn http_base(address: std::net::Ipv4Addr, port: u16) -> String {
    if port == 80 {
        format!("http://{address}")
    } else {
        format!("http://{address}:{port}")
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
