//! Route-level tests of remote access over WireGuard: the Remote access page, adding a device
//! (its config shown once, never again), rename, revoke, server and hub settings, the JSON API,
//! refusals, and an appliance without a VPN service. The VPN service is a fake that records calls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use common::fake_vpn::{FakeVpn, HUB_KEY, PRIVATE_MARKER, SERVER_KEY};
use common::{Browser, Harness, body, json, location};
use flakeboot_appliance::VpnService;
use serde_json::json;

const NOT_AVAILABLE: &str = "Remote access over WireGuard is not available on this appliance.";
const INTERNAL: &str = "Something went wrong on the appliance. The details are in its log.";
const GOOD_KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

async fn ready() -> (Harness, Browser, String, FakeVpn) {
    let h = Harness::new();
    let vpn = FakeVpn::new();
    h.state.set_vpn(Arc::new(vpn.clone()));
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    (h, browser, token, vpn)
}

/// Every state-changing form on a page carries the session's CSRF token, and nothing inline.
fn assert_forms_are_safe(html: &str, browser: &Browser) {
    let forms = html.matches("<form").count();
    let tokens = html
        .matches(&format!("name=\"csrf\" value=\"{}\"", browser.csrf))
        .count();
    assert!(forms > 0);
    assert_eq!(forms, tokens, "a form without the CSRF token");
    assert!(
        !html.contains(" style=") && !html.contains("<style") && !html.contains("<script"),
        "inline style or script"
    );
}

fn server_form<'a>(port: &'a str, address: &'a str, endpoint: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("enabled", "on"),
        ("listen_port", port),
        ("address", address),
        ("endpoint", endpoint),
    ]
}

#[tokio::test]
async fn without_a_vpn_service_the_page_and_the_api_say_remote_access_is_not_available() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let dashboard = body(h.get("/", Some(&browser)).await).await;
    assert!(
        dashboard.contains("<a href=\"/vpn\">Remote<span class=\"wide-only\"> access</span></a>")
    );

    let resp = h.get("/vpn", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let html = body(resp).await;
    assert!(html.contains(NOT_AVAILABLE), "{html}");
    assert!(html.contains("Sign out"), "the page keeps the navigation");
    let resp = h.post("/vpn/peers", &browser, &[("name", "laptop")]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body(resp).await.contains(NOT_AVAILABLE));

    for (method, path, payload) in [
        ("GET", "/api/v1/vpn", None),
        (
            "PUT",
            "/api/v1/vpn/server",
            Some(
                json!({"enabled": true, "listen_port": 51820, "address": "10.77.0.1/24", "endpoint": ""}),
            ),
        ),
        ("POST", "/api/v1/vpn/peers", Some(json!({"name": "laptop"}))),
        ("PATCH", "/api/v1/vpn/peers/1", Some(json!({"name": "x"}))),
        ("DELETE", "/api/v1/vpn/peers/1", None),
    ] {
        let resp = h.api(method, path, &token, payload).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(json(resp).await, json!({"error": NOT_AVAILABLE}));
    }
}

