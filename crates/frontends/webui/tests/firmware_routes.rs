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

/// The reboot into the development mode, through the API and the page's form: refused with 409
/// while the boot loader offers no development entry (nothing rebooted), else the one-shot
/// entry set before the reboot; a development boot is named on the dashboard and in the API.
#[tokio::test]
async fn reboot_into_the_development_mode() {
    use std::os::unix::fs::PermissionsExt;

    use flakeboot_appliance::firmware::boot_loader::{encode, variable};

    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let tmp = tempfile::tempdir().unwrap();
    let paths = firmware_image(tmp.path());
    let rebooted = tmp.path().join("rebooted");
    std::fs::write(
        &paths.reboot[0],
        format!("#!/bin/sh\ntouch {}\n", rebooted.display()),
    )
    .unwrap();
    std::fs::set_permissions(&paths.reboot[0], std::fs::Permissions::from_mode(0o755)).unwrap();
    h.state
        .set_firmware(Firmware::new(&tmp.path().join("state"), paths.clone()));
    let development = Some(serde_json::json!({ "development": true }));

    // Not booted through systemd-boot (no LoaderEntrySelected): 409, nothing rebooted.
    let resp = h
        .api(
            "POST",
            "/api/v1/firmware/reboot",
            &token,
            development.clone(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(body(resp).await.contains("did not say which entry"));
    assert!(!rebooted.exists());
    // Not a reboot request.
    let resp = h
        .api(
            "POST",
            "/api/v1/firmware/reboot",
            &token,
            Some(serde_json::json!({ "developer": 1 })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(!rebooted.exists());

    let var = |name| variable(&paths.efivars, name);
    std::fs::write(var("LoaderEntrySelected"), encode(&["flakeboot-2-b.efi"])).unwrap();
    std::fs::write(
        var("LoaderEntries"),
        encode(&[
            "flakeboot-2-b.efi",
            "flakeboot-2-b.efi@dev",
            "flakeboot-1-a.efi",
        ]),
    )
    .unwrap();
    let resp = h
        .api("POST", "/api/v1/firmware/reboot", &token, development)
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let answer = json(resp).await;
    assert_eq!(answer["rebooting"], true);
    assert_eq!(answer["development"], true);
    assert!(rebooted.exists());
    let one_shot = var("LoaderEntryOneShot");
    assert_eq!(
        std::fs::read(&one_shot).unwrap(),
        encode(&["flakeboot-2-b.efi@dev"])
    );

    // The page's form does the same.
    std::fs::remove_file(&one_shot).unwrap();
    std::fs::remove_file(&rebooted).unwrap();
    let page = body(h.get("/firmware", Some(&browser)).await).await;
    assert!(
        page.contains("id=\"firmware-reboot-development\""),
        "{page}"
    );
    let resp = h
        .post("/firmware/reboot", &browser, &[("development", "1")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body(resp).await.contains("development mode"));
    assert!(rebooted.exists() && one_shot.exists());
    // The audit log says both reboots were into the development mode.
    let audit = h.store.recent_audit(50).unwrap();
    let reboots: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "firmware.reboot" && e.status < 300)
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(
        reboots,
        ["development mode", "development mode"],
        "{audit:?}"
    );

    // A development boot: the dashboard, the firmware page and the API say so.
    let dashboard = body(h.get("/", Some(&browser)).await).await;
    assert!(
        !dashboard.contains("id=\"development-mode\""),
        "{dashboard}"
    );
    std::fs::write(&paths.cmdline, "flakeboot.slot=b flakeboot.dev=1\n").unwrap();
    std::fs::write(
        &paths.mounts,
        "30 1 0:31 / / rw - overlay overlay rw,lowerdir=/run/systemd/overlay-sysroot/lower\n",
    )
    .unwrap();
    let dashboard = body(h.get("/", Some(&browser)).await).await;
    assert!(
        dashboard.contains("id=\"development-mode\"") && dashboard.contains("(overlay)"),
        "{dashboard}"
    );
    let page = body(h.get("/firmware", Some(&browser)).await).await;
    assert!(page.contains("id=\"development-mode\""), "{page}");
    let fw = json(h.api("GET", "/api/v1/firmware", &token, None).await).await;
    assert_eq!(fw["development_mode"], true);
    assert_eq!(fw["root_fs"], "overlay");
}
