//! The management web UI and API: the flake seam to `flakeboot-nix`, and start-up over TLS on
//! the LAN address only (never all interfaces).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use flakeboot_config::Config;
use flakeboot_nix::{FlakeError, Flakes, RunnerError};
use flakeboot_store::{BuildRecord, FlakeRecord, GenerationRecord, Store};
use flakeboot_webui::{
    BuildProgressView, CertStore, DaemonStatus, FlakeService, FlakeServiceError, TlsSetup,
    WebConfig, WebState,
};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::sync::watch;

use crate::boot_services::https_base;
use crate::lan::{LanInfo, list_interfaces};

/// The web UI's flake operations over the daemon's [`Flakes`].
#[derive(Debug, Clone)]
pub struct NixFlakeService(pub Flakes);

fn map(e: FlakeError) -> FlakeServiceError {
    match e {
        FlakeError::NameTaken { .. } | FlakeError::BadName { .. } => FlakeServiceError::Invalid {
            field: "name",
            message: e.to_string(),
        },
        FlakeError::BadRef(_) | FlakeError::Lock(_) | FlakeError::Discover(_) => {
            FlakeServiceError::Invalid {
                field: "url",
                message: e.to_string(),
            }
        }
        FlakeError::Unbootable { .. } | FlakeError::Resolve(_) => FlakeServiceError::Invalid {
            field: "host",
            message: e.to_string(),
        },
        FlakeError::NoSuchFlake { .. }
        | FlakeError::NoSuchHost { .. }
        | FlakeError::NoSuchGeneration { .. }
        | FlakeError::Runner(RunnerError::NoSuchBuild { .. }) => FlakeServiceError::NotFound {
            what: e.to_string(),
        },
        other => FlakeServiceError::Internal {
            message: other.to_string(),
        },
    }
}

fn internal(e: impl std::fmt::Display) -> FlakeServiceError {
    FlakeServiceError::Internal {
        message: e.to_string(),
    }
}

impl FlakeService for NixFlakeService {
    fn flakes(&self) -> Result<Vec<FlakeRecord>, FlakeServiceError> {
        self.0.runner().store().flakes().map_err(internal)
    }

    fn add<'a>(
        &'a self,
        url: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<FlakeRecord, FlakeServiceError>> {
        Box::pin(async move { self.0.add(url, name).await.map_err(map) })
    }

    fn update<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u64>, FlakeServiceError>> {
        Box::pin(async move { self.0.update(name).await.map_err(map) })
    }

    fn build(&self, flake: &str, host: &str) -> Result<u64, FlakeServiceError> {
        self.0.build(flake, host).map_err(map)
    }

    fn cancel(&self, id: u64) -> Result<bool, FlakeServiceError> {
        self.0.runner().cancel(id).map_err(|e| map(e.into()))
    }

    fn builds(&self) -> Result<Vec<BuildRecord>, FlakeServiceError> {
        self.0.runner().store().builds().map_err(internal)
    }

    fn progress(&self, id: u64) -> Option<BuildProgressView> {
        let status = self.0.runner().status(id).ok()?;
        let s = status.borrow();
        s.state.is_active().then(|| BuildProgressView {
            done: s.progress.done,
            total: s.progress.total,
            running: s.progress.running,
            current: s.progress.current.clone(),
        })
    }

    fn log(&self, id: u64) -> Result<BoxStream<'static, String>, FlakeServiceError> {
        let follower = self.0.runner().follow(id).map_err(|e| map(e.into()))?;
        Ok(Box::pin(futures_util::stream::unfold(
            follower,
            |mut f| async move { f.next_line().await.map(|line| (line, f)) },
        )))
    }

    fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, FlakeServiceError> {
        self.0.generations(host).map_err(map)
    }

    fn generation_hosts(&self) -> Result<Vec<String>, FlakeServiceError> {
        self.0.runner().store().generation_hosts().map_err(internal)
    }

    fn pinned(&self, host: &str) -> Result<Option<u32>, FlakeServiceError> {
        self.0
            .runner()
            .store()
            .pinned_generation(host)
            .map_err(internal)
    }

    fn rollback(&self, host: &str, number: u32) -> Result<(), FlakeServiceError> {
        self.0.rollback(host, number).map_err(map)
    }

    fn unpin(&self, host: &str) -> Result<(), FlakeServiceError> {
        self.0.unpin(host).map_err(map)
    }
}

/// The web UI's state and TLS set-up, ready to serve.
pub struct Web {
    pub state: WebState,
    pub tls: TlsSetup,
    /// Where the UI listens on the LAN (tunnel addresses are added by vpn.rs).
    pub lan: SocketAddr,
    pub https_base: String,
}

pub fn prepare(
    config: &Config,
    lan: &LanInfo,
    store: &Store,
    flakes: &Flakes,
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
        Arc::new(NixFlakeService(flakes.clone())),
        WebConfig::from_config(
            config,
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
