//! Route-level tests of the audit log and of sessions kept in the store: what each kind of
//! caller leaves in `GET /api/v1/audit` and on `/audit` (who, what, target, address, status),
//! that no password or token reaches it, and that a session outlives the UI over the same
//! store (a daemon restart) until it is signed out or expires.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Browser, Harness, PASSWORD, body, json};
use flakeboot_store::Store;
use serde_json::{Value, json};

/// The audit log as the API gives it.
async fn audit(h: &Harness, token: &str, limit: usize) -> Vec<Value> {
    let resp = h
        .api("GET", &format!("/api/v1/audit?limit={limit}"), token, None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    json(resp).await.as_array().unwrap().clone()
}

fn find<'a>(log: &'a [Value], action: &str) -> &'a Value {
    log.iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {log:#?}"))
}

/// The password the tests change to.
const NEW_PASSWORD: &str = "another long passphrase";

/// The settings page's password change, from [`PASSWORD`] to [`NEW_PASSWORD`], which must
/// succeed.
async fn change_password(h: &Harness, browser: &Browser) {
    let resp = h
        .post(
            "/settings/password",
            browser,
            &[
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(resp.status().is_success() || resp.status().is_redirection());
}

#[tokio::test]
async fn admin_actions_are_logged_with_who_what_where_and_no_secrets() {
    let h = Harness::new();
    let browser = h.setup().await;
    // Two failed sign-ins: a wrong password for the admin, and a name that is no account
    // (perhaps a password typed into the wrong field: it is not kept).
    let resp = h.login("wrong password").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = h.login_as("Tr0ub4dor&3", "x").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let token = h.token(&browser).await;
    *h.peer.lock().unwrap() = "10.9.8.7:5000".parse().unwrap();
    let resp = h
        .api(
            "POST",
            "/api/v1/flakes",
            &token,
            Some(json!({"url": "github:acme/lab", "name": "lab"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // A refused action is logged too, with its status; its target is user input, escaped on
    // the page.
    let resp = h
        .api("POST", "/api/v1/machines/%3Cb%3Ex/wake", &token, None)
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    *h.peer.lock().unwrap() = "192.168.1.50:40000".parse().unwrap();
    change_password(&h, &browser).await;

    let log = audit(&h, &token, 100).await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "password.change",
            "machine.wake",
            "flake.add",
            "token.create",
            "login.failed",
            "login.failed",
            "setup"
        ],
        "newest first"
    );
    let setup = find(&log, "setup");
    assert_eq!(setup["actor"], "admin");
    assert_eq!(setup["client"], "192.168.1.50");
    assert_eq!(setup["status"], 303);
    assert_eq!(log[5]["actor"], Value::Null);
    assert_eq!(log[5]["target"], "admin");
    assert_eq!(log[5]["status"], 401);
    assert_eq!(
        log[4]["target"], "",
        "a name that is no account is not kept"
    );
    let created = find(&log, "token.create");
    assert_eq!(
        (&created["actor"], &created["target"]),
        (&json!("admin"), &json!("ci"))
    );
    let added = find(&log, "flake.add");
    assert_eq!(added["actor"], "token ci");
    assert_eq!(added["target"], "lab");
    assert_eq!(added["client"], "10.9.8.7");
    assert_eq!(added["status"], 201);
    assert_eq!(find(&log, "machine.wake")["target"], "<b>x");
    assert!(
        log.iter()
            .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z')))
    );

    let text = serde_json::to_string(&log).unwrap();
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        token.as_str(),
        "Tr0ub4dor",
        browser.csrf.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} in the audit log: {text}"
        );
    }

    // ?limit= gives the newest.
    let two = audit(&h, &token, 2).await;
    assert_eq!(two, log[..2].to_vec());

    // The page shows the same, escaped.
    let page = body(h.get("/audit", Some(&browser)).await).await;
    assert!(
        page.contains("flake.add") && page.contains("token ci"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;x") && !page.contains("<b>x"),
        "{page}"
    );
    assert!(page.contains("not signed in"));
    // Reached from the settings page.
    let settings = body(h.get("/settings", Some(&browser)).await).await;
    assert!(settings.contains("href=\"/audit\""));
}

#[tokio::test]
async fn reading_is_not_logged_and_the_page_needs_a_session() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let before = audit(&h, &token, 100).await.len();
    for path in ["/", "/settings", "/audit", "/flakes"] {
        assert_eq!(h.get(path, Some(&browser)).await.status(), StatusCode::OK);
    }
    assert_eq!(audit(&h, &token, 100).await.len(), before);
    // Without a session: to the sign-in page; the API without a token: 401, nothing logged.
    let resp = h.get("/audit", None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = h
        .api("DELETE", "/api/v1/flakes/lab", "not-a-token", None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit(&h, &token, 100).await.len(), before);
}

#[tokio::test]
async fn a_session_outlives_the_ui_until_signed_out_or_expired() {
    let store = Store::in_memory().unwrap();
    let first = Harness::with(
        common::FakeFlakes::manual(),
        store.clone(),
        common::config(),
    );
    let browser = first.setup().await;
    let other = first.browser_from(&first.login(PASSWORD).await).await;
    drop(first);

    // A new UI over the same store, as after a restart: both sessions work, CSRF included.
    let h = Harness::with(
        common::FakeFlakes::manual(),
        store.clone(),
        common::config(),
    );
    assert_eq!(
        h.get("/settings", Some(&browser)).await.status(),
        StatusCode::OK
    );
    let resp = h.post("/logout", &other, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let log = h.store.recent_audit(10).unwrap();
    assert_eq!(log[0].action, "logout");
    assert_eq!(log[0].actor.as_deref(), Some("admin"));

    // Signed out before the restart: refused after it.
    let h = Harness::with(
        common::FakeFlakes::manual(),
        store.clone(),
        common::config(),
    );
    assert_eq!(
        h.get("/settings", Some(&other)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        h.get("/settings", Some(&browser)).await.status(),
        StatusCode::OK
    );
    assert_eq!(h.state.session_count().await.unwrap(), 1);

    // Idle past the limit: refused, and gone from the store.
    h.state.clock().advance(Duration::from_secs(3 * 3600));
    assert_eq!(
        h.get("/settings", Some(&browser)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(store.sessions().unwrap().is_empty());
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_in_the_store() {
    let store = Store::in_memory().unwrap();
    let h = Harness::with(
        common::FakeFlakes::manual(),
        store.clone(),
        common::config(),
    );
    let browser = h.setup().await;
    let other = h.browser_from(&h.login(PASSWORD).await).await;
    assert_eq!(store.sessions().unwrap().len(), 2);
    change_password(&h, &browser).await;
    assert_eq!(store.sessions().unwrap().len(), 1);
    let h = Harness::with(common::FakeFlakes::manual(), store, common::config());
    assert_eq!(
        h.get("/settings", Some(&other)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        h.get("/settings", Some(&browser)).await.status(),
        StatusCode::OK
    );
}
