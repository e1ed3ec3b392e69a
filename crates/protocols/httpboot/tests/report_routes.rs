//! `POST /boot/report` through `tower::ServiceExt::oneshot`, with the peer address a real
//! server gives (`MockConnectInfo`), against the recording catalogue: 204 and a `system` event
//! from the address the MAC last took in DHCP, 403 from any other (a script fetched with
//! `?mac=` makes no address a MAC's), 400 for a malformed body.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, MacAddr, Outcome, RecordingCatalogue};
use flakeboot_httpboot::{HttpBootState, HttpBootStats, router_with_stats};
use tower::ServiceExt;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x57]);

struct Boot {
    catalogue: Arc<RecordingCatalogue>,
    stats: Arc<HttpBootStats>,
}

impl Boot {
    fn new() -> Boot {
        Boot {
            catalogue: Arc::new(RecordingCatalogue::default()),
            stats: Arc::new(HttpBootStats::default()),
        }
    }

    async fn send(&self, from: &str, req: Request<Body>) -> (StatusCode, String) {
        let state = HttpBootState {
            catalogue: self.catalogue.clone(),
            base_url: "http://10.77.0.1".into(),
        };
        let peer: SocketAddr = format!("{from}:40000").parse().unwrap();
        let res = router_with_stats(state, self.stats.clone())
            .layer(MockConnectInfo(peer))
            .oneshot(req)
            .await
            .unwrap();
        let status = res.status();
        let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The machine takes `from` in a DHCP exchange (recorded as the DHCP server records it:
    /// the MAC from the wire) and fetches its script from there.
    async fn boots_from(&self, mac: MacAddr, from: &str) {
        self.catalogue.record(
            BootEvent::new(BootStage::Dhcp, Outcome::Ok, "proxy ack: ipxe.efi")
                .mac(mac)
                .peer(from.parse().unwrap()),
        );
        let req = Request::get(format!("/boot.ipxe?mac={mac}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(self.send(from, req).await.0, StatusCode::OK);
    }

    async fn report(&self, from: &str, body: impl Into<Body>) -> (StatusCode, String) {
        let req = Request::post("/boot/report")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into())
            .unwrap();
        self.send(from, req).await
    }
}

#[tokio::test]
async fn up_from_the_address_it_booted_from_is_204_and_a_system_event() {
    let boot = Boot::new();
    boot.boots_from(MAC, "10.77.0.50").await;
    let (status, body) = boot
        .report("10.77.0.50", "mac=52:54:00:12:34:56&stage=up")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty(), "{body}");

    let events = boot.catalogue.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    let e = &events[2];
    assert_eq!(
        (e.stage, e.outcome, e.mac, e.peer),
        (
            BootStage::System,
            Outcome::Ok,
            Some(MAC),
            Some("10.77.0.50".parse().unwrap())
        )
    );
    assert_eq!(e.detail, "up");
    assert_eq!(boot.stats.snapshot().reports, 1);
}

#[tokio::test]
async fn failed_carries_its_detail() {
    let boot = Boot::new();
    boot.boots_from(MAC, "10.77.0.50").await;
    let (status, _) = boot
        .report(
            "10.77.0.50",
            "mac=52-54-00-12-34-56&stage=failed&detail=sshd.service+failed%3A+exit+code+1",
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let e = boot.catalogue.events().pop().unwrap();
    assert_eq!((e.stage, e.outcome), (BootStage::System, Outcome::Failed));
    assert_eq!(e.detail, "sshd.service failed: exit code 1");

    // A detail over 1 KiB is cut, not refused.
    let long = "x".repeat(3000);
    let (status, _) = boot
        .report(
            "10.77.0.50",
            format!("mac={MAC}&stage=failed&detail={long}"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let e = boot.catalogue.events().pop().unwrap();
    assert!(e.detail.len() <= 1024 + 3 && e.detail.ends_with('…'));
}

#[tokio::test]
async fn another_address_or_another_mac_is_403_and_records_nothing() {
    let boot = Boot::new();
    boot.boots_from(MAC, "10.77.0.50").await;
    boot.boots_from(OTHER, "10.77.0.51").await;
    for (from, body) in [
        // Right MAC, wrong address.
        ("10.77.0.99", "mac=52:54:00:12:34:56&stage=up"),
        // The other machine's address, reporting for this one.
        ("10.77.0.51", "mac=52:54:00:12:34:56&stage=failed&detail=x"),
        // This machine's address, reporting for the other one.
        ("10.77.0.50", "mac=52:54:00:12:34:57&stage=up"),
        // A MAC never seen.
        ("10.77.0.50", "mac=02:00:00:00:00:01&stage=up"),
    ] {
        let (status, _) = boot.report(from, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{from} {body}");
    }
    assert!(
        boot.catalogue
            .events()
            .iter()
            .all(|e| e.stage != BootStage::System),
        "a refused report was recorded"
    );
    assert_eq!(boot.stats.snapshot().refused_reports, 4);
}

#[tokio::test]
async fn fetching_a_script_with_mac_does_not_make_the_address_that_macs() {
    let boot = Boot::new();
    boot.boots_from(MAC, "10.77.0.50").await;
    // Another address names the machine's MAC in `?mac=`: it may still not report for it.
    let req = Request::get(format!("/boot.ipxe?mac={MAC}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(boot.send("10.77.0.66", req).await.0, StatusCode::OK);
    let (status, _) = boot
        .report("10.77.0.66", "mac=52:54:00:12:34:56&stage=up")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = boot
        .report("10.77.0.50", "mac=52:54:00:12:34:56&stage=up")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn malformed_or_oversized_bodies_are_refused_without_an_event() {
    let boot = Boot::new();
    boot.boots_from(MAC, "10.77.0.50").await;
    for body in [
        "".to_owned(),
        "stage=up".to_owned(),
        "mac=52:54:00:12:34:56".to_owned(),
        "mac=52:54:00:12:34:56&stage=rebooting".to_owned(),
        "mac=not-a-mac&stage=up".to_owned(),
        "mac=52:54:00:12:34:56&stage=up&mac=52:54:00:12:34:57".to_owned(),
        "mac=52:54:00:12:34:56&stage=failed&detail=%".to_owned(),
        "{\"mac\":\"52:54:00:12:34:56\",\"stage\":\"up\"}".to_owned(),
    ] {
        let (status, _) = boot.report("10.77.0.50", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    let (status, _) = boot
        .report("10.77.0.50", vec![b'm', b'a', b'c', b'=', 0xff, 0xfe])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Over 4 KiB: refused by its Content-Length, or while reading when it has none.
    let huge = format!("mac={MAC}&stage=up&pad={}", "a".repeat(5000));
    let (status, _) = boot.report("10.77.0.50", huge.clone()).await;
    assert!(
        status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::BAD_REQUEST,
        "{status}"
    );
    let req = Request::post("/boot/report")
        .header(header::CONTENT_LENGTH, "5000")
        .body(Body::from(huge))
        .unwrap();
    assert_eq!(
        boot.send("10.77.0.50", req).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let chunks = futures_chunks(6000);
    let (status, _) = boot.report("10.77.0.50", chunks).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(
        boot.catalogue.events().len(),
        2,
        "only the DHCP exchange and the script fetch"
    );
}

/// A streamed body of about `len` bytes without a Content-Length.
fn futures_chunks(len: usize) -> Body {
    let chunk = b"mac=52:54:00:12:34:56&stage=up&".repeat(4);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..len / chunk.len() + 1)
        .map(|_| Ok(chunk.clone()))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn without_a_peer_address_nothing_is_accepted() {
    let catalogue = Arc::new(RecordingCatalogue::default());
    let state = HttpBootState {
        catalogue: catalogue.clone(),
        base_url: "http://10.77.0.1".into(),
    };
    let req = Request::post("/boot/report")
        .body(Body::from("mac=52:54:00:12:34:56&stage=up"))
        .unwrap();
    let res = flakeboot_httpboot::router(state)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(catalogue.events().is_empty());
}

#[tokio::test]
async fn get_on_the_report_path_is_not_a_report() {
    let boot = Boot::new();
    let req = Request::get("/boot/report").body(Body::empty()).unwrap();
    let (status, _) = boot.send("10.77.0.50", req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(boot.catalogue.events().is_empty());
}
