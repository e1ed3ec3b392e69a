//! The Machines page and `GET /api/v1/machines` at 10,000 machines, on a real on-disk store
//! filled through the store (not the network) with a whole boot for every machine (50,000
//! events) and router-mode leases: page 1, the last page, a search, sorting, and each state
//! filter (which judges every machine) answer within a bound, with the right counts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use common::{Harness, body, config, json};
use flakeboot_catalogue::{BootEvent, BootStage, ClientFirmware, MacAddr, Outcome};
use flakeboot_store::{LeaseRecord, LeaseState, Store, StoreOptions};

const MACHINES: u32 = 10_000;

/// Debug build on two cores shared with other builds: a page that judges every machine took
/// 0.85-1.9 s (one read transaction per machine before: 2.1-3.4 s); a slower path fails.
const BOUND: Duration = Duration::from_secs(4);

fn mac(i: u32) -> MacAddr {
    let [_, a, b, c] = i.to_be_bytes();
    MacAddr([0x52, 0x54, 0, a, b, c])
}

/// Machine `i` booted 5 s each, `i` x 10 ms apart, ending a minute ago: `i % 4` 0 and 1
/// reported up (1 then let its lease run out: offline), 2 failed at the kernel, 3 only got DHCP
/// (booting: a minute is less than the report timeout).
fn fill(store: &Store) {
    let start = SystemTime::now() - Duration::from_secs(60 + u64::from(MACHINES) / 100);
    let mut events = Vec::new();
    let mut leases = Vec::new();
    for i in 0..MACHINES {
        let m = mac(i);
        let t0 = start + Duration::from_millis(u64::from(i) * 10);
        let ev = |s: u64, stage, outcome, detail: &str| {
            let mut e = BootEvent::new(stage, outcome, detail)
                .mac(m)
                .firmware(ClientFirmware::IpxeEfi);
            e.at = t0 + Duration::from_millis(s);
            e
        };
        events.push(ev(0, BootStage::Dhcp, Outcome::Ok, "router ack"));
        match i % 4 {
            0 | 1 => {
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
            2 => {
                events.push(ev(1, BootStage::Script, Outcome::Ok, "s"));
                events.push(ev(2, BootStage::Kernel, Outcome::Failed, "cut off"));
            }
            _ => {}
        }
        let [_, _, hi, lo] = i.to_be_bytes();
        leases.push(LeaseRecord {
            ip: Ipv4Addr::new(10, 1, hi, lo),
            mac: m,
            client_id: None,
            hostname: None,
            expires: if i % 4 == 1 {
                SystemTime::now() - Duration::from_secs(1)
            } else {
                SystemTime::now() + Duration::from_secs(3600)
            },
            state: LeaseState::Bound,
        });
        if events.len() >= 5_000 {
            store.record_events(&events).unwrap();
            events.clear();
        }
    }
    store.record_events(&events).unwrap();
    store.put_leases(&leases).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_machines_list_stays_fast_at_ten_thousand_machines() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            max_machines: MACHINES as usize,
            max_events: 5 * MACHINES as usize,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let filled = Instant::now();
    fill(&store);
    eprintln!("filled {MACHINES} machines in {:?}", filled.elapsed());
    assert_eq!(store.machines().unwrap().len(), MACHINES as usize);

    let h = Harness::with(common::FakeFlakes::manual(), store, config());
    let browser = h.setup().await;
    // Router mode (after setup, which sets proxy): the leases say who is offline.
    let token = h.token(&browser).await;
    let mut settings = json(h.api("GET", "/api/v1/settings", &token, None).await).await;
    settings["dhcp_mode"] = serde_json::json!("router");
    settings["dhcp_ranges"] = serde_json::json!([["10.0.0.100", "10.0.0.200"]]);
    let resp = h
        .api("PUT", "/api/v1/settings", &token, Some(settings))
        .await;
    assert!(resp.status().is_success(), "{}", body(resp).await);
    let newest = mac(MACHINES - 1).to_string();
    let oldest = mac(0).to_string();
    let oldest_failed = mac(2).to_string();
    // i % 4 == 1: 9997 is the last offline machine, by MAC (no labels) on the last page.
    let newest_offline = mac(MACHINES - 3).to_string();
    let searched = mac(4321).to_string();
    let quarter = MACHINES as usize / 4;
    for (path, needles) in [
        (
            "/machines".to_owned(),
            vec![
                format!("{MACHINES} machines · page 1 of 200"),
                newest.clone(),
            ],
        ),
        ("/machines?page=200".to_owned(), vec![oldest.clone()]),
        (
            format!("/machines?q={searched}"),
            vec!["1 machine match".to_owned(), searched.clone()],
        ),
        (
            "/machines?state=up".to_owned(),
            vec![format!("{quarter} machines match (of {MACHINES})")],
        ),
        (
            "/machines?state=offline".to_owned(),
            vec![
                format!("{quarter} machines match (of {MACHINES})"),
                "offline".to_owned(),
            ],
        ),
        (
            "/machines?state=failed&page=50".to_owned(),
            vec![
                format!("{quarter} machines match (of {MACHINES})"),
                oldest_failed,
            ],
        ),
        (
            "/machines?sort=mac&page=200".to_owned(),
            vec![
                format!("{MACHINES} machines · page 200 of 200"),
                newest.clone(),
            ],
        ),
        (
            "/machines?sort=label&state=offline&page=50".to_owned(),
            vec![
                format!("{quarter} machines match (of {MACHINES})"),
                newest_offline,
            ],
        ),
        (
            "/machines?state=booting&q=52:54:00:00:00".to_owned(),
            vec![format!("64 machines match (of {MACHINES})")],
        ),
    ] {
        let asked = Instant::now();
        let resp = h.get(&path, Some(&browser)).await;
        let took = asked.elapsed();
        assert_eq!(resp.status(), 200, "{path}");
        let html = body(resp).await;
        eprintln!("{path}: {took:?}, {} bytes", html.len());
        for needle in needles {
            assert!(html.contains(&needle), "{path}: no {needle:?} in {html}");
        }
        assert!(took < BOUND, "{path} took {took:?}");
    }

    let asked = Instant::now();
    let resp = h
        .api(
            "GET",
            "/api/v1/machines?state=offline&per_page=1000",
            &token,
            None,
        )
        .await;
    let took = asked.elapsed();
    assert_eq!(
        resp.headers()["x-total-count"],
        quarter.to_string().as_str()
    );
    let list = json(resp).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1000);
    assert!(
        list.iter().all(|m| m["last_boot"]["state"] == "offline"),
        "{:?}",
        list[0]
    );
    eprintln!("API ?state=offline&per_page=1000: {took:?}");
    assert!(took < BOUND, "the API took {took:?}");
}
