//! The management web UI and API: its state over the appliance's services, TLS on the LAN
//! address only (never all interfaces), and the API state for the owner-only socket.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use flakeboot_appliance::boot_services::https_base;
use flakeboot_appliance::follow::Updates;
use flakeboot_appliance::lan::{LanInfo, list_interfaces};
use flakeboot_appliance::{DaemonStatus, NixFlakeService};
use flakeboot_config::Config;
use flakeboot_store::Store;
use flakeboot_webui::{CertStore, TlsSetup, WebConfig, WebState};
use tokio::sync::watch;

/// The web UI's state and TLS set-up, ready to serve.
pub struct Web {
    pub state: WebState,
    pub tls: TlsSetup,
    /// Where the UI listens on the LAN (tunnel addresses are added by vpn.rs).
    pub lan: SocketAddr,
    pub https_base: String,
}

/// The UI's configuration from the config file, knowing which file (and the lines of the
/// machines it pins; without them if it cannot be read again).
fn web_config(config: &Config, file: &Path, interfaces: Vec<String>) -> WebConfig {
    let base = WebConfig::from_config(config, interfaces);
    match std::fs::read_to_string(file) {
        Ok(text) => base.with_config_file(file, &text),
        Err(_) => WebConfig {
            config_file: Some(file.to_path_buf()),
            ..base
        },
    }
}

/// The API's state when the web UI is off: the CLI on this machine still works through the
/// API socket (nothing listens on the network).
pub fn api_only(
    config: &Config,
    config_file: &Path,
    store: &Store,
    updates: &Updates,
    status: watch::Receiver<DaemonStatus>,
) -> anyhow::Result<WebState> {
    WebState::new(
        store.clone(),
        Arc::new(NixFlakeService::new(updates.clone())),
        web_config(config, config_file, Vec::new()),
        status,
        None,
    )
    .context("starting the API")
}

pub fn prepare(
    config: &Config,
    config_file: &Path,
    lan: &LanInfo,
    store: &Store,
    updates: &Updates,
    status: watch::Receiver<DaemonStatus>,
) -> anyhow::Result<Web> {
    let mut names = vec![lan.address.to_string()];
    names.extend(config.web.names.iter().cloned());
    let tls = TlsSetup {
        dir: config.state_dir.join("tls"),
        names,
    };
    let certs = CertStore::load_or_generate(&tls).context("preparing the web UI's certificate")?;
    // What the browser's certificate warning and `flakeboot --pin` compare against.
    let fingerprint = certs.info().fingerprint;
    tracing::info!(sha256 = %fingerprint, "web UI certificate");
    let state = WebState::new(
        store.clone(),
        Arc::new(NixFlakeService::new(updates.clone())),
        web_config(
            config,
            config_file,
            list_interfaces()
                .into_iter()
                .filter(|n| n != "lo")
                .collect(),
        ),
        status,
        Some(certs),
    )
    .context("starting the web UI")?;
    let https_base = https_base(lan.address, config.web.port);
    if let Some(code) = state.setup_code() {
        // Proves physical access: only someone who sees the log or the console has it.
        tracing::warn!(
            "first-run setup: open {https_base}/ and enter the setup code {code} \
             (certificate SHA-256 {fingerprint})"
        );
        let _ = std::fs::write(
            "/dev/console",
            format!(
                "flakeboot: first-run setup: open {https_base}/ and enter the setup code {code}\n\
                 flakeboot: the certificate's SHA-256 fingerprint is {fingerprint}\n"
            ),
        );
    }
    Ok(Web {
        state,
        tls,
        lan: SocketAddr::new(lan.address.into(), config.web.port),
        https_base,
    })
}
