//! A boot storm: many simulated clients at once, each with its own MAC (a macvlan on the
//! client side): DHCP (busybox udhcpc), then TFTP of ipxe.efi (curl), then the iPXE script and
//! the initrd over HTTP (curl). All must complete; we report the time for all, p50/p99 per
//! client and the servers' peak RSS. Servers: flakeboot (router mode, every service) against
//! dnsmasq (DHCP + TFTP) + nginx (script + initrd), on the same `lan0`.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use flakeboot_testbed::{Netns, TestLan, require_tool};

use crate::clients::{curl, percentile, settle};
use crate::error::{BenchError, Result};
use crate::knobs::{Knobs, mib};
use crate::lan::{CLIENT_IF, SERVER_IP, subdir, veth_lan, write_pattern};
use crate::memory::mib_of;
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup, Server};

/// The MAC of simulated client `i` (locally administered).
pub fn client_mac(i: usize) -> String {
    format!("02:fb:00:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
}

/// Run the storm comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("storm")?;
    let n = k.storm_clients;
    add_macvlans(&lan, n)?;
    let www = subdir(&lan, "www")?;
    let initrd_size = mib(k.storm_initrd_mib);
    write_pattern(&www.join("initrd"), initrd_size as usize)?;
    write_pattern(&www.join("kernel"), 1024 * 1024)?;
    let ipxe_size = crate::tftp::copy_ipxe(&www, "ipxe.efi")?;
    std::fs::write(
        www.join("boot.ipxe"),
        format!(
            "#!ipxe\nkernel http://{SERVER_IP}/kernel initrd=initrd\ninitrd http://{SERVER_IP}/initrd\nboot\n"
        ),
    )
    .map_err(BenchError::io("writing boot.ipxe"))?;
    let mut c = Collector::new("storm");
    for name in ["flakeboot", "dnsmasq+nginx"]
        .into_iter()
        .filter(|n| k.runs(n))
    {
        let group = match start(&lan, k, name, &www) {
            Ok(g) => g,
            Err(e) => {
                c.add_result(
                    &format!("{n} clients completed"),
                    "clients",
                    Better::Higher,
                    name,
                    Err(e),
                );
                continue;
            }
        };
        let urls = if name == "flakeboot" {
            (
                format!("http://{SERVER_IP}/boot.ipxe"),
                crate::http::url("flakeboot", "initrd"),
            )
        } else {
            (
                format!("http://{SERVER_IP}/boot.ipxe"),
                crate::http::url("nginx", "initrd"),
            )
        };
        let cpu_before = Server::group_cpu_seconds(&group);
        let start = Instant::now();
        let results: Vec<Result<Phases>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let lan = &lan;
                    let urls = &urls;
                    s.spawn(move || one_client(lan.client(), i, urls, ipxe_size, initrd_size))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BenchError::Incomplete {
                            what: "storm client".to_owned(),
                            detail: "thread panicked".to_owned(),
                        })
                    })
                })
                .collect()
        });
        let total = start.elapsed().as_secs_f64();
        let cpu = Server::group_cpu_seconds(&group) - cpu_before;
        let mut phases = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => phases.push(p),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        let times: Vec<f64> = phases.iter().map(Phases::total).collect();
        let done = format!("{n} clients completed");
        c.add(&done, "clients", Better::Higher, name, times.len() as f64);
        if let Some(e) = first_error {
            c.note(
                &done,
                &format!("{name}: {} failed, first: {e}", n - times.len()),
            );
        }
        c.add(
            &format!("{n} clients: time for all"),
            "s",
            Better::Lower,
            name,
            total,
        );
        c.add(
            &format!("{n} clients: p50 per client"),
            "s",
            Better::Lower,
            name,
            percentile(&times, 50.0),
        );
        c.add(
            &format!("{n} clients: p99 per client"),
            "s",
            Better::Lower,
            name,
            percentile(&times, 99.0),
        );
        for (phase, secs) in Phases::NAMES.iter().zip(Phases::columns(&phases)) {
            c.add(
                &format!("{n} clients: p50 {phase} per client"),
                "s",
                Better::Lower,
                name,
                percentile(&secs, 50.0),
            );
        }
        c.add(
            "server CPU seconds in the storm",
            "s",
            Better::Lower,
            name,
            cpu,
        );
        let hwm: u64 = group.iter().map(|s| s.memory().hwm_kib).sum();
        c.add(
            "peak RSS in the storm",
            "MiB",
            Better::Lower,
            name,
            mib_of(hwm),
        );
        for s in group {
            s.stop();
        }
        settle();
    }
    c.note(
        &format!("{n} clients: time for all"),
        &format!(
            "each client: udhcpc (own MAC), TFTP ipxe.efi (curl blksize 1468), HTTP boot.ipxe, HTTP {} MiB initrd (curl)",
            k.storm_initrd_mib
        ),
    );
    Ok(c.rows())
}

