//! End to end in a real browser: Debian's chromium (headless, driven through chromedriver with
//! fantoccini) against the app served over TLS on 127.0.0.1, inside a network namespace of its
//! own (only `lo`: nothing leaves it). Walks setup, sign-in, the dashboard, adding a flake,
//! watching its build finish live, assigning a machine and reading its boot timeline, adding a
//! remote-access device (its one-time config page with the QR code), the Hosts page, a
//! 1,000-machine LAN's Machines page (loads, pages, filters, stays short), removing a flake
//! through its confirmation page and forgetting a machine, and saves a screenshot of every page at laptop (1366 px) and phone (390 px) widths into
//! `target/webui-screenshots/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::browser::{
    Shots, cdp, click, connect, fill, path, screenshots, start_driver, text_of, wait_path,
    wait_text,
};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::fake_vpn::{FakeVpn, PRIVATE_MARKER};
use common::firmware_image::firmware_image;
use common::{FakeFlakes, PASSWORD};
use fantoccini::Locator;
use flakeboot_appliance::backup::write_backup;
use flakeboot_appliance::firmware::Firmware;
use flakeboot_appliance::setup_restore::SetupRestore;
use flakeboot_appliance::{
    DaemonStatus, ServiceState, ServiceStatus, VpnServerSettings, VpnService,
};
use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
use flakeboot_store::{PreflightRecord, PreflightState, Store};
use flakeboot_testbed::{Netns, require_root, require_tool};
use flakeboot_webui::{CertStore, TlsSetup, WebConfig, WebState, serve_tls};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const ADDR: &str = "127.0.0.1:8443";
const BASE: &str = "https://127.0.0.1:8443";
const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x57]);

fn ev(mac: MacAddr, secs_ago: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
    let mut e = BootEvent::new(stage, outcome, detail)
        .mac(mac)
        .peer("10.77.0.100".parse().unwrap())
        .firmware(ClientFirmware::BiosPxe)
        .vendor_class("PXEClient:Arch:00000:UNDI:002001");
    e.at = SystemTime::now() - Duration::from_secs(secs_ago);
    e
}

/// Two boots of MAC (one stopped at the initrd, then one complete, which the LAN's router
/// offered an address to as well) and one of OTHER.
fn seed(store: &Store) {
    use BootStage::*;
    store
        .record_events(&[
            ev(MAC, 3000, Dhcp, Outcome::Ok, "proxyDHCP: undionly.kpxe"),
            ev(MAC, 2999, Tftp, Outcome::Ok, "undionly.kpxe 72 KB"),
            ev(MAC, 2997, Dhcp, Outcome::Ok, "proxyDHCP: iPXE script"),
            ev(MAC, 2996, Script, Outcome::Ok, "menu"),
            ev(
                MAC,
                2995,
                Kernel,
                Outcome::Ok,
                "/boot/demo/static/kernel 8.1 MB",
            ),
            ev(
                MAC,
                2990,
                Initrd,
                Outcome::Failed,
                "client closed the connection after 12 MB of 40 MB",
            ),
            ev(MAC, 400, Dhcp, Outcome::Ok, "proxyDHCP: undionly.kpxe"),
            ev(
                MAC,
                399,
                OtherDhcp,
                Outcome::Ok,
                "offer from 10.77.0.2 (full DHCP): address 10.77.0.150, router 10.77.0.2",
            ),
            ev(MAC, 399, Tftp, Outcome::Ok, "undionly.kpxe 72 KB"),
            ev(MAC, 397, Dhcp, Outcome::Ok, "proxyDHCP: iPXE script"),
            ev(MAC, 396, Script, Outcome::Ok, "menu"),
            ev(
                MAC,
                395,
                Kernel,
                Outcome::Ok,
                "/boot/demo/static/kernel 8.1 MB",
            ),
            ev(
                MAC,
                390,
                Initrd,
                Outcome::Ok,
                "/boot/demo/static/initrd 40 MB",
            ),
            ev(
                OTHER,
                120,
                Dhcp,
                Outcome::Declined,
                "unknown client architecture 11",
            ),
        ])
        .unwrap();
}

