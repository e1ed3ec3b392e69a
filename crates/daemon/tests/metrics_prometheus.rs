//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`) over HTTPS with a read-only
//! token, trusting the daemon's certificate: a PXE DISCOVER and a router-mode lease from udhcpc, a TFTP download
//! and a refused name with tftp-hpa and curl, a script, a kernel, a 404 and a system report
//! over HTTP; then Prometheus's query API must show `up` and exactly what that traffic counted.
//! Without a token `/metrics` is 401.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::dhcp_clients::{OFFER, pxe_discover, udhcpc};
use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::require_tool;

const BASE: &str = "https://10.77.0.1";

/// Prometheus's HTTP API in the client namespace: the value of an instant query that returns
/// one sample, `None` while it returns none.
fn query(lan: &Lan, promql: &str) -> Option<f64> {
    let out = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-G",
            "--data-urlencode",
            &format!("query={promql}"),
            "http://127.0.0.1:9090/api/v1/query",
        ])
        .ok()?;
    let reply: serde_json::Value = serde_json::from_str(&out).ok()?;
    assert_eq!(reply["status"], "success", "{promql}: {reply}");
    let result = reply["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "{promql}: more than one sample: {reply}");
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_what_the_traffic_counted() {
    let prometheus = require_tool("prometheus");
    let promtool = require_tool("promtool");
    require_tool("tftp");
    require_tool("curl");
    let started = Instant::now();
    let lan = Lan::new();
    // The admin's and Prometheus's address; the boot traffic uses the leased one.
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.77.0.100\", \"10.77.0.120\"]\nlease_time = \"10m\"",
    );
    let mut daemon = lan.start(&config);
    let cert = lan.state_dir().join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "router");
    let read_only = admin.new_token("prometheus", "read_only");

    // DHCP: a PXE ROM's DISCOVER (a boot starts: a boot event, the machine's record), then
    // a lease for the same MAC with udhcpc (DISCOVER/OFFER, REQUEST/ACK: no boot client, no
    // event); the client takes the address itself.
    let mac: flakeboot_catalogue::MacAddr = CLIENT_MAC.parse().unwrap();
    let offer = pxe_discover(lan.client(), mac.0).expect("no offer to the PXE DISCOVER");
    assert_eq!(offer.message_type, OFFER);
    let ip = udhcpc(lan.client()).expect("no lease from the daemon");
    lan.client().addr("eth0", &format!("{ip}/24")).unwrap();
    let ip = ip.to_string();
    let get = |url: &str| {
        let out = lan.path("download");
        let code = lan
            .client()
            .run(&[
                "curl",
                "-sS",
                "--interface",
                &ip,
                "-o",
                out.to_str().unwrap(),
                "-w",
                "%{http_code}",
                url,
            ])
            .unwrap();
        (
            code.trim().to_owned(),
            std::fs::read(&out).unwrap_or_default(),
        )
    };

    // TFTP: one file with tftp-hpa, one name that is not served (curl).
    let undionly = std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap();
    let out = lan.path("undionly.kpxe");
    lan.client()
        .run(&[
            "tftp",
            SERVER_IP,
            "-m",
            "binary",
            "-c",
            "get",
            "undionly.kpxe",
            out.to_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), undionly);
    let refused = lan.client().run(&[
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        &format!("tftp://{SERVER_IP}/flakeboot.toml"),
    ]);
    assert!(refused.is_err(), "TFTP served flakeboot.toml");

    // HTTP: the script, the kernel, a file that is no one's, the system's report.
    let (code, script) = get(&format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}"));
    assert_eq!(code, "200");
    assert!(script.starts_with(b"#!ipxe"));
    let (code, kernel) = get(&format!("http://{SERVER_IP}/boot/demo/static/kernel"));
    assert_eq!(code, "200");
    let kernel_len = kernel.len();
    assert_eq!(kernel_len, 3 * 1024 * 1024 + 17);
    let (code, _) = get(&format!("http://{SERVER_IP}/boot/nobody/static/kernel"));
    assert_eq!(code, "404");
    let report = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "--interface",
            &ip,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-raw",
            &format!("mac={CLIENT_MAC}&stage=up"),
            &format!("http://{SERVER_IP}/boot/report"),
        ])
        .unwrap();
    assert_eq!(report.trim(), "204");

    // Without a token: 401; with the read-only one: the page, which promtool accepts.
    let anonymous = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "--cacert",
            cert.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{BASE}/metrics"),
        ])
        .unwrap();
    assert_eq!(anonymous.trim(), "401");
    let page = lan
        .client()
        .run(&[
            "curl",
            "-sSf",
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {read_only}"),
            &format!("{BASE}/metrics"),
        ])
        .unwrap();
    std::fs::write(lan.path("metrics.txt"), &page).unwrap();
    let check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(lan.path("metrics.txt")).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check metrics:\n{}{}\n{page}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Prometheus in the client namespace: HTTPS, the daemon's certificate as CA, the token.
    let token_file = lan.path("prometheus.token");
    std::fs::write(&token_file, &read_only).unwrap();
    let prom_config = lan.path("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: flakeboot\n    scheme: https\n\
             \x20   tls_config:\n      ca_file: {cert}\n\
             \x20   authorization:\n      credentials_file: {token}\n\
             \x20   static_configs:\n      - targets: ['{SERVER_IP}:443']\n",
            cert = cert.display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    let tsdb = lan.path("tsdb");
    let prom = lan
        .client()
        .spawn(
            "prometheus",
            &[
                prometheus.to_str().unwrap(),
                &format!("--config.file={}", prom_config.display()),
                &format!("--storage.tsdb.path={}", tsdb.display()),
                "--web.listen-address=127.0.0.1:9090",
            ],
        )
        .unwrap();
    let waited = Instant::now();
    while query(&lan, "up{job=\"flakeboot\"}") != Some(1.0) {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "Prometheus never scraped the daemon (up = {:?}):\n{}",
            query(&lan, "up{job=\"flakeboot\"}"),
            prom.tail(30)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let expect = |promql: &str, want: f64| {
        let got = query(&lan, promql);
        assert_eq!(got, Some(want), "{promql}\n{page}");
    };
    // The appliance's own probe for other DHCP servers reaches its server too, which counts it
    // as received and drops it as ignored: leave those out.
    expect(
        "flakeboot_dhcp_requests_total - ignoring(reason) flakeboot_dhcp_unanswered_total{reason=\"ignored\"}",
        3.0,
    );
    expect("flakeboot_dhcp_replies_total", 3.0);
    expect("flakeboot_dhcp_reply_duration_seconds_count", 3.0);
    expect("flakeboot_dhcp_pool_addresses", 21.0);
    expect("flakeboot_dhcp_leases{state=\"bound\"}", 1.0);
    expect(
        "flakeboot_boot_events_total{stage=\"dhcp\",outcome=\"ok\"}",
        1.0,
    );
    expect("flakeboot_tftp_transfers_total{outcome=\"ok\"}", 1.0);
    expect("flakeboot_tftp_refused_total{reason=\"refused\"}", 1.0);
    expect(
        "flakeboot_boot_served_bytes_total{stage=\"tftp\"}",
        undionly.len() as f64,
    );
    expect("flakeboot_http_requests_total{kind=\"script\"}", 1.0);
    expect("flakeboot_http_requests_total{kind=\"file\"}", 1.0);
    expect("flakeboot_http_requests_total{kind=\"report\"}", 1.0);
    expect("flakeboot_http_errors_total{kind=\"not_found\"}", 1.0);
    expect(
        "flakeboot_boot_served_bytes_total{stage=\"kernel\"}",
        kernel_len as f64,
    );
    expect(
        "flakeboot_boot_events_total{stage=\"system\",outcome=\"ok\"}",
        1.0,
    );
    // The boot, from the first DHCP exchange to the report: one, within this test's time.
    expect("flakeboot_boot_duration_seconds_count", 1.0);
    let took = query(&lan, "flakeboot_boot_duration_seconds_sum").unwrap();
    assert!(
        took > 0.0 && took < started.elapsed().as_secs_f64(),
        "boot took {took}s"
    );
    expect("flakeboot_machines", 1.0);
    let free = query(&lan, "flakeboot_storage_free_bytes");
    assert!(
        free.is_some_and(|f| f > 0.0),
        "free bytes: {free:?}\n{page}"
    );

    drop(prom);
    let status = daemon.stop().unwrap();
    assert!(status.success(), "{}", daemon.tail(20));
}
