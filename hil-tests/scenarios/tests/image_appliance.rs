//! The appliance image itself (image/build.sh) booted in QEMU under OVMF on the test LAN, next
//! to dnsmasq as the LAN's DHCP server:
//! - it boots to flakeboot serving on its LAN port with the data partition grown to the disk
//!   and DNS from the lease; set up through its HTTPS API, it builds a flake served on the LAN
//!   with its own nix, and a second QEMU machine netboots the result, which reports up; then
//!   `flakeboot firmware reboot --development` boots slot a once in the development mode (a
//!   writable overlay root, the debug shell); then
//!   `flakeboot firmware upload` from the LAN: an unsigned and a tampered bundle are refused,
//!   the signed update is installed, and after `flakeboot firmware reboot` slot b is blessed,
//!   a normal boot again (the same data partition on every boot);
//! - a bad update (from an update disk; its daemon fails health) falls back to the old slot
//!   with /var intact;
//! - a corrupted slot (written offline, then bytes overwritten) falls back too, and slot a,
//!   with no DHCP server on the LAN, takes the documented static fallback address.
//!
//! Every boot is under OVMF's Secure Boot build, enforcing, with the image's own UEFI certificate
//! enrolled (`ovmf-vars-secboot.fd`): the first boot checks that the kernel reports it, and the
//! corrupted-slot test first shows a UKI changed by one byte refused by the firmware.
//!
//! Boots share work: each VM boot checks as much as it can (a CI run has a time budget).
//! The images come from `image/test-artifacts.sh` (rebuilt only when an input changed). Each
//! boot under TCG takes 60-90 s; the rollback tests boot 4-5 times, each in a fresh QEMU
//! process ([`ApplianceVm`]). Every boot phase has its
//! own deadline ([`PHASES`]): a hung boot fails within minutes with the console tail and the
//! vCPUs' instruction pointers, and each test ends with its count of boots and restarts
//! (`HIL-BOOTS`), including resets that no kernel announced (the board's watchdog).

// A test fails loudly: a panic with the console tail is how it reports failure.
#![allow(clippy::panic)]
// `value["key"]` on JSON is Null when absent (serde_json never panics there).
#![allow(clippy::indexing_slicing)]

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_hil_tests::{LAN_IF, MAC, ROUTER_V4, Scenario};
use flakeboot_testbed::{
    BootPhases, ClientKind, LINUX_KERNEL_START, LINUX_RESTART, PhaseRules, Proc, cpu_pointers,
    monitor_args, require_tool, workspace_root,
};
use serde_json::{Value, json};

const APPLIANCE_MAC: &str = "52:54:00:fb:a0:01";
const VERSION: &str = "0.1.0";
/// One boot of the appliance to a healthy daemon, generously (measured: 60-90 s under TCG).
const BOOT: Duration = Duration::from_secs(300);

/// Each phase of each boot: power-on or restart to the next kernel's first line, and a kernel
/// to its health verdict (measured: 10-30 s and 40-70 s under TCG).
const PHASES: PhaseRules = PhaseRules {
    firmware: Duration::from_secs(240),
    kernel: Duration::from_secs(300),
    kernel_start: LINUX_KERNEL_START,
    restart: LINUX_RESTART,
    verdict: "flakeboot-health: ",
};

/// A firmware phase this long is a hang, not a slow boot (the slowest restart to the next
/// kernel measured in CI: 59 s). OVMF under TCG now and then never finished waking its second
/// vCPU after a warm reset (image/README.md); a board whose firmware hung would be powered off
/// and on, and so is the VM: the test does that and counts it (`HIL-BOOTS`).
const FIRMWARE_HANG: Duration = Duration::from_secs(150);

/// At most this many such resets per test; a firmware that hangs more often fails the test.
const TEST_RESETS: usize = 2;

/// The oldest nix that can evaluate nixpkgs.
const NIX_MIN: (u32, u32) = (2, 18);

fn artifacts() -> PathBuf {
    for tool in [
        "mmdebstrap",
        "mksquashfs",
        "veritysetup",
        "mkfs.fat",
        "mcopy",
        "sfdisk",
        "zstd",
        "qemu-system-x86_64",
        "curl",
    ] {
        require_tool(tool);
    }
    let root = workspace_root();
    let out = artifacts_dir();
    let started = Instant::now();
    let status = Command::new(root.join("image/test-artifacts.sh"))
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("image/test-artifacts.sh: {e}"));
    assert!(status.success(), "image/test-artifacts.sh failed: {status}");
    eprintln!(
        "HIL-TIMING test images ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    out
}

/// Where `image/test-artifacts.sh` puts the test images.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("image-tests")
}

fn image(out: &Path) -> PathBuf {
    out.join(format!("flakeboot-{VERSION}-qemu-x86_64.img"))
}

fn bundle(out: &Path, flavour: &str) -> PathBuf {
    out.join(format!(
        "flakeboot-{VERSION}+{flavour}-qemu-x86_64.bundle.tar"
    ))
}

/// The `flavour` update as a delta bundle against the image's own version.
fn delta_bundle(out: &Path, flavour: &str) -> PathBuf {
    out.join(format!(
        "flakeboot-{VERSION}+{flavour}-qemu-x86_64.delta-from-{VERSION}.bundle.tar"
    ))
}

/// The qemu board's `disk.data_mib`: the data partition's size in the image file.
const IMAGE_DATA_MIB: u64 = 320;

/// Space the VM's disk has beyond the image, as on a real disk larger than the image: the data
/// partition takes it at first boot (in the initrd, image/dracut/).
const DISK_SPARE_MIB: u64 = 1024;

/// A private copy of the built image (the VM writes to its disk), [`DISK_SPARE_MIB`] larger.
fn disk_copy(s: &Scenario, out: &Path) -> PathBuf {
    let disk = s.dir().join("disk.img");
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(image(out))
        .arg(&disk)
        .status()
        .unwrap_or_else(|e| panic!("cp: {e}"));
    assert!(status.success(), "copying the image failed");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap_or_else(|e| panic!("{}: {e}", disk.display()));
    let len = file.metadata().map(|m| m.len()).unwrap_or_default();
    file.set_len(len + DISK_SPARE_MIB * 1024 * 1024)
        .unwrap_or_else(|e| panic!("growing {}: {e}", disk.display()));
    disk
}