fn start(lan: &TestLan, k: &Knobs, name: &str, www: &Path) -> Result<Vec<Server>> {
    if name == "flakeboot" {
        return servers::flakeboot(
            lan,
            &k.flakeboot_bin,
            &FlakebootSetup::serving(DhcpMode::Router, www),
        )
        .map(|s| vec![s]);
    }
    let dnsmasq = servers::dnsmasq(
        lan,
        "dnsmasq",
        &DnsmasqSetup {
            router: true,
            durable: true,
            tftp_root: Some(www.to_owned()),
            boot_options: true,
            ..DnsmasqSetup::default()
        },
    )?;
    Ok(vec![dnsmasq, servers::nginx(lan, www)?])
}

/// One macvlan per simulated client on the client side's `eth0`, each with its own MAC.
fn add_macvlans(lan: &TestLan, n: usize) -> Result<()> {
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!(
            "link add mv{i} link {CLIENT_IF} address {} type macvlan mode bridge\nlink set mv{i} up\n",
            client_mac(i)
        ));
    }
    let path = lan.path("macvlans.batch");
    std::fs::write(&path, batch).map_err(BenchError::io("writing the ip batch"))?;
    lan.client()
        .run(&["ip", "-batch", &path.display().to_string()])
        .map_err(BenchError::io("creating macvlans"))?;
    Ok(())
}

/// How long each step of one client's boot took, in seconds: where a storm's time goes.
#[derive(Debug, Clone, Copy)]
struct Phases([f64; 4]);

impl Phases {
    /// The steps, in the order a client takes them.
    const NAMES: [&'static str; 4] = ["DHCP", "TFTP ipxe.efi", "HTTP script", "HTTP initrd"];

    fn total(&self) -> f64 {
        self.0.iter().sum()
    }

    /// Each step's times over all clients.
    fn columns(all: &[Phases]) -> [Vec<f64>; 4] {
        std::array::from_fn(|step| all.iter().filter_map(|p| p.0.get(step).copied()).collect())
    }
}

/// DHCP, TFTP, script, initrd for client `i`; how long each took.
fn one_client(
    ns: &Netns,
    i: usize,
    (script_url, initrd_url): &(String, String),
    ipxe_size: u64,
    initrd_size: u64,
) -> Result<Phases> {
    let mut lap = Lap(Instant::now());
    let iface = format!("mv{i}");
    let out = ns
        .command(require_tool("udhcpc"))
        .args(["-i", &iface, "-f", "-q", "-n", "-B", "-t", "10", "-T", "2"])
        .args(["-s", "/bin/true", "-V", "PXEClient:Arch:00000:UNDI:002001"])
        .stdin(Stdio::null())
        .output()
        .map_err(BenchError::io("running udhcpc"))?;
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !log.contains("obtained") {
        return Err(BenchError::Incomplete {
            what: format!("udhcpc on {iface}"),
            detail: log,
        });
    }
    let dhcp = lap.next();
    curl(
        ns,
        &format!("tftp://{SERVER_IP}/ipxe.efi"),
        &["--tftp-blksize", "1468"],
        ipxe_size,
    )?;
    let tftp = lap.next();
    let reply = ns
        .command(require_tool("curl"))
        .args(["-s", "-S", "-f", "--max-time", "60", script_url])
        .stdin(Stdio::null())
        .output()
        .map_err(BenchError::io("running curl"))?;
    if !reply.status.success() || !reply.stdout.starts_with(b"#!ipxe") {
        return Err(BenchError::Incomplete {
            what: format!("script {script_url}"),
            detail: String::from_utf8_lossy(&reply.stderr).into_owned(),
        });
    }
    let script = lap.next();
    curl(ns, initrd_url, &[], initrd_size)?;
    Ok(Phases([dhcp, tftp, script, lap.next()]))
}

/// A stopwatch read in laps.
struct Lap(Instant);

impl Lap {
    /// Seconds since the last lap (or the start).
    fn next(&mut self) -> f64 {
        let now = Instant::now();
        let secs = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_macs_are_distinct_and_local() {
        assert_eq!(client_mac(0), "02:fb:00:00:00:00");
        assert_eq!(client_mac(259), "02:fb:00:00:01:03");
        let all: std::collections::HashSet<String> = (0..1000).map(client_mac).collect();
        assert_eq!(all.len(), 1000);
    }

    #[test]
    fn phases_split_by_step_and_add_up() {
        let all = [Phases([1.0, 2.0, 0.5, 4.0]), Phases([3.0, 1.0, 0.25, 2.0])];
        assert_eq!(all[0].total(), 7.5);
        let [dhcp, tftp, script, initrd] = Phases::columns(&all);
        assert_eq!(dhcp, [1.0, 3.0]);
        assert_eq!(tftp, [2.0, 1.0]);
        assert_eq!(script, [0.5, 0.25]);
        assert_eq!(initrd, [4.0, 2.0]);
    }
}
