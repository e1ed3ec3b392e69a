//! The HTTP boot service's request paths, through the real router: any request line (method and
//! request target, percent-encoding and all), an optional `Range` header and a body, answered by
//! `flakeboot_httpboot::router` over a catalogue that records which boot files it is asked for.
//!
//! Nothing from a URL is joined to a filesystem path: a request maps to a `BootFile` or is
//! refused. Asserts, for any request:
//! - nothing panics and no answer is a 5xx;
//! - every `BootFile` the catalogue is asked for is an iPXE binary or a host file whose host
//!   name is 1-63 of `[A-Za-z0-9_-]` and whose version is 1-64 of `[A-Za-z0-9._-]` not starting
//!   with `.`; so its path under any root has no `..`, `.`, root or empty component and stays
//!   under the root;
//! - the report body parser (`POST /boot/report`, also called directly) keeps its detail to one
//!   line without control characters, at most `MAX_REPORT_DETAIL` bytes and an ellipsis.
#![no_main]

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Uri, header};
use flakeboot_catalogue::{
    BootEvent, BootFile, BootSpec, Catalogue, HostBoot, MacAddr, Menu, MenuEntry,
};
use flakeboot_httpboot::{HttpBootState, MAX_REPORT_DETAIL, SystemStatus, parse_report, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Default)]
struct Recorder {
    asked: Mutex<Vec<BootFile>>,
}

impl Catalogue for Recorder {
    fn boot_spec(&self, _mac: Option<MacAddr>) -> BootSpec {
        let demo = HostBoot {
            host: "demo".into(),
            version: "static".into(),
            cmdline: "console=ttyS0".into(),
        };
        BootSpec::Menu(Menu {
            entries: vec![MenuEntry {
                boot: demo,
                description: "Demo".into(),
            }],
            default: Some("demo".into()),
            timeout: Duration::from_secs(5),
        })
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        self.asked.lock().expect("not poisoned").push(file.clone());
        None
    }

    fn record(&self, _event: BootEvent) {}

    fn accept_report(&self, _mac: MacAddr, _from: IpAddr) -> bool {
        true
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    catalogue: Arc<Recorder>,
    router: Router,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let catalogue = Arc::new(Recorder::default());
        let state = HttpBootState {
            catalogue: catalogue.clone(),
            base_url: "http://10.77.0.1".into(),
        };
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime"),
            catalogue,
            router: router(state),
        }
    })
}

/// The input, split at line ends: `<method byte><target>\n<Range value>\n<body>` (a request
/// target and a header value cannot contain a line end anyway; an empty Range line means none),
/// so corpus files read like requests.
struct Input<'a> {
    method: u8,
    target: &'a [u8],
    range: Option<&'a [u8]>,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Option<Input<'a>> {
        let (&method, rest) = data.split_first()?;
        let mut parts = rest.splitn(3, |&b| b == b'\n');
        let target = parts.next()?;
        let range = parts.next().filter(|r| !r.is_empty());
        let body = parts.next().unwrap_or_default();
        Some(Input {
            method,
            target,
            range,
            body,
        })
    }
}

/// `G`ET, `H`EAD, `P`OST, P`U`T, anything else OPTIONS.
fn method(b: u8) -> Method {
    match b {
        b'G' => Method::GET,
        b'H' => Method::HEAD,
        b'P' => Method::POST,
        b'U' => Method::PUT,
        _ => Method::OPTIONS,
    }
}

fn check_segment(s: &str, max: usize, dots: bool) {
    assert!((1..=max).contains(&s.len()), "segment {s:?}");
    assert!(!s.starts_with('.'), "segment {s:?}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.')),
        "segment {s:?}"
    );
}

fn check_boot_file(file: &BootFile) {
    let BootFile::Host { host, version, .. } = file else {
        return;
    };
    check_segment(host, 63, false);
    check_segment(version, flakeboot_catalogue::text::MAX_VERSION, true);
    let root = Path::new("/srv/flakeboot");
    let http_path = file.http_path();
    let relative = http_path.trim_start_matches('/');
    let joined = root.join(relative);
    assert!(joined.starts_with(root), "{http_path} leaves the root");
    let parts: Vec<Component> = joined
        .components()
        .skip(root.components().count())
        .collect();
    assert_eq!(parts.len(), 4, "{http_path}: {parts:?}");
    assert!(
        parts.iter().all(|c| matches!(c, Component::Normal(_))),
        "{http_path}: {parts:?}"
    );
}

fn check_report(body: &[u8]) {
    if let Ok(report) = parse_report(body)
        && let SystemStatus::Failed { detail } = &report.status
    {
        assert!(
            !detail.chars().any(char::is_control),
            "control character in {detail:?}"
        );
        let limit = MAX_REPORT_DETAIL + '…'.len_utf8();
        assert!(detail.len() <= limit, "a detail of {} bytes", detail.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    check_report(input.body);

    let Ok(uri) = Uri::try_from(input.target) else {
        return;
    };
    let mut req = Request::builder().method(method(input.method)).uri(uri);
    if let Some(range) = input.range
        && let Ok(value) = header::HeaderValue::from_bytes(range)
    {
        req = req.header(header::RANGE, value);
    }
    req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    let Ok(req) = req.body(Body::from(input.body.to_vec())) else {
        return;
    };

    let h = harness();
    h.catalogue.asked.lock().expect("not poisoned").clear();
    let response = h
        .runtime
        .block_on(h.router.clone().oneshot(req))
        .expect("the router is infallible");
    assert!(
        !response.status().is_server_error(),
        "{} for {:?}",
        response.status(),
        String::from_utf8_lossy(input.target)
    );
    for file in h.catalogue.asked.lock().expect("not poisoned").iter() {
        check_boot_file(file);
    }
});
