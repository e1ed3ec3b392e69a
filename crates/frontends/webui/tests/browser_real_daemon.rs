//! Everything real, in a real browser: the `flakeboot serve` binary in router mode on the test
//! LAN (its own HTTPS UI on the LAN address, real nix offline), Debian's chromium (headless,
//! through chromedriver) on a laptop plugged into that LAN, and a QEMU BIOS client (SeaBIOS +
//! the NIC's iPXE ROM). In chromium:
//! 1. first-run setup with the setup code the daemon printed in its log;
//! 2. the Flakes page adds the git fixture flake (real kernel, this run's marker initramfs) and
//!    builds its host `alpha`; the live build page is watched until it says succeeded;
//! 3. the client, assigned to nothing, is powered on: it gets the boot menu and shows up on the
//!    Machines page, and its menu's local entry ends that boot as "local disk"; it is then assigned to `lab#alpha` and powered on again, and boots
//!    generation 1 (the marker on its serial console shows `flakeboot.generation=1`);
//! 4. its page shows the boot timeline: DHCP, script, kernel, initrd done, "booting" (waiting
//!    for the booted system's report, which the busybox client never sends).
//!
//! Every page visited is saved at laptop and phone widths as
//! `target/webui-screenshots/real-*.png`. Needs the daemon binary (`cargo build -p flakeboot`;
//! ./test.sh builds it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::PASSWORD;
use common::browser::{
    Shots, click, connect, fill, screenshots, start_driver, text_of, wait_path, wait_text,
};
use common::real_daemon::{
    laptop, newest_attempt_steps, page_dump, reload_until, setup_code, text, wait_path_prefix,
};
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, Locator};
use flakeboot_hil_tests::{
    APPLIANCE_V4, ApplianceConfig, BOOT_TIMEOUT, FlakeRepo, LAN_IF, MAC, Mode, Scenario,
};
use flakeboot_testbed::{ClientKind, require_tool};
use futures_util::FutureExt;

/// The flake's name, given on the Flakes page.
const FLAKE: &str = "lab";
/// The fixture's host the machine is assigned to, and its qualified name.
const HOST: &str = "alpha";
const QUALIFIED: &str = "lab#alpha";
/// The machine's extra kernel parameters, set on its page: the marker's client name, and a
/// panic ends QEMU at once.
const PARAMS: &str = "fbt.marker=real1 panic=-1";
const CLIENT: &str = "real1";
/// Locking, discovering and building the fixture (three small derivations) takes seconds.
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);
/// From power-on to the machine's first DHCP request and menu script under TCG: about 5 s.
const SEEN_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole story in the browser (about 30 s); past this it fails with its diagnostics
/// instead of hanging until the test runner kills it.
const STORY_TIMEOUT: Duration = Duration::from_secs(180);
/// A page load, and each step of a failure report (chromedriver answers one command at a time:
/// one stuck command would block the report).
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Stage timings: each mark is the time since the previous one.
struct Timings {
    start: Instant,
    last: Instant,
    stages: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn new() -> Timings {
        let now = Instant::now();
        Timings {
            start: now,
            last: now,
            stages: Vec::new(),
        }
    }

    fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.stages.push((stage, now - self.last));
        eprintln!(
            "== browser_real: {stage} done after {:.1} s",
            (now - self.last).as_secs_f64()
        );
        self.last = now;
    }

    fn line(&self) -> String {
        let mut parts: Vec<String> = self
            .stages
            .iter()
            .map(|(s, d)| format!("{}={:.1}", s.replace(' ', "_"), d.as_secs_f64()))
            .collect();
        parts.push(format!("total={:.1}", self.start.elapsed().as_secs_f64()));
        format!("HIL-TIMING scenario=browser_real {}", parts.join(" "))
    }
}

#[test]
fn the_real_appliance_is_set_up_builds_a_flake_and_shows_a_booted_machine_in_chromium() {
    let mut timings = Timings::new();
    require_tool("chromium");
    let driver = require_tool("chromedriver");
    require_tool("nix");
    let mut s = Scenario::new("browser_real", 1);
    let repo = FlakeRepo::new(s.kernel(), s.initrd())
        .unwrap_or_else(|e| s.fail(&format!("flake repository: {e}")));
    let rev = repo
        .commit_marker("rev1")
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let laptop = laptop(s.lan());
    // No [[hosts]], no [[machines]], no [[flakes]]: everything comes from the browser (only the
    // fixture's directory is listed in [nix] allowed_paths, so the browser may add it).
    s.start_appliance(
        &ApplianceConfig::new(Mode::Router)
            .offline_nix()
            .allow_path(repo.path()),
    );
    let code = setup_code(s.appliance(), Duration::from_secs(10));
    timings.mark("serving");

    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("chromium-profile");
    let driver = start_driver(&laptop, &driver);
    let run = Run {
        url: repo.url(),
        rev,
        code,
        shots: screenshots(),
    };
    let browser = laptop
        .thread(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(browse(s, run, profile, timings))
        })
        .unwrap();
    match browser.join() {
        Ok(timings) => println!("{}", timings.line()),
        Err(panic) => {
            eprintln!(
                "--- chromedriver log, last 30 lines ---\n{}",
                driver.tail(30)
            );
            std::panic::resume_unwind(panic)
        }
    }
    drop(repo);
}

