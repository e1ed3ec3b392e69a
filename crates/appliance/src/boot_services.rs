//! The boot services (HTTP boot, TFTP, DHCP) and the DNS forwarder as one set that is started
//! at start-up and moved or restarted when settings change, and their lines on the dashboard.
//! Beside them on the LAN port, moved with them: the watcher of the LAN's other DHCP servers and
//! the receiver of the machines' logs (`[logs]`).
//!
//! Each service runs as its own task under a child of the daemon's shutdown token: stopping one
//! cancels its token and waits for it (leases are durable, so a restarted DHCP server hands
//! clients their addresses again where they are still in range).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use flakeboot_catalogue::{Catalogue, IpxeBinary};
use flakeboot_config::{Config, DhcpMode, UefiBinary};
use flakeboot_dhcp::boot::BootConfig;
use flakeboot_dhcp::server::{DhcpServer, DhcpServerConfig, ServerMode};
use flakeboot_logs::limit::Rates;
use flakeboot_logs::server::{LogServer, LogServerConfig, MachineLine};
use flakeboot_store::Store;
use flakeboot_tftp::{TftpServer, TftpServerConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dhcp_servers;
use crate::http_serve::{self, ConnLimits};
use crate::lan::LanInfo;
use crate::lan_actions::LanActions;
use crate::listen_addrs::ListenAddr;
use crate::metrics::ServiceMetrics;
use crate::router_mode;
use crate::settings::plan::Plan;
use crate::status::{DaemonStatus, ServiceState, ServiceStatus};

/// How long a stopping service may take (an HTTP download in progress) before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The dashboard names of the boot services (DHCP's carries its mode: "DHCP (proxy)").
const HTTP: &str = "HTTP boot";
const TFTP: &str = "TFTP";
const DHCP: &str = "DHCP";
const DNS: &str = "DNS";
/// The log receiver's name in the daemon's log.
const LOGS: &str = "log receiver";

/// Why a boot service could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BootServiceError {
    /// Its socket could not be bound (the port is taken, the address is gone).
    #[error("{what}: {message}")]
    Bind {
        /// What was bound, e.g. "binding the TFTP server to 10.0.0.2:69".
        what: String,
        /// Why it failed.
        message: String,
    },
    /// It failed while serving.
    #[error("{service} server: {message}")]
    Failed {
        /// Which service.
        service: &'static str,
        /// Why.
        message: String,
    },
    /// It ended although nothing stopped it.
    #[error("it stopped unexpectedly")]
    StoppedUnexpectedly,
    /// Its task panicked or was aborted.
    #[error("its task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn bind_error(what: String) -> impl FnOnce(&dyn std::fmt::Display) -> BootServiceError {
    move |e| BootServiceError::Bind {
        what,
        message: e.to_string(),
    }
}

fn failed(service: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> BootServiceError {
    move |e| BootServiceError::Failed {
        service,
        message: e.to_string(),
    }
}

/// The routes the HTTP boot port adds for the web UI, given the UI's HTTPS base URL (its
/// paths redirect there).
pub type RedirectRoutes = Arc<dyn Fn(&str) -> axum::Router + Send + Sync>;

/// What every boot service shares, whatever the settings.
pub struct BootContext {
    pub store: Store,
    pub catalogue: Arc<dyn Catalogue>,
    /// The web UI's HTTPS port when the UI is on, and its redirect routes: the boot port
    /// redirects UI paths there.
    pub web: Option<(u16, RedirectRoutes)>,
    /// The daemon's shutdown: every service stops with it.
    pub shutdown: CancellationToken,
    /// The dashboard's report; the boot services own their lines and their warnings in it.
    pub status: watch::Sender<DaemonStatus>,
    /// Lease releases and Wake-on-LAN: kept pointing at the running DHCP server and LAN port.
    pub lan_actions: LanActions,
    /// The counters `/metrics` shows: every service (and each restart of it) counts into them.
    pub metrics: ServiceMetrics,
    /// Where the log receiver sends the machines' lines (the store's writer,
    /// [`crate::logs::run`]); `None`: no log receiver (the pre-flight network).
    pub logs: Option<mpsc::Sender<MachineLine>>,
}

impl std::fmt::Debug for BootContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootContext")
            .field("web_port", &self.web.as_ref().map(|w| w.0))
            .finish_non_exhaustive()
    }
}

