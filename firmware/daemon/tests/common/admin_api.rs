//! The appliance's management API as an admin on the LAN uses it: first-run setup with the code
//! the daemon prints, an API token created on the settings page, then JSON calls with the token.
//! Everything goes through curl to the real HTTPS listener (self-signed certificate: `-k`).

// Test support: a packet or page too short to index is a failed test.
#![allow(clippy::indexing_slicing)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, Proc};
use serde_json::Value;

use super::{Lan, SERVER_IP};

/// The admin's laptop address on the LAN (outside every DHCP range the tests use).
pub const LAPTOP_IP: &str = "10.77.0.50";

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in admin with an API token.
pub struct Admin<'a> {
    ns: &'a Netns,
    jar: PathBuf,
    token: String,
    /// The appliance's management address.
    server: String,
}

/// The one-time setup code from the daemon's log ("... enter the setup code XXXX-XXXX-XXXX").
pub fn setup_code(daemon: &Proc) -> String {
    let start = Instant::now();
    loop {
        let log = daemon.output();
        if let Some((_, rest)) = log.rsplit_once("enter the setup code ") {
            let code: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !code.is_empty() {
                return code;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no setup code in the log:\n{}",
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in the page:\n{page}"))
        + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}

impl<'a> Admin<'a> {
    /// First-run setup (LAN port `lan0`, `dhcp_mode`) from the client namespace, which gets
    /// the laptop address; then an API token from the settings page.
    pub fn setup(lan: &'a Lan, daemon: &Proc, dhcp_mode: &str) -> Admin<'a> {
        lan.client.addr("eth0", &format!("{LAPTOP_IP}/24")).unwrap();
        let admin = Admin {
            ns: &lan.client,
            jar: lan.path("cookies.txt"),
            token: String::new(),
            server: SERVER_IP.to_owned(),
        };
        // The daemon logs "serving" before its HTTPS listener is bound: wait for it to answer.
        let start = Instant::now();
        while !admin.answers_at(SERVER_IP) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the web UI never answered:\n{}",
                daemon.tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let page = admin.curl(&["https://{}/setup"]);
        let form = hidden(&page, "form");
        let code = setup_code(daemon);
        let done = admin.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--data-urlencode",
            &format!("form={form}"),
            "--data-urlencode",
            &format!("code={code}"),
            "--data-urlencode",
            &format!("password={PASSWORD}"),
            "--data-urlencode",
            &format!("confirm={PASSWORD}"),
            "--data-urlencode",
            "lan_interface=lan0",
            "--data-urlencode",
            &format!("dhcp_mode={dhcp_mode}"),
            "https://{}/setup",
        ]);
        assert!(done.starts_with("303"), "setup failed: {done}");
        let settings = admin.curl(&["https://{}/settings"]);
        let csrf = hidden(&settings, "csrf");
        let created = admin.curl(&[
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            "name=settings-live-test",
            "https://{}/settings/tokens",
        ]);
        let at = created
            .find("fbt_")
            .unwrap_or_else(|| panic!("no token in the page:\n{created}"));
        let token: String = created[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        Admin { token, ..admin }
    }

    /// curl in the laptop's namespace with the session's cookies; `{}` in an argument is the
    /// appliance's address. Its stdout.
    fn curl(&self, args: &[&str]) -> String {
        let jar = self.jar.to_str().unwrap();
        let mut argv = vec!["curl", "-sSk", "--max-time", "10", "-b", jar, "-c", jar];
        let args: Vec<String> = args.iter().map(|a| a.replace("{}", &self.server)).collect();
        argv.extend(args.iter().map(String::as_str));
        self.ns.run(&argv).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An API call with the token: (HTTP status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("Authorization: Bearer {}", self.token);
        let url = format!("https://{}{path}", self.server);
        let body = body.map(Value::to_string);
        let mut argv = vec![
            "curl",
            "-sSk",
            "--max-time",
            "10",
            "-X",
            method,
            "-H",
            &auth,
            "-w",
            "\n%{http_code}",
        ];
        if let Some(body) = &body {
            argv.extend([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        argv.push(&url);
        let out = self.ns.run(&argv).unwrap_or_else(|e| panic!("{e}"));
        let (json, code) = out.rsplit_once('\n').unwrap();
        let value = serde_json::from_str(json).unwrap_or(Value::String(json.to_owned()));
        (code.trim().parse().unwrap(), value)
    }

    /// Talk to the appliance at `ip` from now on (its LAN address moved).
    pub fn set_server(&mut self, ip: &str) {
        self.server = ip.to_owned();
    }

    /// Whether the management UI answers at `ip` (any HTTP status within three seconds).
    pub fn answers_at(&self, ip: &str) -> bool {
        self.ns
            .run(&[
                "curl",
                "-sk",
                "--max-time",
                "3",
                "-o",
                "/dev/null",
                &format!("https://{ip}/login"),
            ])
            .is_ok()
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
