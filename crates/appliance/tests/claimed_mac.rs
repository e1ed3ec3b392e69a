//! A MAC named in a request is a claim: the boot policy behind the real HTTP boot router
//! (`tower::ServiceExt::oneshot`, the peer address from `MockConnectInfo`), its events stored by
//! the real event writer. The victim took 10.77.0.50 in DHCP; an attacker at another address
//! fetches `/boot.ipxe?mac=<victim>` and reports for the victim: nothing of it is in the
//! victim's timeline and the report is refused. The victim's own boot is still its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use flakeboot_appliance::boot_policy::{BootPolicy, PolicyState};
use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, MacAddr, Outcome};
use flakeboot_config::Config;
use flakeboot_httpboot::{HttpBootState, HttpBootStats, router_with_stats};
use flakeboot_nix::CurrentGenerations;
use flakeboot_store::Store;
use tower::ServiceExt;

const VICTIM: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const ATTACKER: MacAddr = MacAddr([0x52, 0x54, 0, 0x66, 0x66, 0x66]);
const VICTIM_IP: &str = "10.77.0.50";
/// The attacker's address from its own DHCP exchange.
const ATTACKER_IP: &str = "10.77.0.66";
/// An address no DHCP exchange gave anyone (set by hand).
const STATIC_IP: &str = "10.77.0.99";

fn config(dir: &Path) -> Config {
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd"));
    std::fs::write(&kernel, b"kernel").unwrap();
    std::fs::write(&initrd, b"initrd").unwrap();
    let text = format!(
        r#"
[lan]
interface = "lan0"
[[hosts]]
name = "demo"
kernel = "{}"
initrd = "{}"
[[machines]]
mac = "{VICTIM}"
host = "demo"
"#,
        kernel.display(),
        initrd.display()
    );
    Config::parse(&text, &dir.join("flakeboot.toml")).unwrap()
}

struct Lan {
    policy: Arc<BootPolicy>,
    stats: Arc<HttpBootStats>,
    store: Store,
    writer: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Lan {
    fn new() -> Lan {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let state = PolicyState::from_config(
            &config(dir.path()),
            Vec::new(),
            CurrentGenerations::default(),
            "http://10.77.0.1".into(),
        );
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let writer = tokio::spawn(flakeboot_appliance::events::run(
            rx,
            store.clone(),
            Default::default(),
        ));
        Lan {
            policy: Arc::new(BootPolicy::new(state, tx)),
            stats: Arc::new(HttpBootStats::default()),
            store,
            writer,
            _dir: dir,
        }
    }

    /// What the DHCP server records for a client's exchange: its MAC on the wire, its address.
    fn dhcp(&self, mac: MacAddr, ip: &str) {
        self.policy.record(
            BootEvent::new(BootStage::Dhcp, Outcome::Ok, "proxy ack: undionly.kpxe")
                .mac(mac)
                .peer(ip.parse().unwrap()),
        );
    }

    async fn send(&self, from: &str, req: Request<Body>) -> (StatusCode, String) {
        let state = HttpBootState {
            catalogue: self.policy.clone(),
            base_url: "http://10.77.0.1".into(),
        };
        let peer: SocketAddr = format!("{from}:40000").parse().unwrap();
        let res = router_with_stats(state, self.stats.clone())
            .layer(MockConnectInfo(peer))
            .oneshot(req)
            .await
            .unwrap();
        let status = res.status();
        let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn script(&self, from: &str, mac: MacAddr) -> (StatusCode, String) {
        let req = Request::get(format!("/boot.ipxe?mac={mac}"))
            .body(Body::empty())
            .unwrap();
        self.send(from, req).await
    }

    async fn report(&self, from: &str, mac: MacAddr) -> StatusCode {
        let req = Request::post("/boot/report")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("mac={mac}&stage=up")))
            .unwrap();
        self.send(from, req).await.0
    }

    /// Stop recording, wait until the writer has stored everything: the store and how many
    /// events named a MAC their address is not bound to.
    async fn stored(self) -> (Store, u64) {
        let claims = self.policy.unbound_claims();
        // The last sender goes with the policy: the writer drains the channel and ends.
        drop(self.policy);
        self.writer.await.unwrap();
        (self.store, claims)
    }
}

fn peer(e: &BootEvent) -> IpAddr {
    e.peer.unwrap()
}

