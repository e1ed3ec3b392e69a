//! Issue 4 end to end: a flake in a git repository becomes a bootable host, and its generations
//! are what a real machine boots. The fixture flake (with the real kernel and this run's marker
//! initramfs committed) is added by `[[flakes]]`, the daemon locks and builds it with real nix,
//! and a BIOS client (SeaBIOS + iPXE ROM) assigned to host `alpha` boots:
//! 1. generation 1 (revision 1);
//! 2. after a commit and `flakeboot flake update lab --wait`: generation 2 (revision 2);
//! 3. after `flakeboot flake rollback alpha 1`: generation 1 (revision 1) again;
//!    `flakeboot flake unpin alpha` then makes generation 2 current again (no boot: the iPXE
//!    script the appliance serves the machine is checked, as after every step).
//!
//! Each time the marker line printed by the booted initramfs shows the kernel command line:
//! `init=<toplevel>/init`, the host's kernelParams, and `flakeboot.host/generation/rev`.

use std::time::{Duration, Instant};

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script};
use flakeboot_hil_tests::{
    APPLIANCE_V4, ApplianceConfig, BOOT_TIMEOUT, FlakeCli, FlakeRepo, Generation, LoggedEvent, MAC,
    Mode, Scenario, Timeline, missing_stages,
};
use flakeboot_testbed::{ClientKind, QemuClient, require_tool};

/// The flake's name in the config (its hosts can be written `lab#<host>`).
const FLAKE: &str = "lab";
/// The fixture's host the machine is assigned to.
const HOST: &str = "alpha";
/// Per-machine parameters: the marker's client name; a panic ends QEMU at once.
const EXTRA: &str = "fbt.marker=alpha panic=-1";
/// How long the boot services may take to serve a generation the CLI already reports (the flake
/// catalogue is refreshed after the store records a build).
const SERVE_DELAY: Duration = Duration::from_secs(5);
/// Locking, discovering and building the fixture (three small derivations) takes seconds.
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn machine_boots_each_generation_of_its_flake_host_and_rolls_back() {
    let start = Instant::now();
    require_tool("nix");
    let mut s = Scenario::new("flake_generations", 1);
    let repo = FlakeRepo::new(s.kernel(), s.initrd())
        .unwrap_or_else(|e| s.fail(&format!("flake repository: {e}")));
    let rev1 = repo
        .commit_marker("rev1")
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let config = ApplianceConfig::new(Mode::Router)
        .flake(&repo.url(), FLAKE)
        .machine(MAC[0], HOST, EXTRA);
    let mut timings = vec![("setup", start.elapsed())];

    let t = Instant::now();
    s.start_appliance(&config);
    timings.push(("serving", t.elapsed()));
    let cli = FlakeCli::new(s.appliance().state_dir());
    let gens = cli
        .wait_for_generation(HOST, 1, BUILD_TIMEOUT)
        .unwrap_or_else(|e| s.fail(&format!("the config flake was not built: {e}")));
    timings.push(("build gen 1", t.elapsed()));
    let gen1 = generation(&s, &gens, 1, &rev1);
    expect_current(&s, &gens, &gen1);

    let t = Instant::now();
    boot(&s, "boot-gen1", &gen1, &rev1);
    timings.push(("boot gen 1", t.elapsed()));

    let rev2 = repo
        .commit_marker("rev2")
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let t = Instant::now();
    cli.update(FLAKE)
        .unwrap_or_else(|e| s.fail(&format!("update after a new commit: {e}")));
    timings.push(("update to gen 2", t.elapsed()));
    let gens = cli
        .generations(HOST)
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let gen2 = generation(&s, &gens, 2, &rev2);
    expect_current(&s, &gens, &gen2);
    if gen2.init == gen1.init {
        s.fail(&format!(
            "revision 2 built the same toplevel as revision 1: {gens:?}"
        ));
    }

    let t = Instant::now();
    boot(&s, "boot-gen2", &gen2, &rev2);
    timings.push(("boot gen 2", t.elapsed()));

    cli.rollback(HOST, 1)
        .unwrap_or_else(|e| s.fail(&format!("rollback to generation 1: {e}")));
    let gens = cli
        .generations(HOST)
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    expect_current(&s, &gens, &gen1);
    let t = Instant::now();
    boot(&s, "boot-rollback", &gen1, &rev1);
    timings.push(("boot rollback", t.elapsed()));

    // Unpinned, the host's newest generation is current again.
    cli.unpin(HOST)
        .unwrap_or_else(|e| s.fail(&format!("unpin: {e}")));
    let gens = cli
        .generations(HOST)
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    expect_current(&s, &gens, &gen2);
    timings.push(("total", start.elapsed()));

    let line: Vec<String> = timings
        .iter()
        .map(|(what, d)| format!("{}={:.1}", what.replace(' ', "_"), d.as_secs_f64()))
        .collect();
    println!("HIL-TIMING scenario=flake_generations {}", line.join(" "));
}

