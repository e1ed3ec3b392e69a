//! `serve_tls` against a real client: curl verifies the generated certificate (SANs for the
//! addresses and the name), speaks HTTP/2 and HTTP/1.1, sees an uploaded certificate replace it
//! without a restart; the server refuses to listen on all interfaces and stops on shutdown.
//! Everything runs on loopback inside a network namespace of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::FakeFlakes;
use flakeboot_appliance::DaemonStatus;
use flakeboot_store::Store;
use flakeboot_testbed::{Netns, require_root, require_tool};
use flakeboot_webui::{CertStore, ServeError, TlsSetup, WebConfig, WebState, serve_tls};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Runs curl inside the namespace; returns (exit code, stdout).
fn curl(ns: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn state(certs: Option<CertStore>) -> WebState {
    let (_tx, rx) = watch::channel(DaemonStatus::default());
    WebState::new(
        Store::in_memory().unwrap(),
        Arc::new(FakeFlakes::manual()),
        WebConfig::default(),
        rx,
        certs,
    )
    .unwrap()
}

#[test]
fn curl_verifies_the_generated_certificate_and_sees_an_upload_replace_it() {
    require_root();
    require_tool("curl");
    let ns = Netns::new("webtls").unwrap();
    let name = ns.name().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    ns.thread(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(scenario(&name, &dir));
    })
    .unwrap()
    .join()
    .unwrap();
}

async fn scenario(ns: &str, dir: &Path) {
    let tls = TlsSetup {
        dir: dir.to_owned(),
        names: vec!["127.0.0.1".into(), "flakeboot.lan".into()],
    };
    // Never all interfaces, never nothing.
    let refused = serve_tls(
        vec!["0.0.0.0:8443".parse().unwrap()],
        state(None),
        tls.clone(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(refused, Err(ServeError::AllInterfaces { .. })),
        "{refused:?}"
    );
    let refused = serve_tls(
        vec!["[::]:8443".parse().unwrap()],
        state(None),
        tls.clone(),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(refused, Err(ServeError::AllInterfaces { .. })));
    assert!(matches!(
        serve_tls(vec![], state(None), tls.clone(), CancellationToken::new()).await,
        Err(ServeError::NoAddress)
    ));

    let certs = CertStore::load_or_generate(&tls).unwrap();
    let shutdown = CancellationToken::new();
    let addrs: Vec<SocketAddr> = vec![
        "127.0.0.1:8443".parse().unwrap(),
        "127.0.0.2:8443".parse().unwrap(),
    ];
    let server = tokio::spawn(serve_tls(
        addrs,
        state(Some(certs.clone())),
        tls.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ca = dir.join("cert.pem");
    let ca = ca.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let ns = ns.to_owned();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&ns, &args)
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // The generated certificate verifies for the IP address (HTTP/2) and the name (HTTP/1.1),
    // on both addresses.
    let (code, out) = run(s(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "https://127.0.0.1:8443/login",
    ]))
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "303 2"), "{out}");
    let (code, out) = run(s(&[
        "--cacert",
        &ca,
        "--http1.1",
        "--resolve",
        "flakeboot.lan:8443:127.0.0.2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "https://flakeboot.lan:8443/static/style.css",
    ]))
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "200 1.1"), "{out}");
    // The API refuses without a token, over TLS too.
    let (_, out) = run(s(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "https://127.0.0.1:8443/api/v1/machines",
    ]))
    .await
    .unwrap();
    assert_eq!(out, "401");
    // A name the certificate does not carry fails verification.
    let (code, _) = run(s(&[
        "--cacert",
        &ca,
        "--resolve",
        "other.lan:8443:127.0.0.1",
        "https://other.lan:8443/login",
    ]))
    .await
    .unwrap();
    assert_eq!(
        code, 60,
        "curl's 'peer certificate cannot be authenticated'"
    );

    // Upload another certificate: new connections get it at once.
    let new =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "nas.lan".to_owned()])
            .unwrap();
    let new_ca = dir.parent().unwrap().join("new-ca.pem");
    std::fs::write(&new_ca, new.cert.pem()).unwrap();
    let old_ca = dir.parent().unwrap().join("old-ca.pem");
    std::fs::copy(&ca, &old_ca).unwrap();
    let before = certs.info();
    let after = certs
        .replace(&new.cert.pem(), &new.signing_key.serialize_pem())
        .unwrap();
    assert_ne!(before.fingerprint, after.fingerprint);
    let (code, _) = run(s(&[
        "--cacert",
        old_ca.to_str().unwrap(),
        "https://127.0.0.1:8443/login",
    ]))
    .await
    .unwrap();
    assert_eq!(code, 60, "the old certificate is gone");
    assert_eq!(
        std::fs::read_to_string(&ca).unwrap(),
        new.cert.pem(),
        "the upload is kept"
    );
    let (code, out) = run(s(&[
        "--cacert",
        new_ca.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "https://127.0.0.1:8443/login",
    ]))
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "303"), "{out}");

    // Plain HTTP on the TLS port is not answered as HTTP.
    let (code, _) = run(s(&["http://127.0.0.1:8443/"])).await.unwrap();
    assert_ne!(code, 0);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(8), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