/// A service task and the token that stops it.
#[derive(Debug)]
struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), BootServiceError>>,
}

impl Running {
    async fn stop(mut self, name: &str) {
        self.stop.cancel();
        let result = match tokio::time::timeout(STOP_GRACE, &mut self.task).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    service = name,
                    "did not stop within {}s: aborted",
                    STOP_GRACE.as_secs()
                );
                self.task.abort();
                (&mut self.task).await
            }
        };
        match result {
            Ok(Err(err)) => {
                tracing::warn!(
                    service = name,
                    error = format!("{err:#}"),
                    "ended with an error"
                )
            }
            Err(err) if !err.is_cancelled() => {
                tracing::warn!(service = name, error = %err, "its task failed")
            }
            _ => {}
        }
    }
}

/// The running boot services.
#[derive(Debug)]
pub struct BootServices {
    ctx: BootContext,
    /// The configuration they run with (the file with the saved settings over it).
    config: Config,
    lan: LanInfo,
    http: Option<Running>,
    tftp: Option<Running>,
    dhcp: Option<Running>,
    /// The DNS forwarder (`[dns]`, on in router mode).
    dns: Option<Running>,
    /// The watcher of the LAN's other DHCP servers (not a boot service: it has no line, and
    /// when it cannot run the boot services go on without it).
    watch: Option<Running>,
    /// The receiver of the machines' logs (`[logs]`; like the watcher, the boot services go on
    /// without it, with a warning, when its ports cannot be had).
    logs: Option<Running>,
    /// Why the log receiver is not running, when it should be.
    logs_warning: Option<String>,
    lines: [ServiceStatus; 4],
    /// Why the LAN port of the settings is not the one in use, if it is not.
    lan_warning: Option<String>,
    /// The warnings last put on the dashboard (to replace them, and only them).
    published: Vec<String>,
}

