//! Every config shipped in the repository parses and validates.

use std::path::Path;

use flakeboot_config::{Config, ConfigError, DhcpMode};

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples")
}

#[test]
fn every_shipped_example_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 2, "expected the shipped examples, found {count}");
}

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse("[lan]\ninterface = \"eth0\"\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
    assert_eq!(c.http.port, 80);
    assert_eq!(c.tftp.port, 69);
    assert_eq!(c.dhcp.port, 67);
    assert_eq!(c.dhcp.pxe_port, 4011);
    assert_eq!(c.state_dir, Path::new("/var/lib/flakeboot"));
    assert_eq!(c, Config::with_defaults("eth0"));
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[dhcp]\nmdoe = \"router\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(msg.contains("mdoe"), "{msg}");
    assert!(msg.contains("t.toml"), "{msg}");
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = r#"
[lan]
interface = "tap0"
[dhcp]
mode = "router"
range = ["10.0.0.200", "10.0.0.100"]
[[hosts]]
name = "demo"
kernel = "/k"
initrd = "/i"
[[hosts]]
name = "demo"
kernel = "/k"
initrd = "/i"
[[machines]]
mac = "52:54:00:12:34:56"
host = "nope"
"#;
    let err = Config::parse(text, Path::new("t.toml")).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let all = all.join("\n");
    assert!(all.contains("backwards"), "{all}");
    assert!(all.contains("defined twice"), "{all}");
    assert!(all.contains("\"nope\""), "{all}");
}

#[test]
fn router_mode_without_range_says_what_to_add() {
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[dhcp]\nmode = \"router\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("range = ["), "{err}");
}

#[test]
fn bad_mac_is_explained() {
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[[machines]]\nmac = \"52:54\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("six hex pairs"), "{err}");
}

#[test]
fn report_timeout_defaults_to_ten_minutes_and_is_checked() {
    use std::time::Duration;
    let c = Config::parse("[lan]\ninterface = \"eth0\"\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.boot.report_timeout, Duration::from_secs(600));
    let full = Config::load(&examples_dir().join("full.toml")).unwrap();
    assert_eq!(full.boot.report_timeout, Duration::from_secs(600));
    let c = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[boot]\nreport_timeout = \"3m\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(c.boot.report_timeout, Duration::from_secs(180));
    for bad in ["5s", "2days"] {
        let err = Config::parse(
            &format!("[lan]\ninterface = \"eth0\"\n[boot]\nreport_timeout = \"{bad}\"\n"),
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("boot.report_timeout"),
            "{bad}: {err}"
        );
    }
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[boot]\nreport_timout = \"3m\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("report_timout"), "{err}");
}

#[test]
fn per_client_caps_default_and_are_checked() {
    let c = Config::parse("[lan]\ninterface = \"eth0\"\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.tftp.max_per_client, 4);
    assert_eq!(c.tftp.first_ack_timeout, std::time::Duration::from_secs(2));
    assert_eq!(c.http.max_connections_per_client, 32);
    let full = Config::load(&examples_dir().join("full.toml")).unwrap();
    assert_eq!(full.tftp.max_per_client, 4);
    assert_eq!(full.http.max_connections_per_client, 32);
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[tftp]\nmax_transfers = 8\nmax_per_client = 9\nfirst_ack_timeout = \"0s\"\n[http]\nmax_connections_per_client = 0\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("max_per_client = 9"), "{msg}");
    assert!(msg.contains("first_ack_timeout"), "{msg}");
    assert!(msg.contains("max_connections_per_client"), "{msg}");
}

#[test]
fn machine_and_event_bounds_default_and_are_checked() {
    let c = Config::parse("[lan]\ninterface = \"eth0\"\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.boot.max_machines, 4096);
    assert_eq!(c.boot.events_per_machine, 200);
    assert!(c.nix.allowed_paths.is_empty(), "no local flakes by default");
    let full = Config::load(&examples_dir().join("full.toml")).unwrap();
    assert_eq!(full.boot.max_machines, 4096);
    assert_eq!(full.boot.events_per_machine, 200);
    assert_eq!(
        full.nix.allowed_paths,
        [std::path::PathBuf::from("/srv/flakes")]
    );
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[boot]\nmax_machines = 0\nevents_per_machine = 1\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("boot.max_machines: 0 must"), "{err}");
    assert!(err.contains("boot.events_per_machine: 1 must"), "{err}");
}

#[test]
fn the_full_example_names_every_logs_key_with_its_default() {
    let full = Config::load(&examples_dir().join("full.toml")).unwrap();
    assert_eq!(full.logs, flakeboot_config::LogsConfig::default());
}

#[test]
fn broadcast_and_multicast_macs_are_refused() {
    let err = Config::parse(
        "[lan]\ninterface = \"eth0\"\n[[machines]]\nmac = \"ff:ff:ff:ff:ff:ff\"\n\
         [[dhcp.reservations]]\nmac = \"01:00:5e:00:00:01\"\naddress = \"10.0.0.5\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("machines[0].mac: ff:ff:ff:ff:ff:ff is not a machine's MAC"),
        "{err}"
    );
    assert!(
        err.contains("dhcp.reservations[0].mac: 01:00:5e:00:00:01 is not a machine's MAC"),
        "{err}"
    );
}

#[test]
fn the_full_example_shows_the_updates_defaults() {
    let full = Config::load(&examples_dir().join("full.toml")).unwrap();
    assert_eq!(full.updates, flakeboot_config::UpdatesConfig::default());
    assert!(full.flakes.iter().all(|f| f.notify_txt.is_none()));
}