#[tokio::test]
async fn the_page_shows_server_devices_with_handshakes_and_traffic_and_the_hub() {
    let (h, browser, _, vpn) = ready().await;
    let empty = body(h.get("/vpn", Some(&browser)).await).await;
    for text in [
        "Remote access",
        "dial in to this appliance",
        "dial out to a WireGuard server you already run",
        SERVER_KEY,
        HUB_KEY,
        "Off.",
        "No device yet.",
        "Server mode is off",
        "value=\"51820\"",
        "value=\"10.78.0.1/24\"",
        "class=\"active\"",
    ] {
        assert!(empty.contains(text), "{text} missing");
    }
    assert_forms_are_safe(&empty, &browser);

    for name in ["laptop", "phone", "tablet"] {
        vpn.add_peer(name).await.unwrap();
    }
    vpn.traffic(1, 12, 1536, 5 * 1024 * 1024);
    vpn.traffic(2, 3 * 3600 + 20, 999, 0);
    let resp = h.get("/vpn", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body(resp).await;
    for text in [
        "laptop",
        "10.77.0.2",
        "12 s ago",
        "↓ 1.5 KiB · ↑ 5.0 MiB",
        "3 h ago",
        "999 B",
        "never",
        "action=\"/vpn/peers/2/rename\"",
        "action=\"/vpn/peers/3/revoke\"",
        "Revoke cuts a device off at once",
        "PUBfake0001",
    ] {
        assert!(html.contains(text), "{text} missing");
    }
    assert!(!html.contains(PRIVATE_MARKER), "a private key on the page");
    assert_forms_are_safe(&html, &browser);
}

#[tokio::test]
async fn server_settings_are_applied_and_errors_show_next_to_their_field() {
    let (h, browser, _, vpn) = ready().await;
    let resp = h
        .post(
            "/vpn/server",
            &browser,
            &server_form("51821", "10.77.0.1/24", "office.example.net"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/vpn?saved=server");
    let s = vpn.server();
    assert_eq!(
        (s.enabled, s.listen_port, s.endpoint.as_str()),
        (true, 51821, "office.example.net")
    );
    let html = body(h.get("/vpn?saved=server", Some(&browser)).await).await;
    assert!(html.contains("Server settings saved and applied."));
    assert!(html.contains("Up on <code>fb-wg0</code> (userspace WireGuard)."));
    assert!(!html.contains("Server mode is off"));

    // The form's own check: the port is not a number; the service is not asked.
    let calls = vpn.calls().len();
    let resp = h
        .post(
            "/vpn/server",
            &browser,
            &server_form("51x", "10.9.0.1/24", ""),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("between 1 and 65535"));
    assert!(html.contains("value=\"51x\"") && html.contains("value=\"10.9.0.1/24\""));
    assert!(
        !vpn.calls()[calls..]
            .iter()
            .any(|c| c.starts_with("set_server"))
    );

    // The service's check, next to its field; what was typed stays.
    let resp = h
        .post(
            "/vpn/server",
            &browser,
            &server_form("51820", "nonsense", ""),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    let field = html.find("id=\"server_address\"").unwrap();
    let error = html
        .find("“nonsense” is not an address with a prefix")
        .unwrap();
    assert!(error > field && error < html.find("id=\"server_endpoint\"").unwrap());
    assert!(html.contains("value=\"nonsense\""));
    assert_eq!(vpn.server().address, "10.77.0.1/24", "not saved");

    // Saved, but the tunnel cannot come up: its state says why.
    vpn.unavailable("UDP port 51820 is taken by another program: choose another port.");
    let resp = h
        .post(
            "/vpn/server",
            &browser,
            &server_form("51820", "10.77.0.1/24", ""),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body(resp).await;
    assert!(html.contains("Saved, but the server tunnel is not up"));
    assert!(html.contains("Not up: UDP port 51820 is taken by another program"));
    assert!(html.contains("badge bad"));
    assert_eq!(vpn.server().listen_port, 51820);
}

#[tokio::test]
async fn hub_settings_are_applied_and_shown_with_state_handshake_and_traffic() {
    let (h, browser, _, vpn) = ready().await;
    let hub = |key: &'static str| {
        vec![
            ("enabled", "on"),
            ("endpoint", "hub.example.net:51820"),
            ("public_key", key),
            ("allowed_ips", "10.99.0.0/24, 10.98.0.0/24"),
            ("keepalive", "25"),
            ("address", "10.99.0.5/24"),
        ]
    };
    let resp = h.post("/vpn/hub", &browser, &hub("not-a-key")).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    let field = html.find("id=\"hub_public_key\"").unwrap();
    let error = html.find("That is not a WireGuard public key").unwrap();
    assert!(error > field && error < html.find("id=\"hub_address\"").unwrap());
    assert!(html.contains("value=\"not-a-key\""));
    assert!(!vpn.hub().enabled);

    let resp = h
        .post(
            "/vpn/hub",
            &browser,
            &[("keepalive", "often"), ("endpoint", "hub:1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body(resp).await.contains("Enter a number of seconds"));

    let resp = h.post("/vpn/hub", &browser, &hub(GOOD_KEY)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/vpn?saved=hub");
    assert_eq!(vpn.hub().allowed_ips, ["10.99.0.0/24", "10.98.0.0/24"]);
    let html = body(h.get("/vpn?saved=hub", Some(&browser)).await).await;
    for text in [
        "Hub settings saved and applied.",
        "Up on <code>fb-hub0</code>",
        "value=\"hub.example.net:51820\"",
        "value=\"10.99.0.0/24, 10.98.0.0/24\"",
        "3 h ago",
        "↓ 1.5 KiB received · ↑ 23 MiB sent",
        HUB_KEY,
    ] {
        assert!(html.contains(text), "{text} missing");
    }

    vpn.unavailable("The hub's name does not resolve: check the endpoint.");
    let resp = h.post("/vpn/hub", &browser, &hub(GOOD_KEY)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body(resp).await;
    assert!(html.contains("Saved, but the hub tunnel is not up"));
    assert!(html.contains("Not up: The hub's name does not resolve"));
}

fn data_url_text(html: &str) -> String {
    let marker = "href=\"data:application/octet-stream;base64,";
    let start = html.find(marker).unwrap() + marker.len();
    let b64 = html[start..].split('"').next().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn adding_a_device_shows_its_config_once_as_text_qr_code_and_download() {
    let (h, browser, token, vpn) = ready().await;
    let resp = h
        .post("/vpn/peers", &browser, &[("name", " laptop ")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let html = body(resp).await;
    assert_eq!(vpn.peer_names(), ["laptop"], "the name is trimmed");
    for text in [
        "Device “laptop” added",
        "This is the only time this config is shown.",
        "<svg role=\"img\"",
        "viewBox=",
        "download=\"fb-laptop.conf\"",
        "sudo wg-quick up ./fb-laptop.conf",
        "PrivateKey = PRIVfake0001",
        "10.77.0.2",
    ] {
        assert!(html.contains(text), "{text} missing");
    }
    let file = data_url_text(&html);
    assert!(
        file.starts_with("[Interface]\nPrivateKey = PRIVfake0001"),
        "{file}"
    );
    assert!(file.contains(&format!("PublicKey = {SERVER_KEY}")));
    assert!(!html.contains(" style="), "the CSP allows no inline style");

    // Never again: not on the page, not in the API, not on another page.
    for path in ["/vpn", "/vpn?saved=renamed", "/", "/settings"] {
        let page = body(h.get(path, Some(&browser)).await).await;
        assert!(!page.contains(PRIVATE_MARKER), "{path}");
    }
    let status = body(h.api("GET", "/api/v1/vpn", &token, None).await).await;
    assert!(status.contains("laptop") && !status.contains(PRIVATE_MARKER));
    let vpn_page = body(h.get("/vpn", Some(&browser)).await).await;
    assert!(!vpn_page.contains("data:application"));

    // Bad names come back next to the add field, with what was typed.
    for (name, message) in [
        ("", "Give the device a name"),
        ("laptop", "Another device has that name already."),
    ] {
        let resp = h.post("/vpn/peers", &browser, &[("name", name)]).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let html = body(resp).await;
        let field = html.find("id=\"peer_name\"").unwrap();
        let error = html.find(message).unwrap();
        assert!(error > field, "{message} not next to the field");
        assert!(!html.contains(PRIVATE_MARKER));
    }
    assert_eq!(vpn.peer_names(), ["laptop"]);

    // The live interface cannot take the device: said plainly, nothing half-made is shown.
    vpn.add_unavailable("The server tunnel is down: enable server mode first.");
    let resp = h.post("/vpn/peers", &browser, &[("name", "phone")]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = body(resp).await;
    assert!(html.contains("The server tunnel is down: enable server mode first."));
    assert!(html.contains("value=\"phone\""), "what was typed stays");
    let resp = h
        .api(
            "POST",
            "/api/v1/vpn/peers",
            &token,
            Some(json!({"name": "phone"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(resp).await,
        json!({"error": "The server tunnel is down: enable server mode first."})
    );
}

#[tokio::test]
async fn devices_are_renamed_and_revoked_and_unknown_ones_are_not_found() {
    let (h, browser, _, vpn) = ready().await;
    h.post("/vpn/peers", &browser, &[("name", "laptop")]).await;
    h.post("/vpn/peers", &browser, &[("name", "phone")]).await;

    let resp = h
        .post("/vpn/peers/1/rename", &browser, &[("name", "work-laptop")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/vpn?saved=renamed");
    assert_eq!(vpn.peer_names(), ["work-laptop", "phone"]);

    let resp = h
        .post("/vpn/peers/2/rename", &browser, &[("name", "work-laptop")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    let row = html.find("id=\"peer-2\"").unwrap();
    let error = html.find("Another device has that name already.").unwrap();
    assert!(error > row, "the error is in the renamed device's row");
    assert!(html[row..].contains("<details class=\"rename\" open>"));

    let resp = h
        .post("/vpn/peers/9/rename", &browser, &[("name", "x")])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        body(resp)
            .await
            .contains("Not found: peer 9. It may have been revoked already.")
    );

    let resp = h.post("/vpn/peers/1/revoke", &browser, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/vpn?saved=revoked");
    assert_eq!(vpn.peer_names(), ["phone"]);
    let html = body(h.get("/vpn?saved=revoked", Some(&browser)).await).await;
    assert!(html.contains("Device revoked: it was cut off at once."));
    assert!(!html.contains("work-laptop"));
    let resp = h.post("/vpn/peers/1/revoke", &browser, &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        vpn.calls()
            .iter()
            .filter(|c| !c.starts_with("status"))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "add_peer(laptop)",
            "add_peer(phone)",
            "rename_peer(1, work-laptop)",
            "rename_peer(2, work-laptop)",
            "rename_peer(9, x)",
            "revoke_peer(1)",
            "revoke_peer(1)",
        ]
    );
}

#[tokio::test]
async fn internal_failures_are_shown_plainly_and_their_cause_is_kept_from_users() {
    let (h, browser, token, vpn) = ready().await;
    let cause = "cannot write /var/lib/flakeboot/wireguard/server.key";
    vpn.fail_with(cause);
    let resp = h.get("/vpn", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = body(resp).await;
    assert!(html.contains(INTERNAL) && !html.contains(cause));
    let resp = h.post("/vpn/peers", &browser, &[("name", "laptop")]).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body(resp).await.contains(cause));
    let resp = h.api("GET", "/api/v1/vpn", &token, None).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(resp).await, json!({"error": INTERNAL}));
    let resp = h
        .api(
            "POST",
            "/api/v1/vpn/peers",
            &token,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(resp).await, json!({"error": INTERNAL}));
}

#[tokio::test]
async fn anonymous_bad_token_and_csrf_less_requests_are_refused_and_reach_no_service() {
    let (h, browser, _, vpn) = ready().await;
    let resp = h.get("/vpn", None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login");
    for (method, path) in [
        ("GET", "/api/v1/vpn"),
        ("PUT", "/api/v1/vpn/server"),
        ("PUT", "/api/v1/vpn/hub"),
        ("POST", "/api/v1/vpn/peers"),
        ("PATCH", "/api/v1/vpn/peers/1"),
        ("DELETE", "/api/v1/vpn/peers/1"),
    ] {
        let resp = h
            .api(method, path, "fbt_not_a_token", Some(json!({"name": "x"})))
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    for path in [
        "/vpn/server",
        "/vpn/hub",
        "/vpn/peers",
        "/vpn/peers/1/rename",
        "/vpn/peers/1/revoke",
    ] {
        let resp = h.post_raw(path, None, &[("name", "x")]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "anonymous {path}");
        let resp = h
            .post_raw(path, Some(&browser.cookie), &[("name", "x")])
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no CSRF token {path}");
        let resp = h
            .post_raw(
                path,
                Some(&browser.cookie),
                &[("csrf", &"0".repeat(64)), ("name", "x")],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "wrong CSRF token {path}"
        );
    }
    assert!(
        vpn.calls().iter().all(|c| c == "status"),
        "{:?}",
        vpn.calls()
    );

    // The API with a browser session: writes need the X-CSRF-Token header.
    let req = |csrf: Option<&str>| {
        let mut r = Request::post("/api/v1/vpn/peers")
            .header(header::COOKIE, &browser.cookie)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.body(Body::from(r#"{"name":"laptop"}"#)).unwrap()
    };
    assert_eq!(h.send(req(None)).await.status(), StatusCode::FORBIDDEN);
    assert!(vpn.peer_names().is_empty());
    assert_eq!(
        h.send(req(Some(&browser.csrf))).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn the_api_reads_and_changes_settings_and_peers_and_gives_a_config_once() {
    let (h, _, t, vpn) = ready().await;
    let status = json(h.api("GET", "/api/v1/vpn", &t, None).await).await;
    assert_eq!(status["server"]["listen_port"], 51820);
    assert_eq!(status["server_tunnel"], json!({"state": "off"}));
    assert_eq!(status["server_public_key"], SERVER_KEY);
    assert_eq!(status["hub"]["public_key"], HUB_KEY);
    assert_eq!(status["peers"], json!([]));

    let server = json!({"enabled": true, "listen_port": 51821, "address": "10.77.0.1/24", "endpoint": "office.example.net"});
    let resp = h
        .api("PUT", "/api/v1/vpn/server", &t, Some(server.clone()))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let status = json(resp).await;
    assert_eq!(status["server"], server);
    assert_eq!(
        status["server_tunnel"],
        json!({"state": "up", "interface": "fb-wg0", "implementation": "userspace"})
    );
    let mut bad = server.clone();
    bad["address"] = json!("10.77.0.1");
    let resp = h.api("PUT", "/api/v1/vpn/server", &t, Some(bad)).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = json(resp).await;
    assert_eq!(err["field"], "address");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("not an address with a prefix")
    );

    let resp = h
        .api(
            "POST",
            "/api/v1/vpn/peers",
            &t,
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let new = json(resp).await;
    assert_eq!(new["peer"]["id"], 1);
    assert_eq!(new["peer"]["address"], "10.77.0.2");
    // Times are RFC 3339 strings in UTC.
    let created = new["peer"]["created"].as_str().unwrap();
    assert!(
        created.starts_with("20") && created.ends_with('Z'),
        "{created}"
    );
    assert_eq!(new["peer"]["last_handshake"], json!(null));
    let config = new["config"].as_str().unwrap();
    assert!(config.contains("PrivateKey = PRIVfake0001"));
    assert!(config.contains("Endpoint = office.example.net"));
    let resp = h
        .api("POST", "/api/v1/vpn/peers", &t, Some(json!({"name": ""})))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(resp).await["field"], "name");

    vpn.traffic(1, 30, 100, 200);
    let text = body(h.api("GET", "/api/v1/vpn", &t, None).await).await;
    assert!(
        !text.contains(PRIVATE_MARKER),
        "a private key in the status"
    );
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["peers"][0]["rx_bytes"], 100);
    assert!(
        status["peers"][0]["last_handshake"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{status}"
    );

    let resp = h
        .api(
            "PATCH",
            "/api/v1/vpn/peers/1",
            &t,
            Some(json!({"name": "work"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let peer = json(resp).await;
    assert_eq!(
        (peer["id"].clone(), peer["name"].clone()),
        (json!(1), json!("work"))
    );
    assert!(!peer.to_string().contains(PRIVATE_MARKER));
    let resp = h
        .api(
            "PATCH",
            "/api/v1/vpn/peers/7",
            &t,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(resp).await, json!({"error": "peer 7 not found"}));

    let resp = h.api("DELETE", "/api/v1/vpn/peers/1", &t, None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(vpn.peer_names().is_empty());
    let resp = h.api("DELETE", "/api/v1/vpn/peers/1", &t, None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let hub = json!({"enabled": true, "endpoint": "hub.example.net:51820", "public_key": GOOD_KEY,
        "allowed_ips": ["10.99.0.0/24"], "keepalive": 25, "address": "10.99.0.5/24"});
    let resp = h.api("PUT", "/api/v1/vpn/hub", &t, Some(hub.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let status = json(resp).await;
    assert_eq!(status["hub"]["settings"], hub);
    assert_eq!(status["hub"]["tunnel"]["state"], "up");
    assert_eq!(status["hub"]["rx_bytes"], 1536);
    let mut bad = hub.clone();
    bad["public_key"] = json!("short");
    let resp = h.api("PUT", "/api/v1/vpn/hub", &t, Some(bad)).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(resp).await["field"], "public_key");

    // Saved but not up: a success whose status shows the tunnel failed, with the reason.
    vpn.unavailable("No TUN device: load the tun module.");
    let resp = h.api("PUT", "/api/v1/vpn/hub", &t, Some(hub)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(resp).await["hub"]["tunnel"],
        json!({"state": "failed", "message": "No TUN device: load the tun module."})
    );
    let resp = h.api("PUT", "/api/v1/vpn/server", &t, Some(server)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json(resp).await["server_tunnel"]["state"], "failed");
}

#[test]
fn every_vpn_route_is_in_the_route_table_as_protected() {
    // auth_routes.rs walks this table to prove each route refuses anonymous requests.
    let table = flakeboot_webui::routes();
    for (method, path) in [
        ("GET", "/vpn"),
        ("POST", "/vpn/server"),
        ("POST", "/vpn/hub"),
        ("POST", "/vpn/peers"),
        ("POST", "/vpn/peers/{id}/rename"),
        ("POST", "/vpn/peers/{id}/revoke"),
        ("GET", "/api/v1/vpn"),
        ("PUT", "/api/v1/vpn/server"),
        ("PUT", "/api/v1/vpn/hub"),
        ("POST", "/api/v1/vpn/peers"),
        ("PATCH", "/api/v1/vpn/peers/{id}"),
        ("DELETE", "/api/v1/vpn/peers/{id}"),
    ] {
        assert!(
            table.iter().any(|r| r.method == method
                && r.path == path
                && r.access == flakeboot_webui::Access::Protected),
            "{method} {path}"
        );
    }
}