impl BootServices {
    /// Start every service the configuration turns on. A service that cannot start is an
    /// error here: the daemon does not start half-configured. `lan_warning` says why `lan` is
    /// not the port the settings ask for (shown until that is resolved).
    pub async fn start(
        ctx: BootContext,
        config: Config,
        lan: LanInfo,
        lan_warning: Option<String>,
    ) -> Result<BootServices, BootServiceError> {
        ctx.lan_actions.set_interface(&lan.interface);
        let http = spawn_http(&ctx, &config, &lan).await?;
        let tftp = match config.tftp.enabled {
            true => Some(spawn_tftp(&ctx, &config, &lan).await?),
            false => None,
        };
        let dhcp = match dhcp_server_config(&config, &lan) {
            Some(cfg) => Some(spawn_dhcp(&ctx, cfg).await?),
            None => None,
        };
        // The forwarder on by default (router mode) must not keep the boot services from
        // starting: a port 53 taken on the LAN address is a failed line on the dashboard. Turned
        // on in the file (`[dns] enabled = true`), it is as required as the others.
        let mut dns_status = dns_line(&config, &lan);
        let dns = match config.dns.is_on(config.dhcp.mode) {
            true => match spawn_dns(&ctx, &config, &lan) {
                Err(e) if config.dns.enabled == Some(true) => return Err(e),
                result => started(&mut dns_status, result, || dns_line(&config, &lan)),
            },
            false => None,
        };
        let watch = Some(spawn_watch(&ctx, &config, &lan));
        let (logs, logs_warning) = spawn_logs(&ctx, &config, &lan);
        let lines = [
            http_line(&config, &lan),
            tftp_line(&config, &lan),
            dhcp_line(&config, &lan),
            dns_status,
        ];
        let mut services = BootServices {
            ctx,
            config,
            lan,
            http: Some(http),
            tftp,
            dhcp,
            dns,
            watch,
            logs,
            logs_warning,
            lines,
            lan_warning,
            published: Vec::new(),
        };
        services.publish();
        Ok(services)
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The LAN port in use.
    pub fn lan(&self) -> &LanInfo {
        &self.lan
    }

    /// Go to `next`: move to a new LAN port, restart DHCP with its new mode or pool, restart
    /// the DNS forwarder with its new settings or upstream. Never
    /// fails: a LAN port that cannot be used keeps the services where they are (with a warning),
    /// a service that cannot start shows as failed with its reason. Returns what was done.
    pub async fn apply(&mut self, next: &Config) -> Plan {
        let mut next = next.clone();
        let mut lan = self.lan.clone();
        if next.lan == self.config.lan {
            self.lan_warning = None;
        } else {
            match LanInfo::resolve(&next.lan.interface, next.lan.address) {
                Ok(resolved) => {
                    lan = resolved;
                    self.lan_warning = None;
                }
                Err(err) => {
                    tracing::error!(
                        interface = %next.lan.interface, error = format!("{err:#}"),
                        "the new LAN port cannot be used: the boot services stay on {}",
                        self.lan.interface
                    );
                    self.lan_warning = Some(format!(
                        "The LAN port “{}” cannot be used ({err:#}). flakeboot keeps serving on \
                         {}: choose another port in Settings.",
                        next.lan.interface, self.lan.interface
                    ));
                    next.lan = self.config.lan.clone();
                }
            }
        }
        let plan = Plan::between(&self.config, &next);
        if plan.move_lan {
            tracing::info!(from = %self.lan.interface, to = %lan.interface, address = %lan.address, "moving the boot services to a new LAN port");
            self.stop().await;
            self.lan = lan;
            self.ctx.lan_actions.set_interface(&self.lan.interface);
            self.http = started(
                &mut self.lines[0],
                spawn_http(&self.ctx, &next, &self.lan).await,
                || http_line(&next, &self.lan),
            );
            if next.tftp.enabled {
                self.tftp = started(
                    &mut self.lines[1],
                    spawn_tftp(&self.ctx, &next, &self.lan).await,
                    || tftp_line(&next, &self.lan),
                );
            }
        }
        if plan.restart_dhcp {
            self.stop_dhcp().await;
            self.lines[2] = dhcp_line(&next, &self.lan);
            if let Some(cfg) = dhcp_server_config(&next, &self.lan) {
                tracing::info!(mode = ?next.dhcp.mode, ranges = ?next.dhcp.all_ranges(), "restarting DHCP with new settings");
                let lan = self.lan.clone();
                self.dhcp = started(&mut self.lines[2], spawn_dhcp(&self.ctx, cfg).await, || {
                    dhcp_line(&next, &lan)
                });
            } else {
                tracing::info!("DHCP turned off");
            }
        }
        if plan.move_lan || plan.restart_dhcp || plan.restart_dns {
            // A new port, a mode that turns it on or off, its own settings or upstream: DNS
            // starts again with them (its cache with it).
            if let Some(dns) = self.dns.take() {
                dns.stop(DNS).await;
            }
            self.lines[3] = dns_line(&next, &self.lan);
            if next.dns.is_on(next.dhcp.mode) {
                tracing::info!(upstream = ?next.dns.upstream, "starting the DNS forwarder with new settings");
                let lan = self.lan.clone();
                self.dns = started(
                    &mut self.lines[3],
                    spawn_dns(&self.ctx, &next, &lan),
                    || dns_line(&next, &lan),
                );
            }
        }
        if plan.move_lan || plan.restart_dhcp {
            // A new port or mode: the watcher starts again with it, and probes at once.
            if let Some(watch) = self.watch.take() {
                watch.stop("DHCP server watch").await;
            }
            self.watch = Some(spawn_watch(&self.ctx, &next, &self.lan));
        }
        if plan.move_lan || next.logs != self.config.logs {
            if let Some(logs) = self.logs.take() {
                logs.stop(LOGS).await;
            }
            (self.logs, self.logs_warning) = spawn_logs(&self.ctx, &next, &self.lan);
        }
        self.config = next;
        self.publish();
        plan
    }

    async fn stop_dhcp(&mut self) {
        if let Some(dhcp) = self.dhcp.take() {
            dhcp.stop(DHCP).await;
        }
        self.ctx.metrics.set_pool_addresses(0);
    }

    /// Resolves when a service stops by itself (a socket failed for good): its name and why.
    /// The ended service is forgotten: its task must not be awaited again (a finished
    /// `JoinHandle` polled again panics).
    pub async fn exited(&mut self) -> (&'static str, Result<(), BootServiceError>) {
        let (name, result) = tokio::select! {
            r = ended(self.http.as_mut()) => (HTTP, r),
            r = ended(self.tftp.as_mut()) => (TFTP, r),
            r = ended(self.dhcp.as_mut()) => (DHCP, r),
            r = ended(self.dns.as_mut()) => (DNS, r),
        };
        match name {
            HTTP => self.http = None,
            TFTP => self.tftp = None,
            DNS => self.dns = None,
            _ => self.dhcp = None,
        }
        (name, result)
    }

    /// Stop every service and wait for them.
    pub async fn stop(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.stop("DHCP server watch").await;
        }
        if let Some(dns) = self.dns.take() {
            dns.stop(DNS).await;
        }
        if let Some(logs) = self.logs.take() {
            logs.stop(LOGS).await;
        }
        self.stop_dhcp().await;
        if let Some(tftp) = self.tftp.take() {
            tftp.stop(TFTP).await;
        }
        if let Some(http) = self.http.take() {
            http.stop(HTTP).await;
        }
    }

