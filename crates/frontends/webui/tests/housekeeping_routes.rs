//! Route-level tests of housekeeping and power: removing a flake (API and the confirmation
//! page), forgetting a machine, releasing a lease, waking a machine; and the refusals: a flake
//! the config file adds, a machine it pins (both with file and line), CSRF on the forms.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use common::{Harness, body, json, location};
use flakeboot_catalogue::MacAddr;
use flakeboot_store::{LeaseRecord, LeaseState, Store};
use flakeboot_webui::ConfigFlake;
use serde_json::json;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 2]);
const PINNED: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 1]);

fn harness() -> Harness {
    let mut config = common::config();
    config.pinned_machines = [(PINNED, Some("demo".to_owned()))].into();
    config.config_file = Some("/etc/flakeboot.toml".into());
    config.pin_lines = [(PINNED, 7)].into();
    config.config_flakes = vec![ConfigFlake {
        url: "github:acme/site".into(),
        name: None,
        line: Some(12),
    }];
    Harness::with(
        common::FakeFlakes::manual(),
        Store::in_memory().unwrap(),
        config,
    )
}

async fn add_flake(h: &Harness, t: &str, url: &str, name: &str) {
    let resp = h
        .api(
            "POST",
            "/api/v1/flakes",
            t,
            Some(json!({"url": url, "name": name})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

fn lease(mac: MacAddr, last: u8) -> LeaseRecord {
    LeaseRecord {
        ip: Ipv4Addr::new(10, 77, 0, last),
        mac,
        client_id: None,
        hostname: None,
        expires: SystemTime::now() + Duration::from_secs(600),
        state: LeaseState::Bound,
    }
}

#[tokio::test]
async fn a_flake_is_removed_over_the_api_unless_the_config_file_adds_it() {
    let h = harness();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    add_flake(&h, &t, "github:acme/fleet", "prod").await;
    // The config file's flake (matched by URL: its entry has no name).
    add_flake(&h, &t, "github:acme/site", "site").await;

    let resp = h.api("DELETE", "/api/v1/flakes/prod", &t, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let removed = json(resp).await;
    assert_eq!(removed["name"], "prod");
    assert_eq!(removed["hosts"][0], "prod#alpha", "{removed}");
    assert_eq!(removed["machines"], json!([]));
    let flakes = json(h.api("GET", "/api/v1/flakes", &t, None).await).await;
    assert_eq!(flakes.as_array().unwrap().len(), 1, "{flakes}");
    // Gone: a second removal is 404.
    let resp = h.api("DELETE", "/api/v1/flakes/prod", &t, None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = h.api("DELETE", "/api/v1/flakes/site", &t, None).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = json(resp).await;
    assert_eq!(err["field"], "name");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("config file (/etc/flakeboot.toml, line 12)"),
        "{err}"
    );
    assert_eq!(
        json(h.api("GET", "/api/v1/flakes", &t, None).await)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_confirmation_page_lists_the_machines_that_go_back_to_the_menu() {
    let h = harness();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    add_flake(&h, &t, "github:acme/fleet", "prod").await;
    add_flake(&h, &t, "github:acme/site", "site").await;
    h.store
        .set_machine_host(MAC, Some("prod#alpha".into()))
        .unwrap();

    let html = body(h.get("/flakes/prod", Some(&browser)).await).await;
    assert!(html.contains("href=\"/flakes/prod/remove\""), "{html}");
    let html = body(h.get("/flakes/prod/remove", Some(&browser)).await).await;
    assert!(html.contains("id=\"affected-machines\""), "{html}");
    assert!(
        html.contains("52:54:00:ab:00:02") && html.contains("<code>prod#alpha</code>"),
        "{html}"
    );
    assert!(html.contains("Remove flake prod"), "{html}");
    // Without the CSRF token: refused, nothing removed.
    let resp = h
        .post_raw("/flakes/prod/remove", Some(&browser.cookie), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = h.post("/flakes/prod/remove", &browser, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/flakes");
    let html = body(h.get("/flakes", Some(&browser)).await).await;
    assert!(!html.contains("github:acme/fleet"), "{html}");

    // The config file's flake: the page says where, and offers no button.
    let resp = h.get("/flakes/site/remove", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let html = body(resp).await;
    assert!(
        html.contains("<code>/etc/flakeboot.toml, line 12</code>")
            && !html.contains("Remove flake site"),
        "{html}"
    );
    let resp = h.post("/flakes/site/remove", &browser, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_machine_is_forgotten_unless_the_config_file_pins_it() {
    let h = harness();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    h.store
        .set_machine_label(MAC, Some("rack 3".into()))
        .unwrap();
    h.store
        .set_machine_label(PINNED, Some("pinned".into()))
        .unwrap();

    let resp = h
        .api("DELETE", "/api/v1/machines/52:54:00:ab:00:01", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = json(resp).await;
    assert_eq!(err["errors"][0]["field"], "mac", "{err}");
    assert!(
        err["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Set in /etc/flakeboot.toml, line 7"),
        "{err}"
    );
    assert!(h.store.machine(PINNED).unwrap().is_some());

    let resp = h
        .api("DELETE", "/api/v1/machines/52:54:00:ab:00:02", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(h.store.machine(MAC).unwrap().is_none());
    let resp = h
        .api("DELETE", "/api/v1/machines/52:54:00:ab:00:02", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A group address is never a machine.
    let resp = h
        .api("DELETE", "/api/v1/machines/ff:ff:ff:ff:ff:ff", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // The page: a pinned machine has no Forget button and the form is refused.
    let html = body(h.get("/machines/52:54:00:ab:00:01", Some(&browser)).await).await;
    assert!(!html.contains("id=\"forget\""), "{html}");
    assert!(html.contains("id=\"power-on\""), "{html}");
    let resp = h
        .post("/machines/52:54:00:ab:00:01/forget", &browser, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(body(resp).await.contains("/etc/flakeboot.toml, line 7"));
    h.store
        .set_machine_label(MAC, Some("again".into()))
        .unwrap();
    let html = body(h.get("/machines/52:54:00:ab:00:02", Some(&browser)).await).await;
    assert!(html.contains("id=\"forget\""), "{html}");
    let resp = h
        .post("/machines/52:54:00:ab:00:02/forget", &browser, &[])
        .await;
    assert_eq!(location(&resp), "/machines");
    assert!(h.store.machine(MAC).unwrap().is_none());
}

#[tokio::test]
async fn a_lease_is_released_and_waking_needs_the_lan() {
    let h = harness();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    h.store
        .set_machine_label(MAC, Some("rack 3".into()))
        .unwrap();
    h.store
        .put_leases(&[lease(MAC, 100), lease(PINNED, 101)])
        .unwrap();

    let html = body(h.get("/machines/52:54:00:ab:00:02", Some(&browser)).await).await;
    assert!(html.contains("Release lease 10.77.0.100"), "{html}");
    let resp = h
        .api("DELETE", "/api/v1/leases/52:54:00:ab:00:02", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(resp).await,
        json!({"mac": "52:54:00:ab:00:02", "released": ["10.77.0.100"]})
    );
    let leases = json(h.api("GET", "/api/v1/leases", &t, None).await).await;
    assert_eq!(leases.as_array().unwrap().len(), 1, "{leases}");
    let resp = h
        .api("DELETE", "/api/v1/leases/52:54:00:ab:00:02", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The form.
    let resp = h
        .post("/leases/52:54:00:ab:00:01/release", &browser, &[])
        .await;
    assert_eq!(location(&resp), "/machines/52:54:00:ab:00:01?done=released");
    assert!(h.store.leases().unwrap().is_empty());

    // No LAN wired (the daemon wires it): waking says so, plainly.
    let resp = h
        .api("POST", "/api/v1/machines/52:54:00:ab:00:02/wake", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json(resp).await["error"]
            .as_str()
            .unwrap()
            .contains("Wake-on-LAN is not available")
    );
    // A read-only token may not wake or remove anything.
    let ro = h
        .token_with(&browser, &[("name", "ro"), ("scope", "read_only")])
        .await;
    for (method, path) in [
        ("POST", "/api/v1/machines/52:54:00:ab:00:02/wake"),
        ("DELETE", "/api/v1/machines/52:54:00:ab:00:02"),
        ("DELETE", "/api/v1/leases/52:54:00:ab:00:02"),
        ("DELETE", "/api/v1/flakes/prod"),
    ] {
        let resp = h.api(method, path, &ro, None).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
}
