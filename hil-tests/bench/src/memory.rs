//! Memory and CPU: each server's peak RSS (`VmHWM`) idle (started, nothing asked), and after
//! a fixed-rate perfdhcp run, with the CPU seconds it spent per 1,000 DHCP exchanges. flakeboot
//! runs every service (router DHCP, TFTP, HTTP); its peers are dnsmasq (DHCP + TFTP) plus nginx
//! (HTTP), summed, and Kea (DHCP only).

use std::time::Duration;

use crate::clients::settle;
use crate::error::Result;
use crate::knobs::Knobs;

use crate::lan::{subdir, veth_lan, write_pattern};
use crate::perfdhcp;
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup, Server};

/// KiB to MiB.
pub fn mib_of(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Run the memory comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("mem")?;
    let www = subdir(&lan, "www")?;
    write_pattern(&www.join("kernel"), 1024 * 1024)?;
    write_pattern(&www.join("initrd"), 1024 * 1024)?;
    crate::tftp::copy_ipxe(&www, "ipxe.efi")?;
    let mut c = Collector::new("memory");
    for name in ["flakeboot", "dnsmasq+nginx", "kea (memfile)"]
        .into_iter()
        .filter(|n| k.runs(n))
    {
        let started: Result<Vec<Server>> = match name {
            "flakeboot" => servers::flakeboot(
                &lan,
                &k.flakeboot_bin,
                &FlakebootSetup::serving(DhcpMode::Router, &www),
            )
            .map(|s| vec![s]),
            "dnsmasq+nginx" => servers::dnsmasq(
                &lan,
                "dnsmasq",
                &DnsmasqSetup {
                    router: true,
                    durable: true,
                    tftp_root: Some(www.clone()),
                    ..DnsmasqSetup::default()
                },
            )
            .and_then(|d| Ok(vec![d, servers::nginx(&lan, &www)?])),
            _ => servers::kea(&lan).map(|s| vec![s]),
        };
        let group = match started {
            Ok(g) => g,
            Err(e) => {
                c.add_result("peak RSS idle", "MiB", Better::Lower, name, Err(e));
                continue;
            }
        };
        std::thread::sleep(Duration::from_secs(1));
        let hwm = |g: &[Server]| g.iter().map(|s| s.memory().hwm_kib).sum::<u64>();
        c.add(
            "peak RSS idle",
            "MiB",
            Better::Lower,
            name,
            mib_of(hwm(&group)),
        );
        let anon = |g: &[Server]| g.iter().map(|s| s.memory().anon_kib).sum::<u64>();
        c.add(
            "anonymous memory idle (RssAnon)",
            "MiB",
            Better::Lower,
            name,
            mib_of(anon(&group)),
        );
        let rate = k.dhcp_latency_rate;
        let (r, spent) = perfdhcp::run_with_cpu(&lan, k, rate, false, &[], || {
            Server::group_cpu_seconds(&group)
        });
        let exchanges = r.map(|r| r.request_ack.map_or(0, |ra| ra.received) as f64);
        c.add_result(
            &format!("CPU seconds per 1,000 DORA at {rate}/s"),
            "s",
            Better::Lower,
            name,
            exchanges.map(|n| if n > 0.0 { spent * 1000.0 / n } else { 0.0 }),
        );
        c.add(
            &format!("peak RSS after {}s of DHCP at {rate}/s", k.dhcp_seconds),
            "MiB",
            Better::Lower,
            name,
            mib_of(hwm(&group)),
        );
        c.add(
            &format!(
                "anonymous memory after {}s of DHCP at {rate}/s",
                k.dhcp_seconds
            ),
            "MiB",
            Better::Lower,
            name,
            mib_of(anon(&group)),
        );
        for s in group {
            s.stop();
        }
        settle();
    }
    c.note(
        "peak RSS idle",
        "flakeboot runs DHCP, TFTP and HTTP in one process; dnsmasq+nginx is the sum of dnsmasq and nginx's master and workers",
    );
    c.note(
        "anonymous memory idle (RssAnon)",
        "the RSS less the file pages mapped (each binary's code around what it ran, shared libraries: clean and reclaimable)",
    );
    Ok(c.rows())
}
