//! Pre-flight on the API and the pages: each generation's `preflight`, the host's `current`
//! (a failed generation is not it), the console log route, pinning a failed generation (the API
//! warns; the UI asks first), and the Hosts page and `/api/v1/hosts` (the current generation's
//! pre-flight, and a newer failed one that machines do not get).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use common::{Harness, body, json, location};
use flakeboot_store::{PreflightRecord, PreflightState};
use serde_json::json;

/// Two generations of fleet#alpha: 1 passed, 2 failed with a console log.
async fn two_generations(h: &Harness, browser: &common::Browser, log: &std::path::Path) {
    h.post("/flakes", browser, &[("url", "github:acme/fleet")])
        .await;
    for id in [1, 2] {
        h.post("/flakes/fleet/build", browser, &[("host", "alpha")])
            .await;
        h.flakes.finish(id, true);
    }
    let t0 = SystemTime::now() - Duration::from_secs(400);
    let mut passed = PreflightRecord::queued();
    passed.state = PreflightState::Passed;
    passed.started_at = Some(t0);
    passed.finished_at = Some(t0 + Duration::from_secs(42));
    h.flakes.set_preflight("fleet#alpha", 1, passed);
    std::fs::write(log, "SeaBIOS\niPXE\nstage 2: no network\n").unwrap();
    let failed = PreflightRecord {
        state: PreflightState::Failed,
        started_at: Some(t0),
        finished_at: Some(t0 + Duration::from_secs(312)),
        reason: Some("no report".into()),
        log: Some(log.to_owned()),
    };
    h.flakes.set_preflight("fleet#alpha", 2, failed);
}

