//! flakeboot's DHCP server in-process for the black-box tests (`proxy_common`, `router_common`):
//! its own tokio runtime on a thread inside the server namespace, a recording catalogue, the
//! store in a directory of the test's.

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use flakeboot_catalogue::{Catalogue, IpxeBinary, RecordingCatalogue};
use flakeboot_dhcp::boot::BootConfig;
use flakeboot_dhcp::server::{DhcpServer, DhcpServerConfig, DhcpStats, ServerMode};
use flakeboot_store::Store;
use flakeboot_testbed::Netns;
use tokio_util::sync::CancellationToken;

/// flakeboot's address on the LAN.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// The server's config on `interface`: DHCP on 67, PXE on 4011, iPXE scripts from
/// `http://10.77.0.1`.
pub fn server_config(interface: &str, mode: ServerMode) -> DhcpServerConfig {
    DhcpServerConfig {
        interface: interface.into(),
        server_ip: SERVER_IP,
        port: 67,
        pxe_port: 4011,
        boot: BootConfig {
            server_ip: SERVER_IP,
            http_base: "http://10.77.0.1".into(),
            uefi_binary: IpxeBinary::IpxeEfi,
            arm64_efi: false,
        },
        mode,
    }
}

/// The flakeboot DHCP server running in-process inside the server namespace.
pub struct Server {
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
    pub stats: Arc<DhcpStats>,
    pub events: Arc<RecordingCatalogue>,
}

impl Server {
    /// Start serving `mode` on `dev` in `ns` as [`SERVER_IP`], with the store in `state_dir`;
    /// returns once the server is bound.
    pub fn start(ns: &Netns, dev: &str, mode: ServerMode, state_dir: &Path) -> Server {
        let cfg = server_config(dev, mode);
        let shutdown = CancellationToken::new();
        let events = Arc::new(RecordingCatalogue::default());
        let (tx, rx) = mpsc::channel();
        let token = shutdown.clone();
        let catalogue: Arc<dyn Catalogue> = events.clone();
        let state_dir = state_dir.to_owned();
        let thread = ns
            .thread(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let started = async {
                        let store = Store::open(&state_dir).map_err(|e| e.to_string())?;
                        let server = DhcpServer::bind(cfg).map_err(|e| e.to_string())?;
                        Ok::<_, String>((store, server))
                    };
                    let (store, server) = match started.await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(e.clone()));
                            return Err(e);
                        }
                    };
                    let _ = tx.send(Ok(server.stats()));
                    server
                        .run(catalogue, Arc::new(store), token)
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .unwrap();
        let stats = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server thread reports")
            .expect("server starts");
        Server {
            shutdown,
            thread: Some(thread),
            stats,
            events,
        }
    }

    /// Stop the server and wait until it has let go of its sockets and store.
    pub fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("server thread")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
