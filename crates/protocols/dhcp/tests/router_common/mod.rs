//! The harness of the router-mode black-box tests (`tests/router_*.rs`): the LAN, the pool,
//! the in-process server ([`crate::dhcp_server`]) in router mode, client helpers.
//!
//! The LAN's server namespace runs the flakeboot DHCP server; clients run in its client
//! namespace or, for QEMU, on a TAP device in the server namespace.
//! Nothing leaves these namespaces. Needs root (`ip netns`).

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use flakeboot_dhcp::lease::PoolConfig;
use flakeboot_dhcp::ra::RaConfig;
use flakeboot_dhcp::server::ServerMode;
use flakeboot_testbed::{Proc, TestLan, require_root};

pub use crate::dhcp_server::{SERVER_IP, Server};

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

/// Start serving router mode with `pool` on the LAN's `lan0`, the store in its `state_dir()`.
pub fn serve(lan: &TestLan, pool: PoolConfig) -> Server {
    Server::start(
        &lan.server,
        "lan0",
        ServerMode::Router(pool),
        &lan.state_dir(),
    )
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