#[tokio::test]
async fn the_api_shows_preflight_and_warns_when_a_failed_generation_is_pinned() {
    let h = Harness::new();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("fleet#alpha-2.log");
    two_generations(&h, &browser, &log).await;

    let gens = json(
        h.api("GET", "/api/v1/generations?host=fleet%23alpha", &t, None)
            .await,
    )
    .await;
    let view = &gens["fleet#alpha"];
    assert_eq!(view["current"], 1, "{view}");
    assert_eq!(view["generations"][0]["preflight"]["state"], "passed");
    assert_eq!(view["generations"][0]["preflight"]["duration_secs"], 42);
    let second = &view["generations"][1]["preflight"];
    assert_eq!(second["state"], "failed");
    assert_eq!(second["duration_secs"], 312);
    assert_eq!(second["reason"], "no report");
    assert_eq!(second["has_log"], true);

    let resp = h
        .api(
            "GET",
            "/api/v1/generations/preflight-log?host=fleet%23alpha&number=2",
            &t,
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, "SeaBIOS\niPXE\nstage 2: no network\n");
    for number in [1, 9] {
        let resp = h
            .api(
                "GET",
                &format!("/api/v1/generations/preflight-log?host=fleet%23alpha&number={number}"),
                &t,
                None,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "generation {number}");
    }
    let anonymous = h
        .get(
            "/api/v1/generations/preflight-log?host=fleet%23alpha&number=2",
            None,
        )
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let resp = json(
        h.api(
            "POST",
            "/api/v1/generations/rollback",
            &t,
            Some(json!({"host": "fleet#alpha", "number": 2})),
        )
        .await,
    )
    .await;
    assert_eq!(resp["pinned"], 2);
    assert_eq!(
        resp["warning"],
        "generation 2 failed pre-flight: no report; machines boot it anyway from their next boot"
    );
    assert_eq!(h.flakes.pinned_of("fleet#alpha"), Some(2));
    let resp = json(
        h.api(
            "POST",
            "/api/v1/generations/rollback",
            &t,
            Some(json!({"host": "fleet#alpha", "number": 1})),
        )
        .await,
    )
    .await;
    assert_eq!(resp["warning"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_page_shows_preflight_and_asks_before_pinning_a_failed_generation() {
    let h = Harness::new();
    let browser = h.setup().await;
    let tmp = tempfile::tempdir().unwrap();
    two_generations(&h, &browser, &tmp.path().join("g2.log")).await;

    let html = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    for text in [
        r#"data-generation="2" data-preflight="failed""#,
        "after 312 s: no report",
        r#"data-generation="1" data-preflight="passed""#,
        "in 42 s",
        "/api/v1/generations/preflight-log?host=fleet%23alpha&amp;number=2",
        "Boot this one…",
    ] {
        assert!(html.contains(text), "{text}\n{html}");
    }
    // Generation 1 is the one booting, not the newer failed one.
    let row1 = html.split(r#"data-generation="1""#).nth(1).unwrap();
    assert!(row1.split("</tr>").next().unwrap().contains("booting"));

    let resp = h
        .post(
            "/generations/rollback",
            &browser,
            &[("host", "fleet#alpha"), ("number", "2")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = body(resp).await;
    assert!(
        page.contains("generation 2 failed pre-flight: no report"),
        "{page}"
    );
    assert!(page.contains(r#"name="confirm" value="yes""#), "{page}");
    assert_eq!(h.flakes.pinned_of("fleet#alpha"), None, "asked, not pinned");

    let resp = h
        .post(
            "/generations/rollback",
            &browser,
            &[("host", "fleet#alpha"), ("number", "2"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(location(&resp), "/flakes/fleet");
    assert_eq!(h.flakes.pinned_of("fleet#alpha"), Some(2));
}

/// The entry of `name` in `GET /api/v1/hosts`.
fn host<'a>(hosts: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap()
}

#[tokio::test]
async fn hosts_show_the_current_preflight_and_a_newer_failed_one() {
    let h = Harness::new();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    let tmp = tempfile::tempdir().unwrap();
    two_generations(&h, &browser, &tmp.path().join("g2.log")).await;

    let hosts = json(h.api("GET", "/api/v1/hosts", &t, None).await).await;
    let alpha = host(&hosts, "fleet#alpha");
    assert_eq!(alpha["generation"], 1, "{alpha}");
    assert_eq!(alpha["preflight"]["state"], "passed", "{alpha}");
    assert_eq!(alpha["newest"]["number"], 2, "{alpha}");
    assert_eq!(alpha["newest"]["preflight"]["state"], "failed", "{alpha}");
    assert_eq!(
        alpha["newest"]["preflight"]["reason"], "no report",
        "{alpha}"
    );
    // A host whose newest generation is current has no `newest`.
    let beta = host(&hosts, "fleet#beta");
    assert!(beta["newest"].is_null(), "{beta}");

    let html = body(h.get("/hosts", Some(&browser)).await).await;
    let card = html.split(r#"id="fleet-alpha""#).nth(1).unwrap();
    let card = card.split(r#"class="card host""#).next().unwrap();
    for text in [
        "generation 1",
        "pre-flight passed",
        r#"data-preflight="failed""#,
        "generation 2",
        "pre-flight failed",
        "no report",
        "machines keep generation 1.",
        r#"href="/flakes/fleet#generations-fleet-alpha""#,
    ] {
        assert!(card.contains(text), "{text}\n{card}");
    }
    let flake_page = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(flake_page.contains(r#"id="generations-fleet-alpha""#));

    // Pinned to the failed one: it is current, and nothing newer is listed.
    h.post(
        "/generations/rollback",
        &browser,
        &[("host", "fleet#alpha"), ("number", "2"), ("confirm", "yes")],
    )
    .await;
    let hosts = json(h.api("GET", "/api/v1/hosts", &t, None).await).await;
    let alpha = host(&hosts, "fleet#alpha");
    assert_eq!(alpha["generation"], 2, "{alpha}");
    assert_eq!(alpha["preflight"]["state"], "failed", "{alpha}");
    assert!(alpha["newest"].is_null(), "{alpha}");
}
