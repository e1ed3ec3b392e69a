//! The remote-management test network: the appliance's namespace with its LAN (`lan0`, from
//! [`Lan`]) and a WAN port on a small "internet" (a bridge in its own namespace) where a remote
//! admin and a WireGuard hub live. The admin and the hub run Debian's userspace `wireguard-go`
//! (in the foreground, killed by PID) configured with `wg`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, Proc, add_bridge, plug, require_tool};

use super::Lan;

/// The appliance's WAN address.
pub const WAN_IP: &str = "203.0.113.1";
/// The remote admin's address on the internet.
pub const ADMIN_IP: &str = "203.0.113.20";
/// The hub's address on the internet.
pub const HUB_IP: &str = "203.0.113.30";

/// The appliance (in `lan.server`, LAN and WAN), its LAN client, the internet, the admin, the hub.
pub struct VpnNet {
    pub lan: Lan,
    pub inet: Netns,
    pub admin: Netns,
    pub hub: Netns,
}

impl VpnNet {
    pub fn new() -> VpnNet {
        let lan = Lan::new();
        let inet = Netns::new("inet").unwrap();
        let admin = Netns::new("admin").unwrap();
        let hub = Netns::new("hub").unwrap();
        add_bridge(&inet, "br0").unwrap();
        for (ns, dev, port, ip) in [
            (&lan.server, "wan0", "p-app", WAN_IP),
            (&admin, "eth0", "p-admin", ADMIN_IP),
            (&hub, "eth0", "p-hub", HUB_IP),
        ] {
            plug(&inet, "br0", port, ns, dev).unwrap();
            ns.addr(dev, &format!("{ip}/24")).unwrap();
        }
        VpnNet {
            lan,
            inet,
            admin,
            hub,
        }
    }
}

/// A userspace WireGuard interface (`wireguard-go -f`) in a namespace, removed when dropped (the
/// process is stopped by its PID and the namespace takes the TUN device with it).
pub struct WgGo {
    pub ifname: String,
    ns_name: String,
    proc: Proc,
}

impl WgGo {
    /// Starts `wireguard-go` for `ifname` (unique on the machine: its control socket is
    /// `/var/run/wireguard/<ifname>.sock`) and waits for its interface.
    pub fn start(ns: &Netns, ifname: &str) -> WgGo {
        let wg_go = require_tool("wireguard-go");
        require_tool("wg");
        let proc = ns
            .spawn(ifname, &[wg_go.to_str().unwrap(), "-f", ifname])
            .unwrap();
        let sock = PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
        let start = Instant::now();
        while !(sock.exists() && ns.run(&["wg", "show", ifname]).is_ok()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "wireguard-go did not come up:\n{}",
                proc.tail(20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        WgGo {
            ifname: ifname.to_owned(),
            ns_name: ns.name().to_owned(),
            proc,
        }
    }

    /// `wg show <if> <what>` (e.g. `latest-handshakes`, `public-key`).
    pub fn show(&self, ns: &Netns, what: &str) -> String {
        assert_eq!(ns.name(), self.ns_name);
        ns.run(&["wg", "show", &self.ifname, what]).unwrap()
    }

    /// The latest handshake with any peer, as a Unix time (0: none yet).
    pub fn latest_handshake(&self, ns: &Netns) -> u64 {
        self.show(ns, "latest-handshakes")
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .max()
            .unwrap_or(0)
    }
}

impl Drop for WgGo {
    fn drop(&mut self) {
        self.proc.stop();
    }
}

/// Brings an admin's device up from a `wg-quick` config file as the appliance gave it:
/// `wg-quick strip` for the WireGuard part (`wg setconf`), then what `wg-quick up` does with
/// the rest (`Address`, link up, a route to each `AllowedIPs`).
pub fn wg_quick_up_userspace(ns: &Netns, ifname: &str, config: &Path) -> WgGo {
    require_tool("wg-quick");
    let wg = WgGo::start(ns, ifname);
    let stripped = ns
        .run(&["wg-quick", "strip", config.to_str().unwrap()])
        .unwrap();
    let stripped_path = config.with_extension("stripped");
    std::fs::write(&stripped_path, stripped).unwrap();
    ns.run(&["wg", "setconf", ifname, stripped_path.to_str().unwrap()])
        .unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    let field = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
            .flat_map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for address in field("Address") {
        ns.run(&["ip", "addr", "add", &address, "dev", ifname])
            .unwrap();
    }
    ns.run(&["ip", "link", "set", ifname, "up"]).unwrap();
    for net in field("AllowedIPs") {
        ns.run(&["ip", "route", "replace", &net, "dev", ifname])
            .unwrap();
    }
    wg
}