#[test]
fn a_real_browser_sets_up_signs_in_builds_assigns_and_reads_a_timeline() {
    require_root();
    require_tool("chromium");
    let driver = require_tool("chromedriver");
    let shots = screenshots();

    let ns = Netns::new("webui").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("chromium-profile");
    let driver = start_driver(&ns, &driver);
    let state_dir = tmp.path().join("state");
    let handle = ns
        .thread(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(scenario(state_dir, profile, shots))
        })
        .unwrap();
    let result = handle.join();
    if result.is_err() {
        eprintln!(
            "--- chromedriver log ---\n{}",
            std::fs::read_to_string(driver.log_path()).unwrap_or_default()
        );
    }
    result.unwrap();
}

async fn scenario(state_dir: PathBuf, profile: PathBuf, shots: Shots) {
    let store = Store::open(&state_dir).unwrap();
    seed(&store);
    let flakes = FakeFlakes::auto(Duration::from_millis(250), 12);
    let certs = CertStore::load_or_generate(&TlsSetup {
        dir: state_dir.join("tls"),
        names: vec!["127.0.0.1".into(), "flakeboot.lan".into()],
    })
    .unwrap();
    let (_status_tx, status) = watch::channel(DaemonStatus {
        services: vec![
            ServiceStatus {
                name: "DHCP (proxy)".into(),
                state: ServiceState::Running,
                detail: "lan0 · 10.77.0.1:67 and :4011".into(),
            },
            ServiceStatus {
                name: "TFTP".into(),
                state: ServiceState::Running,
                detail: "10.77.0.1:69".into(),
            },
            ServiceStatus {
                name: "HTTP boot".into(),
                state: ServiceState::Running,
                detail: "http://10.77.0.1/".into(),
            },
        ],
        warnings: vec![],
    });
    let config = WebConfig {
        static_hosts: vec!["demo".into()],
        interfaces: vec!["lan0".into(), "wan0".into()],
        ..WebConfig::default()
    };
    let state = WebState::new(
        store.clone(),
        Arc::new(flakes.clone()),
        config,
        status,
        Some(certs),
    )
    .unwrap();
    let vpn = FakeVpn::new();
    vpn.set_server(VpnServerSettings {
        enabled: true,
        endpoint: "office.example.net".into(),
        ..VpnServerSettings::default()
    })
    .await
    .unwrap();
    vpn.add_peer("work-laptop").await.unwrap();
    vpn.traffic(1, 12, 3_400_000, 41_000_000);
    state.set_vpn(Arc::new(vpn.clone()));
    let code = state.setup_code().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_tls(
        vec![ADDR.parse::<SocketAddr>().unwrap()],
        state.clone(),
        TlsSetup {
            dir: state_dir.join("tls"),
            names: vec![],
        },
        shutdown.clone(),
    ));

    let c = connect(&profile).await;
    c.set_window_size(1366, 768).await.unwrap();

    // First visit: setup, and beside it the restore of a backup (restore.js): one sent with
    // the wrong passphrase goes with the code and the form token, is refused by the appliance
    // and said on the page, with the progress bar full; nothing changes.
    state.set_setup_restore(SetupRestore::new(
        &state_dir,
        &state_dir.join("flakeboot.toml"),
    ));
    let backup = state_dir.parent().unwrap().join("old-appliance.age");
    {
        let old = Store::open(&state_dir.parent().unwrap().join("old-state")).unwrap();
        let out = std::fs::File::create(&backup).unwrap();
        write_backup(&old, None, "the old appliance's passphrase", out).unwrap();
    }
    c.goto(&format!("{BASE}/")).await.unwrap();
    assert_eq!(path(&c).await, "/setup");
    shots.take(&c, "01-setup").await;
    fill(&c, "#restore-code", &code).await;
    fill(&c, "#restore-passphrase", "not the passphrase at all").await;
    c.find(Locator::Css("#restore-file"))
        .await
        .unwrap()
        .send_keys(backup.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "#restore-upload button").await;
    wait_text(&c, "Not restored: cannot decrypt the backup").await;
    let bar = c
        .execute(
            "const b = document.getElementById('restore-progress'); return [b.hidden, b.value == b.max];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bar, serde_json::json!([false, true]), "the progress bar");
    shots.take(&c, "01-setup-restore-refused").await;
    assert!(!state.setup_done());
    fill(&c, "#code", "WRONG-CODE").await;
    fill(&c, "#password", PASSWORD).await;
    fill(&c, "#confirm", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    wait_text(&c, "That is not the setup code").await;
    shots.take(&c, "02-setup-error").await;
    fill(&c, "#code", &code.to_lowercase()).await;
    fill(&c, "#password", PASSWORD).await;
    fill(&c, "#confirm", PASSWORD).await;
    c.find(Locator::Css("#lan_interface"))
        .await
        .unwrap()
        .select_by_value("lan0")
        .await
        .unwrap();
    click(&c, "input[name=dhcp_mode][value=proxy]").await;
    click(&c, "button[type=submit]").await;
    wait_path(&c, "/").await;
    wait_text(&c, "Dashboard").await;

    // Sign out and in again.
    click(&c, "form.logout button").await;
    wait_path(&c, "/login").await;
    shots.take(&c, "03-login").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    wait_path(&c, "/").await;
    let dash = wait_text(&c, "Recent boots").await;
    for t in [
        "DHCP (proxy)",
        "TFTP",
        "HTTP boot",
        "Recent boots",
        "unknown client architecture 11",
    ] {
        assert!(dash.contains(t), "{t} not on the dashboard");
    }
    shots.take(&c, "04-dashboard").await;

    // Add a flake: a bad URL first (error next to the field), then the fixture.
    c.goto(&format!("{BASE}/flakes")).await.unwrap();
    fill(&c, "#url", "not-a-flake").await;
    click(&c, "form[action='/flakes'] button").await;
    wait_text(&c, "not a flake reference").await;
    shots.take(&c, "05-flakes-error").await;
    fill(&c, "#url", "path:/srv/flakes/fixture").await;
    click(&c, "form[action='/flakes'] button").await;
    wait_path(&c, "/flakes/fixture").await;

    // Build alpha and watch the live log until the build finishes.
    click(&c, "form[action='/flakes/fixture/build'] button").await;
    wait_path(&c, "/builds/1").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    shots.take(&c, "06-build-running").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#build-state.ok"))
        .await
        .expect("the live view shows the build succeeded");
    // The live view reloads the finished page from the server.
    wait_text(&c, "Generation").await;
    let log = text_of(&c, "#build-log").await;
    assert!(log.contains("[12/12] building"), "{log}");
    assert!(
        c.find(Locator::Css("#cancel-form")).await.is_err(),
        "cancel is gone once done"
    );
    shots.take(&c, "07-build-done").await;
    c.goto(&format!("{BASE}/flakes/fixture")).await.unwrap();
    wait_text(&c, "generation 1").await;
    shots.take(&c, "08-flake").await;
    c.goto(&format!("{BASE}/flakes")).await.unwrap();
    shots.take(&c, "09-flakes").await;

    // Machines: assign one to the built host, and read its timeline.
    c.goto(&format!("{BASE}/machines")).await.unwrap();
    shots.take(&c, "10-machines").await;
    click(&c, "a[href='/machines/52:54:00:12:34:56']").await;
    wait_path(&c, "/machines/52:54:00:12:34:56").await;
    c.find(Locator::Css("#host"))
        .await
        .unwrap()
        .select_by_value("fixture#alpha")
        .await
        .unwrap();
    fill(&c, "#label", "Rack 3, top").await;
    fill(&c, "#hostname", "node1").await;
    fill(&c, "#kernel_params", "console=ttyS0").await;
    click(&c, "form[action='/machines/52:54:00:12:34:56'] button").await;
    let page = wait_text(&c, "Saved.").await;
    assert!(page.contains(
        "Stopped at Initrd: it failed (client closed the connection after 12 MB of 40 MB)."
    ));
    // The attempt that got its initrd and never reported: "booting" until `report_timeout`,
    // then "no report" (it never says "booted" without the system's report).
    assert!(
        page.contains("no report") || page.contains("booting"),
        "{page}"
    );
    let m = store.machine(MAC).unwrap().unwrap();
    assert_eq!(
        (m.host.as_deref(), m.label.as_deref()),
        (Some("fixture#alpha"), Some("Rack 3, top"))
    );
    shots.take(&c, "11-machine").await;
    c.goto(&format!("{BASE}/machines")).await.unwrap();
    wait_text(&c, "fixture#alpha").await;
    shots.take(&c, "11-machines-assigned").await;
    c.goto(&format!("{BASE}/machines/52:54:00:12:34:57"))
        .await
        .unwrap();
    wait_text(&c, "Stopped at DHCP: it was declined").await;

    // Settings and a token.
    c.goto(&format!("{BASE}/settings")).await.unwrap();
    shots.take(&c, "12-settings").await;
    fill(&c, "#token_name", "laptop").await;
    click(&c, "form[action='/settings/tokens'] button").await;
    wait_text(&c, "Copy it now").await;
    let token = text_of(&c, "#new-token").await;
    assert!(token.starts_with("fbt_"));
    shots.take(&c, "13-token").await;
    c.goto(&format!("{BASE}/")).await.unwrap();
    shots.take(&c, "14-dashboard-after").await;

    hosts_and_a_big_lan(&c, &shots, &store, &flakes).await;
    remote_access(&c, &shots, &vpn, &profile_downloads(&state_dir)).await;
    housekeeping(&c, &shots, &store).await;
    firmware(&c, &shots, &state, &state_dir).await;

    c.close().await.unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The Firmware page: the slots and the development notice, and a bundle chosen in the file
/// input and sent by the page's script with its progress bar filling up; this image accepts no
/// key, so the appliance refuses it and the page says why (the real install is the image
/// test's, through the same API).
async fn firmware(
    c: &fantoccini::Client,
    shots: &Shots,
    state: &WebState,
    state_dir: &std::path::Path,
) {
    let root = state_dir.parent().unwrap().join("image");
    state.set_firmware(Firmware::new(state_dir, firmware_image(&root)));
    c.goto(&format!("{BASE}/settings")).await.unwrap();
    click(c, "a[href='/firmware']").await;
    wait_path(c, "/firmware").await;
    let page = wait_text(c, "Install an update").await;
    for t in [
        "flakeboot-1-a.efi",
        "flakeboot-2-b+2-1.efi",
        "2 tries left",
        "development build: test key",
    ] {
        assert!(page.contains(t), "{t} not on the firmware page:\n{page}");
    }
    let bundle = root.join("flakeboot-0.4.0-qemu-x86_64.bundle.tar");
    std::fs::write(&bundle, vec![0x5au8; 8 << 20]).unwrap();
    c.find(Locator::Css("#firmware-upload input[type=file]"))
        .await
        .unwrap()
        .send_keys(bundle.to_str().unwrap())
        .await
        .unwrap();
    click(c, "#firmware-upload button").await;
    let said = wait_text(c, "Not installed: refused").await;
    assert!(said.contains("no accepted update keys"), "{said}");
    let bar = c
        .execute(
            "const b = document.getElementById('firmware-progress'); return [b.hidden, b.value, b.max];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        bar,
        serde_json::json!([false, 8 << 20, 8 << 20]),
        "the progress bar"
    );
    shots.take(c, "30-firmware").await;
    c.goto(&format!("{BASE}/")).await.unwrap();
    wait_text(c, "development build: test key").await;
}

/// Removing a flake through its confirmation page (which lists the machine assigned to its
/// host), forgetting a machine, and the Power on button (this app has no LAN wired: the
/// appliance says Wake-on-LAN is not available).
async fn housekeeping(c: &fantoccini::Client, shots: &Shots, store: &Store) {
    c.goto(&format!("{BASE}/flakes")).await.unwrap();
    fill(c, "#url", "path:/srv/flakes/spare").await;
    click(c, "form[action='/flakes'] button").await;
    wait_path(c, "/flakes/spare").await;
    store
        .set_machine_host(OTHER, Some("spare#alpha".into()))
        .unwrap();
    click(c, "#remove-flake-link").await;
    wait_path(c, "/flakes/spare/remove").await;
    let page = text_of(c, "#affected-machines").await;
    assert!(
        page.contains("52:54:00:12:34:57") && page.contains("spare#alpha"),
        "{page}"
    );
    shots.take(c, "26-flake-remove").await;
    click(c, "#remove-flake button.danger").await;
    wait_path(c, "/flakes").await;
    let page = text_of(c, "body").await;
    assert!(!page.contains("path:/srv/flakes/spare"), "{page}");

    c.goto(&format!("{BASE}/machines/52:54:00:12:34:57"))
        .await
        .unwrap();
    wait_text(c, "Power and housekeeping").await;
    shots.take(c, "27-machine-actions").await;
    click(c, "#power-on").await;
    wait_text(c, "Wake-on-LAN is not available").await;
    c.goto(&format!("{BASE}/machines/52:54:00:12:34:57"))
        .await
        .unwrap();
    wait_text(c, "Power and housekeeping").await;
    click(c, "#forget").await;
    wait_path(c, "/machines").await;
    assert!(store.machine(OTHER).unwrap().is_none());
}

/// 1,000 more machines, made through the store (not the network): every fourth up, every
/// fourth stopped at the kernel, the rest only got DHCP a while ago.
fn seed_big_lan(store: &Store) {
    use BootStage::*;
    let mut events = Vec::new();
    for i in 0..1000u16 {
        let [hi, lo] = i.to_be_bytes();
        let mac = MacAddr([0x52, 0x54, 0, 0x77, hi, lo]);
        let back = 5000 - u64::from(i);
        events.push(ev(
            mac,
            back,
            Dhcp,
            Outcome::Ok,
            "proxy offer: undionly.kpxe",
        ));
        match i % 4 {
            0 => {
                events.push(ev(mac, back - 1, Script, Outcome::Ok, "GET /boot.ipxe 200"));
                events.push(ev(
                    mac,
                    back - 2,
                    Kernel,
                    Outcome::Ok,
                    "GET /boot/demo/static/kernel 200",
                ));
                events.push(ev(
                    mac,
                    back - 3,
                    Initrd,
                    Outcome::Ok,
                    "GET /boot/demo/static/initrd 200",
                ));
                events.push(ev(mac, back - 4, System, Outcome::Ok, "up"));
            }
            1 => {
                events.push(ev(mac, back - 1, Script, Outcome::Ok, "GET /boot.ipxe 200"));
                events.push(ev(
                    mac,
                    back - 2,
                    Kernel,
                    Outcome::Failed,
                    "cut off after 1 of 9 MB",
                ));
            }
            _ => {}
        }
    }
    store.record_events(&events).unwrap();
}

/// The page's height in CSS pixels at a device width.
async fn page_height(c: &fantoccini::Client, width: u32, height: u32, mobile: bool) -> f64 {
    cdp(
        c,
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let layout = cdp(c, "Page.getLayoutMetrics", serde_json::json!({})).await;
    cdp(
        c,
        "Emulation.clearDeviceMetricsOverride",
        serde_json::json!({}),
    )
    .await;
    layout["cssContentSize"]["height"].as_f64().unwrap()
}

/// The Hosts page, the timeline's picture, and the Machines page of a 1,002-machine LAN at
/// laptop and phone widths: it loads, pages, filters, and stays short.
async fn hosts_and_a_big_lan(
    c: &fantoccini::Client,
    shots: &Shots,
    store: &Store,
    flakes: &FakeFlakes,
) {
    // Generation 1 passed its pre-flight; generation 2 failed its own, so machines keep 1.
    let ago = |secs: u64| Some(SystemTime::now() - Duration::from_secs(secs));
    let ran = |state, started, finished: Option<u64>, reason: Option<&str>| PreflightRecord {
        state,
        started_at: ago(started),
        finished_at: finished.and_then(ago),
        reason: reason.map(str::to_owned),
        log: None,
    };
    flakes.set_preflight(
        "fixture#alpha",
        1,
        ran(PreflightState::Passed, 700, Some(610), None),
    );
    let second = flakes
        .add_generation(
            "fixture#alpha",
            ran(
                PreflightState::Failed,
                400,
                Some(100),
                Some("no report within 300 s"),
            ),
        )
        .expect("fixture#alpha was built");
    c.goto(&format!("{BASE}/hosts")).await.unwrap();
    let page = wait_text(c, "fixture#alpha").await;
    assert!(
        page.contains("Rack 3, top") && page.contains("demo"),
        "{page}"
    );
    assert!(
        page.contains("generation 1 pre-flight passed"),
        "the current generation and its pre-flight: {page}"
    );
    let newest = text_of(c, "dd.newest[data-preflight=failed]").await;
    assert!(
        newest.contains(&format!("generation {second} pre-flight failed"))
            && newest.contains("no report within 300 s")
            && newest.contains("machines keep generation 1"),
        "{newest}"
    );
    shots.take(c, "21-hosts").await;
    // The next try of it boots in the pre-flight VM now.
    flakes.set_preflight(
        "fixture#alpha",
        second,
        ran(PreflightState::Running, 40, None, None),
    );
    c.refresh().await.unwrap();
    let newest = text_of(c, "dd.newest[data-preflight=running]").await;
    assert!(
        newest.contains(&format!("generation {second} pre-flight running")),
        "{newest}"
    );
    shots.take(c, "21-hosts-preflight-running").await;
    // Every page of the navigation fits a phone's width: the Hosts link is there, not cut off.
    cdp(
        c,
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    for link in c.find_all(Locator::Css("nav.main a")).await.unwrap() {
        let (x, _, w, _) = link.rectangle().await.unwrap();
        let text = link.text().await.unwrap();
        assert!(
            link.is_displayed().await.unwrap(),
            "{text} hidden on a phone"
        );
        assert!(
            x >= 0.0 && x + w <= 390.0,
            "{text} overflows on a phone: x {x}, {w} px"
        );
    }
    let hosts = c
        .find(Locator::Css("nav.main a[href='/hosts']"))
        .await
        .unwrap();
    assert_eq!(hosts.text().await.unwrap(), "Hosts");
    shots.take(c, "21-hosts-phone").await;
    cdp(
        c,
        "Emulation.clearDeviceMetricsOverride",
        serde_json::json!({}),
    )
    .await;
    c.goto(&format!("{BASE}/machines/52:54:00:12:34:56"))
        .await
        .unwrap();
    let page = wait_text(c, "Boot timeline").await;
    assert!(
        page.contains("Other DHCP servers on the LAN answered this machine too")
            && page.contains("offer from 10.77.0.2 (full DHCP): address 10.77.0.150"),
        "{page}"
    );
    let bars = c
        .find_all(Locator::Css("svg.timeline-svg rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 5, "{} bars", bars.len());
    shots.take(c, "22-machine-timeline").await;

    seed_big_lan(store);
    let started = std::time::Instant::now();
    c.goto(&format!("{BASE}/machines")).await.unwrap();
    let page = wait_text(c, "1002 machines").await;
    let took = started.elapsed();
    assert!(page.contains("page 1 of 21"), "{page}");
    assert!(took < Duration::from_secs(10), "the page took {took:?}");
    let rows = c
        .find_all(Locator::Css("table#machines tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    for (width, height, mobile) in [(1366u32, 768u32, false), (390, 844, true)] {
        let h = page_height(c, width, height, mobile).await;
        assert!(h < 15_000.0, "{h} px tall at {width} px");
    }
    shots.take(c, "23-machines-1000").await;
    click(c, "nav.pager a[rel=next]").await;
    let page = wait_text(c, "page 2 of 21").await;
    assert!(page.contains("← Newer"), "{page}");
    shots.take(c, "24-machines-1000-page-2").await;
    c.find(Locator::Css("form.filters select[name=state]"))
        .await
        .unwrap()
        .select_by_value("up")
        .await
        .unwrap();
    click(c, "form.filters button").await;
    let page = wait_text(c, "250 machines match").await;
    assert!(
        page.contains("up (static)") && !page.contains("Stopped"),
        "{page}"
    );
    shots.take(c, "25-machines-up").await;
    fill(c, "form.filters input[name=q]", "52:54:00:77:03:e7").await;
    click(c, "form.filters button").await;
    wait_text(c, "0 machines match").await;
    c.find(Locator::Css("form.filters select[name=state]"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    click(c, "form.filters button").await;
    // Machine 999 only got DHCP, over an hour ago: it stopped there.
    let page = wait_text(c, "1 machine match").await;
    assert!(
        page.contains("52:54:00:77:03:e7") && page.contains("Stopped after DHCP"),
        "{page}"
    );
}

fn profile_downloads(state_dir: &std::path::Path) -> PathBuf {
    let dir = state_dir.join("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Remote access: add a device, land on its one-time config page (QR code big enough to scan
/// and inside a phone's screen, the download is the config), then see it listed without it.
async fn remote_access(
    c: &fantoccini::Client,
    shots: &Shots,
    vpn: &FakeVpn,
    downloads: &std::path::Path,
) {
    click(c, "nav.main a[href='/vpn']").await;
    wait_path(c, "/vpn").await;
    let page = wait_text(c, "work-laptop").await;
    assert!(
        page.contains(" ago") && page.contains("Up on fb-wg0"),
        "{page}"
    );
    shots.take(c, "15-remote-access").await;

    fill(c, "#peer_name", "alice-phone").await;
    click(c, "form[action='/vpn/peers'] button").await;
    wait_text(c, "This is the only time this config is shown").await;
    assert_eq!(path(c).await, "/vpn/peers");
    assert_eq!(vpn.peer_names(), ["work-laptop", "alice-phone"]);
    let config = text_of(c, "#config-text").await;
    assert!(
        config.contains(&format!("PrivateKey = {PRIVATE_MARKER}")),
        "{config}"
    );
    for (width, height, mobile) in [(1366u32, 768u32, false), (390, 844, true)] {
        cdp(
            c,
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let qr = c.find(Locator::Css(".qr svg")).await.unwrap();
        assert!(qr.is_displayed().await.unwrap());
        let (x, _, w, h) = qr.rectangle().await.unwrap();
        assert!((w - h).abs() < 1.0, "square: {w}x{h}");
        assert!(w >= 240.0, "{w} px wide at {width}: too small to scan");
        assert!(
            x >= 0.0 && x + w <= f64::from(width),
            "overflows at {width}: x {x}, {w} px"
        );
    }
    cdp(
        c,
        "Emulation.clearDeviceMetricsOverride",
        serde_json::json!({}),
    )
    .await;
    shots.take(c, "16-device-config").await;

    // The download link holds the config itself (a data: URL, allowed by the page's policy).
    cdp(
        c,
        "Browser.setDownloadBehavior",
        serde_json::json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
    )
    .await;
    click(c, "#download").await;
    let file = downloads.join("fb-alice-phone.conf");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let downloaded = std::fs::read_to_string(&file).unwrap();
    assert_eq!(downloaded.trim_end(), config.trim_end());

    // Gone afterwards: the page lists the device, never its key.
    click(c, "main a.button[href='/vpn']").await;
    wait_path(c, "/vpn").await;
    wait_text(c, "alice-phone").await;
    assert!(!c.source().await.unwrap().contains(PRIVATE_MARKER));

    // Rename inline (no script: a details element), then revoke.
    click(c, "#peer-2 summary").await;
    fill(c, "#peer-2 input[name=name]", "alice-pixel").await;
    shots.take(c, "17-remote-access-rename").await;
    click(c, "#peer-2 form.rename button").await;
    wait_text(c, "Device renamed.").await;
    assert_eq!(vpn.peer_names(), ["work-laptop", "alice-pixel"]);
    click(c, "#peer-1 form[action='/vpn/peers/1/revoke'] button").await;
    wait_text(c, "Device revoked").await;
    assert_eq!(vpn.peer_names(), ["alice-pixel"]);
    shots.take(c, "18-remote-access-revoked").await;
}
