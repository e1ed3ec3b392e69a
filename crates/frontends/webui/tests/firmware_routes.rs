//! Route-level tests of the firmware page and API on an image laid out in a temporary
//! directory (the real upload, install and reboot are the image test's): the slots and the
//! development notice on the pages, the API's status, an upload refused with `field: bundle`
//! through a token and through the page's session with its CSRF header, the refusals without
//! CSRF and with a read-only token, and what a daemon without firmware says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::firmware_image::firmware_image;
use common::{Harness, body, json};
use flakeboot_appliance::firmware::Firmware;

async fn upload(
    h: &Harness,
    auth: (&str, &str),
    extra: Option<(&str, &str)>,
) -> (StatusCode, String) {
    let mut req = Request::post("/api/v1/firmware")
        .header(auth.0, auth.1)
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    let resp = h
        .send(req.body(Body::from(vec![0x42u8; 3 << 20])).unwrap())
        .await;
    (resp.status(), body(resp).await)
}

#[tokio::test]
async fn firmware_page_and_api() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let bearer = format!("Bearer {token}");

    // A daemon without firmware wired says so.
    let resp = h.api("GET", "/api/v1/firmware", &token, None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

    let tmp = tempfile::tempdir().unwrap();
    h.state.set_firmware(Firmware::new(
        &tmp.path().join("state"),
        firmware_image(tmp.path()),
    ));

    let resp = h.api("GET", "/api/v1/firmware", &token, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let fw = json(resp).await;
    assert_eq!(fw["running_slot"], "b");
    assert_eq!(fw["version"], "0.3.0");
    assert_eq!(fw["slots"][0]["entry"]["state"], "good");
    assert_eq!(fw["slots"][1]["entry"]["state"], "trying");
    assert_eq!(fw["slots"][1]["entry"]["tries_left"], 2);
    assert_eq!(fw["secure_boot"], false);

    let page = body(h.get("/firmware", Some(&browser)).await).await;
    assert!(page.contains("id=\"slots\""), "{page}");
    assert!(
        page.contains("flakeboot-2-b+2-1.efi") && page.contains("2 tries left"),
        "{page}"
    );
    assert!(page.contains("/static/firmware.js"), "{page}");
    assert!(
        page.contains("id=\"secure-boot\"") && page.contains("Secure Boot off"),
        "{page}"
    );
    assert!(
        page.contains(&format!("data-csrf=\"{}\"", browser.csrf)),
        "{page}"
    );
    let dashboard = body(h.get("/", Some(&browser)).await).await;
    assert!(
        dashboard.contains("id=\"development\"")
            && dashboard.contains("development build: test key"),
        "{dashboard}"
    );
    let js = h.get("/static/firmware.js", None).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(body(js).await.contains("/api/v1/firmware"));

    // A 3 MiB body (above the API's usual body limit) is received and refused with its field.
    let (status, answer) = upload(&h, ("authorization", &bearer), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["field"], "bundle");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no accepted update keys"),
        "{answer}"
    );

    // The page's script: the session cookie and the CSRF header; without the header, refused.
    let (status, answer) = upload(
        &h,
        ("cookie", &browser.cookie),
        Some(("x-csrf-token", &browser.csrf)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = upload(&h, ("cookie", &browser.cookie), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A read-only token reads the status but uploads nothing and reboots nothing.
    let read_only = h
        .token_with(&browser, &[("name", "ro"), ("scope", "read_only")])
        .await;
    let resp = h.api("GET", "/api/v1/firmware", &read_only, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = upload(&h, ("authorization", &format!("Bearer {read_only}")), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = h
        .api("POST", "/api/v1/firmware/reboot", &read_only, None)
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Both refusals are the last update's result, shown on the page; the audit log has them.
    let page = body(h.get("/firmware", Some(&browser)).await).await;
    assert!(
        page.contains("id=\"last-update\"") && page.contains("no accepted update keys"),
        "{page}"
    );
    let audit = h.store.recent_audit(50).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "firmware.upload")
            .count(),
        2,
        "{audit:?}"
    );
}
