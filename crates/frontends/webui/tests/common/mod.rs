//! Test harness: the app over an in-memory store and the fake flake service, and helpers to
//! send requests with `oneshot` as a given client address.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod browser;
pub mod fake_flakes;
pub mod fake_vpn;
pub mod firmware_image;
pub mod real_daemon;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use flakeboot_appliance::DaemonStatus;
use flakeboot_store::Store;
use flakeboot_webui::{SessionLimits, WebConfig, WebState, app};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tower::ServiceExt;

pub use fake_flakes::FakeFlakes;

pub const PASSWORD: &str = "correct horse battery";

/// A signed-in browser: its cookie header and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub struct Harness {
    pub state: WebState,
    pub app: Router,
    pub flakes: FakeFlakes,
    pub status: watch::Sender<DaemonStatus>,
    pub store: Store,
    pub peer: std::sync::Mutex<SocketAddr>,
}

pub fn config() -> WebConfig {
    WebConfig {
        static_hosts: vec!["demo".into()],
        interfaces: vec!["lan0".into(), "wan0".into()],
        session_limits: SessionLimits::default(),
        ..WebConfig::default()
    }
}

/// A machine for the settings' checks: `lan0` (10.0.0.2/24) and `wan0` (192.0.2.2/24).
#[derive(Debug)]
pub struct FakeMachine;

impl flakeboot_config::System for FakeMachine {
    fn interface(&self, name: &str) -> Result<Option<flakeboot_config::InterfaceFacts>, String> {
        let address = match name {
            "lan0" => [10, 0, 0, 2],
            "wan0" => [192, 0, 2, 2],
            _ => return Ok(None),
        };
        Ok(Some(flakeboot_config::InterfaceFacts {
            ipv4: vec![(address.into(), 24)],
        }))
    }
    fn interface_names(&self) -> Vec<String> {
        vec!["lan0".into(), "wan0".into()]
    }
    fn path(&self, _: &std::path::Path) -> flakeboot_config::PathKind {
        flakeboot_config::PathKind::File
    }
}

/// [`config`], with a config file (`text`) the settings are laid over and checked against, on
/// [`FakeMachine`].
pub fn config_on_fake_machine(text: &str) -> WebConfig {
    let file = flakeboot_config::Config::parse(text, std::path::Path::new("test.toml")).unwrap();
    WebConfig {
        default_settings: flakeboot_appliance::settings_from_config(&file),
        check: flakeboot_appliance::SettingsCheck::new(file, Some(Arc::new(FakeMachine))),
        ..config()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(FakeFlakes::manual(), Store::in_memory().unwrap(), config())
    }

    pub fn with(flakes: FakeFlakes, store: Store, config: WebConfig) -> Harness {
        Harness::with_certs(flakes, store, config, None)
    }

    pub fn with_certs(
        flakes: FakeFlakes,
        store: Store,
        config: WebConfig,
        certs: Option<flakeboot_webui::CertStore>,
    ) -> Harness {
        let (status, rx) = watch::channel(DaemonStatus::default());
        let state =
            WebState::new(store.clone(), Arc::new(flakes.clone()), config, rx, certs).unwrap();
        Harness {
            app: app(state.clone()),
            state,
            flakes,
            status,
            store,
            peer: std::sync::Mutex::new("192.168.1.50:40000".parse().unwrap()),
        }
    }

    pub async fn send(&self, mut req: Request<Body>) -> Response<Body> {
        let peer = *self.peer.lock().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        self.app.clone().oneshot(req).await.unwrap()
    }

    pub async fn get(&self, path: &str, browser: Option<&Browser>) -> Response<Body> {
        let mut req = Request::get(path);
        if let Some(b) = browser {
            req = req.header(header::COOKIE, &b.cookie);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// POSTs a form with the browser's cookie and CSRF token added.
    pub async fn post(
        &self,
        path: &str,
        browser: &Browser,
        fields: &[(&str, &str)],
    ) -> Response<Body> {
        let mut all: Vec<(&str, &str)> = vec![("csrf", &browser.csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, Some(&browser.cookie), &all).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response<Body> {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        json: Option<serde_json::Value>,
    ) -> Response<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match json {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// The pre-session form token cookie and value of a setup or login page.
    pub async fn form_token(&self, path: &str) -> (String, String) {
        let resp = self.get(path, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let cookie = set_cookie(&resp, "__Host-flakeboot-form").expect("form cookie");
        let html = body(resp).await;
        let token = hidden(&html, "form").expect("form token field");
        (cookie, token)
    }

    /// Runs first-run setup and returns the signed-in browser.
    pub async fn setup(&self) -> Browser {
        let code = self
            .state
            .setup_code()
            .expect("a setup code before setup")
            .to_string();
        let (cookie, token) = self.form_token("/setup").await;
        let resp = self
            .post_raw(
                "/setup",
                Some(&cookie),
                &[
                    ("form", &token),
                    ("code", &code),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                    ("lan_interface", "lan0"),
                    ("dhcp_mode", "proxy"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
        self.browser_from(&resp).await
    }

    pub async fn login(&self, password: &str) -> Response<Body> {
        self.login_as("admin", password).await
    }

    pub async fn login_as(&self, user: &str, password: &str) -> Response<Body> {
        let (cookie, token) = self.form_token("/login").await;
        self.post_raw(
            "/login",
            Some(&cookie),
            &[("form", &token), ("user", user), ("password", password)],
        )
        .await
    }

    /// The browser of a response that set the session cookie.
    pub async fn browser_from(&self, resp: &Response<Body>) -> Browser {
        let cookie = set_cookie(resp, "__Host-flakeboot").expect("session cookie");
        let page = self
            .get(
                "/",
                Some(&Browser {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                }),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = hidden(&body(page).await, "csrf").expect("csrf field on the dashboard");
        Browser { cookie, csrf }
    }

    /// Creates an API token through the settings page and returns it.
    pub async fn token(&self, browser: &Browser) -> String {
        self.token_with(browser, &[("name", "ci")]).await
    }

    /// Creates an API token with these form fields (`name`, `scope`, `expires`): the token.
    pub async fn token_with(&self, browser: &Browser, fields: &[(&str, &str)]) -> String {
        let resp = self.post("/settings/tokens", browser, fields).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = body(resp).await;
        let start =
            html.find("id=\"new-token\">").expect("token shown") + "id=\"new-token\">".len();
        html[start..].split('<').next().unwrap().to_owned()
    }
}

/// `name=value` of a Set-Cookie header with this cookie name.
pub fn set_cookie(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The value of a hidden input.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

pub async fn body(resp: Response<Body>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

pub async fn json(resp: Response<Body>) -> serde_json::Value {
    serde_json::from_str(&body(resp).await).unwrap()
}

pub fn location(resp: &Response<Body>) -> String {
    resp.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
