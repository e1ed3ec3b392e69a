//! Administering the real daemon (or the appliance image) as an admin does, with curl over its
//! HTTPS listener: first-run setup with the code the daemon prints (the setup form and its form
//! token), an API token created on the settings page (with its CSRF token), the login form, and
//! JSON API calls with the token.

// Test support: a page or reply that is not what the UI sends is a failed test, with the page.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, require_tool};
use serde_json::Value;

/// The admin's password in these tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// curl in a namespace, with a cookie jar.
#[derive(Debug)]
pub struct Curl<'a> {
    ns: &'a Netns,
    /// The appliance's certificate to trust (`--cacert`); `None`: `-k`, for an appliance whose
    /// address moves to one its certificate does not name.
    cacert: Option<PathBuf>,
    jar: PathBuf,
    /// Each call's limit in seconds (`--max-time`).
    max_time: u32,
}

impl<'a> Curl<'a> {
    pub fn new(ns: &'a Netns, cacert: Option<&Path>, jar: PathBuf) -> Curl<'a> {
        require_tool("curl");
        Curl {
            ns,
            cacert: cacert.map(Path::to_path_buf),
            jar,
            max_time: 20,
        }
    }

    /// Each call may take up to `secs` (default 20): an emulated appliance under load takes
    /// longer to lock a flake with nix than a request usually may.
    pub fn max_time(mut self, secs: u32) -> Curl<'a> {
        self.max_time = secs;
        self
    }