    /// Put the services' lines and warnings on the dashboard, leaving everyone else's.
    pub fn publish(&mut self) {
        let warnings: Vec<String> = self
            .lan_warning
            .iter()
            .chain(&self.logs_warning)
            .cloned()
            .collect();
        let (lines, old) = (&self.lines, &self.published);
        self.ctx.status.send_modify(|status| {
            status.services.retain(|s| !is_boot_service(&s.name));
            for (i, line) in lines.iter().enumerate() {
                status
                    .services
                    .insert(i.min(status.services.len()), line.clone());
            }
            status.warnings.retain(|w| !old.contains(w));
            status.warnings.extend(warnings.iter().cloned());
        });
        self.published = warnings;
    }
}

/// The URL of the HTTP boot server on `address`.
pub fn http_base(address: std::net::Ipv4Addr, port: u16) -> String {
    if port == 80 {
        format!("http://{address}")
    } else {
        format!("http://{address}:{port}")
    }
}

fn is_boot_service(name: &str) -> bool {
    name == HTTP || name == TFTP || name == DHCP || name == DNS || name.starts_with("DHCP (")
}

/// The service's line after a start attempt: running, or failed with the reason.
fn started(
    line: &mut ServiceStatus,
    result: Result<Running, BootServiceError>,
    running: impl FnOnce() -> ServiceStatus,
) -> Option<Running> {
    match result {
        Ok(r) => {
            *line = running();
            Some(r)
        }
        Err(err) => {
            tracing::error!(service = %line.name, error = format!("{err:#}"), "could not start");
            line.state = ServiceState::Failed;
            line.detail = format!("{err:#}");
            None
        }
    }
}

async fn ended(running: Option<&mut Running>) -> Result<(), BootServiceError> {
    let Some(running) = running else {
        return std::future::pending().await;
    };
    match (&mut running.task).await {
        Ok(Ok(())) => Err(BootServiceError::StoppedUnexpectedly),
        Ok(Err(err)) => Err(err),
        Err(err) => Err(BootServiceError::Task(err)),
    }
}

fn spawn(
    ctx: &BootContext,
    run: impl FnOnce(
        CancellationToken,
    ) -> futures_util::future::BoxFuture<'static, Result<(), BootServiceError>>,
) -> Running {
    let stop = ctx.shutdown.child_token();
    let task = tokio::spawn(run(stop.clone()));
    Running { stop, task }
}

