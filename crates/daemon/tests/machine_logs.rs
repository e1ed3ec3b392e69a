//! The machines' console and logs reach the real daemon (router mode): a PXE client takes an
//! address in DHCP, then from that address util-linux `logger` sends real syslog over UDP
//! (RFC 5424 and RFC 3164, port 514) and python3 sends netconsole datagrams (port 6666; the
//! kernel's netconsole itself cannot run in a test namespace: the datagrams are written as it
//! writes them, extended with a kernel panic, and plain split across two datagrams). The
//! lines are that machine's (`flakeboot machine logs`), its boot failed with the panic as the
//! reason; a line from an address no DHCP exchange bound is nobody's and counted; a flood of
//! 100,000 datagrams is counted and dropped, the lines kept stay within `[logs]
//! lines_per_machine`, and the boot services still answer during it.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::dhcp_clients::{OFFER, pxe_discover};
use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::require_tool;
use serde_json::Value;

const BASE: &str = "https://10.77.0.1";
/// A second address of the client namespace that no DHCP exchange gave anyone.
const STRANGER_IP: &str = "10.77.0.66";
const PANIC: &str =
    "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)";
/// `[logs] lines_per_machine` here.
const CAP: usize = 300;

/// `curl --unix-socket <state>/api.sock http://appliance<path>`: the body.
fn api(lan: &Lan, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sfS", "--max-time", "10", "--unix-socket"])
        .arg(lan.state_dir().join("api.sock"))
        .arg(format!("http://appliance{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `flakeboot machine logs MAC <args> --state-dir S` over the API socket: its stdout.
fn cli_logs(lan: &Lan, args: &[&str]) -> String {
    stdout_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_flakeboot"))
            .args(["machine", "logs", CLIENT_MAC])
            .args(args)
            .arg("--state-dir")
            .arg(lan.state_dir()),
    )
}

fn lines(lan: &Lan) -> Vec<Value> {
    let v: Value = serde_json::from_str(&cli_logs(lan, &["--json", "--limit", "10000"])).unwrap();
    v.as_array().unwrap().clone()
}

/// The value of the Prometheus sample `name{label="value"}`.
fn metric(lan: &Lan, sample: &str) -> f64 {
    let text = api(lan, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
}

/// python3 in the client namespace: UDP datagrams from `src` (port `sport`) to the server.
fn udp(lan: &Lan, src: &str, sport: u16, port: u16, datagrams: &[&[u8]], repeat: usize) {
    let payloads: Vec<String> = datagrams
        .iter()
        .map(|d| format!("bytes.fromhex('{}')", hex(d)))
        .collect();
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{src}', {sport}))\n\
         for _ in range({repeat}):\n\
         \x20   for d in [{}]:\n\
         \x20       s.sendto(d, ('{SERVER_IP}', {port}))\n",
        payloads.join(", ")
    );
    lan.client().run(&["python3", "-c", &script]).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_machines_syslog_and_netconsole_lines_are_its_own_and_a_panic_fails_its_boot() {
    require_tool("curl");
    require_tool("logger");
    require_tool("python3");
    let lan = Lan::new();
    let config = lan.write_config(&format!(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\n\n\
         [logs]\nlines_per_machine = {CAP}\nrate_per_source = 200\nrate_total = 1000"
    ));
    let mut daemon = lan.start(&config);
    // The machine's PXE ROM takes an address from flakeboot; the booted system uses it.
    let mac: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let offer = pxe_discover(lan.client(), mac).expect("no offer");
    assert_eq!(offer.message_type, OFFER);
    let ip = offer.yiaddr.to_string();
    lan.client().addr("eth0", &format!("{ip}/24")).unwrap();
    lan.client()
        .addr("eth0", &format!("{STRANGER_IP}/24"))
        .unwrap();
    // Its machine record exists once the DHCP event is stored.
    wait_until("the machine record", Duration::from_secs(10), || {
        api(&lan, "/api/v1/machines")
            .contains(CLIENT_MAC)
            .then_some(())
    });

    // An admin's token for `--server` (its settings are saved as they are).
    let cert = lan.state_dir().join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "router");
    let token_file = lan.path("token");
    std::fs::write(&token_file, format!("{}\n", admin.token)).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Syslog from its address (the namespace's first address on eth0), as logger sends it.
    for format in ["--rfc5424", "--rfc3164"] {
        let message = format!("hello {format}");
        lan.client()
            .run(&[
                "logger",
                "--udp",
                "--server",
                SERVER_IP,
                "--port",
                "514",
                format,
                "-p",
                "daemon.warning",
                "-t",
                "fbtest",
                &message,
            ])
            .unwrap();
    }
    // Netconsole: a plain line in two datagrams, then an extended message (level 0).
    udp(
        &lan,
        &ip,
        6665,
        6666,
        &[b"[    1.5] eth0: ", b"link up\n"],
        1,
    );
    let extended = format!("0,77,1500000,-;{PANIC}\n");
    udp(&lan, &ip, 6665, 6666, &[extended.as_bytes()], 1);
    // A stranger's lines, from an address no DHCP exchange bound: nobody's.
    udp(
        &lan,
        STRANGER_IP,
        0,
        514,
        &[b"<13>1 - evil fbtest - - - stranger says hi"],
        1,
    );

    let got = wait_until("four lines of the machine", Duration::from_secs(10), || {
        let got = lines(&lan);
        (got.len() >= 4).then_some(got)
    });
    let texts: Vec<&str> = got.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "hello --rfc5424",
            "hello --rfc3164",
            "[    1.5] eth0: link up",
            PANIC
        ],
        "{got:#?}"
    );
    assert_eq!(got[0]["proto"], "rfc5424");
    assert_eq!(got[1]["proto"], "rfc3164");
    for l in &got[..2] {
        assert_eq!(l["app"], "fbtest", "{l}");
        assert_eq!(
            (l["facility"].as_u64(), l["severity"].as_u64()),
            (Some(3), Some(4)),
            "{l}"
        );
        assert_eq!(l["peer"], ip.as_str(), "{l}");
    }
    assert_eq!(got[2]["proto"], "netconsole");
    assert_eq!(got[2]["severity"], Value::Null);
    assert_eq!(got[3]["severity"], 0);
    // The human output says the same.
    let text = cli_logs(&lan, &[]);
    assert!(
        text.contains("rfc5424 warning fbtest hello --rfc5424"),
        "{text}"
    );
    assert!(
        text.contains(&format!("netconsole emerg kernel {PANIC}")),
        "{text}"
    );

    // A laptop with `--server` runs the same code and prints the same bytes.
    for json in [false, true] {
        let mut args = vec!["machine", "logs", CLIENT_MAC];
        if json {
            args.push("--json");
        }
        let remote = stdout_of(
            lan.client()
                .command(env!("CARGO_BIN_EXE_flakeboot"))
                .args([
                    "--server",
                    BASE,
                    "--pin",
                    &admin.fingerprint,
                    "--token-file",
                ])
                .arg(&token_file)
                .args(&args)
                .env_remove("FLAKEBOOT_TOKEN"),
        );
        assert_eq!(remote, cli_logs(&lan, &args[3..]), "{args:?}");
    }

    // The boot failed, with the panic as the reason.
    let machine: Value =
        serde_json::from_str(&api(&lan, &format!("/api/v1/machines/{CLIENT_MAC}"))).unwrap();
    let attempt = &machine["attempts"][0];
    assert_eq!(attempt["result"]["state"], "failed", "{attempt:#}");
    assert_eq!(
        attempt["result"]["detail"],
        format!("failed: {PANIC}"),
        "{attempt:#}"
    );
    assert_eq!(attempt["console"]["line"], PANIC, "{attempt:#}");
    assert_eq!(machine["last_boot"]["state"], "failed", "{machine:#}");

    // The stranger's line was counted and dropped; nobody else got it.
    assert!(
        metric(
            &lan,
            "flakeboot_logs_dropped_total{reason=\"unattributed\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(&lan, "flakeboot_logs_lines_total{proto=\"rfc5424\"}"),
        2.0
    );
    assert_eq!(
        metric(&lan, "flakeboot_logs_lines_total{proto=\"netconsole\"}"),
        2.0
    );

    // A flood from the machine's address: 100,000 datagrams, while a boot script is fetched.
    let flood_script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{ip}', 0))\n\
         for i in range(100000):\n\
         \x20   s.sendto(b'<14>1 - node flood - - - line %d' % i, ('{SERVER_IP}', 514))\n"
    );
    let mut flood_cmd = lan.client().command("python3");
    flood_cmd.args(["-c", &flood_script]);
    let flooding = std::thread::spawn(move || flood_cmd.output().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let fetch = Instant::now();
    let script = lan
        .client()
        .run(&[
            "curl",
            "-sSf",
            "--max-time",
            "20",
            "--interface",
            &ip,
            &format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}"),
        ])
        .unwrap();
    let took = fetch.elapsed();
    assert!(script.starts_with("#!ipxe"), "{script}");
    assert!(
        took < Duration::from_secs(10),
        "boot.ipxe took {took:?} during the flood"
    );
    let flood = flooding.join().unwrap();
    assert!(flood.status.success(), "{flood:?}");
    let dropped = wait_until("the flood counted", Duration::from_secs(10), || {
        let n = metric(&lan, "flakeboot_logs_dropped_total{reason=\"rate_source\"}");
        (n > 0.0).then_some(n)
    });
    std::thread::sleep(Duration::from_secs(1));
    let kept = lines(&lan);
    assert!(kept.len() <= CAP, "{} lines kept", kept.len());
    let received = metric(&lan, "flakeboot_logs_lines_total{proto=\"rfc5424\"}");
    eprintln!(
        "flood: {received} syslog lines reached the receiver, {dropped} dropped over the rate, {} kept",
        kept.len()
    );
    assert!(
        kept.iter()
            .any(|l| l["text"].as_str().unwrap().starts_with("line ")),
        "some of the flood within the rate is kept"
    );

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
    let log = daemon.output();
    assert!(
        log.contains("a machine's log says its boot failed"),
        "{log}"
    );
}
