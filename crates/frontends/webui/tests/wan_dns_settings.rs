//! The WAN port and the DNS forwarder in Settings and `GET`/`PUT /api/v1/settings`: the forms
//! and the API save them (announced to the daemon at once), refuse what the config file's
//! `[wan]` and `[dns]` rules refuse (next to the field and in the summary at the top; in the
//! API as field errors), and a settings record of an earlier version (no WAN, no DNS) shows the
//! config file's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::Ipv4Addr;

use axum::http::StatusCode;
use common::{Harness, body, json, location};
use flakeboot_store::{ApplianceSettings, DnsSettings, Store, WanModeSetting, WanSettings};
use serde_json::json;

/// Router mode on `lan0` (10.0.0.2/24 on the fake machine; `wan0` is 192.0.2.2/24).
const FILE: &str = "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\n\
    range = [\"10.0.0.100\", \"10.0.0.200\"]\n";

fn harness(file: &str, store: Store) -> Harness {
    Harness::with(
        common::FakeFlakes::manual(),
        store,
        common::config_on_fake_machine(file),
    )
}

/// The part of a page from the input `id` to the next label: where its error shows.
fn next_to(html: &str, id: &str) -> String {
    let after = html
        .split(&format!(r#"id="{id}""#))
        .nth(1)
        .unwrap_or_default();
    after.split("<label").next().unwrap_or_default().to_owned()
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[tokio::test]
async fn the_wan_and_dns_forms_save_and_show_what_they_saved() {
    let h = harness(FILE, Store::in_memory().unwrap());
    let browser = h.setup().await;
    let html = body(h.get("/settings", Some(&browser)).await).await;
    for needle in [
        r##"href="#wan""##,
        r##"href="#dns""##,
        r#"id="wan""#,
        r#"id="dns""#,
        r#"action="/settings/wan""#,
        r#"action="/settings/dns""#,
        "In router mode the LAN is forwarded to it with NAT",
    ] {
        assert!(html.contains(needle), "no {needle} in the page");
    }
    // Setup chose proxy mode: the WAN would only be firewalled, the forwarder is off.
    assert!(html.contains("Not in router mode now: the LAN is not forwarded"));
    assert!(html.contains("With these settings it is <strong>off</strong>"));
    let mut changes = h.state.settings_changes();
    changes.borrow_and_update();

    let resp = h
        .post(
            "/settings/wan",
            &browser,
            &[
                ("wan_interface", "wan0"),
                ("wan_mode", "static"),
                ("wan_address", " 198.51.100.2/24 "),
                ("wan_gateway", "198.51.100.1"),
                ("wan_dns", "198.51.100.53\n198.51.100.54"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
    assert_eq!(location(&resp), "/settings?saved=wan");
    let want = WanSettings {
        interface: Some("wan0".into()),
        mode: WanModeSetting::Static,
        address: Some((ip(198, 51, 100, 2), 24)),
        gateway: Some(ip(198, 51, 100, 1)),
        dns: vec![ip(198, 51, 100, 53), ip(198, 51, 100, 54)],
    };
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow_and_update().wan, Some(want.clone()));
    assert_eq!(
        h.store.appliance_settings().unwrap().unwrap().wan,
        Some(want)
    );
    let html = body(h.get("/settings?saved=wan", Some(&browser)).await).await;
    assert!(html.contains("The WAN port is set up with it now, without a restart"));
    assert!(next_to(&html, "wan_address").contains(r#"value="198.51.100.2/24""#));
    assert!(next_to(&html, "wan_gateway").contains(r#"value="198.51.100.1""#));
    assert!(next_to(&html, "wan_dns").contains("198.51.100.53\n198.51.100.54"));
    assert!(html.contains(r#"<option value="wan0" selected>wan0</option>"#));

    let resp = h
        .post(
            "/settings/dns",
            &browser,
            &[("dns_enabled", "on"), ("dns_upstream", "9.9.9.9, 1.1.1.1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
    assert_eq!(location(&resp), "/settings?saved=dns");
    let saved = h.store.appliance_settings().unwrap().unwrap();
    assert_eq!(
        saved.dns,
        Some(DnsSettings {
            enabled: Some(true),
            upstream: vec![ip(9, 9, 9, 9), ip(1, 1, 1, 1)],
        })
    );
    // The other form's settings stay as they were.
    assert_eq!(saved.wan.unwrap().interface.as_deref(), Some("wan0"));
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(html.contains(r#"<option value="on" selected>On</option>"#));
    assert!(html.contains("With these settings it is <strong>on</strong>"));
    assert!(next_to(&html, "dns_upstream").contains("9.9.9.9\n1.1.1.1"));

    // DHCP on the same port: the static fields, still filled in, are not saved (with DHCP
    // the file's rules would refuse them; the API does).
    let resp = h
        .post(
            "/settings/wan",
            &browser,
            &[
                ("wan_interface", "wan0"),
                ("wan_mode", "dhcp"),
                ("wan_address", "198.51.100.2/24"),
                ("wan_gateway", "not checked"),
                ("wan_dns", "198.51.100.53"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
    assert_eq!(
        h.store.appliance_settings().unwrap().unwrap().wan,
        Some(WanSettings {
            interface: Some("wan0".into()),
            ..WanSettings::default()
        })
    );
    // No WAN port, the forwarder with router mode.
    let resp = h
        .post(
            "/settings/wan",
            &browser,
            &[("wan_interface", ""), ("wan_mode", "dhcp")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
    let resp = h
        .post(
            "/settings/dns",
            &browser,
            &[("dns_enabled", "auto"), ("dns_upstream", "")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", body(resp).await);
    let saved = h.store.appliance_settings().unwrap().unwrap();
    assert_eq!(saved.wan, Some(WanSettings::default()));
    assert_eq!(saved.dns, Some(DnsSettings::default()));
    // Audited like the other settings forms.
    let actions: Vec<String> = h
        .store
        .recent_audit(20)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(
        actions.iter().filter(|a| *a == "settings.wan").count() == 3
            && actions.iter().filter(|a| *a == "settings.dns").count() == 2,
        "{actions:?}"
    );
}

#[tokio::test]
async fn bad_wan_and_dns_values_are_refused_next_to_their_field() {
    let h = harness(FILE, Store::in_memory().unwrap());
    let browser = h.setup().await;
    let before = h.store.appliance_settings().unwrap();
    let changes = h.state.settings_changes();
    let wan = |interface: &'static str,
               mode: &'static str,
               address: &'static str,
               gateway: &'static str| {
        [
            ("wan_interface", interface),
            ("wan_mode", mode),
            ("wan_address", address),
            ("wan_gateway", gateway),
            ("wan_dns", ""),
        ]
    };
    for (form, id, field, message) in [
        (
            wan("wan0", "static", "", ""),
            "wan_address",
            "WAN address",
            "mode = &quot;static&quot; needs the port's address",
        ),
        (
            wan("wan0", "static", "198.51.100.2", ""),
            "wan_address",
            "WAN address",
            "is not an address with its prefix, like &quot;203.0.113.2/24&quot;",
        ),
        (
            wan("wan0", "static", "198.51.100.2/24", "203.0.113.1"),
            "wan_gateway",
            "WAN gateway",
            "203.0.113.1 is not another address in 198.51.100.2/24's subnet",
        ),
        (
            wan("wan0", "static", "198.51.100.2/24", "gw"),
            "wan_gateway",
            "WAN gateway",
            "“gw” is not an IPv4 address",
        ),
        (
            wan("lan0", "dhcp", "", ""),
            "wan_interface",
            "WAN port",
            "&quot;lan0&quot; is the LAN port too",
        ),
        (
            wan("eth9", "dhcp", "", ""),
            "wan_interface",
            "WAN port",
            "&quot;eth9&quot; does not exist on this machine: use one of: lan0, wan0",
        ),
        (
            wan("wan0", "static", "10.0.0.9/16", "10.0.0.1"),
            "wan_address",
            "WAN address",
            "holds the LAN address 10.0.0.2",
        ),
    ] {
        let resp = h.post("/settings/wan", &browser, &form).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        let html = body(resp).await;
        let near = next_to(&html, id);
        assert!(
            near.contains("field-error") && near.contains(message),
            "{form:?}: {message} not next to {id}: {near}"
        );
        // Summed up at the top, before the first section, linking to the WAN section.
        let top = html.split(r#"id="network""#).next().unwrap_or_default();
        assert!(
            top.contains(r#"id="problems""#)
                && top.contains(&format!(r##"<a href="#wan">{field}</a>"##))
                && top.contains(message),
            "{form:?}: no summary at the top: {top}"
        );
        // The draft is kept in the form.
        if !form[2].1.is_empty() {
            assert!(
                next_to(&html, "wan_address").contains(&format!(r#"value="{}""#, form[2].1)),
                "{form:?}"
            );
        }
    }
    for (upstream, message) in [
        (
            "10.0.0.2",
            "10.0.0.2 is the appliance's LAN address: the forwarder would ask itself",
        ),
        ("0.0.0.0", "0.0.0.0 is not a name server's address"),
        ("dns.example", "“dns.example” is not an IPv4 address"),
    ] {
        let resp = h
            .post(
                "/settings/dns",
                &browser,
                &[("dns_enabled", "on"), ("dns_upstream", upstream)],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{upstream}"
        );
        let html = body(resp).await;
        let near = next_to(&html, "dns_upstream");
        assert!(
            near.contains("field-error") && near.contains(message),
            "{upstream}: {near}"
        );
        let top = html.split(r#"id="network""#).next().unwrap_or_default();
        assert!(
            top.contains(r##"<a href="#dns">Upstream name servers</a>"##),
            "{top}"
        );
    }
    assert_eq!(h.store.appliance_settings().unwrap(), before);
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test]
async fn wan_and_dns_round_trip_through_the_api() {
    let h = harness(FILE, Store::in_memory().unwrap());
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let s = json(h.api("GET", "/api/v1/settings", &token, None).await).await;
    assert_eq!(
        s["wan"],
        json!({"interface": null, "mode": "dhcp", "address": null, "gateway": null, "dns": []})
    );
    assert_eq!(s["dns"], json!({"enabled": null, "upstream": []}));

    let mut next = s.clone();
    next["wan"] = json!({
        "interface": "wan0", "mode": "static", "address": "198.51.100.2/24",
        "gateway": "198.51.100.1", "dns": ["198.51.100.53"],
    });
    next["dns"] = json!({"enabled": true, "upstream": ["9.9.9.9"]});
    let resp = h
        .api("PUT", "/api/v1/settings", &token, Some(next.clone()))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json(resp).await, next);
    assert_eq!(
        json(h.api("GET", "/api/v1/settings", &token, None).await).await,
        next
    );
    assert_eq!(
        h.state
            .settings_changes()
            .borrow()
            .wan
            .clone()
            .unwrap()
            .address,
        Some((ip(198, 51, 100, 2), 24))
    );

    // A client that does not know `wan` and `dns` leaves them as they are.
    let mut older = next.clone();
    older.as_object_mut().unwrap().remove("wan");
    older.as_object_mut().unwrap().remove("dns");
    older["menu_timeout_secs"] = json!(7);
    let resp = h.api("PUT", "/api/v1/settings", &token, Some(older)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let now = json(resp).await;
    assert_eq!((&now["wan"], &now["dns"]), (&next["wan"], &next["dns"]));
    assert_eq!(now["menu_timeout_secs"], 7);

    // Field errors, by their place in the JSON; nothing saved.
    let before = h.store.appliance_settings().unwrap();
    for (edit, field, message) in [
        (
            json!({"wan": {"interface": "wan0", "mode": "static", "address": "198.51.100.2"}}),
            "wan.address",
            "like \"203.0.113.2/24\"",
        ),
        (
            json!({"wan": {"interface": "wan0", "mode": "static", "address": "198.51.100.2/24", "gateway": "203.0.113.1"}}),
            "wan.gateway",
            "is not another address in 198.51.100.2/24's subnet",
        ),
        (
            json!({"wan": {"interface": "lan0"}}),
            "wan.interface",
            "is the LAN port too",
        ),
        (
            json!({"wan": {"interface": "wan0", "mode": "dhcp", "address": "198.51.100.2/24"}}),
            "wan.address",
            "is only used with mode = \"static\"",
        ),
        (
            json!({"dns": {"upstream": ["9.9.9.9", "10.0.0.2"]}}),
            "dns.upstream",
            "is the appliance's LAN address",
        ),
    ] {
        let mut bad = now.clone();
        for (k, v) in edit.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let resp = h.api("PUT", "/api/v1/settings", &token, Some(bad)).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{edit}");
        let errors = json(resp).await;
        assert_eq!(errors["errors"][0]["field"], field, "{errors}");
        assert!(
            errors["fields"][field].as_str().unwrap().contains(message),
            "{errors}"
        );
    }
    assert_eq!(h.store.appliance_settings().unwrap(), before);
}

/// A settings record an earlier version saved has no WAN and no DNS: the config file's are in
/// effect and shown, in the API and the form.
#[tokio::test]
async fn an_older_record_shows_the_config_files_wan_and_dns() {
    let store = Store::in_memory().unwrap();
    let file = format!(
        "{FILE}[wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"198.51.100.2/24\"\n\
         gateway = \"198.51.100.1\"\n[dns]\nupstream = [\"9.9.9.9\"]\n"
    );
    let config = flakeboot_config::Config::parse(&file, std::path::Path::new("t.toml")).unwrap();
    store
        .put_appliance_settings(&ApplianceSettings {
            wan: None,
            dns: None,
            menu_timeout_secs: 4,
            ..flakeboot_appliance::settings_from_config(&config)
        })
        .unwrap();
    let h = harness(&file, store);
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    let s = json(h.api("GET", "/api/v1/settings", &token, None).await).await;
    assert_eq!(s["menu_timeout_secs"], 4);
    assert_eq!(s["wan"]["interface"], "wan0");
    assert_eq!(s["wan"]["address"], "198.51.100.2/24");
    assert_eq!(s["dns"]["upstream"], json!(["9.9.9.9"]));
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(next_to(&html, "wan_address").contains(r#"value="198.51.100.2/24""#));
}