/// HTTP boot: scripts, kernels, initrds, iPXE binaries for UEFI HTTP boot; with the web UI on,
/// the UI's paths redirect to HTTPS.
async fn spawn_http(
    ctx: &BootContext,
    config: &Config,
    lan: &LanInfo,
) -> Result<Running, BootServiceError> {
    let addr = SocketAddr::new(IpAddr::V4(lan.address), config.http.port);
    let listener = bind_http(addr, &lan.interface).map_err(|e| {
        bind_error(format!(
            "binding the HTTP boot server to {addr} on {}",
            lan.interface
        ))(&e)
    })?;
    let boot_state = flakeboot_httpboot::HttpBootState {
        catalogue: ctx.catalogue.clone(),
        base_url: http_base(lan.address, config.http.port),
    };
    let app = match &ctx.web {
        Some((port, redirect)) => {
            flakeboot_httpboot::boot_router(boot_state, ctx.metrics.http.clone())
                .merge(redirect(&https_base(lan.address, *port)))
        }
        None => flakeboot_httpboot::router_with_stats(boot_state, ctx.metrics.http.clone()),
    };
    let conns = ctx.metrics.http_conns.clone();
    let limits = ConnLimits {
        max_per_client: config.http.max_connections_per_client,
        ..ConnLimits::UNAUTHENTICATED
    };
    tracing::info!(%addr, ?limits, "HTTP boot listening");
    Ok(spawn(ctx, move |stop| {
        Box::pin(async move {
            http_serve::serve_boot(listener, app, limits, conns, stop).await;
            Ok(())
        })
    }))
}

/// The HTTP boot listener, on the LAN port only (SO_BINDTODEVICE, as the web UI binds its
/// addresses): a request for the LAN address that arrives on another interface (WAN, VPN) gets
/// no answer.
fn bind_http(addr: SocketAddr, interface: &str) -> std::io::Result<tokio::net::TcpListener> {
    crate::listen_addrs::bind_listener(&ListenAddr {
        addr,
        interface: Some(interface.to_owned()),
    })
}

/// The web UI's address as the boot port's redirect names it.
pub fn https_base(address: std::net::Ipv4Addr, port: u16) -> String {
    if port == 443 {
        format!("https://{address}")
    } else {
        format!("https://{address}:{port}")
    }
}

/// TFTP: only the iPXE binaries, for firmware that is not iPXE yet.
async fn spawn_tftp(
    ctx: &BootContext,
    config: &Config,
    lan: &LanInfo,
) -> Result<Running, BootServiceError> {
    let tftp = TftpServer::bind(TftpServerConfig {
        bind: SocketAddr::new(IpAddr::V4(lan.address), config.tftp.port),
        interface: Some(lan.interface.clone()),
        max_transfers: config.tftp.max_transfers,
        max_per_client: config.tftp.max_per_client,
        first_ack_timeout: config.tftp.first_ack_timeout,
        timeout: config.tftp.timeout,
        retries: config.tftp.retries,
        max_blksize: config.tftp.max_blksize,
        max_windowsize: config.tftp.max_windowsize,
        mtu: Some(lan.mtu),
    })
    .await
    .map_err(|e| {
        bind_error(format!(
            "binding the TFTP server to {}:{}",
            lan.address, config.tftp.port
        ))(&e)
    })?
    .with_stats(ctx.metrics.tftp.clone());
    let catalogue = ctx.catalogue.clone();
    Ok(spawn(ctx, move |stop| {
        Box::pin(async move {
            tftp.run(catalogue, stop)
                .await
                .map_err(|e| failed(TFTP)(&e))
        })
    }))
}

/// DHCP: proxy (boot information only) or router (addresses too), and PXE port 4011.
async fn spawn_dhcp(ctx: &BootContext, cfg: DhcpServerConfig) -> Result<Running, BootServiceError> {
    let interface = cfg.interface.clone();
    let pool_addresses = match &cfg.mode {
        ServerMode::Router(pool) => pool
            .ranges
            .iter()
            .map(|(first, last)| {
                u64::from(u32::from(*last)).saturating_sub(u64::from(u32::from(*first))) + 1
            })
            .sum(),
        ServerMode::Proxy => 0,
    };
    let dhcp = DhcpServer::bind(cfg)
        .map_err(|e| bind_error(format!("binding the DHCP server on {interface}"))(&e))?
        .with_stats(ctx.metrics.dhcp.clone());
    ctx.metrics.set_pool_addresses(pool_addresses);
    // Releases from the UI go through this server's pool while it runs.
    ctx.lan_actions.set_dhcp(Some(dhcp.lease_control()));
    let (catalogue, leases) = (ctx.catalogue.clone(), Arc::new(ctx.store.clone()));
    Ok(spawn(ctx, move |stop| {
        Box::pin(async move {
            dhcp.run(catalogue, leases, stop)
                .await
                .map_err(|e| failed(DHCP)(&e))
        })
    }))
}

