//! Route-level tests of who may do what: anonymous refusals for every protected route (walked
//! from the route table), setup, sign-in, rate limits, session expiry, CSRF.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Harness, PASSWORD, body, hidden, location, set_cookie};
use flakeboot_catalogue::MacAddr;
use flakeboot_webui::{Access, routes};

const MAC: &str = "52:54:00:00:00:01";

fn concrete(path: &str) -> String {
    path.replace("{mac}", MAC)
        .replace("{name}", "fleet")
        .replace("{id}", "1")
}

#[tokio::test]
async fn every_protected_route_refuses_anonymous_and_bad_token_requests() {
    let h = Harness::new();
    let browser = h.setup().await;
    // Something for the handlers to act on, so a refusal is not just a 404.
    h.store
        .set_machine_label(MAC.parse().unwrap(), Some("m".into()))
        .unwrap();
    let resp = h
        .post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let table = routes();
    let protected: Vec<_> = table
        .iter()
        .filter(|r| r.access == Access::Protected)
        .collect();
    assert!(protected.len() >= 40, "{}", protected.len());
    for route in &protected {
        let path = concrete(route.path);
        for auth in [
            None,
            Some("Bearer fbt_not_a_token"),
            Some("Basic YWRtaW46eA=="),
        ] {
            let mut req = Request::builder().method(route.method).uri(&path);
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            if route.method != "GET" {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            }
            let resp = h
                .send(
                    req.body(Body::from("host=fleet%23alpha&label=x&name=t"))
                        .unwrap(),
                )
                .await;
            let status = resp.status();
            if route.path.starts_with("/api/") || route.method != "GET" {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{} {path} ({auth:?})",
                    route.method
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::SEE_OTHER,
                    "{} {path} ({auth:?})",
                    route.method
                );
                assert_eq!(location(&resp), "/login");
            }
        }
    }
    // Nothing was changed by the refused requests.
    assert!(h.store.api_tokens().unwrap().is_empty());
    assert_eq!(
        h.store.machine(MAC.parse().unwrap()).unwrap().unwrap().host,
        None
    );
    assert!(h.flakes.builds_len() == 0);

    // The public routes are exactly sign-in, setup and the static assets.
    let public: Vec<String> = table
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        public,
        [
            "GET /static/style.css",
            "GET /static/live.js",
            "GET /setup",
            "POST /setup",
            "GET /login",
            "POST /login"
        ]
    );
}