fn addr(ip: &str) -> Option<IpAddr> {
    Some(ip.parse().unwrap())
}

#[tokio::test]
async fn an_attacker_claiming_the_victims_mac_adds_nothing_to_its_timeline_and_may_not_report() {
    let lan = Lan::new();
    lan.dhcp(VICTIM, VICTIM_IP);
    lan.dhcp(ATTACKER, ATTACKER_IP);

    // The attacker asks for the victim's script, from its own address and from one no DHCP
    // exchange bound; the script is served (it is no secret), but the fetch is not the
    // victim's. Its reports for the victim are refused.
    for from in [ATTACKER_IP, STATIC_IP] {
        let (status, script) = lan.script(from, VICTIM).await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert_eq!(
            lan.report(from, VICTIM).await,
            StatusCode::FORBIDDEN,
            "{from}"
        );
    }
    // Its own MAC it may report for, from the address it took in DHCP.
    assert_eq!(
        lan.report(ATTACKER_IP, ATTACKER).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(lan.stats.snapshot().refused_reports, 2);

    let (store, claims) = lan.stored().await;
    let victim = store.events_for(VICTIM, 100).unwrap();
    assert_eq!(victim.len(), 1, "{victim:#?}");
    assert_eq!(
        (victim[0].stage, victim[0].peer),
        (BootStage::Dhcp, addr(VICTIM_IP))
    );
    // The attacker's fetch is the attacker's own event; the one from the static address is
    // nobody's; no report was stored for the victim.
    let attacker = store.events_for(ATTACKER, 100).unwrap();
    let stages: Vec<_> = attacker.iter().map(|e| (e.stage, peer(e))).collect();
    assert!(
        stages.contains(&(BootStage::Script, ATTACKER_IP.parse().unwrap()))
            && stages.contains(&(BootStage::System, ATTACKER_IP.parse().unwrap())),
        "{attacker:#?}"
    );
    let all = store.recent_events(100).unwrap();
    let from_static: Vec<_> = all.iter().filter(|e| e.peer == addr(STATIC_IP)).collect();
    assert_eq!(from_static.len(), 1, "{all:#?}");
    assert_eq!(from_static[0].mac, None);
    assert!(
        all.iter()
            .all(|e| e.mac != Some(VICTIM) || e.stage == BootStage::Dhcp)
    );
    // The two script fetches named a MAC not theirs (refused reports are not recorded).
    assert_eq!(claims, 2);
    // Nothing made a machine but the two DHCP exchanges.
    let mut machines: Vec<_> = store
        .machines()
        .unwrap()
        .into_iter()
        .map(|m| m.mac)
        .collect();
    machines.sort();
    assert_eq!(machines, [VICTIM, ATTACKER]);
}

#[tokio::test]
async fn the_victims_own_boot_from_its_dhcp_address_is_its_own() {
    let lan = Lan::new();
    lan.dhcp(VICTIM, VICTIM_IP);
    // An attacker's claim first changes nothing for the victim.
    lan.script(STATIC_IP, VICTIM).await;

    // iPXE fetches `boot.ipxe?mac=${net0/mac}` from the address its DHCP exchange gave it:
    // the victim's host, not the menu; then its kernel (no MAC in the URL); then it reports.
    let (status, script) = lan.script(VICTIM_IP, VICTIM).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("flakeboot.host=demo"), "{script}");
    let req = Request::head("/boot/demo/static/kernel")
        .body(Body::empty())
        .unwrap();
    assert_eq!(lan.send(VICTIM_IP, req).await.0, StatusCode::OK);
    assert_eq!(lan.report(VICTIM_IP, VICTIM).await, StatusCode::NO_CONTENT);

    let (store, claims) = lan.stored().await;
    let mut stages: Vec<_> = store
        .events_for(VICTIM, 100)
        .unwrap()
        .iter()
        .map(|e| (e.stage, peer(e)))
        .collect();
    stages.sort_by_key(|(stage, _)| *stage as u8);
    let at = VICTIM_IP.parse::<IpAddr>().unwrap();
    assert_eq!(
        stages,
        [
            (BootStage::Dhcp, at),
            (BootStage::Script, at),
            (BootStage::Kernel, at),
            (BootStage::System, at)
        ]
    );
    assert_eq!(claims, 1, "only the claim from the static address");
}