/// The DNS forwarder on `lan`'s address (UDP and TCP, bound to the LAN port), with the task
/// that keeps its local names and upstream current.
fn spawn_dns(
    ctx: &BootContext,
    config: &Config,
    lan: &LanInfo,
) -> Result<Running, BootServiceError> {
    let d = &config.dns;
    let server_config = flakeboot_dns::DnsServerConfig {
        bind: SocketAddr::new(IpAddr::V4(lan.address), d.port),
        interface: Some(lan.interface.clone()),
        local_ttl: d.local_ttl,
        max_queries: d.max_queries,
        max_queries_per_client: d.max_queries_per_client,
        max_tcp_connections: d.max_tcp_connections,
        max_tcp_per_client: d.max_tcp_per_client,
        tcp_idle_timeout: d.tcp_idle_timeout,
    };
    let state = Arc::new(flakeboot_dns::DnsState::default());
    let server =
        flakeboot_dns::DnsServer::bind(&server_config, state.clone(), ctx.metrics.dns.clone())
            .map_err(|e| failed(DNS)(&e))?;
    tracing::info!(addr = %server_config.bind, interface = %lan.interface, "DNS forwarder listening");
    let (config, lan, store) = (config.clone(), lan.clone(), ctx.store.clone());
    Ok(spawn(ctx, move |stop| {
        Box::pin(async move {
            tokio::join!(
                server.run(stop.clone()),
                crate::dns::refresh(state, config, lan, store, stop.clone()),
            );
            Ok(())
        })
    }))
}

/// The watcher of the LAN's other DHCP servers on `lan`, with `config`'s mode and timings.
fn spawn_watch(ctx: &BootContext, config: &Config, lan: &LanInfo) -> Running {
    let start = dhcp_servers::WatchStart {
        interface: lan.interface.clone(),
        mac: lan.mac,
        own: lan.address,
        mode: config.dhcp.mode,
        probe_interval: config.dhcp.probe_interval,
        expiry: config.dhcp.server_expiry,
    };
    let (servers, status) = (ctx.lan_actions.dhcp_servers().clone(), ctx.status.clone());
    let catalogue = ctx.catalogue.clone();
    spawn(ctx, move |stop| {
        Box::pin(async move {
            dhcp_servers::run(servers, start, catalogue, status, stop).await;
            Ok(())
        })
    })
}

/// The receiver of the machines' logs on `lan` (syslog and netconsole), when `[logs]` turns
/// it on and the context has a writer; else, or when its ports cannot be had, none, with the
/// warning the dashboard shows.
fn spawn_logs(
    ctx: &BootContext,
    config: &Config,
    lan: &LanInfo,
) -> (Option<Running>, Option<String>) {
    let Some(out) = ctx.logs.clone().filter(|_| config.logs.enabled) else {
        return (None, None);
    };
    let server_config = LogServerConfig {
        interface: lan.interface.clone(),
        address: lan.address,
        syslog_port: config.logs.syslog_port,
        netconsole_port: config.logs.netconsole_port,
        rates: Rates {
            per_source: config.logs.rate_per_source,
            total: config.logs.rate_total,
        },
    };
    let server = match LogServer::bind(&server_config, ctx.metrics.logs.clone()) {
        Ok(server) => server,
        Err(err) => {
            tracing::warn!(error = %err, "the machines' logs are not received");
            return (
                None,
                Some(format!(
                    "The machines' logs are not received: {err}. Is another syslog server \
                     listening there? Change [logs] syslog_port or netconsole_port, or stop it."
                )),
            );
        }
    };
    tracing::info!(
        address = %lan.address,
        syslog = config.logs.syslog_port,
        netconsole = config.logs.netconsole_port,
        "receiving the machines' logs"
    );
    let catalogue = ctx.catalogue.clone();
    let running = spawn(ctx, move |stop| {
        Box::pin(async move {
            server.run(catalogue, out, stop).await;
            Ok(())
        })
    });
    (Some(running), None)
}

