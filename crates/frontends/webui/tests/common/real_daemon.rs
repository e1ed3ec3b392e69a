//! Browsing the real appliance: a laptop on the scenario's LAN (a namespace of its own, joined
//! to the LAN bridge, where chromedriver and chromium run), the first-run setup code read from
//! the daemon's log as a person reads it off the console, and page waits longer than a form post
//! (a build, a boot).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use flakeboot_hil_tests::Appliance;
use flakeboot_testbed::{Netns, TestLan};

/// The laptop's address on the LAN (outside the appliance's DHCP pool).
pub const LAPTOP_V4: &str = "10.77.0.50";

/// A laptop plugged into the LAN: its `eth0` (10.77.0.50/24) is a port of the LAN bridge.
///
/// IPv4 only: chromium aborts requests in flight with ERR_NETWORK_CHANGED whenever an address
/// of its namespace changes, and the appliance's router advertisements would give `eth0` a
/// SLAAC address (after duplicate address detection) during the first seconds of the test: 2 of
/// 9 runs lost the setup form's POST that way.
pub fn laptop(lan: &TestLan) -> Netns {
    let ns = Netns::new("laptop").unwrap();
    // A thread inside the namespace sees the namespace's own /proc/sys/net.
    ns.thread(|| std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    lan.plug("to-laptop", &ns).unwrap();
    ns.addr("eth0", &format!("{LAPTOP_V4}/24")).unwrap();
    let v6 = ns
        .run(&["ip", "-6", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(v6.trim().is_empty(), "the laptop has IPv6 addresses:\n{v6}");
    ns
}

/// The one-time setup code from the daemon's log ("... enter the setup code XXXX-XXXX-XXXX").
pub fn setup_code(appliance: &Appliance, timeout: Duration) -> String {
    let log = || std::fs::read_to_string(appliance.log_path()).unwrap_or_default();
    flakeboot_hil_tests::wait_for_setup_code(log, timeout).unwrap_or_else(|| {
        panic!(
            "the daemon printed no setup code within {timeout:?}:\n{}",
            appliance.log_tail(40)
        )
    })
}

/// The page's visible text (empty while a page loads).
pub async fn text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Opens `url` again every 500 ms until `ready` accepts the page's text; that text. Fails after
/// `timeout` with the last text, saying what was awaited.
pub async fn reload_until(
    c: &Client,
    url: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        c.goto(url).await.unwrap();
        let t = text(c).await;
        if ready(&t) {
            return t;
        }
        assert!(
            start.elapsed() < timeout,
            "{url} never showed {what} within {timeout:?}; last page:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (a form post may still be on its way) until the browser's path starts with `prefix`;
/// the path.
pub async fn wait_path_prefix(c: &Client, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = c.current_url().await.unwrap().path().to_owned();
        if now.starts_with(prefix) {
            return now;
        }
        assert!(Instant::now() < deadline, "at {now}, expected {prefix}...");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The classes of the newest boot attempt's steps on a machine page (DHCP, TFTP, script,
/// kernel, initrd): `ok`, `skipped`, `missing`, `failed`, `declined`.
pub async fn newest_attempt_steps(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    let items = c
        .find_all(Locator::Css(".attempt:first-of-type ol.timeline li"))
        .await
        .unwrap_or_default();
    for li in items {
        out.push(li.attr("class").await.ok().flatten().unwrap_or_default());
    }
    out
}

/// Where the browser is, the page's text, and its HTML (at most 20,000 characters: a browser
/// error page is mostly CSS), for a failure report.
pub async fn page_dump(c: &Client) -> String {
    let url = c
        .current_url()
        .await
        .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
    let mut source = c
        .source()
        .await
        .unwrap_or_else(|e| format!("(no page source: {e})"));
    if let Some((cut, _)) = source.char_indices().nth(20_000) {
        source.truncate(cut);
        source.push_str("...");
    }
    format!(
        "--- browser at {url}: page text ---\n{}\n--- page source ---\n{source}",
        text(c).await
    )
}
