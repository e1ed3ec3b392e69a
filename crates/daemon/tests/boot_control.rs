//! Boot once and the local disk through the CLI against the real daemon: on the appliance over
//! the owner-only API socket (no token) and from a laptop with `--server` and a token, printing
//! the same bytes; a config-pinned machine refused with its file and line; and the boot script
//! the daemon serves for each choice (a script fetched again still gets the boot-once host: only
//! its delivered kernel takes it).

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::*;
use flakeboot_hil_tests::https_admin::{Admin, Curl};
use flakeboot_testbed::require_tool;

const BASE: &str = "https://10.77.0.1";
const NEW_MAC: &str = "52:54:00:aa:bb:03";

/// `flakeboot <args>` on the appliance (API socket, no token) or, with `laptop` = the token
/// file and the certificate pin, from the client namespace over HTTPS.
fn cli(lan: &Lan, laptop: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut cmd = match laptop {
        None => {
            let mut cmd = lan.server.command(env!("CARGO_BIN_EXE_flakeboot"));
            cmd.args(args).arg("--state-dir").arg(lan.state_dir());
            cmd
        }
        Some((token_file, pin)) => {
            let mut cmd = lan.client().command(env!("CARGO_BIN_EXE_flakeboot"));
            cmd.args(["--server", BASE, "--token-file", token_file, "--pin", pin])
                .args(args);
            cmd
        }
    };
    cmd.env_remove("FLAKEBOOT_SERVER")
        .env_remove("FLAKEBOOT_TOKEN_FILE")
        .env_remove("FLAKEBOOT_TOKEN")
        .output()
        .unwrap()
}

fn ok(lan: &Lan, laptop: Option<(&str, &str)>, args: &[&str]) -> String {
    let out = cli(lan, laptop, args);
    assert!(
        out.status.success(),
        "flakeboot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(lan: &Lan, laptop: Option<(&str, &str)>, args: &[&str]) -> String {
    let out = cli(lan, laptop, args);
    assert_eq!(out.status.code(), Some(1), "flakeboot {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// The boot script the daemon serves for `?mac=`.
fn script(lan: &Lan, mac: &str) -> String {
    let out = lan
        .client()
        .command("curl")
        .args(["-sf", &format!("http://10.77.0.1/boot.ipxe?mac={mac}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn boot_once_and_the_local_disk_from_the_cli_locally_and_over_https() {
    require_tool("curl");
    let lan = Lan::new();
    lan.client().addr("eth0", "10.77.0.50/24").unwrap();
    let config = lan.write_config("[dhcp]\nmode = \"off\"\n\n[tftp]\nenabled = false");
    let mut daemon = lan.start(&config);
    let cert = lan.state_dir().join("tls/cert.pem");
    let curl = Curl::new(lan.client(), Some(&cert), lan.path("cookies.txt"));
    let admin = Admin::set_up(curl, BASE, &|| daemon.output(), "lan0", "off");
    let token_file = lan.path("token");
    std::fs::write(&token_file, format!("{}\n", admin.token)).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let laptop = Some((token_file.to_str().unwrap(), admin.fingerprint.as_str()));

    // Every command, on the appliance and from the laptop: the same bytes.
    let both = |args: &[&str]| {
        let local = ok(&lan, None, args);
        assert_eq!(
            local,
            ok(&lan, laptop, args),
            "{args:?} locally and over --server"
        );
        local
    };
    let out = both(&["machine", "assign", NEW_MAC, "--local-disk"]);
    assert_eq!(out.trim(), format!("{NEW_MAC} boots its local disk now."));
    let s = script(&lan, NEW_MAC);
    assert!(
        s.contains("boot from the local disk") && s.ends_with("\nexit 1\n"),
        "{s}"
    );

    let out = both(&["machine", "boot-once", NEW_MAC, "demo"]);
    assert_eq!(
        out.trim(),
        format!("{NEW_MAC}'s next boot: demo once, then its local disk.")
    );
    let listed = both(&["machines", "--json"]);
    let machines: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let m = machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == NEW_MAC)
        .unwrap();
    assert_eq!(m["options"]["boot_once"], "demo", "{m}");
    // The script names the boot-once host, fetched once or twice: only its delivered kernel
    // takes it (and with DHCP off no fetch here is this machine's).
    for _ in 0..2 {
        let s = script(&lan, NEW_MAC);
        assert!(s.contains("# flakeboot: boot host demo"), "{s}");
    }

    // Refusals, each naming the field; the config file's machine with its file and line.
    for laptop in [None, laptop] {
        let err = fails(
            &lan,
            laptop,
            &["machine", "boot-once", NEW_MAC, "lab#nosuch"],
        );
        assert!(
            err.contains("boot_once: there is no host named \"lab#nosuch\""),
            "{err}"
        );
        let err = fails(&lan, laptop, &["machine", "boot-once", CLIENT_MAC, "demo"]);
        let place = format!("{}, line ", config.display());
        assert!(
            err.contains("boot_once: Set in") && err.contains(&place),
            "{err}"
        );
        let err = fails(
            &lan,
            laptop,
            &["machine", "assign", CLIENT_MAC, "--local-disk"],
        );
        assert!(
            err.contains("host: Set in") && err.contains(&place),
            "{err}"
        );
    }

    let out = both(&["machine", "boot-once", NEW_MAC, "--clear"]);
    assert_eq!(
        out.trim(),
        format!("{NEW_MAC}'s next boot: its local disk.")
    );
    assert!(script(&lan, NEW_MAC).ends_with("\nexit 1\n"));
    let out = both(&["machine", "assign", NEW_MAC, "--menu"]);
    assert_eq!(out.trim(), format!("{NEW_MAC} boots the menu now."));
    assert!(script(&lan, NEW_MAC).contains("\nchoose "));

    assert!(daemon.stop().unwrap().success(), "{}", daemon.tail(20));
}
