//! The harness of the router-mode black-box tests (`tests/router_*.rs`): namespaces, the
//! in-process server, a recording catalogue.
//!
//! The LAN's server namespace runs the flakeboot DHCP server in-process (its own tokio runtime on
//! a thread inside the namespace); clients run in its client namespace or, for QEMU, on a TAP
//! device in the server namespace.
//! Nothing leaves these namespaces. Needs root (`ip netns`).

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flakeboot_catalogue::{Catalogue, IpxeBinary, RecordingCatalogue};
use flakeboot_dhcp::boot::BootConfig;
use flakeboot_dhcp::lease::PoolConfig;
use flakeboot_dhcp::ra::RaConfig;
use flakeboot_dhcp::server::{DhcpServer, DhcpServerConfig, DhcpStats, ServerMode};
use flakeboot_store::Store;
use flakeboot_testbed::{Netns, Proc, TestLan, require_root};
use tokio_util::sync::CancellationToken;

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const FIRST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
/// Short enough that a renewal (T1 = 10 s) happens inside a test.
pub const LEASE: Duration = Duration::from_secs(20);

pub fn pool(ra: Option<RaConfig>) -> PoolConfig {
    PoolConfig {
        server_ip: SERVER_IP,
        ranges: vec![(FIRST, Ipv4Addr::new(10, 77, 0, 250))],
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(SERVER_IP),
        dns: vec![SERVER_IP],
        domain: Some("lan".into()),
        lease_time: LEASE,
        decline_quarantine: Duration::from_secs(60),
        reservations: Vec::new(),
        ra,
    }
}

/// Two namespaces joined by a veth pair: `lan0` (10.77.0.1/24) in `server`, `eth0` in `client()`;
/// the server's store in `state_dir()`.
pub fn router_lan(tag: &str) -> TestLan {
    require_root();
    // The server's log, shown for failing tests (RUST_LOG=debug for every packet).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "flakeboot_dhcp=info".into()),
        )
        .with_test_writer()
        .try_init();
    TestLan::veth(tag, "lan0")
        .server_addr("10.77.0.1/24")
        .build()
        .unwrap()
}

/// A client script (dhclient or udhcpc style) in the LAN's scratch directory that prints what
/// it is told and applies the address, so that renewals can be unicast.
pub fn client_script(lan: &TestLan) -> String {
    let path = lan.path("client-script.sh");
    fs::write(
        &path,
        "#!/bin/sh\n\
         # dhclient: $reason/$new_ip_address; udhcpc: $1/$ip\n\
         event=\"${reason:-$1}\"; addr=\"${new_ip_address:-$ip}\"\n\
         echo \"script: $event $addr\"\n\
         case \"$event\" in\n\
           BOUND|RENEW|REBIND|REBOOT|bound|renew) ip addr replace \"$addr/24\" dev \"$interface\" ;;\n\
         esac\n\
         exit 0\n",
    )
    .unwrap();
    let mut perm = fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&path, perm).unwrap();
    path.to_string_lossy().into_owned()
}

/// The flakeboot DHCP server running in-process inside the server namespace.
pub struct Server {
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
    pub stats: Arc<DhcpStats>,
    pub events: Arc<RecordingCatalogue>,
}

impl Server {
    /// Start serving router mode on the LAN's `lan0`, with the store in its `state_dir()`.
    pub fn on_lan(lan: &TestLan, pool: PoolConfig) -> Server {
        Server::start(&lan.server, "lan0", pool, &lan.state_dir())
    }

    /// Start serving router mode on `dev` in `ns`, with the store in `state_dir`.
    pub fn start(ns: &Netns, dev: &str, pool: PoolConfig, state_dir: &Path) -> Server {
        let cfg = DhcpServerConfig {
            interface: dev.into(),
            server_ip: SERVER_IP,
            port: 67,
            pxe_port: 4011,
            boot: BootConfig {
                server_ip: SERVER_IP,
                http_base: "http://10.77.0.1".into(),
                uefi_binary: IpxeBinary::IpxeEfi,
                arm64_efi: false,
            },
            mode: ServerMode::Router(pool),
        };
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
                        let server = DhcpServer::bind(cfg).await.map_err(|e| e.to_string())?;
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
                        .run(catalogue, store, token)
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

/// Wait until `cond` holds for the process's output.
pub fn wait_output(
    p: &mut Proc,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let out = p.output();
        if cond(&out) {
            return out;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}\n--- log ---\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