#[tokio::test]
async fn before_setup_every_page_leads_to_setup_and_the_api_refuses() {
    let h = Harness::new();
    for path in ["/", "/machines", "/settings", "/login"] {
        let resp = h.get(path, None).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&resp), "/setup");
    }
    assert_eq!(
        h.get("/api/v1/machines", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let html = body(h.get("/setup", None).await).await;
    // The mode in effect now is preselected (proxy here: the default settings).
    assert!(
        html.contains(r#"value="proxy" checked"#),
        "proxy preselected: {html}"
    );
    for text in [
        "Setup code",
        "Admin password",
        "LAN port",
        "Proxy mode",
        "Router mode",
    ] {
        assert!(html.contains(text), "{text}");
    }
}

#[tokio::test]
async fn setup_preselects_the_dhcp_mode_the_appliance_runs_in() {
    let mut config = common::config();
    config.default_settings.dhcp_mode = flakeboot_store::DhcpModeSetting::Router;
    let h = Harness::with(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        config,
    );
    let html = body(h.get("/setup", None).await).await;
    assert!(html.contains(r#"value="router" checked"#), "{html}");
    assert!(!html.contains(r#"value="proxy" checked"#), "{html}");
}

#[tokio::test]
async fn setup_needs_the_code_shows_errors_next_to_fields_and_is_gone_once_done() {
    let h = Harness::new();
    let code = h.state.setup_code().unwrap().to_string();
    let (cookie, token) = h.form_token("/setup").await;

    // Wrong code, short password, unknown port: each error next to its field, nothing saved.
    let resp = h
        .post_raw(
            "/setup",
            Some(&cookie),
            &[
                ("form", &token),
                ("code", "AAAA-BBBB-CCCC"),
                ("password", "short"),
                ("confirm", "short"),
                ("lan_interface", "eth9"),
                ("dhcp_mode", "proxy"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("not the setup code"), "{html}");
    assert!(html.contains("at least 10 characters"));
    assert!(html.contains("Choose the network port"));
    assert!(h.store.users().unwrap().is_empty());

    // Without the form cookie (cross-site post): refused.
    let resp = h
        .post_raw(
            "/setup",
            None,
            &[
                ("form", &token),
                ("code", &code),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
                ("lan_interface", "lan0"),
                ("dhcp_mode", "router"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let mut changes = h.state.settings_changes();
    let browser = h.setup().await;
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow_and_update().lan_interface, "lan0");
    assert!(h.state.setup_code().is_none());
    let user = h.store.user("admin").unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains(PASSWORD));

    // Setup is gone: the page and the form lead to sign-in; no second admin.
    let resp = h.get("/setup", None).await;
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/login".to_owned())
    );
    let resp = h
        .post_raw(
            "/setup",
            None,
            &[("code", &code), ("password", "another password")],
        )
        .await;
    assert_eq!(location(&resp), "/login");
    assert_eq!(h.store.users().unwrap().len(), 1);
    assert_eq!(h.get("/", Some(&browser)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_setup_codes_are_rate_limited() {
    let h = Harness::new();
    let (cookie, token) = h.form_token("/setup").await;
    let fields = [
        ("form", token.as_str()),
        ("code", "WRONG"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
        ("lan_interface", "lan0"),
        ("dhcp_mode", "proxy"),
    ];
    for _ in 0..5 {
        let resp = h.post_raw("/setup", Some(&cookie), &fields).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let resp = h.post_raw("/setup", Some(&cookie), &fields).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_in_sets_a_secure_cookie_and_sign_out_ends_the_session() {
    let h = Harness::new();
    let first = h.setup().await;
    let resp = h.login(PASSWORD).await;
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/".to_owned())
    );
    let raw = resp
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attr in [
        "__Host-flakeboot=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(raw.contains(attr), "{raw}");
    }
    let browser = h.browser_from(&resp).await;
    assert_ne!(browser.cookie, first.cookie);
    assert_eq!(browser.csrf.len(), 64);

    let resp = h.post("/logout", &browser, &[]).await;
    assert_eq!(location(&resp), "/login");
    assert!(
        resp.headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(location(&h.get("/", Some(&browser)).await), "/login");
    // The other session is still there.
    assert_eq!(h.get("/", Some(&first)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_rate_limited_per_address() {
    let h = Harness::new();
    h.setup().await;
    let resp = h.login("wrong password!").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&resp, "__Host-flakeboot").is_none());
    assert!(body(resp).await.contains("Wrong user or password"));
    for _ in 0..4 {
        assert_eq!(
            h.login("wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Sixth attempt: limited even with the right password.
    let resp = h.login(PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");

    // Another address is not limited.
    *h.peer.lock().unwrap() = "192.168.1.51:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
    *h.peer.lock().unwrap() = "192.168.1.50:40001".parse().unwrap();
    assert_eq!(
        h.login(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // After the window the first address may try again.
    h.state.clock().advance(Duration::from_secs(301));
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_login_form_without_its_token_cookie_is_refused() {
    let h = Harness::new();
    h.setup().await;
    let (_, token) = h.form_token("/login").await;
    let resp = h
        .post_raw(
            "/login",
            None,
            &[("form", &token), ("user", "admin"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_after_twelve_hours() {
    let h = Harness::new();
    let browser = h.setup().await;
    h.state.clock().advance(Duration::from_secs(3600));
    assert_eq!(h.get("/", Some(&browser)).await.status(), StatusCode::OK);
    h.state.clock().advance(Duration::from_secs(2 * 3600 + 1));
    let resp = h.get("/", Some(&browser)).await;
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/login".to_owned())
    );
    // An expired session cannot post either.
    let resp = h.post("/settings/tokens", &browser, &[("name", "x")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A session in use still ends at 12 h.
    let busy = h.browser_from(&h.login(PASSWORD).await).await;
    for _ in 0..12 {
        h.state.clock().advance(Duration::from_secs(3600));
        let _ = h.get("/", Some(&busy)).await;
    }
    assert_eq!(location(&h.get("/", Some(&busy)).await), "/login");
}

#[tokio::test]
async fn state_changing_requests_need_the_sessions_csrf_token() {
    let h = Harness::new();
    let browser = h.setup().await;
    let mac: MacAddr = MAC.parse().unwrap();
    h.store.set_machine_label(mac, Some("m".into())).unwrap();

    let path = format!("/machines/{MAC}");
    let cases: [&[(&str, &str)]; 3] = [
        &[("host", "demo")],
        &[("csrf", "0000"), ("host", "demo")],
        &[("csrf", &"f".repeat(64)), ("host", "demo")],
    ];
    for fields in cases {
        let resp = h.post_raw(&path, Some(&browser.cookie), fields).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{fields:?}");
        assert!(
            body(resp)
                .await
                .contains("did not come from this appliance")
        );
    }
    // A JSON write with the session cookie needs the header.
    let req = || {
        Request::post(format!("/api/v1/machines/{MAC}"))
            .header(header::COOKIE, &browser.cookie)
            .header(header::CONTENT_TYPE, "application/json")
    };
    let resp = h
        .send(req().body(Body::from(r#"{"host":"demo"}"#)).unwrap())
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.store.machine(mac).unwrap().unwrap().host, None);

    let resp = h
        .send(
            req()
                .header("x-csrf-token", &browser.csrf)
                .body(Body::from(r#"{"host":"demo"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .post(&path, &browser, &[("host", ""), ("label", "rack 1")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let m = h.store.machine(mac).unwrap().unwrap();
    assert_eq!((m.host, m.label.as_deref()), (None, Some("rack 1")));
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_assets_are_public() {
    let h = Harness::new();
    let browser = h.setup().await;
    let resp = h.get("/", Some(&browser)).await;
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        resp.headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );

    let css = h.get("/static/style.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(
        css.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert!(body(css).await.contains("--accent"));
    let js = h.get("/static/live.js", None).await;
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    // No page links anything off the appliance.
    let html = body(h.get("/", Some(&browser)).await).await;
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(hidden(&html, "csrf").is_some());
    // The policy allows no inline style or script, and no page needs one.
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    h.post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    h.post("/flakes/fleet/build", &browser, &[("host", "alpha")])
        .await;
    for path in [
        "/",
        "/machines",
        "/flakes",
        "/flakes/fleet",
        "/builds/1",
        "/settings",
        "/login",
        "/nope",
    ] {
        let html = body(h.get(path, Some(&browser)).await).await;
        assert!(
            !html.contains(" style=") && !html.contains("<style") && !html.contains("<script>"),
            "{path}"
        );
    }
}