    /// curl with these arguments, panicking on failure; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let jar = self.jar.to_str().unwrap();
        let max_time = self.max_time.to_string();
        let mut argv = vec!["curl", "-sS", "--max-time", &max_time, "-b", jar, "-c", jar];
        match &self.cacert {
            Some(cacert) => argv.extend(["--cacert", cacert.to_str().unwrap()]),
            None => argv.push("-k"),
        }
        argv.extend_from_slice(args);
        self.ns
            .run(&argv)
            .unwrap_or_else(|e| panic!("curl {args:?}: {e}"))
    }

    /// Whether anything answers `url` within `secs` (connection refused and time-outs are
    /// "no"; an HTTP error status is still an answer).
    pub fn answers(&self, url: &str, secs: u32) -> bool {
        let secs = secs.to_string();
        self.ns
            .run(&["curl", "-sk", "--max-time", &secs, "-o", "/dev/null", url])
            .is_ok()
    }

    /// An API call to `base` with a bearer token: (HTTP status, JSON body).
    pub fn api(
        &self,
        base: &str,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let auth = format!("Authorization: Bearer {token}");
        let url = format!("{base}{path}");
        let body = body.map(Value::to_string);
        let mut argv = vec!["-X", method, "-H", &auth, "-w", "\n%{http_code}"];
        if let Some(body) = &body {
            argv.extend([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        argv.push(&url);
        let out = self.ok(&argv);
        let (json, code) = out.rsplit_once('\n').unwrap();
        let value = serde_json::from_str(json).unwrap_or(Value::String(json.to_owned()));
        (code.trim().parse().unwrap(), value)
    }

    /// A form `fields` posted to `url`: "STATUS REDIRECT-URL".
    pub fn post_form(&self, url: &str, fields: &[String]) -> String {
        let mut argv = vec!["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"];
        for field in fields {
            argv.extend(["--data-urlencode", field.as_str()]);
        }
        argv.push(url);
        self.ok(&argv)
    }

    /// The UI's login form: fetch it (form token cookie), post user and [`PASSWORD`]; then the
    /// dashboard must open with the session. Returns the dashboard page.
    pub fn log_in(&self, base: &str) -> String {
        let page = self.ok(&[&format!("{base}/login")]);
        let form = input_value(&page, "form");
        let done = self.post_form(
            &format!("{base}/login"),
            &[
                format!("form={form}"),
                "user=admin".to_owned(),
                format!("password={PASSWORD}"),
            ],
        );
        assert!(done.starts_with("303"), "login failed: {done}");
        self.ok(&["--fail-with-body", &format!("{base}/")])
    }
}

/// A set-up appliance and its admin, with what the admin took from the UI.
#[derive(Debug)]
pub struct Admin<'a> {
    pub curl: Curl<'a>,
    /// The appliance, `https://ADDR` (it may move: [`Admin::set_server`]).
    pub base: String,
    /// A new API token (`fbt_...`).
    pub token: String,
    /// "SHA-256: ..." on Settings > HTTPS certificate, exactly as shown.
    pub fingerprint: String,
}

impl<'a> Admin<'a> {
    /// First-run setup of the appliance at `base` (`https://ADDR`) with `curl`: the setup code
    /// from `log` (the daemon's log or the appliance's console so far), [`PASSWORD`], LAN port
    /// `lan_interface`, DHCP `dhcp_mode`; then an API token named `laptop` from the settings
    /// page.
    pub fn set_up(
        curl: Curl<'a>,
        base: &str,
        log: &dyn Fn() -> String,
        lan_interface: &str,
        dhcp_mode: &str,
    ) -> Admin<'a> {
        // The daemon logs "serving" before its HTTPS listener is bound: wait for it to answer.
        let start = Instant::now();
        while !curl.answers(&format!("{base}/login"), 3) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the web UI never answered at {base}:\n{}",
                tail(&log(), 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let page = curl.ok(&["--fail-with-body", &format!("{base}/setup")]);
        let form = input_value(&page, "form");
        let code = crate::wait_for_setup_code(log, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no setup code in the log:\n{}", tail(&log(), 30)));
        let done = curl.post_form(
            &format!("{base}/setup"),
            &[
                format!("form={form}"),
                format!("code={code}"),
                format!("password={PASSWORD}"),
                format!("confirm={PASSWORD}"),
                format!("lan_interface={lan_interface}"),
                format!("dhcp_mode={dhcp_mode}"),
            ],
        );
        assert!(done.starts_with("303"), "setup did not finish: {done}");

        let settings = curl.ok(&["--fail-with-body", &format!("{base}/settings")]);
        let csrf = input_value(&settings, "csrf");
        let fingerprint = between(&settings, "SHA-256: <code class=\"anywhere\">", "</code>");
        let created = curl.ok(&[
            "--fail-with-body",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            "name=laptop",
            &format!("{base}/settings/tokens"),
        ]);
        let token = between(&created, "id=\"new-token\">", "</div>");
        assert!(token.starts_with("fbt_"), "{token}");
        Admin {
            curl,
            base: base.to_owned(),
            token,
            fingerprint,
        }
    }

    /// Another API token from the settings page, of `scope` (`read_only` or `admin`).
    pub fn new_token(&self, name: &str, scope: &str) -> String {
        let settings = self
            .curl
            .ok(&["--fail-with-body", &format!("{}/settings", self.base)]);
        let csrf = input_value(&settings, "csrf");
        let created = self.curl.ok(&[
            "--fail-with-body",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("name={name}"),
            "--data-urlencode",
            &format!("scope={scope}"),
            &format!("{}/settings/tokens", self.base),
        ]);
        let token = between(&created, "id=\"new-token\">", "</div>");
        assert!(token.starts_with("fbt_"), "{token}");
        token
    }

    /// An API call with the token: (HTTP status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.curl.api(&self.base, &self.token, method, path, body)
    }

    /// Talk to the appliance at `ip` from now on (its LAN address moved).
    pub fn set_server(&mut self, ip: &str) {
        self.base = format!("https://{ip}");
    }

    /// Whether the management UI answers at `ip` (any HTTP status within three seconds).
    pub fn answers_at(&self, ip: &str) -> bool {
        self.curl.answers(&format!("https://{ip}/login"), 3)
    }

    /// GET /api/v1/settings, `edit`, PUT it back; the saved settings.
    pub fn change_settings(&self, edit: impl FnOnce(&mut Value)) -> Value {
        let (code, mut settings) = self.api("GET", "/api/v1/settings", None);
        assert_eq!(code, 200, "{settings}");
        edit(&mut settings);
        let (code, saved) = self.api("PUT", "/api/v1/settings", Some(&settings));
        assert_eq!(code, 200, "{saved}");
        saved
    }

    /// A settings form (`/settings/network`, ...) posted with the session set-up signed in:
    /// (HTTP status, the page answered).
    pub fn post_settings_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let settings = self
            .curl
            .ok(&["--fail-with-body", &format!("{}/settings", self.base)]);
        let mut data = vec![format!("csrf={}", input_value(&settings, "csrf"))];
        data.extend(fields.iter().map(|(k, v)| format!("{k}={v}")));
        let url = format!("{}{path}", self.base);
        let mut argv = vec!["-w", "\n%{http_code}"];
        for field in &data {
            argv.extend(["--data-urlencode", field.as_str()]);
        }
        argv.push(&url);
        let out = self.curl.ok(&argv);
        let (page, code) = out.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), page.to_owned())
    }

    /// GET /api/v1/status.
    pub fn status(&self) -> Value {
        let (code, status) = self.api("GET", "/api/v1/status", None);
        assert_eq!(code, 200, "{status}");
        status
    }

    /// The dashboard's line for the service whose name starts with `name`: (name, state, detail).
    pub fn service(&self, name: &str) -> (String, String, String) {
        let status = self.status();
        let s = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no service {name} in {status}"));
        let field = |k: &str| s[k].as_str().unwrap().to_owned();
        (field("name"), field("state"), field("detail"))
    }
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `value="..."` of the input named `name` in a page.
pub fn input_value(page: &str, name: &str) -> String {
    between(page, &format!("name=\"{name}\" value=\""), "\"")
}

/// The text between `start` and the next `end`.
fn between(page: &str, start: &str, end: &str) -> String {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the page:\n{page}"));
    let rest = &page[at + start.len()..];
    rest[..rest.find(end).unwrap()].to_owned()
}
