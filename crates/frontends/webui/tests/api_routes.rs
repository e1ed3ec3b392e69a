//! Route-level tests of every JSON API call with a bearer token, including refusals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, SystemTime};

use axum::http::{StatusCode, header};
use common::{Harness, body, json};
use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
use serde_json::json;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 2]);

async fn ready() -> (Harness, String) {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    (h, token)
}

#[tokio::test]
async fn flakes_hosts_builds_logs_and_generations_over_the_api() {
    let (h, t) = ready().await;
    let resp = h
        .api(
            "POST",
            "/api/v1/flakes",
            &t,
            Some(json!({"url": "nonsense"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = json(resp).await;
    assert_eq!(err["field"], "url");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("not a flake reference")
    );

    let resp = h
        .api(
            "POST",
            "/api/v1/flakes",
            &t,
            Some(json!({"url": "github:acme/fleet", "name": "prod"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(json(resp).await["name"], "prod");
    let flakes = json(h.api("GET", "/api/v1/flakes", &t, None).await).await;
    assert_eq!(flakes[0]["hosts"].as_array().unwrap().len(), 3);
    let hosts = json(h.api("GET", "/api/v1/hosts", &t, None).await).await;
    let short: Vec<(String, String, bool)> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["source"].as_str().unwrap().to_owned(),
                h["unbootable"].is_null(),
            )
        })
        .collect();
    // Every host, the one that cannot netboot too (the Hosts page says what to add).
    assert_eq!(short.len(), 4, "{hosts}");
    assert_eq!(short[0], ("demo".into(), "config".into(), true));
    assert!(short.contains(&("prod#alpha".into(), "flake".into(), true)));
    assert!(short.contains(&("prod#beta".into(), "flake".into(), true)));
    assert_eq!(short.iter().filter(|h| !h.2).count(), 1, "{hosts}");
    assert_eq!(hosts[0]["machines"], json!([]));

    let resp = h
        .api(
            "POST",
            "/api/v1/builds",
            &t,
            Some(json!({"flake": "prod", "host": "alpha"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(json(resp).await["id"], 1);
    let resp = h
        .api(
            "POST",
            "/api/v1/builds",
            &t,
            Some(json!({"flake": "prod", "host": "gamma"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = h
        .api(
            "POST",
            "/api/v1/builds",
            &t,
            Some(json!({"flake": "nope", "host": "alpha"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let build = json(h.api("GET", "/api/v1/builds/1", &t, None).await).await;
    assert_eq!(build["state"], "running");
    assert_eq!(build["progress"]["total"], 4);

    // The log streams until the build ends.
    let log = tokio::spawn({
        let resp = h.api("GET", "/api/v1/builds/1/log", &t, None).await;
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        body(resp)
    });
    let events = tokio::spawn(body(
        h.api("GET", "/api/v1/builds/1/events", &t, None).await,
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.flakes.log_line(1, "building '/nix/store/k.drv'");
    h.flakes.finish(1, true);
    let log = tokio::time::timeout(Duration::from_secs(5), log)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log, "building prod#alpha\nbuilding '/nix/store/k.drv'\n");
    let events = tokio::time::timeout(Duration::from_secs(10), events)
        .await
        .unwrap()
        .unwrap();
    assert!(
        events.contains("event: line\ndata: building '/nix/store/k.drv'"),
        "{events}"
    );
    assert!(
        events.contains("event: status")
            && events.contains("\"finished\":true")
            && events.contains("succeeded"),
        "{events}"
    );

    let all = json(h.api("GET", "/api/v1/builds", &t, None).await).await;
    assert_eq!(all[0]["state"], "succeeded");
    let resp = json(h.api("POST", "/api/v1/builds/1/cancel", &t, None).await).await;
    assert_eq!(resp["cancelled"], false);
    h.api(
        "POST",
        "/api/v1/builds",
        &t,
        Some(json!({"flake": "prod", "host": "alpha"})),
    )
    .await;
    let resp = json(h.api("POST", "/api/v1/builds/2/cancel", &t, None).await).await;
    assert_eq!(resp["cancelled"], true);
    assert_eq!(
        h.api("GET", "/api/v1/builds/9", &t, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.api("GET", "/api/v1/builds/9/log", &t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let ids = json(h.api("POST", "/api/v1/flakes/prod/update", &t, None).await).await;
    assert_eq!(ids["builds"], json!([3, 4]));
    h.flakes.finish(3, true);
    let gens = json(h.api("GET", "/api/v1/generations", &t, None).await).await;
    assert_eq!(
        gens["prod#alpha"]["generations"].as_array().unwrap().len(),
        2
    );
    assert_eq!(gens["prod#alpha"]["pinned"], serde_json::Value::Null);
    let resp = h
        .api(
            "POST",
            "/api/v1/generations/rollback",
            &t,
            Some(json!({"host": "prod#alpha", "number": 1})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let gens = json(
        h.api("GET", "/api/v1/generations?host=prod%23alpha", &t, None)
            .await,
    )
    .await;
    assert_eq!(gens["prod#alpha"]["pinned"], 1);
    // A bare host name answers under its qualified name, with its pin.
    let gens = json(
        h.api("GET", "/api/v1/generations?host=alpha", &t, None)
            .await,
    )
    .await;
    assert_eq!(gens["prod#alpha"]["pinned"], 1);
    assert_eq!(gens.as_object().unwrap().len(), 1);
    let resp = h
        .api(
            "POST",
            "/api/v1/generations/rollback",
            &t,
            Some(json!({"host": "prod#alpha", "number": 7})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    h.api(
        "POST",
        "/api/v1/generations/unpin",
        &t,
        Some(json!({"host": "prod#alpha"})),
    )
    .await;
    assert_eq!(h.flakes.pinned_of("prod#alpha"), None);
    assert_eq!(
        h.api("POST", "/api/v1/flakes/nope/update", &t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn machines_events_and_settings_over_the_api() {
    let (h, t) = ready().await;
    let mut e = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "offer")
        .mac(MAC)
        .firmware(ClientFirmware::UefiX64Pxe);
    e.at = SystemTime::now();
    let mut k = BootEvent::new(BootStage::Tftp, Outcome::Failed, "timeout").mac(MAC);
    k.at = SystemTime::now();
    h.store.record_events(&[e, k]).unwrap();

    let list = json(h.api("GET", "/api/v1/machines", &t, None).await).await;
    assert_eq!(list[0]["mac"], "52:54:00:ab:00:02");
    assert_eq!(list[0]["firmware"], "uefi-x64-pxe");
    let one = json(
        h.api("GET", "/api/v1/machines/52:54:00:ab:00:02", &t, None)
            .await,
    )
    .await;
    assert_eq!(
        one["attempts"][0]["stopped"],
        "Stopped at TFTP: it failed (timeout)."
    );
    assert_eq!(one["last_boot"]["state"], "failed");
    assert_eq!(one["last_boot"]["stage"], "tftp");
    assert_eq!(one["attempts"][0]["result"]["state"], "failed");
    assert_eq!(one["attempts"][0]["stages"][1]["state"], "failed");
    assert_eq!(list[0]["last_boot"]["state"], "failed");
    assert_eq!(list[0]["pinned"], false);
    let attempts = json(
        h.api(
            "GET",
            "/api/v1/machines/52:54:00:ab:00:02/attempts",
            &t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(attempts.as_array().unwrap().len(), 1);
    assert_eq!(attempts[0]["stages"][0]["stage"], "dhcp");
    assert_eq!(
        h.api("GET", "/api/v1/machines/52:54:00:ab:00:09", &t, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let resp = h
        .api(
            "POST",
            "/api/v1/machines/52:54:00:ab:00:02",
            &t,
            Some(json!({"host": "nosuch"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json(resp).await["fields"]["host"]
            .as_str()
            .unwrap()
            .contains("nosuch")
    );
    // A broadcast or multicast MAC is nobody's: nothing to assign, nothing created.
    for group in [
        "ff:ff:ff:ff:ff:ff",
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
    ] {
        let resp = h
            .api(
                "POST",
                &format!("/api/v1/machines/{group}"),
                &t,
                Some(json!({"label": "x"})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{group}");
    }
    assert_eq!(h.store.machines().unwrap().len(), 1);
    let mut changes = h.state.machine_changes();
    changes.borrow_and_update();
    let resp = h
        .api(
            "POST",
            "/api/v1/machines/52:54:00:ab:00:02",
            &t,
            Some(json!({"host": "demo", "hostname": "n2", "kernel_params": "quiet"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m = json(resp).await;
    assert_eq!(
        (m["host"].as_str(), m["options"]["hostname"].as_str()),
        (Some("demo"), Some("n2"))
    );
    assert!(changes.has_changed().unwrap());

    let ev = json(
        h.api(
            "GET",
            "/api/v1/machines/52:54:00:ab:00:02/events?limit=1",
            &t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(ev.as_array().unwrap().len(), 1);
    assert_eq!(ev[0]["stage"], "tftp");
    let ev = json(h.api("GET", "/api/v1/events", &t, None).await).await;
    assert_eq!(ev.as_array().unwrap().len(), 2);

    let mut s = json(h.api("GET", "/api/v1/settings", &t, None).await).await;
    assert_eq!(s["dhcp_mode"], "proxy");
    s["dhcp_mode"] = json!("router");
    let resp = h.api("PUT", "/api/v1/settings", &t, Some(s.clone())).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(resp).await["fields"]["dhcp_ranges"].is_string());
    s["dhcp_ranges"] = json!([["10.0.0.100", "10.0.0.200"]]);
    let resp = h.api("PUT", "/api/v1/settings", &t, Some(s)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(h.state.settings_changes().borrow().dhcp_ranges.len(), 1);
    let resp = h
        .api(
            "PUT",
            "/api/v1/settings",
            &t,
            Some(json!({"dhcp_mode": "bridge"})),
        )
        .await;
    assert!(resp.status().is_client_error());

    let status = json(h.api("GET", "/api/v1/status", &t, None).await).await;
    assert_eq!(
        (status["machines"].as_u64(), status["dhcp_mode"].as_str()),
        (Some(1), Some("router"))
    );
}

/// A machine's log lines, oldest first, at most `?limit=`; an unknown machine is 404.
#[tokio::test]
async fn a_machines_log_lines_over_the_api() {
    let (h, t) = ready().await;
    let mut e = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "offer").mac(MAC);
    e.at = SystemTime::now();
    h.store.record_events(&[e]).unwrap();
    let line = |text: &str| flakeboot_store::LogRecord {
        mac: MAC,
        peer: "10.0.0.100".parse().unwrap(),
        at: SystemTime::now(),
        proto: "rfc5424".into(),
        severity: Some(3),
        facility: Some(1),
        hostname: Some("node1".into()),
        app: Some("app".into()),
        text: text.into(),
        truncated: false,
    };
    h.store
        .record_logs(&[line("first"), line("second"), line("third")])
        .unwrap();
    let path = "/api/v1/machines/52:54:00:ab:00:02/logs";
    let all = json(h.api("GET", path, &t, None).await).await;
    let texts: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
    assert_eq!(all[0]["proto"], "rfc5424");
    assert_eq!(all[0]["severity"], 3);
    assert_eq!(all[0]["hostname"], "node1");
    assert_eq!(all[0]["peer"], "10.0.0.100");
    assert_eq!(all[0]["truncated"], false);
    let newest = json(h.api("GET", &format!("{path}?limit=1"), &t, None).await).await;
    assert_eq!(newest[0]["text"], "third");
    let resp = h
        .api("GET", "/api/v1/machines/52:54:00:ab:00:99/logs", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_machine_list_filters_and_pages_with_the_pages_query() {
    let (h, t) = ready().await;
    let mut events = Vec::new();
    for i in 0..5u8 {
        let mac = MacAddr([0x52, 0x54, 0, 0xdd, 0, i]);
        let mut e = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "proxy offer").mac(mac);
        e.at = SystemTime::now() - Duration::from_secs(30 - u64::from(i));
        events.push(e);
        if i < 2 {
            let mut k = BootEvent::new(BootStage::Tftp, Outcome::Failed, "timeout").mac(mac);
            k.at = e_at(&events);
            events.push(k);
        }
    }
    h.store.record_events(&events).unwrap();
    let resp = h
        .api(
            "GET",
            "/api/v1/machines?state=failed&page=2&per_page=1",
            &t,
            None,
        )
        .await;
    assert_eq!(resp.headers()["x-total-count"], "2");
    let page = json(resp).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    // Newest first: page 2 of the failed ones is machine 0.
    assert_eq!(page[0]["mac"], "52:54:00:dd:00:00");
    assert_eq!(page[0]["last_boot"]["state"], "failed");
    let resp = h
        .api("GET", "/api/v1/machines?state=booting", &t, None)
        .await;
    assert_eq!(resp.headers()["x-total-count"], "3");
    let resp = h.api("GET", "/api/v1/machines?q=dd:00:04", &t, None).await;
    let list = json(resp).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["last_boot"]["state"], "booting");
    assert_eq!(list[0]["last_boot"]["ended"], serde_json::Value::Null);
    let resp = h
        .api("GET", "/api/v1/machines?state=sideways", &t, None)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

fn e_at(events: &[BootEvent]) -> SystemTime {
    events.last().unwrap().at + Duration::from_millis(100)
}

#[tokio::test]
async fn the_deploy_key_is_shown_to_a_token_and_its_absence_explained() {
    let (h, t) = ready().await;
    // Not wired (or not usable): 503 with why, on the API and as a notice on the flakes page.
    let resp = h.api("GET", "/api/v1/deploy-key", &t, None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json(resp).await["error"]
            .as_str()
            .unwrap()
            .contains("no SSH deploy key")
    );

    let key = flakeboot_appliance::wire::DeployKey {
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx flakeboot@box".into(),
        fingerprint: "SHA256:abc".into(),
    };
    h.state.set_deploy_key(Ok(key.clone()));
    let resp = h.api("GET", "/api/v1/deploy-key", &t, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(resp).await,
        json!({"public_key": key.public_key, "fingerprint": "SHA256:abc"})
    );
    let anonymous = h.get("/api/v1/deploy-key", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