/// What the browser needs to know: the flake's URL and revision, the setup code, where
/// screenshots go.
struct Run {
    url: String,
    rev: String,
    code: String,
    shots: Shots,
}

/// Drives chromium through the whole story; on failure prints where the browser was and its
/// page, and the scenario's diagnostics (consoles, the daemon's log and events).
async fn browse(s: Scenario, run: Run, profile: PathBuf, mut timings: Timings) -> Timings {
    let c = connect(&profile).await;
    c.set_window_size(1366, 768).await.unwrap();
    c.update_timeouts(TimeoutConfiguration::new(
        Some(PAGE_TIMEOUT),
        Some(PAGE_TIMEOUT),
        None,
    ))
    .await
    .unwrap();
    let story = async {
        if tokio::time::timeout(STORY_TIMEOUT, story(&c, &s, &run, &mut timings))
            .await
            .is_err()
        {
            panic!("the browser story did not end within {STORY_TIMEOUT:?}");
        }
    };
    let result = AssertUnwindSafe(story).catch_unwind().await;
    if let Err(panic) = result {
        match tokio::time::timeout(PAGE_TIMEOUT, page_dump(&c)).await {
            Ok(dump) => eprintln!("{dump}"),
            Err(_) => eprintln!("--- the browser did not answer within {PAGE_TIMEOUT:?} ---"),
        }
        // `Scenario::fail` printed them already.
        let from_scenario = panic
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("scenario "));
        if !from_scenario {
            s.print_diagnostics();
        }
        let _ = tokio::time::timeout(PAGE_TIMEOUT, c.close()).await;
        std::panic::resume_unwind(panic);
    }
    c.close().await.unwrap();
    timings
}

