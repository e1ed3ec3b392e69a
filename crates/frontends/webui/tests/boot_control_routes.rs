//! Boot once and the local disk through the machine page's form and the JSON API: set, shown
//! as the next boot, validated (an unknown host names the field), cleared; refused for a
//! machine the config file pins (with its file and line), without the CSRF token, and for a
//! read-only token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::StatusCode;
use common::{Harness, body, json, location};
use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};
use serde_json::json;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 2]);
const PATH: &str = "/api/v1/machines/52:54:00:ab:00:02";
const PAGE: &str = "/machines/52:54:00:ab:00:02";

fn seen(h: &Harness, mac: MacAddr) {
    let e = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "offer").mac(mac);
    h.store.record_events(&[e]).unwrap();
}

/// A read-only token made by `browser`.
async fn read_only_token(h: &Harness, browser: &common::Browser) -> String {
    let resp = h
        .post(
            "/settings/tokens",
            browser,
            &[("name", "ro"), ("scope", "read_only")],
        )
        .await;
    let html = body(resp).await;
    let start = html.find("id=\"new-token\">").expect("token shown") + "id=\"new-token\">".len();
    html[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn boot_once_and_the_local_disk_over_the_api() {
    let h = Harness::new();
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    seen(&h, MAC);

    // The local disk is a host value; the answer says what the next boot is.
    let mut changes = h.state.machine_changes();
    changes.borrow_and_update();
    let resp = h
        .api("POST", PATH, &t, Some(json!({"host": "local"})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m = json(resp).await;
    assert_eq!(m["host"], "local", "{m}");
    assert_eq!(m["next_boot"], "its local disk", "{m}");
    assert!(changes.has_changed().unwrap());

    // Boot once: stored in the machine's options, shown first in the next boot.
    changes.borrow_and_update();
    let resp = h
        .api("POST", PATH, &t, Some(json!({"boot_once": "demo"})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m = json(resp).await;
    assert_eq!(m["options"]["boot_once"], "demo", "{m}");
    assert_eq!(m["host"], "local", "the machine's own choice stays: {m}");
    assert_eq!(m["next_boot"], "demo once, then its local disk", "{m}");
    assert!(changes.has_changed().unwrap());
    assert_eq!(
        h.store.machine_options(MAC).unwrap().boot_once.as_deref(),
        Some("demo")
    );
    let m = json(h.api("GET", PATH, &t, None).await).await;
    assert_eq!(m["options"]["boot_once"], "demo", "{m}");
    let list = json(h.api("GET", "/api/v1/machines", &t, None).await).await;
    assert_eq!(list[0]["next_boot"], "demo once, then its local disk");

    // Validated: a host that does not exist, or the local disk, names the field.
    for (host, says) in [("lab#rescue", "\"lab#rescue\""), ("local", "\"local\"")] {
        let resp = h
            .api("POST", PATH, &t, Some(json!({"boot_once": host})))
            .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{host}");
        let e = json(resp).await;
        assert!(
            e["fields"]["boot_once"].as_str().unwrap().contains(says),
            "{e}"
        );
        assert_eq!(e["errors"][0]["field"], "boot_once", "{e}");
    }
    assert_eq!(
        h.store.machine_options(MAC).unwrap().boot_once.as_deref(),
        Some("demo"),
        "a refused change changes nothing"
    );

    // Cleared with the empty string; the other options were never touched.
    let resp = h
        .api("POST", PATH, &t, Some(json!({"boot_once": ""})))
        .await;
    let m = json(resp).await;
    assert!(m["options"]["boot_once"].is_null(), "{m}");
    assert_eq!(m["next_boot"], "its local disk", "{m}");
    assert!(h.store.machine_options(MAC).unwrap().is_empty());

    // Boot once for a MAC not seen yet: the user makes its record.
    let new = "/api/v1/machines/52:54:00:ab:00:07";
    let resp = h
        .api("POST", new, &t, Some(json!({"boot_once": "demo"})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(resp).await["next_boot"],
        "demo once, then the boot menu"
    );

    // A read-only token reads it and changes nothing.
    let ro = read_only_token(&h, &browser).await;
    assert_eq!(h.api("GET", PATH, &ro, None).await.status(), StatusCode::OK);
    for body in [json!({"boot_once": "demo"}), json!({"host": "local"})] {
        let resp = h.api("POST", PATH, &ro, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{body}");
    }
    assert!(h.store.machine_options(MAC).unwrap().boot_once.is_none());

    // Audited like every machine change.
    let audit = json(h.api("GET", "/api/v1/audit", &t, None).await).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"].as_str() == Some("52:54:00:ab:00:02")),
        "{audit}"
    );
}

#[tokio::test]
async fn boot_once_and_the_local_disk_on_the_machine_page() {
    let h = Harness::new();
    let browser = h.setup().await;
    seen(&h, MAC);

    let html = body(h.get(PAGE, Some(&browser)).await).await;
    assert!(
        html.contains("<option value=\"local\">Local disk"),
        "{html}"
    );
    assert!(html.contains("name=\"boot_once\""), "{html}");
    assert!(
        html.contains("<dd id=\"next-boot\">the boot menu</dd>"),
        "{html}"
    );

    // The form sends every field: the local disk and a host once.
    let form = [
        ("host", "local"),
        ("boot_once", "demo"),
        ("hostname", ""),
        ("kernel_params", ""),
        ("label", ""),
    ];
    // Without the CSRF token: refused, nothing saved.
    let resp = h.post_raw(PAGE, Some(&browser.cookie), &form).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(h.store.machine_options(MAC).unwrap().boot_once.is_none());

    let resp = h.post(PAGE, &browser, &form).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), format!("{PAGE}?saved=1"));
    let html = body(h.get(PAGE, Some(&browser)).await).await;
    assert!(
        html.contains("<dd id=\"next-boot\">demo once, then its local disk</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"local\" selected>Local disk"),
        "{html}"
    );
    let once = html.split("id=\"boot_once\"").nth(1).unwrap();
    assert!(
        once.contains("<option value=\"demo\" selected>demo</option>"),
        "{once}"
    );
    let list = body(h.get("/machines", Some(&browser)).await).await;
    assert!(list.contains("local disk"), "{list}");

    // An unknown host: the form comes back with the error next to the field.
    let resp = h
        .post(PAGE, &browser, &[("host", "local"), ("boot_once", "ghost")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(
        html.contains("there is no host named &quot;ghost&quot; to boot once"),
        "{html}"
    );

    // Cleared: "—" sends the empty string.
    let resp = h
        .post(PAGE, &browser, &[("host", "local"), ("boot_once", "")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let html = body(h.get(PAGE, Some(&browser)).await).await;
    assert!(
        html.contains("<dd id=\"next-boot\">its local disk</dd>"),
        "{html}"
    );
}

#[tokio::test]
async fn a_machine_the_config_file_pins_is_refused_with_file_and_line() {
    let mut config = common::config();
    config.pinned_machines = [(MAC, Some("demo".to_owned()))].into();
    config.config_file = Some("/etc/flakeboot.toml".into());
    config.pin_lines = [(MAC, 7)].into();
    let h = Harness::with(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        config,
    );
    let browser = h.setup().await;
    let t = h.token(&browser).await;
    seen(&h, MAC);
    for body in [json!({"boot_once": "demo"}), json!({"host": "local"})] {
        let resp = h.api("POST", PATH, &t, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let e = json(resp).await;
        let field = e["errors"][0]["field"].as_str().unwrap().to_owned();
        assert!(
            e["fields"][&field]
                .as_str()
                .unwrap()
                .contains("Set in /etc/flakeboot.toml, line 7"),
            "{e}"
        );
    }
    assert!(h.store.machine_options(MAC).unwrap().is_empty());
    // The page shows the file's choice as the next boot; the form's boot settings are disabled.
    let html = body(h.get(PAGE, Some(&browser)).await).await;
    assert!(html.contains("<dd id=\"next-boot\">demo</dd>"), "{html}");
    let resp = h.post(PAGE, &browser, &[("boot_once", "demo")]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
