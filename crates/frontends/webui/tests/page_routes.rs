//! Route-level tests of every page: dashboard, machines and timelines, flakes and builds,
//! settings, errors, and the plain-HTTP redirect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, PASSWORD, body, location};
use flakeboot_appliance::{DaemonStatus, ServiceState, ServiceStatus};
use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
use flakeboot_store::DhcpModeSetting;
use flakeboot_webui::redirect_router;
use tower::ServiceExt;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 1]);

fn event(secs_ago: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
    let mut e = BootEvent::new(stage, outcome, detail)
        .mac(MAC)
        .firmware(ClientFirmware::IpxeBios)
        .vendor_class("PXEClient:Arch:00000:UNDI:002001");
    e.at = SystemTime::now() - Duration::from_secs(secs_ago);
    e
}

fn seed_failed_boot(h: &Harness) {
    h.store
        .record_events(&[
            event(60, BootStage::Dhcp, Outcome::Ok, "proxy offer: http script"),
            event(59, BootStage::Script, Outcome::Ok, "menu"),
            event(
                58,
                BootStage::Kernel,
                Outcome::Failed,
                "client closed after 2 MB",
            ),
        ])
        .unwrap();
}

#[tokio::test]
async fn the_dashboard_shows_services_warnings_builds_and_recent_boots() {
    let h = Harness::new();
    let browser = h.setup().await;
    h.status.send_replace(DaemonStatus {
        services: vec![ServiceStatus {
            name: "DHCP (proxy)".into(),
            state: ServiceState::Running,
            detail: "lan0 10.0.0.2:67, 4011".into(),
        }],
        warnings: vec![
            "Another DHCP server (10.0.0.1) answers on the LAN while flakeboot is in router mode."
                .into(),
        ],
    });
    seed_failed_boot(&h);
    h.post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    h.post("/flakes/fleet/build", &browser, &[("host", "alpha")])
        .await;

    let html = body(h.get("/", Some(&browser)).await).await;
    for text in [
        "DHCP (proxy)",
        "running",
        "lan0 10.0.0.2:67, 4011",
        "Another DHCP server (10.0.0.1)",
        "fleet#alpha",
        "building",
        "Recent boots",
        "client closed after 2 MB",
        "/machines/52:54:00:ab:00:01",
    ] {
        assert!(html.contains(text), "{text} missing");
    }
}

