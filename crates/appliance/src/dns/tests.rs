use std::time::Duration;

use flakeboot_dns::local::Local;
use flakeboot_dns::proto::rr::Name;

use super::*;

fn config(text: &str) -> Config {
    Config::parse_unchecked(
        &format!("[lan]\ninterface = \"lan0\"\n{text}"),
        Path::new("t.toml"),
    )
    .unwrap()
}

fn mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, last])
}

fn lease(last: u8, hostname: Option<&str>, expires_in: i64) -> LeaseRecord {
    let now = SystemTime::now();
    LeaseRecord {
        ip: Ipv4Addr::new(10, 0, 0, 100 + last),
        mac: mac(last),
        client_id: None,
        hostname: hostname.map(str::to_owned),
        expires: if expires_in >= 0 {
            now + Duration::from_secs(expires_in as u64)
        } else {
            now - Duration::from_secs((-expires_in) as u64)
        },
        state: LeaseState::Bound,
    }
}

#[test]
fn names_come_from_machine_settings_reservations_and_leases() {
    let c = config(
        "[dhcp]\nmode = \"router\"\nrange = [\"10.0.0.100\", \"10.0.0.200\"]\ndomain = \"lan\"\n\
         [[dhcp.reservations]]\nmac = \"02:00:00:00:00:09\"\naddress = \"10.0.0.50\"\nhostname = \"printer\"\n\
         [[machines]]\nmac = \"02:00:00:00:00:02\"\nhostname = \"node2\"\n",
    );
    let leases = [
        lease(1, Some("laptop"), 600),
        lease(2, Some("whatever-it-sent"), 600),
        lease(3, Some("stale"), -5),
        lease(4, None, 600),
        lease(5, Some("node2"), 900), // claims the user's name: loses it
    ];
    let stored = [(mac(4), "desk".to_owned()), (mac(2), "ignored".to_owned())];
    let entries = local_entries(&c, &leases, &stored, SystemTime::now());
    let table = LocalNames::new(c.dhcp.domain.as_deref(), None, entries);
    let at = |n: &str| table.resolve(&Name::from_ascii(n).unwrap());
    let ip = |last| Local::Address(Ipv4Addr::new(10, 0, 0, last));
    assert_eq!(at("laptop.lan."), ip(101));
    assert_eq!(
        at("node2.lan."),
        ip(102),
        "the config file's name, at its lease"
    );
    assert_eq!(
        at("desk.lan."),
        ip(104),
        "the stored machine settings' name"
    );
    assert_eq!(at("printer.lan."), ip(50), "a reservation without a lease");
    assert_eq!(at("stale.lan."), Local::NxDomain, "an expired lease");
    assert_eq!(at("whatever-it-sent.lan."), Local::NxDomain);
    assert_eq!(at("ignored.lan."), Local::NxDomain);
}

#[test]
fn upstream_is_the_config_then_the_static_wan_then_resolv_conf() {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\nnameserver 10.0.0.2\n").unwrap();
    let lan = Ipv4Addr::new(10, 0, 0, 2);
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    let c = config("[dns]\nupstream = [\"9.9.9.9\"]\n");
    assert_eq!(upstream_servers(&c, lan, &resolv), [sa("9.9.9.9:53")]);
    let c = config(
        "[wan]\ninterface = \"wan0\"\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ndns = [\"203.0.113.1\"]\n",
    );
    assert_eq!(upstream_servers(&c, lan, &resolv), [sa("203.0.113.1:53")]);
    let c = config("[wan]\ninterface = \"wan0\"\n");
    assert_eq!(upstream_servers(&c, lan, &resolv), [sa("192.0.2.53:53")]);
    assert!(upstream_servers(&c, lan, &dir.path().join("none")).is_empty());
}

#[test]
fn a_slow_read_of_the_names_waits_longer_for_the_next() {
    // A LAN's few leases: every REFRESH.
    assert_eq!(next_refresh(Duration::from_micros(300)), REFRESH);
    assert_eq!(next_refresh(Duration::from_millis(20)), REFRESH);
    // 50,000 leases (about 65 ms to read here): the refresh stays within 1 % of a core.
    assert_eq!(
        next_refresh(Duration::from_millis(65)),
        Duration::from_millis(6500)
    );
    // However long a read took, a new lease's name is answered within REFRESH_MAX.
    assert_eq!(next_refresh(Duration::from_secs(1)), REFRESH_MAX);
    assert_eq!(next_refresh(Duration::MAX), REFRESH_MAX);
}