/// The DHCP server `config` asks for on `lan`; `None` when DHCP is off.
fn dhcp_server_config(config: &Config, lan: &LanInfo) -> Option<DhcpServerConfig> {
    let mode = match config.dhcp.mode {
        DhcpMode::Off => return None,
        DhcpMode::Router => ServerMode::Router(router_mode::pool_config(config, lan)),
        DhcpMode::Proxy => ServerMode::Proxy,
    };
    Some(DhcpServerConfig {
        interface: lan.interface.clone(),
        server_ip: lan.address,
        port: config.dhcp.port,
        pxe_port: config.dhcp.pxe_port,
        boot: BootConfig {
            server_ip: lan.address,
            http_base: http_base(lan.address, config.http.port),
            uefi_binary: match config.ipxe.uefi_binary {
                UefiBinary::IpxeEfi => IpxeBinary::IpxeEfi,
                UefiBinary::SnponlyEfi => IpxeBinary::SnponlyEfi,
            },
            arm64_efi: config.ipxe.arm64_efi.is_some(),
        },
        mode,
    })
}

fn line(name: &str, state: ServiceState, detail: String) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state,
        detail,
    }
}

fn http_line(config: &Config, lan: &LanInfo) -> ServiceStatus {
    line(
        HTTP,
        ServiceState::Running,
        http_base(lan.address, config.http.port),
    )
}

fn tftp_line(config: &Config, lan: &LanInfo) -> ServiceStatus {
    if config.tftp.enabled {
        line(
            TFTP,
            ServiceState::Running,
            format!("{}:{}", lan.address, config.tftp.port),
        )
    } else {
        line(
            TFTP,
            ServiceState::Disabled,
            "off in the configuration".into(),
        )
    }
}

fn dns_line(config: &Config, lan: &LanInfo) -> ServiceStatus {
    if config.dns.is_on(config.dhcp.mode) {
        line(
            DNS,
            ServiceState::Running,
            format!("{}:{}", lan.address, config.dns.port),
        )
    } else {
        line(
            DNS,
            ServiceState::Disabled,
            "off (on in router mode, or turned on in Settings or [dns] enabled = true)".into(),
        )
    }
}

fn dhcp_line(config: &Config, lan: &LanInfo) -> ServiceStatus {
    match config.dhcp.mode {
        DhcpMode::Off => line(DHCP, ServiceState::Disabled, "off in the settings".into()),
        DhcpMode::Router => line(
            "DHCP (router)",
            ServiceState::Running,
            lan.interface.clone(),
        ),
        DhcpMode::Proxy => line("DHCP (proxy)", ServiceState::Running, lan.interface.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_service_names_are_recognised_and_others_left_alone() {
        for name in [HTTP, TFTP, DHCP, DNS, "DHCP (router)", "DHCP (proxy)"] {
            assert!(is_boot_service(name), "{name}");
        }
        for name in ["Web UI", "VPN", "DHCPv6 relay"] {
            assert!(!is_boot_service(name), "{name}");
        }
    }

    #[test]
    fn a_failed_start_shows_its_reason() {
        let mut l = line("DHCP (proxy)", ServiceState::Running, "lan0".into());
        let r = started(
            &mut l,
            Err(BootServiceError::Bind {
                what: "binding the DHCP server on lan0".into(),
                message: "cannot bind UDP port 67".into(),
            }),
            || line("DHCP (proxy)", ServiceState::Running, "lan0".into()),
        );
        assert!(r.is_none());
        assert_eq!(l.state, ServiceState::Failed);
        assert_eq!(
            l.detail,
            "binding the DHCP server on lan0: cannot bind UDP port 67"
        );
    }
}
