//! The real daemon serves its boot files to real clients: tftp-hpa and curl over TFTP, curl
//! over HTTP (scripts, Range requests).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use flakeboot_testbed::require_tool;

#[test]
fn tftp_and_http_clients_get_byte_identical_files() {
    require_tool("tftp");
    require_tool("curl");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"off\"");
    let mut daemon = lan.start(&config);
    let undionly = std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap();

    // tftp-hpa
    let out = lan.path("undionly-hpa.kpxe");
    lan.client()
        .run(&[
            "tftp",
            SERVER_IP,
            "-m",
            "binary",
            "-c",
            "get",
            "undionly.kpxe",
            out.to_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        undionly,
        "tftp-hpa download differs"
    );

    // curl, default block size and 1468
    for blksize in [None, Some("1468")] {
        let out = lan.path("undionly-curl.kpxe");
        let mut args = vec!["curl", "-sS", "-o", out.to_str().unwrap()];
        if let Some(b) = blksize {
            args.extend(["--tftp-blksize", b]);
        }
        args.push("tftp://10.77.0.1/undionly.kpxe");
        lan.client().run(&args).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), undionly, "curl {blksize:?}");
    }

    // Nothing outside the catalogue over TFTP.
    for bad in ["../etc/passwd", "/etc/passwd", "flakeboot.toml", "vmlinuz"] {
        let out = lan.path("bad");
        let result = lan.client().run(&[
            "curl",
            "-sS",
            "-o",
            out.to_str().unwrap(),
            &format!("tftp://10.77.0.1/{bad}"),
        ]);
        assert!(result.is_err(), "TFTP served {bad}");
    }

    // The assigned machine's script boots its host.
    let script = lan
        .client()
        .run(&[
            "curl",
            "-sSf",
            &format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}"),
        ])
        .unwrap();
    assert!(script.starts_with("#!ipxe"), "{script}");
    assert!(script.contains("/boot/demo/static/kernel"), "{script}");
    assert!(script.contains("console=ttyS0 panic=-1"), "{script}");

    // Range requests on the initrd.
    let initrd = std::fs::read(lan.path("initrd")).unwrap();
    let url = format!("http://{SERVER_IP}/boot/demo/static/initrd");
    let part = lan.path("part");
    let code = lan
        .client()
        .run(&[
            "curl",
            "-sS",
            "-r",
            "1000-4999",
            "-o",
            part.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &url,
        ])
        .unwrap();
    assert_eq!(code.trim(), "206");
    assert_eq!(std::fs::read(&part).unwrap(), initrd[1000..5000]);
    let full = lan.path("full");
    lan.client()
        .run(&["curl", "-sSf", "-o", full.to_str().unwrap(), &url])
        .unwrap();
    assert_eq!(std::fs::read(&full).unwrap(), initrd);

    // Every fetch was recorded as a boot event.
    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(30)
    );
    let log = daemon.output();
    for stage in ["stage=\"tftp\"", "stage=\"script\"", "stage=\"initrd\""] {
        assert!(log.contains(stage), "no {stage} event in the log:\n{log}");
    }
}