/// Generation `number` from the CLI's list, checked to be of revision `rev`.
fn generation(s: &Scenario, gens: &[Generation], number: u32, rev: &str) -> Generation {
    let Some(g) = gens.iter().find(|g| g.number == number) else {
        s.fail(&format!("{HOST} has no generation {number}: {gens:?}"))
    };
    if g.revision.as_deref() != Some(rev) {
        s.fail(&format!(
            "generation {number} of {HOST} should be revision {rev}: {g:?}"
        ));
    }
    if !g.init.starts_with("/nix/store") || !g.init.ends_with("init") {
        s.fail(&format!("generation {number} has no toplevel init: {g:?}"));
    }
    g.clone()
}

/// Generation `g` is the host's current one: the iPXE script the appliance hands the machine
/// (fetched with curl inside the LAN's namespace) boots it within [`SERVE_DELAY`], and the CLI's
/// `current` flag marks it alone.
fn expect_current(s: &Scenario, gens: &[Generation], g: &Generation) {
    let url = format!("http://{APPLIANCE_V4}/boot.ipxe?mac={}", MAC[0]);
    let rev = g.revision.as_deref().unwrap_or_default();
    let expected = [
        format!("flakeboot.generation={}", g.number),
        format!("flakeboot.rev={}", rev.get(..12).unwrap_or(rev)),
    ];
    let start = Instant::now();
    loop {
        let script = s
            .lan()
            .server
            .run(&["curl", "-sS", "--fail", "--max-time", "10", &url])
            .unwrap_or_else(|e| s.fail(&format!("curl {url}: {e}")));
        let missing = expected
            .iter()
            .find(|word| !script.split_whitespace().any(|w| w == word.as_str()));
        match missing {
            None => break,
            Some(word) if start.elapsed() > SERVE_DELAY => s.fail(&format!(
                "the appliance should serve generation {} of {HOST}: after {:?} no `{word}` in \
                 its script for {}:\n{script}",
                g.number,
                start.elapsed(),
                MAC[0]
            )),
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    eprintln!(
        "== flake_generations: generation {} served {} ms after the CLI reported it",
        g.number,
        start.elapsed().as_millis()
    );
    if gens.iter().any(|x| x.current.is_none()) {
        s.fail(&format!(
            "`flakeboot flake generations` must mark each generation current or not: {gens:?}"
        ));
    }
    let current: Vec<u32> = gens
        .iter()
        .filter(|x| x.current == Some(true))
        .map(|x| x.number)
        .collect();
    if current != [g.number] {
        s.fail(&format!(
            "generation {} of {HOST} should be the one current, the CLI says {current:?}: \
             {gens:?}",
            g.number
        ));
    }
}

/// Power on a client assigned to the host, wait for the marker and check the command line names
/// generation `g` of revision `rev`.
fn boot(s: &Scenario, name: &str, g: &Generation, rev: &str) {
    let client = s.power_on(name, ClientKind::Bios, 0, MAC[0]);
    let marker = s.expect_marker(&client, "alpha", BOOT_TIMEOUT);
    let cmdline: Vec<&str> = marker
        .text
        .split_once("cmdline=")
        .map_or("", |(_, c)| c)
        .split_whitespace()
        .collect();
    let short = rev.get(..12).unwrap_or(rev);
    let init = format!("init={}", g.init.display());
    let generation = format!("flakeboot.generation={}", g.number);
    let revision = format!("flakeboot.rev={short}");
    // init=, the host's boot.kernelParams, the flakeboot.* identity, the machine's parameters.
    for word in [
        init.as_str(),
        "console=ttyS0",
        "quiet",
        "flakeboot.host=alpha",
        &generation,
        &revision,
        "fbt.marker=alpha",
        "panic=-1",
    ] {
        if !cmdline.contains(&word) {
            s.fail(&format!(
                "{name}: `{word}` is not on the booted command line {cmdline:?}"
            ));
        }
    }
    let events = this_boots_events(s, &client);
    let t = Timeline::new("flake_generations", &client, &events);
    eprint!("{t}");
    println!("{}", t.summary());
    eprintln!(
        "== flake_generations: {name} booted generation {} (rev {short}) in {:.1} s",
        g.number,
        marker.at.as_secs_f64()
    );
}

/// The appliance's boot events for `client`'s MAC since it was powered on (the same machine boots
/// three times), once they include every stage of a boot; events are written by a background
/// task, so this waits up to 5 s for the last ones.
fn this_boots_events(s: &Scenario, client: &QemuClient) -> Vec<LoggedEvent> {
    let stages = [Dhcp, Script, Kernel, Initrd];
    let mut missing = Vec::new();
    for _ in 0..50 {
        let events: Vec<LoggedEvent> = s
            .client_events(client, false)
            .into_iter()
            .filter(|e| e.at >= client.started_at())
            .collect();
        missing = missing_stages(&events, &stages);
        if missing.is_empty() {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    s.fail(&format!(
        "the appliance recorded no served {missing:?} event for {} since its power-on",
        client.name()
    ))
}
