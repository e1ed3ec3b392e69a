//! Driving Debian's chromium (headless) through chromedriver with fantoccini, and full-page
//! screenshots at laptop and phone widths through the DevTools protocol.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use flakeboot_testbed::{Netns, Proc, workspace_root};

/// chromedriver's port (inside the test's own network namespace).
pub const DRIVER_PORT: u16 = 9515;

/// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
pub struct Cdp(serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

pub async fn cdp(c: &Client, cmd: &str, params: serde_json::Value) -> serde_json::Value {
    c.issue_cmd(Cdp(serde_json::json!({ "cmd": cmd, "params": params })))
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// chromedriver on [`DRIVER_PORT`] inside `ns` (ended by its PID when dropped).
pub fn start_driver(ns: &Netns, driver: &Path) -> Proc {
    ns.spawn(
        "chromedriver",
        &[
            driver.to_str().expect("a UTF-8 path"),
            &format!("--port={DRIVER_PORT}"),
        ],
    )
    .expect("starting chromedriver")
}

/// The screenshot folder every browser test writes to (`target/webui-screenshots`), created.
pub fn screenshots() -> Shots {
    let dir = workspace_root().join("target/webui-screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshot folder");
    Shots { dir }
}

/// The visible text of the element `css`.
pub async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

pub struct Shots {
    pub dir: PathBuf,
}

impl Shots {
    /// The whole page at laptop (1366x768) and phone (390x844, mobile) viewports.
    pub async fn take(&self, c: &Client, name: &str) {
        use base64::Engine;
        for (label, width, height, mobile) in [
            ("laptop", 1366u32, 768u32, false),
            ("phone", 390, 844, true),
        ] {
            let metrics = serde_json::json!({
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile
            });
            cdp(c, "Emulation.setDeviceMetricsOverride", metrics).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let layout = cdp(c, "Page.getLayoutMetrics", serde_json::json!({})).await;
            let full = layout["cssContentSize"]["height"]
                .as_f64()
                .unwrap_or(f64::from(height));
            let shot = cdp(c, "Page.captureScreenshot", serde_json::json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": full.max(f64::from(height)).min(6000.0), "scale": 1 }
            }))
            .await;
            let png = base64::engine::general_purpose::STANDARD
                .decode(shot["data"].as_str().unwrap())
                .unwrap();
            std::fs::write(self.dir.join(format!("{name}-{label}.png")), png).unwrap();
        }
        cdp(
            c,
            "Emulation.clearDeviceMetricsOverride",
            serde_json::json!({}),
        )
        .await;
    }
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// Waits (a form post may still be on its way) until the browser is at `want`.
pub async fn wait_path(c: &Client, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = path(c).await;
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "at {now}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page shows `needle`, and returns the page's text.
pub async fn wait_text(c: &Client, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(body) = c.find(Locator::Css("body")).await
            && let Ok(t) = body.text().await
            && t.contains(needle)
        {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn capabilities(profile: &Path) -> fantoccini::wd::Capabilities {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--ignore-certificate-errors",
        "--window-size=1366,768",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = serde_json::json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
    });
    caps.as_object().unwrap().clone()
}

pub async fn connect(profile: &Path) -> Client {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{DRIVER_PORT}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities(profile))
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("chromedriver not ready: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("cannot start chromium through chromedriver: {e}"),
        }
    }
}