/// Reads a file off the ESP of the image `disk` (at 1 MiB, as image/build.sh lays it out), or,
/// given `bytes`, replaces it; returns what was read (or `bytes`).
fn esp_file(disk: &Path, path: &str, bytes: Option<&[u8]>) -> Vec<u8> {
    let fs = format!("{}@@1M", disk.display());
    let local = disk.with_extension("esp-file");
    let mut cmd = Command::new("mcopy");
    cmd.args(["-o", "-i", &fs]).env("MTOOLS_SKIP_CHECK", "1");
    match bytes {
        Some(bytes) => {
            std::fs::write(&local, bytes).unwrap_or_else(|e| panic!("{}: {e}", local.display()));
            cmd.arg(&local).arg(path);
        }
        None => {
            cmd.arg(path).arg(&local);
        }
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("mcopy: {e}"));
    assert!(
        out.status.success(),
        "mcopy {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = std::fs::read(&local).unwrap_or_else(|e| panic!("{}: {e}", local.display()));
    let _ = std::fs::remove_file(&local);
    read
}

/// The MiB on a `FLAKEBOOT-DATA-SIZE N MiB` console line (the data file system's size).
fn data_size_mib(line: &str) -> Option<u64> {
    line.split("FLAKEBOOT-DATA-SIZE ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The appliance VM on tap 0 with its serial console in a file.
///
/// QEMU runs with `-no-reboot`: when the guest restarts (a reboot, a panic, the watchdog) QEMU
/// ends and the test starts it again on the same disk and firmware variables, so every boot is
/// a cold start of a fresh QEMU process, as after pulling a board's power plug. Warm resets
/// inside one QEMU process hung OVMF now and then under TCG, three in a row in one CI run
/// (image/README.md); none has been seen in a cold start so far.
struct ApplianceVm {
    qemu: RefCell<Proc>,
    /// The server namespace's name and QEMU's command line, to power the VM on again.
    netns: String,
    argv: Vec<String>,
    serial: PathBuf,
    monitor: PathBuf,
    started: Instant,
    phases: RefCell<BootPhases>,
    /// QEMU processes started after the first (one per restart or test reset).
    power_ons: Cell<usize>,
}

impl ApplianceVm {
    fn start(s: &Scenario, disk: &Path, update: Option<&Path>) -> ApplianceVm {
        let serial = s.dir().join("appliance-serial.log");
        let monitor = s.dir().join("appliance-monitor.sock");
        let script = workspace_root().join("qemu/image.sh");
        // Secure Boot enforcing, the image's own certificate enrolled: a board as shipped.
        let vars = artifacts_dir().join("ovmf-vars-secboot.fd");
        let mut argv: Vec<String> = vec![
            "env".to_owned(),
            "QEMU_SECURE_BOOT=1".to_owned(),
            format!("OVMF_VARS={}", vars.display()),
            script.display().to_string(),
            disk.display().to_string(),
            s.lan().tap_dev(0).to_owned(),
            APPLIANCE_MAC.to_owned(),
            serial.display().to_string(),
            "-no-reboot".to_owned(),
        ];
        argv.extend(monitor_args(&monitor));
        if let Some(bundle) = update {
            argv.extend([
                "-drive".to_owned(),
                format!(
                    "if=none,id=upd,format=raw,readonly=on,file={}",
                    bundle.display()
                ),
                "-device".to_owned(),
                "virtio-blk-pci,drive=upd,serial=flakeboot-update".to_owned(),
            ]);
        }
        let netns = s.lan().server.name().to_owned();
        let qemu = Self::power_on(&netns, &argv);
        eprintln!(
            "== appliance VM started, serial console {}",
            serial.display()
        );
        ApplianceVm {
            qemu: RefCell::new(qemu),
            netns,
            argv,
            serial,
            monitor,
            started: Instant::now(),
            phases: RefCell::new(BootPhases::new(PHASES, Instant::now())),
            power_ons: Cell::new(0),
        }
    }

    /// A new QEMU process for the VM (`qemu/image.sh` appends to the serial console's file).
    fn power_on(netns: &str, argv: &[String]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).args(argv);
        Proc::spawn("appliance-vm", cmd)
            .unwrap_or_else(|e| panic!("starting the appliance VM: {e}"))
    }

    /// Starts QEMU again when the guest's restart ended it (`-no-reboot`); a QEMU that failed
    /// fails the test with its output.
    fn follow_restart(&self) {
        let Some(status) = self.qemu.borrow_mut().exited() else {
            return;
        };
        assert!(
            status.success(),
            "the appliance's QEMU ended with {status}:\n{}",
            self.qemu.borrow().tail(20)
        );
        self.power_cycle();
    }

    /// Ends this QEMU process (if it still runs) and starts a new one on the same disk.
    fn power_cycle(&self) {
        let mut qemu = self.qemu.borrow_mut();
        qemu.stop();
        // QEMU made the monitor's socket; the next one makes it again.
        let _ = std::fs::remove_file(&self.monitor);
        *qemu = Self::power_on(&self.netns, &self.argv);
        self.power_ons.set(self.power_ons.get() + 1);
    }

    fn console(&self) -> String {
        let bytes = std::fs::read(&self.serial).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn tail(console: &str) -> String {
        let tail: Vec<&str> = console.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        tail.join("\n")
    }

    /// Fails the test when the current boot phase is past its deadline; first power-cycles a
    /// VM whose firmware hung ([`FIRMWARE_HANG`]), at most [`TEST_RESETS`] times. Starts QEMU
    /// again after the guest restarted.
    fn check_phases(&self, console: &str) {
        self.follow_restart();
        let now = Instant::now();
        let mut overdue = self.phases.borrow_mut().observe(console, now);
        let stuck = self.phases.borrow().stuck_in_firmware(now, FIRMWARE_HANG);
        if stuck && self.phases.borrow().test_resets < TEST_RESETS {
            eprintln!(
                "== appliance firmware: no kernel {:?} after power-on or a restart ({:.0}s after \
                 power-on); vCPUs:\n{}\n== powering it off and on (OVMF's AP wake-up hang \
                 under TCG, see image/README.md)",
                FIRMWARE_HANG,
                self.secs(),
                cpu_pointers(&self.monitor),
            );
            self.power_cycle();
            self.phases.borrow_mut().reset_by_test(now);
            overdue = Ok(());
        }
        if let Err(overdue) = overdue {
            panic!(
                "appliance boot hung: {overdue} ({:.0}s after power-on; {})\nvCPUs:\n{}\nlast console lines:\n{}",
                self.secs(),
                self.phases.borrow(),
                cpu_pointers(&self.monitor),
                Self::tail(console)
            );
        }
    }

    /// Waits until `pred` holds for the console's lines containing `needle`; returns them.
    fn wait_lines(
        &self,
        needle: &str,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let resets_before = self.phases.borrow().test_resets;
        loop {
            let console = self.console();
            self.check_phases(&console);
            // A firmware hang the test reset cost its wait: the deadline moves by as much.
            let resets = self.phases.borrow().test_resets - resets_before;
            let deadline = deadline + FIRMWARE_HANG * resets as u32;
            let lines: Vec<String> = console
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if pred(&lines) {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "appliance console: no matching {needle:?} line after {timeout:?}; last lines:\n{}",
                    Self::tail(&console)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let lines = self.wait_lines(needle, timeout, |l| !l.is_empty());
        lines.first().cloned().unwrap_or_default()
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Drop for ApplianceVm {
    /// Every test (passed or failed) says how often its VM booted and restarted.
    fn drop(&mut self) {
        let console = self.console();
        let mut phases = self.phases.borrow_mut();
        // Count what the console holds now; a deadline no longer matters.
        let _ = phases.observe(&console, Instant::now());
        println!(
            "HIL-BOOTS {} after {:.0}s ({} cold starts of QEMU after the first)",
            phases,
            self.secs(),
            self.power_ons.get()
        );
    }
}

/// The HTTP status of GET `url`, from the test side of the LAN.
fn http_status(s: &Scenario, url: &str) -> String {
    let argv = [
        "curl",
        "-s",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    ];
    let got = s
        .lan()
        .server
        .run(&argv)
        .unwrap_or_else(|e| panic!("curl {url}: {e}"));
    got.trim().to_owned()
}

/// The version on a `FLAKEBOOT-NIX nix (Nix) 2.26.3 build-users N` banner line: (major, minor).
fn nix_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("FLAKEBOOT-NIX ").nth(1)?;
    let version = rest
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = version.split(['.', '+', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The `build-users N` count on the same line.
fn nix_build_users(line: &str) -> Option<u32> {
    line.split("build-users ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Two builds of the same inputs give the same bundle, byte for byte: root, verity tree and
/// the Secure Boot signatures of the UKIs (their signing time is `SOURCE_DATE_EPOCH`) and the
/// bundle's own signature. The broken test bundle is built again (bundle only, about 10 s) and
/// compared with the one the test images hold.
#[test]
fn image_bundle_build_is_reproducible() {
    let out = artifacts();
    let again = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let bin = again.path().join("broken-flakeboot");
    std::fs::copy(out.join("broken-flakeboot"), &bin).unwrap_or_else(|e| panic!("copy: {e}"));
    let status = Command::new(workspace_root().join("image/build.sh"))
        .arg("qemu-x86_64")
        .env("FLAKEBOOT_OUT", again.path())
        .env("FLAKEBOOT_VERSION", format!("{VERSION}+broken"))
        .env("FLAKEBOOT_BIN", &bin)
        .env("FLAKEBOOT_NO_IMAGE", "1")
        .env("FLAKEBOOT_NO_CARGO", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("image/build.sh: {e}"));
    assert!(status.success(), "image/build.sh failed: {status}");
    let name = bundle(&out, "broken");
    let name = name.file_name().unwrap_or_default();
    let first = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("bundle: {e}"));
    let second = std::fs::read(again.path().join(name)).unwrap_or_else(|e| panic!("bundle: {e}"));
    assert!(first.len() > 1 << 20, "{} bytes", first.len());
    let differ = first.iter().zip(&second).position(|(a, b)| a != b);
    assert!(
        first.len() == second.len() && differ.is_none(),
        "the same inputs built a different bundle: {} and {} bytes, first difference at {differ:?}",
        first.len(),
        second.len()
    );
}

#[test]
fn nix_banner_lines_parse() {
    let line = "FLAKEBOOT-NIX nix (Nix) 2.26.3 build-users 10";
    assert_eq!(nix_version(line), Some((2, 26)));
    assert_eq!(nix_build_users(line), Some(10));
    assert!(nix_version("FLAKEBOOT-NIX nix (Nix) 2.8.0 build-users 0") < Some(NIX_MIN));
    assert_eq!(nix_version("FLAKEBOOT-NIX none build-users 0"), None);
    assert_eq!(data_size_mib("FLAKEBOOT-DATA-SIZE 1311 MiB"), Some(1311));
    assert_eq!(data_size_mib("FLAKEBOOT-DATA-SIZE  MiB"), None);
}

/// `flakeboot-data: data-id ID boot N slot S version V` lines, parsed.
/// The console lines that tell which slot each boot ran and how it ended, for a failure's
/// message.
fn boot_story(console: &str) -> String {
    const MARKS: [&str; 7] = [
        "Linux version ",
        "Command line:",
        "flakeboot-data:",
        "flakeboot-health:",
        "flakeboot-slots:",
        "reboot: ",
        "Kernel panic",
    ];
    let story: Vec<String> = console
        .lines()
        .filter(|l| MARKS.iter().any(|m| l.contains(m)))
        .map(|l| {
            let slot = l
                .split(" flakeboot.slot=")
                .nth(1)
                .and_then(|r| r.chars().next());
            match slot {
                Some(slot) if l.contains("Command line:") => format!("  kernel for slot {slot}"),
                _ => format!("  {}", l.chars().take(160).collect::<String>()),
            }
        })
        .collect();
    story.join("\n")
}

fn data_lines(lines: &[String]) -> Vec<(String, u32, String, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.split("flakeboot-data: data-id ").nth(1)?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [id, "boot", n, "slot", slot, "version", version, ..] => Some((
                    (*id).to_owned(),
                    n.parse().ok()?,
                    (*slot).to_owned(),
                    (*version).to_owned(),
                )),
                _ => None,
            }
        })
        .collect()
}

/// The NixOS-shaped fixture flake (hil-tests/fixtures/nixos-shaped) as a tarball on a web
/// server of the test LAN (busybox httpd on the test side's 10.77.0.1:8081), as a user would
/// publish a flake.
struct FixtureServer {
    _dir: tempfile::TempDir,
    _httpd: Proc,
}

impl FixtureServer {
    const ADDR: &str = "10.77.0.1:8081";

    fn start(s: &Scenario) -> FixtureServer {
        let dir = tempfile::Builder::new()
            .prefix("fbt-fixture-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let flake = dir.path().join("fixture");
        let prepare = workspace_root().join("hil-tests/fixtures/nixos-shaped/prepare.sh");
        let www = dir.path().join("www");
        let ok = |what: &str, out: std::io::Result<std::process::Output>| {
            let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(
            "prepare.sh",
            Command::new(&prepare).arg(&flake).arg(s.kernel()).output(),
        );
        std::fs::create_dir(&www).unwrap_or_else(|e| panic!("{}: {e}", www.display()));
        ok(
            "tar",
            Command::new("tar")
                .args(["czf"])
                .arg(www.join("fixture.tar.gz"))
                .args(["--exclude=.git", "-C"])
                .arg(dir.path())
                .arg("fixture")
                .output(),
        );
        let busybox = require_tool("busybox");
        let httpd = s
            .lan()
            .server
            .spawn(
                "fixture-httpd",
                &[
                    &busybox.to_string_lossy(),
                    "httpd",
                    "-f",
                    "-p",
                    Self::ADDR,
                    "-h",
                    &www.to_string_lossy(),
                ],
            )
            .unwrap_or_else(|e| panic!("busybox httpd: {e}"));
        FixtureServer {
            _dir: dir,
            _httpd: httpd,
        }
    }

    /// The flake's URL.
    fn url(&self) -> String {
        format!("http://{}/fixture.tar.gz", Self::ADDR)
    }

    /// A "binary cache" that has nothing (every path 404).
    fn no_cache_url(&self) -> String {
        format!("http://{}/no-cache", Self::ADDR)
    }
}

/// Polls `GET /api/v1/builds/{id}` until the build ends; the build, which must have succeeded
/// (else the test fails with its log).
fn wait_for_build(admin: &Admin, id: u64) -> Value {
    let start = Instant::now();
    loop {
        let (code, build) = admin.api("GET", &format!("/api/v1/builds/{id}"), None);
        assert_eq!(code, 200, "{build}");
        match build["state"].as_str() {
            Some("succeeded") => return build,
            Some("queued" | "running") if start.elapsed() < Duration::from_secs(900) => {
                std::thread::sleep(Duration::from_secs(2));
            }
            _ => {
                let log = admin.curl.ok(&[
                    &format!("{}/api/v1/builds/{id}/log", admin.base),
                    "-H",
                    &format!("Authorization: Bearer {}", admin.token),
                ]);
                panic!("build {id} did not succeed: {build}\n{log}");
            }
        }
    }
}

#[test]
fn image_boots_to_flakeboot_serving_and_a_client_netboots_from_it() {
    let out = artifacts();
    let mut s = Scenario::new("image_boot", 2);
    s.start_lan_dhcp_server();
    let disk = disk_copy(&s, &out);
    let vm = ApplianceVm::start(&s, &disk, None);

    let banner = vm.wait_for("FLAKEBOOT-ADDRESS eth0 ", BOOT);
    let cidr = banner
        .split("FLAKEBOOT-ADDRESS eth0 ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let ip = cidr.split('/').next().unwrap_or_default().to_owned();
    assert!(
        ip.starts_with("10.77.0.1"),
        "the LAN port should have an address from the LAN's dnsmasq, banner: {banner}"
    );
    vm.wait_for("flakeboot-health: healthy", BOOT);
    let boot_secs = vm.secs();
    // OVMF enforcing Secure Boot with the image's certificate enrolled let this kernel start.
    assert!(
        vm.console().contains("Secure boot enabled"),
        "the kernel does not report Secure Boot enforcing"
    );
    println!("HIL-TIMING image boot to a healthy flakeboot: {boot_secs:.0}s (LAN address {cidr})");

    // The image's nix can evaluate nixpkgs, and builds as nixbld users out of the box.
    let nix = vm.wait_for("FLAKEBOOT-NIX ", BOOT);
    let version = nix_version(&nix);
    assert!(
        version.is_some_and(|v| v >= NIX_MIN),
        "the image's nix must be >= {}.{}: {nix}",
        NIX_MIN.0,
        NIX_MIN.1
    );
    assert!(
        nix_build_users(&nix).is_some_and(|n| n > 0),
        "the image has no nixbld build users: {nix}"
    );

    // nix and git resolve names with the DNS server of the LAN's lease (the router's dnsmasq).
    let dns = vm.wait_for("FLAKEBOOT-DNS ", BOOT);
    assert!(
        dns.split("FLAKEBOOT-DNS ")
            .nth(1)
            .is_some_and(|servers| servers.split_whitespace().any(|s| s == ROUTER_V4)),
        "the appliance should resolve with the lease's DNS server {ROUTER_V4}: {dns}"
    );

    // flakeboot serves HTTP on the LAN port: the image's iPXE binaries.
    let got = http_status(&s, &format!("http://{ip}/ipxe/ipxe.efi"));
    assert_eq!(got, "200", "GET /ipxe/ipxe.efi from the appliance");
    // The web UI's one-time setup code is on the console.
    vm.wait_for("enter the setup code", BOOT);

    // Set up through the HTTPS API as an admin would, give it the NixOS-shaped fixture flake
    // by URL (a tarball on a web server of the LAN), and let the appliance's own nix build it.
    let fixture = FixtureServer::start(&s);
    // Locking the flake (nix on the emulated appliance) is part of `POST /api/v1/flakes`.
    let admin = Admin::set_up(
        Curl::new(&s.lan().server, None, s.dir().join("cookies")).max_time(180),
        &format!("https://{ip}"),
        &|| vm.console(),
        "eth0",
        "proxy",
    );
    // No binary cache on this LAN: a server that has none answers at once (the default,
    // cache.nixos.org, would not resolve here).
    admin.change_settings(|v| v["substituters"] = json!([fixture.no_cache_url()]));
    let (code, flake) = admin.api(
        "POST",
        "/api/v1/flakes",
        Some(&json!({"url": fixture.url(), "name": "fixture"})),
    );
    assert_eq!(code, 201, "adding the fixture flake: {flake}");
    let (code, queued) = admin.api(
        "POST",
        "/api/v1/builds",
        Some(&json!({"flake": "fixture", "host": "node"})),
    );
    assert_eq!(code, 202, "queueing the build: {queued}");
    let built = wait_for_build(&admin, queued["id"].as_u64().unwrap_or_default());
    println!(
        "HIL-TIMING the appliance's nix built fixture#node: generation {} at {:.0}s",
        built["generation"],
        vm.secs()
    );

    // A second machine netboots the result: its address from dnsmasq, its boot file from the
    // appliance (proxyDHCP), the script, kernel and ramdisk over HTTP; stage 2 reports up.
    let (code, assigned) = admin.api(
        "POST",
        &format!("/api/v1/machines/{}", MAC[0]),
        Some(&json!({"host": "fixture#node", "hostname": "image-node"})),
    );
    assert_eq!(code, 200, "assigning the machine: {assigned}");
    let client = s.power_on("client", ClientKind::Uefi, 1, MAC[0]);
    for needle in [
        format!("{ip}/boot.ipxe"),
        "FLAKEBOOT-NIXOS stage 2: /nix/store/".to_owned(),
        "FLAKEBOOT-NIXOS hostname=image-node".to_owned(),
        "FLAKEBOOT-NIXOS reported up".to_owned(),
    ] {
        let line = client
            .wait_for_serial(&needle, Duration::from_secs(300))
            .unwrap_or_else(|e| {
                panic!(
                    "no `{needle}` on the client's console: {e}\n{}",
                    client.console_tail(40)
                )
            });
        eprintln!("== client: {line}");
    }
    // The appliance's own log (on its console) records the script it served to this client,
    // and its API the boot: up, by the system's report.
    vm.wait_lines("stage=\"script\"", Duration::from_secs(60), |l| {
        l.iter()
            .any(|l| l.contains(&format!("mac=\"{}\"", MAC[0])) && l.contains("outcome=Ok"))
    });
    let (code, machine) = admin.api("GET", &format!("/api/v1/machines/{}", MAC[0]), None);
    assert_eq!(code, 200, "{machine}");
    assert_eq!(machine["last_boot"]["state"], "up", "{machine}");
    println!(
        "HIL-TIMING a machine booted the appliance-built host: up at {:.0}s",
        vm.secs()
    );

    let data = data_lines(&vm.wait_lines("flakeboot-data:", BOOT, |l| !l.is_empty()));
    assert_eq!(data.first().map(|d| (d.1, d.2.as_str())), Some((1, "a")));

    // The data partition took the disk's spare space at first boot, and its file system too
    // (`df` counts ext4's size less its own tables: 1,250 MiB of a 1,344 MiB partition; an
    // ungrown one shows under 320).
    let size = vm.wait_for("FLAKEBOOT-DATA-SIZE ", BOOT);
    let mib = data_size_mib(&size);
    println!(
        "HIL-TIMING data file system {mib:?} MiB (image {IMAGE_DATA_MIB} MiB + disk spare {DISK_SPARE_MIB} MiB)"
    );
    assert!(
        mib.is_some_and(|m| m > IMAGE_DATA_MIB + DISK_SPARE_MIB * 3 / 4),
        "the data partition should take the whole disk: {size}"
    );

    // The client VM is done: the appliance's reboot below gets the host's CPUs to itself
    // (OVMF's AP wake-up hang after a reset under TCG comes with load, image/README.md).
    drop(client);
    development_mode_boot(&s, &vm, &admin);
    firmware_update_over_the_api(&s, &vm, &admin, &out);
}

/// The firmware's status once the daemon answers again after a reboot and `done` holds.
fn firmware_after_reboot(admin: &Admin, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, fw) = admin.api("GET", "/api/v1/firmware", None);
        if code == 200 && done(&fw) {
            return fw;
        }
        assert!(
            Instant::now() < deadline,
            "the API after the reboot: {code} {fw}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `flakeboot firmware reboot --development` from the LAN: systemd-boot starts slot a's
/// development profile once; its root is a writable overlay (the console banner writes to
/// /usr and says so), the debug shell runs, and the API says development mode. The boot after
/// it (the update's, below) is a normal one again.
fn development_mode_boot(s: &Scenario, vm: &ApplianceVm, admin: &Admin) {
    let (_, fw) = admin.api("GET", "/api/v1/firmware", None);
    assert_eq!(
        (&fw["development_mode"], &fw["root_fs"]),
        (&json!(false), &json!("squashfs")),
        "{fw}"
    );
    let (ok, said) = firmware_cli(s, admin, &["reboot", "--development"]);
    assert!(
        ok && said.contains("development mode"),
        "flakeboot firmware reboot --development: {said}"
    );
    let dev = vm.wait_lines("FLAKEBOOT-DEV-MODE", BOOT, |l| !l.is_empty());
    assert_eq!(
        dev.first().map(String::as_str).map(str::trim_end),
        Some("FLAKEBOOT-DEV-MODE root overlay writable, debug shell on tty9 active"),
        "{dev:?}"
    );
    let kernel = vm
        .console()
        .lines()
        .rfind(|l| l.contains("Command line:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        kernel.contains("flakeboot.slot=a") && kernel.contains("flakeboot.dev=1"),
        "the development boot's kernel: {kernel}"
    );
    vm.wait_lines("flakeboot-health: healthy", BOOT, |l| l.len() >= 2);
    let fw = firmware_after_reboot(admin, |fw| fw["development_mode"] == true);
    assert_eq!(
        (&fw["root_fs"], &fw["running_slot"]),
        (&json!("overlay"), &json!("a")),
        "{fw}"
    );
    let (ok, said) = firmware_cli(s, admin, &["status"]);
    assert!(
        ok && said.contains("development mode: the root is a writable overlay"),
        "{said}"
    );
    println!(
        "HIL-TIMING development mode: slot a's overlay root up and answering at {:.0}s",
        vm.secs()
    );
}

/// The admin's laptop: `flakeboot firmware ARGS` from the LAN with `--server`, the
/// certificate pinned and the token in a file → (exit status 0, stdout and stderr).
fn firmware_cli(s: &Scenario, admin: &Admin, args: &[&str]) -> (bool, String) {
    let token = s.dir().join("api-token");
    if !token.exists() {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token)
            .unwrap_or_else(|e| panic!("{}: {e}", token.display()));
        std::io::Write::write_all(&mut f, admin.token.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", token.display()));
    }
    let out = s
        .lan()
        .server
        .command(workspace_root().join("target/release/flakeboot"))
        .arg("firmware")
        .args(args)
        .args(["--server", &admin.base, "--pin", &admin.fingerprint])
        .arg("--token-file")
        .arg(&token)
        .output()
        .unwrap_or_else(|e| panic!("flakeboot firmware {args:?}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Bundles an attacker could hand over, made from the good one in the scenario's directory:
/// its manifest alone (unsigned), and its first MiB with the signed manifest's version changed
/// (the signature no longer matches; the refusal comes before any payload byte matters).
fn untrusted_bundles(s: &Scenario, good: &Path) -> [(&'static str, PathBuf, &'static str); 2] {
    let dir = s.dir().join("untrusted");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let run = |cmd: &mut Command| {
        let st = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(st.success(), "{cmd:?}: {st}");
    };
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-xf")
        .arg(good)
        .arg("manifest.json"));
    let unsigned = dir.join("unsigned.bundle.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&unsigned)
        .arg("manifest.json"));
    let mut head = vec![0u8; 1 << 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open(good).unwrap_or_else(|e| panic!("{}: {e}", good.display())),
        &mut head,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", good.display()));
    let at = head
        .windows(6)
        .position(|w| w == b"+updat")
        .unwrap_or_else(|| panic!("no version in {}'s manifest", good.display()));
    head[at + 1] = b'U';
    let tampered = dir.join("tampered.bundle.tar");
    std::fs::write(&tampered, &head).unwrap_or_else(|e| panic!("{}: {e}", tampered.display()));
    [
        ("unsigned", unsigned, "not signed"),
        ("tampered", tampered, "does not verify"),
    ]
}

/// Firmware through the API: the development build on slot a; an unsigned and a tampered
/// bundle refused by `flakeboot firmware upload` with nothing installed; the good update
/// uploaded as a delta bundle (against slot a's version) and installed, `flakeboot firmware
/// reboot` into slot b, which is blessed, and the API then shows slot b running with the new
/// version and the upload's result; the same delta is then refused (slot b is not its base).
fn firmware_update_over_the_api(s: &Scenario, vm: &ApplianceVm, admin: &Admin, out: &Path) {
    vm.wait_for("FLAKEBOOT-DEVELOPMENT-BUILD development build", BOOT);
    let (code, fw) = admin.api("GET", "/api/v1/firmware", None);
    assert_eq!(code, 200, "{fw}");
    assert_eq!(
        (&fw["image"], &fw["running_slot"], &fw["version"]),
        (&json!(true), &json!("a"), &json!(VERSION)),
        "{fw}"
    );
    // The firmware's SecureBoot variable, read by the daemon from efivarfs.
    assert_eq!(fw["secure_boot"], true, "{fw}");
    assert!(
        fw["development"]
            .as_str()
            .is_some_and(|d| d.starts_with("development build")),
        "{fw}"
    );
    // Slot a's version comes from its UKI's .osrel on the ESP; slot b is empty.
    assert_eq!(fw["slots"][0]["entry"]["version"], VERSION, "{fw}");
    assert_eq!(fw["slots"][0]["entry"]["state"], "good", "{fw}");
    assert!(fw["slots"][1]["entry"].is_null(), "{fw}");

    let good = bundle(out, "update");
    for (what, path, says) in untrusted_bundles(s, &good) {
        let (ok, said) = firmware_cli(s, admin, &["upload", &path.display().to_string()]);
        assert!(!ok && said.contains(says), "the {what} bundle: {said}");
    }
    let (_, fw) = admin.api("GET", "/api/v1/firmware", None);
    assert!(fw["slots"][1]["entry"].is_null(), "a refused bundle: {fw}");
    assert_eq!(fw["last_update"]["ok"], false, "{fw}");

    // The update as a delta against slot a: the same slot b as the full bundle would make.
    let delta = delta_bundle(out, "update");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or_default();
    let (full_bytes, delta_bytes) = (size(&good), size(&delta));
    println!(
        "HIL-SIZE update bundle {full_bytes} bytes, its delta from {VERSION} {delta_bytes} bytes ({:.2}%)",
        delta_bytes as f64 * 100.0 / full_bytes as f64
    );
    assert!(
        delta_bytes > 0 && delta_bytes * 20 < full_bytes,
        "the delta is not much smaller: {delta_bytes} of {full_bytes} bytes"
    );
    let started = Instant::now();
    let (ok, said) = firmware_cli(
        s,
        admin,
        &["upload", &delta.display().to_string(), "--json"],
    );
    assert!(ok, "uploading the delta bundle: {said}");
    println!(
        "HIL-TIMING firmware upload of a {} KiB delta checked and installed in {:.0}s",
        delta_bytes >> 10,
        started.elapsed().as_secs_f64()
    );
    assert!(
        said.contains("\"slot\": \"b\"")
            && said.contains("\"version\": \"0.1.0+update\"")
            && said.contains(&format!("\"delta_from\": \"{VERSION}\"")),
        "{said}"
    );
    let (_, fw) = admin.api("GET", "/api/v1/firmware", None);
    assert_eq!(fw["slots"][1]["entry"]["state"], "trying", "{fw}");
    assert_eq!(fw["slots"][1]["entry"]["version"], "0.1.0+update", "{fw}");

    let (ok, said) = firmware_cli(s, admin, &["reboot"]);
    assert!(ok, "flakeboot firmware reboot: {said}");
    vm.wait_lines("flakeboot-health: healthy", BOOT, |l| {
        l.iter().any(|l| l.contains("slot b"))
    });
    let slots = vm.wait_lines("flakeboot-slots:", BOOT, |l| {
        l.iter().any(|l| l.contains("running slot b"))
    });
    let last = slots.last().cloned().unwrap_or_default();
    assert!(
        last.contains("flakeboot-2-b.efi") && !last.contains("flakeboot-2-b+"),
        "slot b was not blessed: {last}"
    );
    // The same data partition (/var) on both boots, each slot with its own version.
    let data = data_lines(&vm.wait_lines("flakeboot-data:", BOOT, |l| {
        data_lines(l).iter().any(|d| d.2 == "b")
    }));
    let summary: Vec<(u32, &str, &str)> = data
        .iter()
        .map(|d| (d.1, d.2.as_str(), d.3.as_str()))
        .collect();
    // Boot 2 is the development mode's: /var is the data partition there too.
    assert_eq!(
        summary,
        [
            (1, "a", VERSION),
            (2, "a", VERSION),
            (3, "b", "0.1.0+update")
        ]
    );
    assert!(
        data.iter().all(|d| d.0 == data[0].0),
        "the data partition changed across the update: {data:?}"
    );
    let fw = firmware_after_reboot(admin, |fw| fw["running_slot"] == "b");
    assert_eq!(fw["version"], "0.1.0+update", "{fw}");
    // A normal boot again: the development mode was that one boot only.
    assert_eq!(
        (&fw["development_mode"], &fw["root_fs"]),
        (&json!(false), &json!("squashfs")),
        "{fw}"
    );
    let dev_lines = vm.console().matches("FLAKEBOOT-DEV-MODE").count();
    assert_eq!(dev_lines, 1, "only the development boot prints its banner");
    assert_eq!(fw["slots"][1]["entry"]["state"], "good", "{fw}");
    assert_eq!(fw["last_update"]["ok"], true, "{fw}");
    assert_eq!(fw["last_update"]["version"], "0.1.0+update", "{fw}");
    // Slot b runs 0.1.0+update: the delta from 0.1.0 has no base here and is refused, with
    // slot a (0.1.0) left bootable.
    let (ok, said) = firmware_cli(s, admin, &["upload", &delta.display().to_string()]);
    assert!(
        !ok && said.contains(&format!("delta bundle from version {VERSION}"))
            && said.contains("slot b's root")
            && said.contains("install the full bundle"),
        "the delta on slot b: {said}"
    );
    let (_, fw) = admin.api("GET", "/api/v1/firmware", None);
    assert_eq!(fw["slots"][0]["entry"]["version"], VERSION, "{fw}");
    let (ok, said) = firmware_cli(s, admin, &["status"]);
    assert!(
        ok && said.contains("* slot b: 0.1.0+update (good")
            && said.contains("UEFI Secure Boot: enforcing"),
        "{said}"
    );
    println!(
        "HIL-TIMING firmware: slot b running and blessed at {:.0}s",
        vm.secs()
    );
}

#[test]
fn image_bad_update_falls_back_to_the_old_slot_with_var_intact() {
    let out = artifacts();
    let mut s = Scenario::new("image_bad_update", 1);
    s.start_lan_dhcp_server();
    let disk = disk_copy(&s, &out);
    let vm = ApplianceVm::start(&s, &disk, Some(&bundle(&out, "broken")));

    vm.wait_for("installed in slot b as flakeboot-2-b+3.efi", BOOT);
    // Three tries of slot b (each reboots when flakeboot-health fails), then slot a again.
    let data = data_lines(&vm.wait_lines("flakeboot-data:", 5 * BOOT, |l| {
        data_lines(l).iter().any(|d| d.1 > 1 && d.2 == "a")
    }));
    println!(
        "HIL-TIMING bad update: back on slot a after {:.0}s",
        vm.secs()
    );
    let slots = vm.wait_lines("flakeboot-slots:", BOOT, |l| {
        l.iter().filter(|l| l.contains("running slot a")).count() >= 2
    });
    let ids: Vec<&str> = data.iter().map(|d| d.0.as_str()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the data partition changed: {data:?}"
    );
    // Slot b's tries are its kernels (systemd-boot counted each down before starting it): a
    // try reset before its userspace marked the data partition (a watchdog) is still a try.
    let console = vm.console();
    let kernels_b = console
        .lines()
        .filter(|l| l.contains("Command line:") && l.contains(" flakeboot.slot=b"))
        .count();
    let on_b: Vec<_> = data.iter().filter(|d| d.2 == "b").collect();
    assert_eq!(
        kernels_b,
        3,
        "slot b should get exactly 3 tries: {data:?}\n{}",
        boot_story(&console)
    );
    assert!(!on_b.is_empty(), "{data:?}");
    assert!(on_b.iter().all(|d| d.3 == "0.1.0+broken"), "{data:?}");
    // /var kept its boot counter across both slots: each boot that reached it counted once.
    let back = data.last().cloned().unwrap_or_default();
    assert_eq!(
        (back.1 as usize, back.2.as_str(), back.3.as_str()),
        (data.len(), "a", VERSION),
        "{data:?}\n{}",
        boot_story(&console)
    );
    let last = slots.last().cloned().unwrap_or_default();
    assert!(
        last.contains("flakeboot-2-b+0-3.efi") && last.contains("flakeboot-1-a.efi"),
        "slot b should be marked bad, slot a good: {last}"
    );
    // The same bundle is not applied again on the old slot.
    assert_eq!(
        vm.console()
            .matches("flakeboot-update: applying bundle")
            .count(),
        1
    );
}

#[test]
fn image_corrupted_slot_falls_back_and_takes_the_static_fallback_address() {
    let out = artifacts();
    let s = Scenario::new("image_corrupt", 1);
    // No DHCP server on this LAN: once back on slot a the appliance takes the documented
    // fallback address; the test side joins that subnet.
    s.lan()
        .server
        .addr(LAN_IF, "192.168.1.1/24")
        .unwrap_or_else(|e| panic!("address on {LAN_IF}: {e}"));
    let disk = disk_copy(&s, &out);

    // Secure Boot enforcing: slot a's UKI with one byte changed is refused by the firmware (its
    // Authenticode signature no longer matches), and no kernel starts; systemd-boot itself,
    // signed with the same key, is loaded.
    let uki = "::EFI/Linux/flakeboot-1-a.efi";
    let signed = esp_file(&disk, uki, None);
    let mut changed = signed.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x20;
    esp_file(&disk, uki, Some(&changed));
    let serial = {
        let refused = ApplianceVm::start(&s, &disk, None);
        // systemd-boot's LoadImage of it fails: "Error loading \EFI\Linux\...: Access denied".
        let line = refused.wait_for("flakeboot-1-a.efi: Access denied", BOOT);
        println!(
            "HIL-TIMING a changed UKI refused by the firmware after {:.0}s: {}",
            refused.secs(),
            line.trim()
        );
        assert!(
            !refused.console().contains("Linux version"),
            "a kernel started from a changed UKI"
        );
        refused.serial.clone()
    };
    // The next VM starts a console file of its own (its boots are counted from it).
    std::fs::rename(&serial, s.dir().join("appliance-serial-refused-uki.log"))
        .unwrap_or_else(|e| panic!("{}: {e}", serial.display()));
    esp_file(&disk, uki, Some(&signed));

    // Install the good update into slot b offline, then overwrite 4 MiB at the start of root-b.
    let flakeboot = workspace_root().join("target/release/flakeboot");
    let apply = Command::new(&flakeboot)
        .args(["update", "apply"])
        .arg(bundle(&out, "update"))
        .arg("--disk")
        .arg(&disk)
        .arg("--keys")
        .arg(out.join("update-keys"))
        .args(["--board", "qemu-x86_64"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", flakeboot.display()));
    let said = String::from_utf8_lossy(&apply.stdout).into_owned();
    assert!(
        apply.status.success() && said.contains("installed in slot b"),
        "offline apply failed: {said}{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let layout = Command::new("sfdisk")
        .args(["--json"])
        .arg(&disk)
        .output()
        .unwrap_or_else(|e| panic!("sfdisk: {e}"));
    let layout: serde_json::Value =
        serde_json::from_slice(&layout.stdout).unwrap_or_else(|e| panic!("sfdisk --json: {e}"));
    let start = layout["partitiontable"]["partitions"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "root-b"))
        .and_then(|p| p["start"].as_u64())
        .unwrap_or_else(|| panic!("no root-b in {layout}"));
    let status = Command::new("dd")
        .args([
            "if=/dev/urandom",
            &format!("of={}", disk.display()),
            "bs=512",
            &format!("seek={start}"),
            "count=8192",
            "conv=notrunc",
            "status=none",
        ])
        .status()
        .unwrap_or_else(|e| panic!("dd: {e}"));
    assert!(status.success());

    let vm = ApplianceVm::start(&s, &disk, None);
    let data = data_lines(&vm.wait_lines("flakeboot-data:", 4 * BOOT, |l| !l.is_empty()));
    println!(
        "HIL-TIMING corrupted slot b: slot a up after {:.0}s",
        vm.secs()
    );
    let console = vm.console();
    let tries = console
        .lines()
        .filter(|l| l.contains("Command line:") && l.contains("flakeboot.slot=b"))
        .count();
    assert_eq!(tries, 3, "slot b should be tried 3 times");
    assert!(
        console.contains("verity") || console.contains("Kernel panic"),
        "no dm-verity failure on the console"
    );
    let first = data.first().cloned().unwrap_or_default();
    assert_eq!(
        (first.1, first.2.as_str(), first.3.as_str()),
        (1, "a", VERSION)
    );
    let slots = vm.wait_for("flakeboot-slots:", BOOT);
    assert!(slots.contains("flakeboot-2-b+0-3.efi"), "{slots}");

    // Slot a, with no DHCP answer on its LAN, serves on the static fallback address.
    vm.wait_for("no DHCP answer on eth0", BOOT);
    let banner = vm.wait_for("FLAKEBOOT-ADDRESS eth0 ", BOOT);
    assert!(banner.contains("192.168.1.2/24"), "{banner}");
    vm.wait_lines("flakeboot-health: healthy", BOOT, |l| {
        l.iter().any(|l| l.contains("slot a"))
    });
    println!(
        "HIL-TIMING fallback address and healthy flakeboot on slot a after {:.0}s",
        vm.secs()
    );
    let got = http_status(&s, "http://192.168.1.2/ipxe/ipxe.efi");
    assert_eq!(got, "200", "GET /ipxe/ipxe.efi from the fallback address");
}