#[tokio::test]
async fn the_machines_page_lists_machines_and_a_machine_page_shows_where_its_boot_stopped() {
    let h = Harness::new();
    let browser = h.setup().await;
    let empty = body(h.get("/machines", Some(&browser)).await).await;
    assert!(empty.contains("No machine has booted"));
    seed_failed_boot(&h);

    let html = body(h.get("/machines", Some(&browser)).await).await;
    for text in [
        "52:54:00:ab:00:01",
        "ipxe-bios",
        "PXEClient:Arch:00000",
        "boot menu",
        "failed",
        "Stopped at Kernel",
        " s ago",
    ] {
        assert!(html.contains(text), "{text} missing from the list");
    }
    let html = body(h.get("/machines/52:54:00:ab:00:01", Some(&browser)).await).await;
    for text in [
        "Boot timeline",
        "DHCP",
        "TFTP",
        "skipped",
        "Script",
        "Kernel",
        "✗ failed",
        "Initrd",
        "not reached",
        "Stopped at Kernel: it failed (client closed after 2 MB).",
    ] {
        assert!(html.contains(text), "{text} missing from the machine page");
    }
    assert_eq!(
        h.get("/machines/52:54:00:ab:00:99", Some(&browser))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/machines/not-a-mac", Some(&browser)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn assigning_a_machine_persists_and_tells_the_daemon() {
    let h = Harness::new();
    let browser = h.setup().await;
    seed_failed_boot(&h);
    h.post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    let changes = h.state.machine_changes();
    let path = "/machines/52:54:00:ab:00:01";

    let resp = h
        .post(
            path,
            &browser,
            &[
                ("host", "fleet#gamma"),
                ("label", "x"),
                ("hostname", "-bad-"),
                ("kernel_params", "a\tb"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(
        html.contains("there is no host named &quot;fleet#gamma&quot;"),
        "unbootable hosts are not offered: {html}"
    );
    assert!(html.contains("is not a host name: use letters, digits"));
    assert!(html.contains("contains a control character"));
    assert!(!changes.has_changed().unwrap());
    // Kernel parameters that would break the boot script (iPXE reads `||` as the end of the
    // command and expands `${...}`): refused next to the field, with what the script needs.
    for params in ["quiet || shell", "root=${x}", "a #!ipxe"] {
        let resp = h.post(path, &browser, &[("kernel_params", params)]).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{params}");
        let html = body(resp).await;
        let field = html
            .split(r#"id="kernel_params""#)
            .nth(1)
            .unwrap_or_default();
        assert!(
            field.contains("iPXE boot script could not carry it safely"),
            "{params}: {html}"
        );
    }
    assert!(!changes.has_changed().unwrap());

    let resp = h
        .post(
            path,
            &browser,
            &[
                ("host", "fleet#alpha"),
                ("label", "rack 3"),
                ("hostname", "node1"),
                ("kernel_params", "console=ttyS0"),
            ],
        )
        .await;
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, format!("{path}?saved=1"))
    );
    assert!(changes.has_changed().unwrap());
    let m = h.store.machine(MAC).unwrap().unwrap();
    assert_eq!(
        (m.host.as_deref(), m.label.as_deref()),
        (Some("fleet#alpha"), Some("rack 3"))
    );
    let o = h.store.machine_options(MAC).unwrap();
    assert_eq!(
        (o.hostname.as_deref(), o.kernel_params.as_str()),
        (Some("node1"), "console=ttyS0")
    );
    let html = body(h.get(&format!("{path}?saved=1"), Some(&browser)).await).await;
    assert!(html.contains("Saved."));
    assert!(
        html.contains(r#"<option value="fleet#alpha" selected>"#),
        "{html}"
    );

    // Back to the menu; config hosts are offered too.
    h.post(path, &browser, &[("host", "demo")]).await;
    assert_eq!(
        h.store.machine(MAC).unwrap().unwrap().host.as_deref(),
        Some("demo")
    );
    h.post(path, &browser, &[("host", "")]).await;
    assert_eq!(h.store.machine(MAC).unwrap().unwrap().host, None);
}

#[tokio::test]
async fn flakes_add_with_errors_next_to_the_field_build_cancel_and_roll_back() {
    let h = Harness::new();
    let browser = h.setup().await;

    let resp = h
        .post("/flakes", &browser, &[("url", "path:/missing")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    let field = html.find("name=\"url\"").unwrap();
    let error = html
        .find("path &#39;/missing&#39; does not exist")
        .or_else(|| html.find("path '/missing' does not exist"))
        .unwrap();
    assert!(
        error > field && error - field < 400,
        "the error sits right under the field"
    );
    assert!(
        html.contains("value=\"path:/missing\""),
        "the input is kept"
    );

    let resp = h
        .post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    assert_eq!(location(&resp), "/flakes/fleet");
    let resp = h
        .post("/flakes", &browser, &[("url", "github:other/fleet")])
        .await;
    assert!(body(resp).await.contains("already exists"));

    let html = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    for text in [
        "alpha",
        "beta",
        "cannot netboot",
        "not built yet",
        "1111aaaa22",
    ] {
        assert!(html.contains(text), "{text}");
    }

    // Build, watch the log, cancel.
    let resp = h
        .post("/flakes/fleet/build", &browser, &[("host", "alpha")])
        .await;
    assert_eq!(location(&resp), "/builds/1");
    h.flakes.log_line(1, "building '/nix/store/abc-kernel.drv'");
    let html = body(h.get("/builds/1", Some(&browser)).await).await;
    assert!(
        html.contains("building &#39;/nix/store/abc-kernel.drv&#39;")
            || html.contains("building '/nix/store/abc-kernel.drv'"),
        "{html}"
    );
    assert!(html.contains("Cancel build") && html.contains("/static/live.js"));
    let resp = h.post("/builds/1/cancel", &browser, &[]).await;
    assert_eq!(location(&resp), "/builds/1");
    let html = body(h.get("/builds/1", Some(&browser)).await).await;
    assert!(html.contains("cancelled") && !html.contains("Cancel build"));

    // Two successful builds, then roll back to the first and forward again.
    for id in [2, 3] {
        h.post("/flakes/fleet/build", &browser, &[("host", "alpha")])
            .await;
        h.flakes.finish(id, true);
    }
    let html = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(html.contains("Generations of") && html.contains("generation 2"));
    let resp = h
        .post(
            "/generations/rollback",
            &browser,
            &[("host", "fleet#alpha"), ("number", "1")],
        )
        .await;
    assert_eq!(location(&resp), "/flakes/fleet");
    let html = body(h.get("/flakes/fleet", Some(&browser)).await).await;
    assert!(html.contains("pinned") && html.contains("Boot the newest again"));
    assert_eq!(h.flakes.pinned_of("fleet#alpha"), Some(1));
    h.post("/generations/unpin", &browser, &[("host", "fleet#alpha")])
        .await;
    assert_eq!(h.flakes.pinned_of("fleet#alpha"), None);

    // Update queues builds of the bootable hosts.
    let resp = h.post("/flakes/fleet/update", &browser, &[]).await;
    assert_eq!(location(&resp), "/flakes/fleet");
    assert_eq!(h.flakes.builds_len(), 5);
    let resp = h
        .post(
            "/generations/rollback",
            &browser,
            &[("host", "fleet#alpha"), ("number", "9")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.get("/flakes/nope", Some(&browser)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/builds/99", Some(&browser)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_finished_build_page_shows_its_whole_log_and_generation() {
    let h = Harness::new();
    let browser = h.setup().await;
    h.post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    h.post("/flakes/fleet/build", &browser, &[("host", "beta")])
        .await;
    for i in 0..50 {
        h.flakes.log_line(1, &format!("line {i}"));
    }
    h.flakes.finish(1, true);
    let html = body(h.get("/builds/1", Some(&browser)).await).await;
    assert!(html.contains("line 0\n") && html.contains("line 49\n"));
    assert!(html.contains("succeeded") && !html.contains("live.js"));
}

/// The part of a page from the input `id` to the next label: where its error shows.
fn next_to(html: &str, id: &str) -> String {
    let after = html
        .split(&format!(r#"id="{id}""#))
        .nth(1)
        .unwrap_or_default();
    after.split("<label").next().unwrap_or_default().to_owned()
}

/// Values that would break a boot later are refused where they are saved (the forms and the
/// API), with the config file's rules on this machine, next to their field; nothing is saved.
#[tokio::test]
async fn bad_settings_are_refused_next_to_their_field() {
    let config = common::config_on_fake_machine(
        "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\n\
         range = [\"10.0.0.100\", \"10.0.0.200\"]\n\
         [[hosts]]\nname = \"demo\"\nkernel = \"/k\"\ninitrd = \"/i\"\n",
    );
    let h = Harness::with(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        config,
    );
    let browser = h.setup().await;
    let before = h.store.appliance_settings().unwrap();
    let changes = h.state.settings_changes();
    let network = |lan: &'static str, ranges: &'static str| {
        [
            ("lan_interface", lan),
            ("dhcp_mode", "router"),
            ("dhcp_ranges", ranges),
            ("reservations", ""),
        ]
    };
    for (form, field, message) in [
        (
            network("nosuch0", "10.0.0.100-10.0.0.200"),
            "lan_interface",
            "&quot;nosuch0&quot; does not exist on this machine: use one of: lan0, wan0",
        ),
        (
            network("lan0", "192.168.1.10-192.168.1.20"),
            "dhcp_ranges",
            "192.168.1.10 - 192.168.1.20 is not inside the LAN's subnet 10.0.0.0/24",
        ),
        (
            network("lan0", "10.0.0.20-10.0.0.10"),
            "dhcp_ranges",
            "the first address is after the last",
        ),
        // Another port: the ranges must move along to its subnet.
        (
            network("wan0", "10.0.0.100-10.0.0.200"),
            "dhcp_ranges",
            "is not inside the LAN's subnet 192.0.2.0/24",
        ),
    ] {
        let resp = h.post("/settings/network", &browser, &form).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        let html = body(resp).await;
        let near = next_to(&html, field);
        assert!(
            near.contains("field-error") && near.contains(message),
            "{form:?}: {message} not next to {field}: {near}"
        );
        // And summed up at the top, before the first section, linking to its section.
        let top = html.split(r#"id="network""#).next().unwrap_or_default();
        assert!(
            top.contains(r#"id="problems""#)
                && top.contains(r##"href="#network""##)
                && top.contains(message),
            "{form:?}: no summary at the top: {top}"
        );
    }
    let resp = h
        .post(
            "/settings/menu",
            &browser,
            &[("menu_default", "ghost"), ("menu_timeout_secs", "5")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let near = next_to(&body(resp).await, "menu_default");
    assert!(near.contains("&quot;ghost&quot; names no host"), "{near}");
    assert_eq!(h.store.appliance_settings().unwrap(), before);
    assert!(!changes.has_changed().unwrap());

    // The API: 422, every problem as a field and a message.
    let token = h.token(&browser).await;
    let mut s = common::json(h.api("GET", "/api/v1/settings", &token, None).await).await;
    s["dhcp_ranges"] = serde_json::json!([["10.9.0.1", "10.9.0.9"], ["10.0.0.9", "10.0.0.1"]]);
    s["menu_default"] = serde_json::json!("ghost");
    s["dhcp_mode"] = serde_json::json!("router");
    let resp = h.api("PUT", "/api/v1/settings", &token, Some(s)).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors = common::json(resp).await;
    let list: Vec<(String, String)> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let fields: Vec<&str> = list.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["dhcp_ranges", "menu_default", "dhcp_ranges"],
        "{errors}"
    );
    assert!(
        list[2].1.contains("10.9.0.1 - 10.9.0.9 is not inside"),
        "{errors}"
    );
    assert!(list[0].1.contains("backwards"), "{errors}");
    assert!(
        errors["fields"]["menu_default"]
            .as_str()
            .unwrap()
            .contains("names no host")
    );
    assert_eq!(h.store.appliance_settings().unwrap(), before);
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test]
async fn settings_are_validated_saved_and_announced() {
    let h = Harness::new();
    let browser = h.setup().await;
    let mut changes = h.state.settings_changes();
    changes.borrow_and_update();

    let resp = h
        .post(
            "/settings/network",
            &browser,
            &[
                ("lan_interface", "lan0"),
                ("dhcp_mode", "router"),
                ("dhcp_ranges", ""),
                ("reservations", "zz 1.2.3.4"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("is not like 52:54:00:12:34:56"), "{html}");
    assert!(!changes.has_changed().unwrap());

    let resp = h
        .post(
            "/settings/network",
            &browser,
            &[
                ("lan_interface", "lan0"),
                ("dhcp_mode", "router"),
                ("dhcp_ranges", "10.0.0.100-10.0.0.200"),
                ("reservations", "52:54:00:ab:00:01 10.0.0.5 node5"),
            ],
        )
        .await;
    assert_eq!(location(&resp), "/settings?saved=network");
    assert!(changes.has_changed().unwrap());
    let s = changes.borrow_and_update().clone();
    assert_eq!(s.dhcp_mode, DhcpModeSetting::Router);
    assert_eq!(s.reservations.len(), 1);
    assert_eq!(h.store.appliance_settings().unwrap(), Some(s));

    let resp = h
        .post(
            "/settings/menu",
            &browser,
            &[("menu_default", "nosuch"), ("menu_timeout_secs", "x")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = h
        .post(
            "/settings/menu",
            &browser,
            &[("menu_default", "local"), ("menu_timeout_secs", "3")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = h
        .post(
            "/settings/nix",
            &browser,
            &[("substituters", "cache.example"), ("builders", "")],
        )
        .await;
    assert!(body(resp).await.contains("is not a cache URL"));
    let resp = h
        .post(
            "/settings/nix",
            &browser,
            &[
                (
                    "substituters",
                    "https://cache.example\n\nhttp://10.0.0.3:5000",
                ),
                ("builders", "ssh://b x86_64-linux"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let s = h.store.appliance_settings().unwrap().unwrap();
    assert_eq!(
        s.substituters,
        ["https://cache.example", "http://10.0.0.3:5000"]
    );
    assert_eq!(
        (s.menu_default.as_deref(), s.menu_timeout_secs),
        (Some("local"), 3)
    );
    let html = body(h.get("/settings?saved=nix", Some(&browser)).await).await;
    assert!(html.contains("Saved.") && html.contains("http://10.0.0.3:5000"));
    // Without TLS there is no certificate to replace.
    let resp = h
        .post(
            "/settings/certificate",
            &browser,
            &[("cert_pem", "x"), ("key_pem", "y")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let h = Harness::new();
    let browser = h.setup().await;
    let other = h.browser_from(&h.login(PASSWORD).await).await;
    let resp = h
        .post(
            "/settings/password",
            &browser,
            &[
                ("current", "nope"),
                ("password", "new password 1"),
                ("confirm", "new password 2"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("not the current password") && html.contains("do not match"));
    let resp = h
        .post(
            "/settings/password",
            &browser,
            &[
                ("current", PASSWORD),
                ("password", "new password 1"),
                ("confirm", "new password 1"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/", Some(&browser)).await.status(), StatusCode::OK);
    assert_eq!(location(&h.get("/", Some(&other)).await), "/login");
    assert_eq!(h.login(PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.login("new password 1").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn api_tokens_are_shown_once_stored_hashed_and_revocable() {
    let h = Harness::new();
    let browser = h.setup().await;
    let token = h.token(&browser).await;
    assert!(token.starts_with("fbt_") && token.len() == 68, "{token}");
    let stored = h.store.api_tokens().unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_sha256, token);
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(!html.contains(&token), "shown once only");
    assert!(html.contains("ci") && html.contains("Revoke"));
    assert_eq!(
        h.api("GET", "/api/v1/status", &token, None).await.status(),
        StatusCode::OK
    );
    let resp = h
        .post(
            &format!("/settings/tokens/{}/delete", stored[0].id),
            &browser,
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        h.api("GET", "/api/v1/status", &token, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = h.post("/settings/tokens", &browser, &[("name", "")]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn failures_show_a_plain_page_without_the_cause() {
    let h = Harness::new();
    let browser = h.setup().await;
    h.flakes
        .fail_with("database locked at /var/lib/flakeboot/secret.redb");
    let resp = h.get("/flakes", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = body(resp).await;
    assert!(html.contains("Something went wrong on the appliance"));
    assert!(!html.contains("secret.redb") && !html.contains("database locked"));
    let resp = h.get("/no/such/page", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body(resp).await.contains("not found"));
}

#[tokio::test]
async fn plain_http_redirects_ui_paths_to_https_and_leaves_boot_paths_alone() {
    let router = redirect_router("https://10.0.0.2/");
    let send = |path: &str| {
        router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
    };
    let resp = send("/").await.unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(location(&resp), "https://10.0.0.2/");
    let resp = send("/machines/52:54:00:ab:00:01?saved=1").await.unwrap();
    assert_eq!(
        location(&resp),
        "https://10.0.0.2/machines/52:54:00:ab:00:01?saved=1"
    );
    assert_eq!(
        location(&send("/login").await.unwrap()),
        "https://10.0.0.2/login"
    );
    for boot in [
        "/boot/demo/static/kernel",
        "/ipxe/undionly.kpxe",
        "/api/v1/status",
        "/static/style.css",
    ] {
        assert_eq!(
            send(boot).await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{boot}"
        );
    }
}

#[tokio::test]
async fn an_uploaded_certificate_replaces_the_self_signed_one_and_a_bad_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = flakeboot_webui::CertStore::load_or_generate(&flakeboot_webui::TlsSetup {
        dir: tmp.path().to_owned(),
        names: vec!["10.0.0.2".into()],
    })
    .unwrap();
    let h = Harness::with_certs(
        common::FakeFlakes::manual(),
        flakeboot_store::Store::in_memory().unwrap(),
        common::config(),
        Some(certs.clone()),
    );
    let browser = h.setup().await;
    let before = certs.info();
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(html.contains("A self-signed certificate") && html.contains(&before.fingerprint));

    let other = rcgen::generate_simple_self_signed(vec!["nas.lan".to_owned()]).unwrap();
    let wrong_key = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
    let resp = h
        .post(
            "/settings/certificate",
            &browser,
            &[
                ("cert_pem", &other.cert.pem()),
                ("key_pem", &wrong_key.signing_key.serialize_pem()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("does not fit the certificate"), "{html}");
    assert!(
        !html.contains("PRIVATE KEY-----\n"),
        "the key is not echoed back"
    );
    assert_eq!(certs.info(), before);

    let resp = h
        .post(
            "/settings/certificate",
            &browser,
            &[
                ("cert_pem", &other.cert.pem()),
                ("key_pem", &other.signing_key.serialize_pem()),
            ],
        )
        .await;
    assert_eq!(location(&resp), "/settings?saved=certificate");
    let html = body(h.get("/settings", Some(&browser)).await).await;
    assert!(html.contains("An uploaded certificate") && html.contains(&certs.info().fingerprint));
}

#[tokio::test]
async fn machines_pinned_in_the_config_file_say_so() {
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
    seed_failed_boot(&h);
    let html = body(h.get("/machines", Some(&browser)).await).await;
    assert!(
        html.contains("<code>demo</code>") && html.contains("config file"),
        "{html}"
    );
    let html = body(h.get("/machines/52:54:00:ab:00:01", Some(&browser)).await).await;
    assert!(
        html.contains("Pinned by the config file")
            && html.contains("<code>/etc/flakeboot.toml, line 7</code>")
            && html.contains("the host <code>demo</code>"),
        "{html}"
    );
    // The boot settings are read-only: disabled in the form, refused if sent anyway.
    assert!(
        html.contains("<fieldset class=\"plain\" disabled>"),
        "{html}"
    );
    let resp = h
        .post("/machines/52:54:00:ab:00:01", &browser, &[("host", "")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(
        html.contains("Set in /etc/flakeboot.toml, line 7: change it there."),
        "{html}"
    );
    // The label is still the user's.
    let resp = h
        .post(
            "/machines/52:54:00:ab:00:01",
            &browser,
            &[("label", "rack 1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}
/// One boot of `mac` that got its kernel and initrd of `version`, `secs_ago` seconds ago,
/// and then (if any) the system's report.
fn booted(
    mac: MacAddr,
    secs_ago: u64,
    version: &str,
    report: Option<(Outcome, &str)>,
) -> Vec<BootEvent> {
    let at = |back: u64| SystemTime::now() - Duration::from_secs(secs_ago - back);
    let ev = |back, stage, outcome, detail: String| {
        let mut e = BootEvent::new(stage, outcome, detail)
            .mac(mac)
            .peer("10.0.0.50".parse().unwrap());
        e.at = at(back);
        e
    };
    let mut events = vec![
        ev(0, BootStage::Dhcp, Outcome::Ok, "proxy offer".into()),
        ev(
            1,
            BootStage::Script,
            Outcome::Ok,
            "GET /boot.ipxe 200 host alpha".into(),
        ),
        ev(
            2,
            BootStage::Kernel,
            Outcome::Ok,
            format!("GET /boot/alpha/{version}/kernel 200 bytes 0-9/10"),
        ),
        ev(
            3,
            BootStage::Initrd,
            Outcome::Ok,
            format!("GET /boot/alpha/{version}/initrd 200 bytes 0-9/10"),
        ),
    ];
    if let Some((outcome, detail)) = report {
        events.push(ev(60, BootStage::System, outcome, detail.into()));
    }
    events
}

#[tokio::test]
async fn the_timeline_says_how_each_boot_ended_and_the_dashboard_counts_machines_up() {
    let h = Harness::new();
    let browser = h.setup().await;
    let up = MacAddr([0x52, 0x54, 0, 0xab, 0, 0x11]);
    let failed = MacAddr([0x52, 0x54, 0, 0xab, 0, 0x12]);
    let silent = MacAddr([0x52, 0x54, 0, 0xab, 0, 0x13]);
    let booting = MacAddr([0x52, 0x54, 0, 0xab, 0, 0x14]);
    let mut events = booted(up, 300, "lab.g3", Some((Outcome::Ok, "up")));
    events.extend(booted(
        failed,
        300,
        "lab.g2",
        Some((Outcome::Failed, "sshd.service failed: exit code 1")),
    ));
    // The default report timeout is 10 minutes: 20 minutes of silence is too long ...
    events.extend(booted(silent, 1200, "static", None));
    // ... 2 minutes is not yet.
    events.extend(booted(booting, 120, "static", None));
    h.store.record_events(&events).unwrap();

    let page = |mac: MacAddr| {
        let h = &h;
        let browser = &browser;
        async move { body(h.get(&format!("/machines/{mac}"), Some(browser)).await).await }
    };
    let html = page(up).await;
    assert!(html.contains("up (generation 3)"), "{html}");
    let html = page(failed).await;
    assert!(
        html.contains("failed: sshd.service failed: exit code 1"),
        "{html}"
    );
    let html = page(silent).await;
    assert!(
        html.contains("no report 10 minutes after the initrd"),
        "{html}"
    );
    let html = page(booting).await;
    assert!(html.contains("waiting for the system"), "{html}");
    assert!(!html.contains("no report"), "{html}");

    let html = body(h.get("/", Some(&browser)).await).await;
    assert!(
        html.contains(r#"<strong id="machines-up">1</strong> up"#),
        "{html}"
    );
    for text in [
        "up (generation 3)",
        "failed: sshd.service failed",
        "no report 10 minutes after the initrd",
    ] {
        assert!(html.contains(text), "{text} missing from the dashboard");
    }
}

/// `n` machines, each with one boot `n` seconds apart: every third reported up, every third
/// failed at the kernel, the rest only got DHCP (booting, recently).
fn seed_lan(h: &Harness, n: u16) {
    let mut events = Vec::new();
    for i in 0..n {
        let [hi, lo] = i.to_be_bytes();
        let mac = MacAddr([0x52, 0x54, 0, 0xcc, hi, lo]);
        let t = |s: u64| {
            SystemTime::now() - Duration::from_secs(60)
                + Duration::from_millis(u64::from(i) * 10 + s)
        };
        let ev = |s, stage, outcome, detail: &str| {
            let mut e = BootEvent::new(stage, outcome, detail).mac(mac);
            e.at = t(s);
            e
        };
        events.push(ev(0, BootStage::Dhcp, Outcome::Ok, "proxy offer"));
        match i % 3 {
            0 => {
                events.push(ev(1, BootStage::Script, Outcome::Ok, "s"));
                events.push(ev(
                    2,
                    BootStage::Kernel,
                    Outcome::Ok,
                    "GET /boot/alpha/lab.g4/kernel 200",
                ));
                events.push(ev(
                    3,
                    BootStage::Initrd,
                    Outcome::Ok,
                    "GET /boot/alpha/lab.g4/initrd 200",
                ));
                events.push(ev(5, BootStage::System, Outcome::Ok, "up"));
            }
            1 => {
                events.push(ev(1, BootStage::Script, Outcome::Ok, "s"));
                events.push(ev(2, BootStage::Kernel, Outcome::Failed, "cut off"));
            }
            _ => {}
        }
    }
    h.store.record_events(&events).unwrap();
}

#[tokio::test]
async fn the_machines_page_searches_filters_by_state_and_pages() {
    let h = Harness::new();
    let browser = h.setup().await;
    seed_lan(&h, 120);
    let html = body(h.get("/machines", Some(&browser)).await).await;
    assert!(html.contains("120 machines · page 1 of 3"), "{html}");
    assert_eq!(html.matches("<tr>").count(), 51, "a header and 50 rows");
    // Newest first: machine 119 (0x77) on page 1, machine 0 on page 3.
    assert!(html.contains("52:54:00:cc:00:77") && !html.contains("52:54:00:cc:00:00"));
    assert!(html.contains(r#"href="/machines?page=2""#), "{html}");
    let html = body(h.get("/machines?page=3", Some(&browser)).await).await;
    assert!(html.contains("52:54:00:cc:00:00") && html.contains("← Newer"));
    assert_eq!(html.matches("<tr>").count(), 21);

    let html = body(h.get("/machines?state=up", Some(&browser)).await).await;
    assert!(html.contains("40 machines match (of 120)"), "{html}");
    assert!(html.contains("up (generation 4)") && !html.contains("Stopped at"));
    let html = body(
        h.get("/machines?state=failed&q=cc:00:0", Some(&browser))
            .await,
    )
    .await;
    // Failed machines are i % 3 == 1; those among 0x00..0x0f: 1, 4, 7, 10, 13.
    assert!(html.contains("5 machines match"), "{html}");
    let html = body(h.get("/machines?q=no-such-machine", Some(&browser)).await).await;
    assert!(html.contains("No machine matches."), "{html}");
    let resp = h.get("/machines?state=sideways", Some(&browser)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_hosts_page_lists_every_host_with_its_machines_and_what_an_unbootable_one_needs() {
    let h = Harness::new();
    let browser = h.setup().await;
    h.post("/flakes", &browser, &[("url", "github:acme/fleet")])
        .await;
    seed_failed_boot(&h);
    h.post(
        "/machines/52:54:00:ab:00:01",
        &browser,
        &[("host", "fleet#alpha")],
    )
    .await;
    let html = body(h.get("/hosts", Some(&browser)).await).await;
    for text in [
        "<code>demo</code>",
        "config file",
        "<code>fleet#alpha</code>",
        "github:acme/fleet",
        "not built yet",
        r#"href="/machines/52:54:00:ab:00:01""#,
        "cannot netboot",
        "flakeboot.nixosModules.default",
    ] {
        assert!(
            html.contains(text),
            "{text} missing from the hosts page: {html}"
        );
    }
}