async fn story(c: &Client, s: &Scenario, run: &Run, timings: &mut Timings) {
    let base = format!("https://{APPLIANCE_V4}");
    let shots = &run.shots;

    // 1. First-run setup, with the code from the daemon's log.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_path(c, "/setup").await;
    shots.take(c, "real-01-setup").await;
    fill(c, "#code", &run.code).await;
    fill(c, "#password", PASSWORD).await;
    fill(c, "#confirm", PASSWORD).await;
    c.find(Locator::Css("#lan_interface"))
        .await
        .unwrap()
        .select_by_value(LAN_IF)
        .await
        .unwrap();
    click(c, "input[name=dhcp_mode][value=router]").await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/").await;
    let dash = wait_text(c, "Recent boots").await;
    assert!(dash.contains("DHCP mode: router"), "{dash}");
    shots.take(c, "real-02-dashboard").await;
    timings.mark("ui setup");

    // 2. Add the fixture flake: locked at the commit, its hosts listed.
    c.goto(&format!("{base}/flakes")).await.unwrap();
    wait_text(c, "Add a flake").await;
    shots.take(c, "real-03-flakes").await;
    fill(c, "#url", &run.url).await;
    fill(c, "#name", FLAKE).await;
    click(c, "form[action='/flakes'] button").await;
    wait_path(c, &format!("/flakes/{FLAKE}")).await;
    let page = wait_text(c, "not built yet").await;
    for want in [&run.rev[..10], HOST, "beta", "diskonly", "cannot netboot"] {
        assert!(
            page.contains(want),
            "{want:?} not on the flake's page:\n{page}"
        );
    }
    shots.take(c, "real-04-flake-added").await;
    timings.mark("flake added");

    // Build alpha and watch the live page until it says succeeded.
    click(
        c,
        &format!("form[action='/flakes/{FLAKE}/build']:has(input[name=host][value={HOST}]) button"),
    )
    .await;
    let build_path = wait_path_prefix(c, "/builds/").await;
    watch_build(c).await;
    let page = wait_text(c, "Generation").await;
    assert!(page.contains(QUALIFIED), "{page}");
    let log = text_of(c, "#build-log").await;
    // The initrd holds this run's marker token: nix really builds it every run.
    assert!(
        log.contains("-alpha-netboot-ramdisk.drv") && log.contains("generation 1"),
        "the build log shows no build of alpha's initrd:\n{log}"
    );
    shots.take(c, "real-05-build-done").await;
    c.goto(&format!("{base}/flakes/{FLAKE}")).await.unwrap();
    let page = wait_text(c, "generation 1").await;
    assert!(
        page.contains(&format!("Generations of {QUALIFIED}")),
        "{page}"
    );
    shots.take(c, "real-06-flake-built").await;
    timings.mark("build");
    eprintln!("== browser_real: {build_path} succeeded");

    // 3. An unassigned machine boots: the menu (which offers the built host), and it shows up.
    let mut first = s.power_on("seen1", ClientKind::Bios, 0, MAC[0]);
    let machines = format!("{base}/machines");
    let list = reload_until(c, &machines, MAC[0], SEEN_TIMEOUT, |t| t.contains(MAC[0])).await;
    assert!(list.contains("boot menu"), "{list}");
    shots.take(c, "real-07-machines-seen").await;
    timings.mark("machine seen");
    let machine = format!("{base}/machines/{}", MAC[0]);
    // The menu's script was served; the boot is "booting" while the menu waits (its default is
    // the local disk).
    reload_until(c, &machine, "the menu script served", SEEN_TIMEOUT, |t| {
        t.contains("GET /boot.ipxe 200 menu of") && t.contains("Booting: at Script")
    })
    .await;
    // iPXE's menu line names it `alpha: lab_alpha generation 1 (rev ...)` ('#' starts an
    // iPXE comment); the line ends when the menu's timeout runs out (the default, "local").
    let offered = format!("generation 1 (rev {})", &run.rev[..12]);
    let menu = tokio::task::block_in_place(|| first.wait_for_serial(&offered, SEEN_TIMEOUT));
    if let Err(e) = menu {
        s.fail(&format!("the boot menu does not offer {offered}: {e}"));
    }
    // The menu's local entry tells the appliance before iPXE exits: the attempt ends there.
    reload_until(c, &machine, "the menu's local entry", SEEN_TIMEOUT, |t| {
        t.contains("local disk") && !t.contains("Booting: at Script")
    })
    .await;
    timings.mark("menu timeout");
    shots.take(c, "real-08-machine-unassigned").await;
    first.stop();
    drop(first);

    // Assign it to the built host, with its own kernel parameters.
    c.find(Locator::Css("#host"))
        .await
        .unwrap()
        .select_by_value(QUALIFIED)
        .await
        .unwrap();
    fill(c, "#label", "QEMU BIOS client").await;
    fill(c, "#kernel_params", PARAMS).await;
    click(c, &format!("form[action='/machines/{}'] button", MAC[0])).await;
    wait_text(c, "Saved.").await;
    shots.take(c, "real-09-machine-assigned").await;
    timings.mark("assigned");

    // Powered on again, it boots generation 1 of the host.
    let client = s.power_on("boot1", ClientKind::Bios, 0, MAC[0]);
    let marker = tokio::task::block_in_place(|| s.expect_marker(&client, CLIENT, BOOT_TIMEOUT));
    let cmdline: Vec<&str> = marker
        .text
        .split_once("cmdline=")
        .map_or("", |(_, c)| c)
        .split_whitespace()
        .collect();
    let rev = format!("flakeboot.rev={}", &run.rev[..12]);
    for word in [
        "flakeboot.host=alpha",
        "flakeboot.generation=1",
        rev.as_str(),
        "console=ttyS0",
        "fbt.marker=real1",
        "panic=-1",
    ] {
        if !cmdline.contains(&word) {
            s.fail(&format!(
                "`{word}` is not on the booted command line {cmdline:?}"
            ));
        }
    }
    timings.mark("boot");

    // 4. Its page: the boot timeline of the boot that just happened, and the one before.
    let page = reload_until(
        c,
        &machine,
        "a complete boot (booting: its system has not reported yet)",
        Duration::from_secs(15),
        |t| t.contains("booting"),
    )
    .await;
    let steps = newest_attempt_steps(c).await;
    // DHCP, (no TFTP: the NIC ROM is iPXE already), script, kernel, initrd.
    assert_eq!(steps, ["ok", "skipped", "ok", "ok", "ok"], "{page}");
    assert!(
        page.contains("local disk") && !page.contains("Stopped after Script"),
        "the menu boot: {page}"
    );
    shots.take(c, "real-10-machine-booted").await;
    c.goto(&machines).await.unwrap();
    let list = wait_text(c, "QEMU BIOS client").await;
    assert!(
        list.contains(QUALIFIED) && list.contains("booted"),
        "{list}"
    );
    shots.take(c, "real-11-machines").await;
    c.goto(&format!("{base}/")).await.unwrap();
    // The busybox client never reports: its boot waits for the system's report.
    let dash = wait_text(c, "waiting for the system's report").await;
    assert!(dash.contains("QEMU BIOS client"), "{dash}");
    c.find(Locator::Css(&format!(
        "a[href='/machines/{}#timeline']",
        MAC[0]
    )))
    .await
    .unwrap();
    shots.take(c, "real-12-dashboard-after").await;
    timings.mark("timeline");
    drop(client);
}

/// On a build's page: follows the live state (the page's script updates it from the build's
/// event stream, then reloads the finished page) until "succeeded"; fails at once on any other
/// end. No screenshot here: the fixture builds in about a second and a screenshot taken while
/// the script reloads the page can hang chromium's DevTools.
async fn watch_build(c: &Client) {
    let start = Instant::now();
    loop {
        let state = match c.find(Locator::Css("#build-state")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            // The live view reloads the page when the build ends.
            Err(_) => String::new(),
        };
        match state.as_str() {
            "succeeded" => return,
            "failed" | "cancelled" | "timed out" => {
                panic!("the build ended {state}:\n{}", text(c).await)
            }
            _ => {}
        }
        assert!(
            start.elapsed() < BUILD_TIMEOUT,
            "the build did not finish within {BUILD_TIMEOUT:?} (state {state:?}):\n{}",
            text(c).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
