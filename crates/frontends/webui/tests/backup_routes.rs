//! `GET /api/v1/backup` at the route level: the passphrase only in its header (422 without
//! it), refused to a read-only token, an age file as an attachment for an admin token, and
//! each download in the audit log. The restore is `crates/daemon/tests/backup_restore.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Harness, json};
use flakeboot_store::Store;

async fn get_backup(
    h: &Harness,
    token: &str,
    passphrase: Option<&str>,
) -> (StatusCode, Vec<u8>, String) {
    let mut req =
        Request::get("/api/v1/backup").header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(p) = passphrase {
        req = req.header("x-flakeboot-passphrase", p);
    }
    let resp = h.send(req.body(Body::empty()).unwrap()).await;
    let status = resp.status();
    let disposition = resp
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 30)
        .await
        .unwrap();
    (status, bytes.to_vec(), disposition)
}

#[tokio::test]
async fn a_backup_is_an_admins_encrypted_download() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("state")).unwrap();
    let h = Harness::with(common::FakeFlakes::manual(), store, common::config());
    let browser = h.setup().await;
    let token = h.token(&browser).await;

    let (status, answer, _) = get_backup(&h, &token, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["errors"][0]["field"], "passphrase", "{answer}");
    let (status, _, _) = get_backup(&h, &token, Some("short")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, bytes, disposition) = get_backup(&h, &token, Some("twelve chars or more")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        disposition.starts_with("attachment; filename=\"flakeboot-backup-")
            && disposition.ends_with(".age\""),
        "{disposition}"
    );

    let read_only = h
        .token_with(&browser, &[("name", "ro"), ("scope", "read_only")])
        .await;
    let (status, answer, _) = get_backup(&h, &read_only, Some("twelve chars or more")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let resp = h.api("GET", "/api/v1/audit", &token, None).await;
    let audit = json(resp).await;
    let downloads: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup.download")
        .collect();
    assert_eq!(downloads.len(), 4, "{audit}");
    assert!(downloads.iter().any(|e| e["status"] == 200), "{audit}");
    assert!(downloads.iter().any(|e| e["status"] == 403), "{audit}");
}
