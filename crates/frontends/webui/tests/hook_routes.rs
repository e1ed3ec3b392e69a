//! The flakes' push webhook through the real router (a fake flake service): public, yet only
//! a correct `X-Hub-Signature-256` or `X-Gitlab-Token` starts an update; refused calls change
//! nothing; calls per flake are limited; the body is bounded; the secret is an admin's to
//! read and rotate. The flake's page shows follow settings (a form), the webhook and history.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use flakeboot_appliance::FlakeService;
use flakeboot_store::UpdateTrigger;
use flakeboot_webui::api::follow::{HOOK_BODY_MAX, HOOK_CALLS};
use flakeboot_webui::auth::hook_signature::sign;
use serde_json::json;

async fn hook(h: &Harness, name: &str, headers: &[(&str, &str)], body: Vec<u8>) -> StatusCode {
    let mut req = Request::post(format!("/api/v1/flakes/{name}/hook"))
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    h.send(req.body(Body::from(body)).unwrap()).await.status()
}

/// A set-up UI with a signed-in browser, an API token and the flake `fleet` added.
async fn with_fleet() -> (Harness, Browser, String) {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let added = h
        .api(
            "POST",
            "/api/v1/flakes",
            &token,
            Some(json!({ "url": "github:acme/fleet", "name": "fleet" })),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    (h, browser, token)
}

#[tokio::test]
async fn only_a_signed_push_triggers_an_update_of_its_flake() {
    let (h, _browser, token) = with_fleet().await;
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();

    // No secret made yet: nothing can pass.
    let unsigned = sign("", &body);
    assert_eq!(
        hook(
            &h,
            "fleet",
            &[("x-hub-signature-256", &unsigned)],
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let info = json(
        h.api("GET", "/api/v1/flakes/fleet/hook", &token, None)
            .await,
    )
    .await;
    let secret = info["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(info["url"], "/api/v1/flakes/fleet/hook", "{info}");
    assert_eq!(
        h.api("GET", "/api/v1/flakes/nope/hook", &token, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let good = sign(&secret, &body);
    for (what, headers) in [
        ("no header", vec![]),
        (
            "another secret",
            vec![("x-hub-signature-256", sign("x", &body))],
        ),
        (
            "not hex",
            vec![("x-hub-signature-256", "sha256=zz".to_owned())],
        ),
        (
            "a wrong GitLab token",
            vec![("x-gitlab-token", "nope".to_owned())],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            hook(&h, "fleet", &headers, body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    assert_eq!(
        hook(&h, "other", &[("x-hub-signature-256", &good)], body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // A signature over another body (the forge signs the raw bytes).
    assert_eq!(
        hook(
            &h,
            "fleet",
            &[("x-hub-signature-256", &good)],
            b"{}".to_vec()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    tokio::task::yield_now().await;
    assert!(h.flakes.triggers().is_empty());

    assert_eq!(
        hook(&h, "fleet", &[("x-hub-signature-256", &good)], body.clone()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        hook(&h, "fleet", &[("x-gitlab-token", &secret)], b"{}".to_vec()).await,
        StatusCode::ACCEPTED
    );
    for _ in 0..50 {
        if h.flakes.triggers().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.flakes.triggers(),
        [
            ("fleet".to_owned(), UpdateTrigger::Hook),
            ("fleet".to_owned(), UpdateTrigger::Hook)
        ]
    );

    // Rotated: the old secret stops working.
    let rotated = json(
        h.api("POST", "/api/v1/flakes/fleet/hook/rotate", &token, None)
            .await,
    )
    .await;
    assert_ne!(rotated["secret"], secret.as_str());
    assert_eq!(
        hook(&h, "fleet", &[("x-hub-signature-256", &good)], body.clone()).await,
        StatusCode::UNAUTHORIZED
    );

    // Too big a body is refused before any check.
    let big = vec![b' '; HOOK_BODY_MAX + 1];
    let big_sig = sign(rotated["secret"].as_str().unwrap(), &big);
    assert_eq!(
        hook(&h, "fleet", &[("x-hub-signature-256", &big_sig)], big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn calls_per_flake_are_limited() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    for name in ["fleet", "lab"] {
        let added = h
            .api(
                "POST",
                "/api/v1/flakes",
                &token,
                Some(json!({ "url": format!("github:acme/{name}"), "name": name })),
            )
            .await;
        assert_eq!(added.status(), StatusCode::CREATED);
        h.api("GET", &format!("/api/v1/flakes/{name}/hook"), &token, None)
            .await;
    }
    for _ in 0..HOOK_CALLS {
        assert_eq!(
            hook(&h, "fleet", &[("x-gitlab-token", "guess")], vec![]).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let mut req = Request::post("/api/v1/flakes/fleet/hook");
    req = req.header("x-gitlab-token", "guess");
    let resp = h.send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    // Another flake has its own budget.
    assert_eq!(
        hook(&h, "lab", &[("x-gitlab-token", "guess")], vec![]).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn follow_settings_are_checked_with_the_config_rules() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let bad = h
        .api(
            "POST",
            "/api/v1/flakes",
            &token,
            Some(json!({ "url": "github:acme/fleet", "follow": true, "check_every": "10ms" })),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = json(bad).await;
    assert!(err.to_string().contains("check_every"), "{err}");
    assert!(h.flakes.flakes().unwrap().is_empty(), "nothing added");
}

#[tokio::test]
async fn the_flake_page_sets_follow_and_rotates_the_secret() {
    let (h, browser, token) = with_fleet().await;
    let page = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(page.contains("Automatic updates"), "{page}");
    assert!(page.contains("No update yet."), "{page}");
    assert!(
        page.contains(r#"value="15m""#),
        "the default check_every: {page}"
    );
    let secret = page
        .split(r#"id="hook-secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 64, "{page}");

    let resp = h
        .post(
            "/flakes/fleet/follow",
            &browser,
            &[("follow", "on"), ("check_every", "2s")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/flakes/fleet");
    let follow = h.flakes.follow("fleet").unwrap();
    assert!(follow.follow);
    assert_eq!(follow.check_every, std::time::Duration::from_secs(2));
    let resp = h
        .post("/flakes/fleet/follow", &browser, &[("check_every", "10ms")])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(body(resp).await.contains("too short"));
    assert!(h.flakes.follow("fleet").unwrap().follow, "unchanged");

    let resp = h.post("/flakes/fleet/hook/rotate", &browser, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let rotated = json(
        h.api("GET", "/api/v1/flakes/fleet/hook", &token, None)
            .await,
    )
    .await;
    assert_ne!(rotated["secret"], secret.as_str());
    let history = json(
        h.api("GET", "/api/v1/flakes/fleet/history", &token, None)
            .await,
    )
    .await;
    assert_eq!(history["follow"], true, "{history}");
    assert_eq!(history["check_every"], "2s", "{history}");
    assert_eq!(history["updates"], json!([]), "{history}");
}

#[tokio::test]
async fn notify_txt_is_a_dns_name_and_implies_follow() {
    let (h, browser, token) = with_fleet().await;
    // Over the API: a bad name is refused with its field, a good one makes the flake follow.
    for bad in ["a..b", "fleet notify.org", "rev=1.example.org"] {
        let resp = h
            .api(
                "PUT",
                "/api/v1/flakes/fleet/follow",
                &token,
                Some(json!({ "notify_txt": bad })),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let err = json(resp).await.to_string();
        assert!(
            err.contains("notify_txt") && err.contains("not a DNS name"),
            "{bad}: {err}"
        );
    }
    assert_eq!(h.flakes.follow("fleet").unwrap().notify_txt, None);
    let saved = json(
        h.api(
            "PUT",
            "/api/v1/flakes/fleet/follow",
            &token,
            Some(json!({ "notify_txt": "_flakeboot.example.org" })),
        )
        .await,
    )
    .await;
    assert_eq!(saved["follow"], true, "{saved}");
    assert_eq!(saved["notify_txt"], "_flakeboot.example.org", "{saved}");
    let history = json(
        h.api("GET", "/api/v1/flakes/fleet/history", &token, None)
            .await,
    )
    .await;
    assert_eq!(history["notify_txt"], "_flakeboot.example.org", "{history}");
    assert_eq!(
        history["dns"],
        json!(null),
        "not checked by the fake: {history}"
    );
    // follow: false with a name is a contradiction; follow: false alone clears the name.
    let resp = h
        .api(
            "PUT",
            "/api/v1/flakes/fleet/follow",
            &token,
            Some(json!({ "follow": false, "notify_txt": "_flakeboot.example.org" })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let off = json(
        h.api(
            "PUT",
            "/api/v1/flakes/fleet/follow",
            &token,
            Some(json!({ "follow": false })),
        )
        .await,
    )
    .await;
    assert_eq!(off["follow"], false, "{off}");
    assert_eq!(off["notify_txt"], json!(null), "{off}");

    // On the page: the field, and a name alone makes the flake follow.
    let page = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(page.contains(r#"name="notify_txt""#), "{page}");
    let resp = h
        .post(
            "/flakes/fleet/follow",
            &browser,
            &[
                ("check_every", "15m"),
                ("notify_txt", "_flakeboot.example.org"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let follow = h.flakes.follow("fleet").unwrap();
    assert!(follow.follow);
    assert_eq!(follow.notify_txt.as_deref(), Some("_flakeboot.example.org"));
    let page = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(page.contains(r#"value="_flakeboot.example.org""#), "{page}");
    let resp = h
        .post(
            "/flakes/fleet/follow",
            &browser,
            &[("check_every", "15m"), ("notify_txt", "bad..name")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
