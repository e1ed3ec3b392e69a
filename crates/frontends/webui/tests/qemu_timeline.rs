//! A real boot in the browser: a QEMU BIOS client (SeaBIOS + the NIC's iPXE ROM) netboots from
//! the real `flakeboot serve` (router mode), then the web UI, over TLS in chromium, shows that
//! machine with its boot timeline read from the daemon's store: DHCP, script, kernel, initrd,
//! "booting" (its system has not reported). Needs the daemon binary (`cargo build -p flakeboot`; ./test.sh builds it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::browser::{
    Shots, click, connect, fill, screenshots, start_driver, wait_path, wait_text,
};
use common::{FakeFlakes, PASSWORD};
use fantoccini::Locator;
use flakeboot_appliance::DaemonStatus;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, MAC, Mode, Scenario};
use flakeboot_store::{Store, UserRecord};
use flakeboot_testbed::{ClientKind, Netns, require_tool};
use flakeboot_webui::auth::password;
use flakeboot_webui::{CertStore, TlsSetup, WebConfig, WebState, serve_tls};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[test]
fn a_machine_booted_by_qemu_shows_its_timeline_in_the_browser() {
    require_tool("chromium");
    let driver = require_tool("chromedriver");

    // The boot: real firmware, real daemon.
    let mut s = Scenario::new("webui_qemu", 1);
    let config = s
        .config(Mode::Router)
        .machine(MAC[0], HOST, "fbt.marker=bios1");
    s.start_appliance(&config);
    let client = s.power_on("bios1", ClientKind::Bios, 0, MAC[0]);
    s.expect_marker(&client, "bios1", BOOT_TIMEOUT);
    s.stop_appliance();
    let state_dir = s.appliance().state_dir().to_owned();

    // The UI over the daemon's store, in a namespace of its own.
    let shots = screenshots();
    let ns = Netns::new("webqemu").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("chromium-profile");
    let tls_dir = tmp.path().join("tls");
    let _driver = start_driver(&ns, &driver);
    ns.thread(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(browse(state_dir, tls_dir, profile, shots));
    })
    .unwrap()
    .join()
    .unwrap();
    drop(client);
}

async fn browse(state_dir: PathBuf, tls_dir: PathBuf, profile: PathBuf, shots: Shots) {
    let store = Store::open(&state_dir).unwrap();
    assert!(
        !store
            .events_for(MAC[0].parse().unwrap(), 100)
            .unwrap()
            .is_empty(),
        "the daemon recorded the boot"
    );
    store
        .create_first_user(&UserRecord {
            name: "admin".into(),
            password_hash: password::hash(PASSWORD).unwrap(),
            created: SystemTime::now(),
        })
        .unwrap();
    let tls = TlsSetup {
        dir: tls_dir,
        names: vec!["127.0.0.1".into()],
    };
    let certs = CertStore::load_or_generate(&tls).unwrap();
    let (_tx, status) = watch::channel(DaemonStatus::default());
    let config = WebConfig {
        static_hosts: vec![HOST.into()],
        // As the daemon would: the scenario's config file pins the machine to HOST.
        pinned_machines: [(MAC[0].parse().unwrap(), Some(HOST.to_owned()))].into(),
        ..WebConfig::default()
    };
    let state = WebState::new(
        store,
        Arc::new(FakeFlakes::manual()),
        config,
        status,
        Some(certs),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_tls(
        vec!["127.0.0.1:8443".parse::<SocketAddr>().unwrap()],
        state,
        tls,
        shutdown.clone(),
    ));

    let c = connect(&profile).await;
    c.goto("https://127.0.0.1:8443/").await.unwrap();
    wait_path(&c, "/login").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    wait_path(&c, "/").await;
    let dash = wait_text(&c, "Recent boots").await;
    // The busybox system never reports: its boot is "booting" (waiting for the report).
    assert!(dash.contains(MAC[0]) && dash.contains("booting"), "{dash}");

    c.goto("https://127.0.0.1:8443/machines").await.unwrap();
    let list = wait_text(&c, MAC[0]).await;
    assert!(
        list.contains("ipxe-bios") && list.contains(HOST) && list.contains("config file"),
        "{list}"
    );
    c.find(Locator::Css(&format!("a[href='/machines/{}']", MAC[0])))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = wait_text(&c, "Boot timeline").await;
    assert!(
        page.contains("booting") && page.contains("Pinned by the config file"),
        "{page}"
    );
    let steps: Vec<String> = {
        let mut out = Vec::new();
        for li in c
            .find_all(Locator::Css(".attempt:first-of-type ol.timeline li"))
            .await
            .unwrap()
        {
            out.push(li.attr("class").await.unwrap().unwrap_or_default());
        }
        out
    };
    // DHCP, (no TFTP: the NIC ROM is iPXE already), script, kernel, initrd.
    assert_eq!(steps, ["ok", "skipped", "ok", "ok", "ok"], "{page}");
    shots.take(&c, "20-qemu-machine").await;

    c.close().await.unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
