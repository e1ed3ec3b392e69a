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
            if route.path.starts_with("/api/") || route.path == "/metrics" || route.method != "GET"
            {
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

    // The public routes are exactly sign-in, setup (and its restore of a backup, guarded by
    // the setup code like setup), the static assets and the flakes' push webhook (its own
    // secret authenticates it: `api::follow::hook`).
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
            "GET /static/upload.js",
            "GET /static/firmware.js",
            "GET /static/restore.js",
            "GET /setup",
            "POST /setup",
            "POST /setup/restore",
            "GET /login",
            "POST /login",
            "POST /api/v1/flakes/{name}/hook"
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
    // What was typed stays, to correct a typo rather than type it all again.
    assert!(html.contains(r#"value="AAAA-BBBB-CCCC""#), "{html}");
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
    assert!(resp.headers().contains_key("retry-after"));
    // The form stays, as typed, with the wait next to the code.
    let html = body(resp).await;
    assert!(html.contains(r#"action="/setup""#), "{html}");
    assert!(html.contains(r#"value="WRONG""#), "{html}");
    assert!(
        html.contains("Too many wrong codes from this address"),
        "{html}"
    );
    assert!(html.contains("try again in"), "{html}");
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
    // The sign-in form again, with the user name as typed and the wait next to the password.
    let html = body(resp).await;
    assert!(html.contains(r#"action="/login""#), "{html}");
    assert!(html.contains(r#"value="admin""#), "{html}");
    assert!(
        html.contains(&format!("Too many failed sign-ins: try again in {wait} s.")),
        "{html}"
    );

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

/// Kilobytes of a field of /proc/self/status (`VmRSS`, `VmHWM`).
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The security report's attack: 150 wrong-password sign-ins from one address at once. Only
/// the limit's worth is checked (hashed); the rest are refused at once, and memory stays flat
/// (each argon2 run takes 19 MiB: 150 at once took the daemon from 39 MB to 4.6 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_of_wrong_passwords_gets_only_the_limit_checked() {
    let h = std::sync::Arc::new(Harness::new());
    h.setup().await;
    let (cookie, token) = h.form_token("/login").await;
    let hashes_before = h.state.password_hashes();
    let peak_before = proc_status_kb("VmHWM");

    let burst: Vec<_> = (0..150)
        .map(|i| {
            let (h, cookie, token) = (h.clone(), cookie.clone(), token.clone());
            tokio::spawn(async move {
                let password = format!("wrong password {i}");
                h.post_raw(
                    "/login",
                    Some(&cookie),
                    &[("form", &token), ("user", "admin"), ("password", &password)],
                )
                .await
                .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in burst {
        statuses.push(task.await.unwrap());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 150, "{statuses:?}");
    assert!(checked >= 1, "no sign-in was checked");
    assert!(
        checked <= 5,
        "{checked} wrong passwords were checked, not at most 5"
    );
    assert!(refused >= 145, "{refused}");
    let hashed = h.state.password_hashes() - hashes_before;
    assert!(hashed <= 5, "{hashed} password hashes ran for the burst");
    let grown_mb = proc_status_kb("VmHWM").saturating_sub(peak_before) / 1024;
    println!(
        "burst of 150: {checked} checked, {refused} refused, {hashed} hashes, peak memory +{grown_mb} MB"
    );
    assert!(grown_mb < 256, "peak memory grew by {grown_mb} MB");

    // The address has at most what the burst left of its five attempts (a check refused as
    // busy, which tried no password, does not count), then it waits, even with the right
    // password.
    let mut more = 0;
    while h.login("wrong password!").await.status() == StatusCode::UNAUTHORIZED {
        more += 1;
        assert!(checked + more <= 5, "{checked} + {more}");
    }
    assert_eq!(
        h.login(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and the admin, signing in from elsewhere, is not locked out by it.
    *h.peer.lock().unwrap() = "192.168.1.60:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// The lockout a limit per name allows: a stranger on the LAN fails as `admin` from several
/// addresses. The name's limit bounds them (ten failures in all, each address waits after its
/// own five); the admin, from the address they signed in from before, still signs in at once.
#[tokio::test]
async fn a_stranger_guessing_the_admins_password_does_not_lock_the_admin_out() {
    let h = Harness::new();
    h.setup().await;
    *h.peer.lock().unwrap() = "192.168.1.60:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let mut failed = 0;
    for i in 0..4 {
        *h.peer.lock().unwrap() = format!("192.168.1.{}:40000", 100 + i).parse().unwrap();
        while h.login("wrong password!").await.status() == StatusCode::UNAUTHORIZED {
            failed += 1;
        }
        assert_eq!(
            h.login(PASSWORD).await.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the stranger's address waits, even with the right password"
        );
    }
    assert_eq!(failed, 10, "ten failures for the name from all addresses");
    // Another name is not held up by admin's count.
    *h.peer.lock().unwrap() = "192.168.1.120:40000".parse().unwrap();
    assert_eq!(
        h.login_as("someone", "wrong password!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let hashes = h.state.password_hashes();
    *h.peer.lock().unwrap() = "192.168.1.60:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.state.password_hashes(), hashes + 1);
}

/// Many addresses together are bounded (`login_total_failures`): past that a new address waits
/// for the window, while an address that signed in before may still sign in.
#[tokio::test]
async fn failures_from_all_addresses_together_are_bounded_except_for_a_known_address() {
    let mut config = common::config();
    config.login_total_failures = 12;
    // The name's own limit out of the way here, to see the bound in all.
    config.login_user_failures = 1000;
    let h = Harness::with(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        config,
    );
    h.setup().await;
    *h.peer.lock().unwrap() = "192.168.1.60:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let mut failed = 0;
    for i in 0..10 {
        *h.peer.lock().unwrap() = format!("10.9.1.{i}:40000").parse().unwrap();
        while h.login("wrong password!").await.status() == StatusCode::UNAUTHORIZED {
            failed += 1;
        }
    }
    assert_eq!(failed, 12);
    let hashes = h.state.password_hashes();
    *h.peer.lock().unwrap() = "10.9.2.1:40000".parse().unwrap();
    assert_eq!(
        h.login(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(h.state.password_hashes(), hashes, "refused without a hash");
    *h.peer.lock().unwrap() = "192.168.1.60:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
    h.state.clock().advance(Duration::from_secs(301));
    *h.peer.lock().unwrap() = "10.9.2.1:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// An API token is for /api/v1 only: on every page and form route it is not a credential.
#[tokio::test]
async fn an_api_token_opens_no_page_and_no_form() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    assert_eq!(
        h.api("GET", "/api/v1/status", &token, None).await.status(),
        StatusCode::OK
    );
    h.store
        .set_machine_label(MAC.parse().unwrap(), Some("m".into()))
        .unwrap();
    // Pages and forms; `/metrics` takes tokens like the API (a_read_only_token_reads_...).
    for route in routes().iter().filter(|r| {
        r.access == Access::Protected && !r.path.starts_with("/api/") && r.path != "/metrics"
    }) {
        let path = concrete(route.path);
        let mut req = Request::builder()
            .method(route.method)
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if route.method != "GET" {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let resp = h
            .send(
                req.body(Body::from("name=more&host=demo&cert_pem=x&key_pem=y"))
                    .unwrap(),
            )
            .await;
        if route.method == "GET" {
            assert_eq!(
                (resp.status(), location(&resp)),
                (StatusCode::SEE_OTHER, "/login".to_owned()),
                "GET {path}"
            );
        } else {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "POST {path}");
        }
    }
    // The report's escalation: no second token, no new certificate, nothing changed.
    assert_eq!(h.store.api_tokens().unwrap().len(), 1);
    assert_eq!(
        h.store.machine(MAC.parse().unwrap()).unwrap().unwrap().host,
        None
    );
}

/// Creates a token through the settings form with these extra fields.
async fn token_with(h: &Harness, browser: &common::Browser, fields: &[(&str, &str)]) -> String {
    let mut all = vec![("name", "script")];
    all.extend_from_slice(fields);
    h.token_with(browser, &all).await
}

#[tokio::test]
async fn a_read_only_token_reads_and_changes_nothing() {
    let h = Harness::new();
    let browser = h.setup().await;
    let mac: MacAddr = MAC.parse().unwrap();
    h.store.set_machine_label(mac, Some("m".into())).unwrap();
    let token = token_with(&h, &browser, &[("scope", "read_only")]).await;
    let stored = h.store.api_tokens().unwrap();
    assert_eq!(stored[0].scope, flakeboot_store::TokenScope::ReadOnly);
    assert_eq!(stored[0].expires, None);

    for path in [
        "/api/v1/status",
        "/api/v1/machines",
        "/api/v1/settings",
        "/metrics",
    ] {
        assert_eq!(
            h.api("GET", path, &token, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            h.api("HEAD", path, &token, None).await.status(),
            StatusCode::OK,
            "HEAD {path}"
        );
    }
    // Prometheus scrapes with a read-only token.
    let metrics = h.api("GET", "/metrics", &token, None).await;
    assert_eq!(
        metrics.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let metrics = body(metrics).await;
    assert!(metrics.contains("\nflakeboot_machines 1\n"), "{metrics}");
    assert!(metrics.contains("# TYPE flakeboot_dhcp_reply_duration_seconds histogram"));
    let settings = common::json(h.api("GET", "/api/v1/settings", &token, None).await).await;
    let writes = [
        (
            "POST",
            format!("/api/v1/machines/{MAC}"),
            serde_json::json!({"host": "demo"}),
        ),
        ("PUT", "/api/v1/settings".to_owned(), settings),
        (
            "POST",
            "/api/v1/flakes".to_owned(),
            serde_json::json!({"url": "github:acme/fleet"}),
        ),
        (
            "POST",
            "/api/v1/vpn/peers".to_owned(),
            serde_json::json!({"name": "x"}),
        ),
        (
            "DELETE",
            "/api/v1/vpn/peers/1".to_owned(),
            serde_json::json!({}),
        ),
    ];
    for (method, path, payload) in writes {
        let resp = h.api(method, &path, &token, Some(payload)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert!(body(resp).await.contains("read-only"));
    }
    assert_eq!(h.store.machine(mac).unwrap().unwrap().host, None);
    assert_eq!(h.flakes.builds_len(), 0);
    // The list says what each token may do.
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(html.contains("read only"), "{html}");

    // An admin token may write.
    let admin = token_with(&h, &browser, &[("scope", "admin")]).await;
    let resp = h
        .api(
            "POST",
            &format!("/api/v1/machines/{MAC}"),
            &admin,
            Some(serde_json::json!({"host": "demo"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = token_with(&h, &browser, &[("scope", "admin"), ("expires_days", "1")]).await;
    let stored = h.store.api_tokens().unwrap();
    assert!(stored[0].expires.is_some());
    assert_eq!(
        h.api("GET", "/api/v1/status", &token, None).await.status(),
        StatusCode::OK
    );
    h.state.clock().advance(Duration::from_secs(86_400 + 1));
    assert_eq!(
        h.api("GET", "/api/v1/status", &token, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A day later the session has ended too.
    let browser = h.browser_from(&h.login(PASSWORD).await).await;
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(html.contains("<strong>expired</strong>"), "{html}");

    // Bad scopes and lifetimes are refused next to their fields; nothing is created.
    for fields in [
        [("scope", "root"), ("expires_days", "")],
        [("scope", "admin"), ("expires_days", "0")],
        [("scope", "admin"), ("expires_days", "99999")],
        [("scope", "admin"), ("expires_days", "-1")],
    ] {
        let mut all = vec![("name", "x")];
        all.extend_from_slice(&fields);
        let resp = h.post("/settings/tokens", &browser, &all).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{fields:?}"
        );
    }
    assert_eq!(h.store.api_tokens().unwrap().len(), 1);
}

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's log, captured once for the whole test binary. A global subscriber, not a
/// thread-local one: with tests running in parallel, a thread-local subscriber can miss events
/// whose call sites other threads registered first.
fn captured_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only global subscriber of this test binary");
        logs
    })
    .clone()
}

#[tokio::test]
async fn a_forged_user_name_is_logged_escaped() {
    let logs = captured_logs();
    let h = Harness::new();
    h.setup().await;
    let forged = "admin\n1999-01-01T00:00:00.000000Z  INFO flakeboot_webui::pages::login: signed in user=admin\x1b[1A\x1b[2K";
    let (cookie, token) = h.form_token("/login").await;
    let resp = h
        .post_raw(
            "/login",
            Some(&cookie),
            &[("form", &token), ("user", forged), ("password", "x")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("failed sign-in"), "{text}");
    for line in text.lines() {
        assert!(
            !line.starts_with("1999-01-01T00:00:00"),
            "a forged log line: {line:?}"
        );
    }
    assert!(
        !text.contains('\x1b'),
        "raw escape codes in the log: {text:?}"
    );
    assert!(text.contains("admin\\n1999-01-01"), "{text}");
    assert!(text.contains("\\u{1b}[1A"), "{text}");
}

/// Sign-ins from many addresses at once: the password checks run a few at a time with a short
/// queue, the rest are refused at once (429, Retry-After 1) and do not count as attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_ins_beyond_the_hash_queue_are_refused_not_queued() {
    let mut config = common::config();
    config.login_total_failures = 1000;
    config.hash_limits = flakeboot_webui::auth::hash_gate::HashLimits {
        permits: 1,
        queue: 1,
        wait: Duration::from_secs(30),
    };
    let h = std::sync::Arc::new(Harness::with(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        config,
    ));
    h.setup().await;
    let (cookie, token) = h.form_token("/login").await;
    let hashes_before = h.state.password_hashes();
    let burst: Vec<_> = (0..40u8)
        .map(|i| {
            let (h, cookie, token) = (h.clone(), cookie.clone(), token.clone());
            tokio::spawn(async move {
                let fields = [
                    ("form", token.as_str()),
                    ("user", "admin"),
                    ("password", "wrong password!"),
                ];
                let body = serde_urlencoded::to_string(fields).unwrap();
                let mut req = Request::post("/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, &cookie)
                    .body(Body::from(body))
                    .unwrap();
                let peer: std::net::SocketAddr = format!("10.9.0.{i}:40000").parse().unwrap();
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let resp = tower::ServiceExt::oneshot(h.app.clone(), req)
                    .await
                    .unwrap();
                let retry = resp
                    .headers()
                    .get(header::RETRY_AFTER)
                    .map(|v| v.to_str().unwrap().to_owned());
                (resp.status(), retry)
            })
        })
        .collect();
    let mut busy = 0;
    let mut checked = 0;
    for task in burst {
        match task.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => checked += 1,
            (StatusCode::TOO_MANY_REQUESTS, retry) => {
                assert_eq!(retry.as_deref(), Some("1"));
                busy += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(busy + checked, 40);
    assert!(busy > 0, "every sign-in waited for the one permit");
    assert_eq!(h.state.password_hashes() - hashes_before, checked);
    // A refused (unchecked) sign-in did not use up its address's attempts.
    *h.peer.lock().unwrap() = "10.9.0.39:40000".parse().unwrap();
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// A refused request's body is read before the answer goes out (an HTTP/2 client still sending
/// it would otherwise see a reset stream instead of the answer), but only so far: a stranger's
/// endless body is read to about 1 MiB and no further.
#[tokio::test]
async fn refused_bodies_are_drained_before_the_answer_and_only_so_far() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A body of `chunks` chunks of `size` bytes, each a little late, counting what was read.
    fn counted(chunks: Option<u64>, size: usize, read: Arc<AtomicU64>) -> Body {
        let stream = futures_util::stream::unfold(0u64, move |n| {
            let read = Arc::clone(&read);
            async move {
                if chunks.is_some_and(|c| n >= c) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(if chunks.is_some() { 20 } else { 0 }))
                    .await;
                read.fetch_add(size as u64, Ordering::SeqCst);
                Some((Ok::<_, std::io::Error>(vec![b'x'; size]), n + 1))
            }
        });
        Body::from_stream(stream)
    }

    let h = Harness::new();
    let browser = h.setup().await;
    let read_only = h
        .token_with(&browser, &[("name", "ro"), ("scope", "read_only")])
        .await;
    let cases = [
        (
            "read-only token",
            format!("Bearer {read_only}"),
            StatusCode::FORBIDDEN,
        ),
        (
            "no such token",
            "Bearer fbt_nobody".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, auth, status) in cases {
        let read = Arc::new(AtomicU64::new(0));
        let req = Request::post("/api/v1/access-tokens")
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(counted(Some(5), 100, Arc::clone(&read)))
            .unwrap();
        let resp = h.send(req).await;
        assert_eq!(resp.status(), status, "{what}");
        assert_eq!(
            read.load(Ordering::SeqCst),
            500,
            "{what}: the whole body read first"
        );
    }
    // A session's write without its CSRF header: drained as well.
    let read = Arc::new(AtomicU64::new(0));
    let req = Request::post("/api/v1/access-tokens")
        .header(header::COOKIE, &browser.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(counted(Some(3), 10, Arc::clone(&read)))
        .unwrap();
    assert_eq!(h.send(req).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(read.load(Ordering::SeqCst), 30);

    // An endless body: read to the bound, then answered.
    let read = Arc::new(AtomicU64::new(0));
    let req = Request::post("/api/v1/access-tokens")
        .header(header::AUTHORIZATION, "Bearer fbt_nobody")
        .body(counted(None, 64 * 1024, Arc::clone(&read)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h.send(req))
        .await
        .expect("answered, not stuck reading");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let got = read.load(Ordering::SeqCst);
    assert!(
        (1 << 20..=(1 << 20) + 2 * 64 * 1024).contains(&got),
        "read {got} bytes"
    );
}
