//! Proxy mode: PXE DISCOVERs answered per second. perfdhcp sends DISCOVERs that look like BIOS
//! PXE firmware (vendor class `PXEClient:Arch:00000:UNDI:002001`, client arch 0, a UUID) and
//! counts the proxy OFFERs (`-i`: DISCOVER-OFFER only, a proxy hands out no address), and each
//! server's CPU per DISCOVER at a fixed rate. Servers:
//! flakeboot in proxy mode and dnsmasq in proxy mode (`--dhcp-range=...,proxy` + `--pxe-service`).

use crate::clients::settle;
use crate::dhcp::highest_rate;
use crate::error::Result;
use crate::knobs::Knobs;

use crate::lan::{CLIENT_IF, subdir, veth_lan};
use crate::perfdhcp;
use crate::report::{Better, Collector, Row};
use crate::servers::{self, DhcpMode, DnsmasqSetup, FlakebootSetup};

/// The vendor class (option 60) of BIOS PXE firmware.
pub const PXE_VENDOR_CLASS: &str = "PXEClient:Arch:00000:UNDI:002001";

/// perfdhcp options that make its DISCOVERs PXE firmware's: options 60, 93, 94 and 97.
pub fn pxe_options() -> Vec<String> {
    let hex: String = PXE_VENDOR_CLASS
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        "-i".to_owned(),
        "-o".to_owned(),
        format!("60,{hex}"),
        "-o".to_owned(),
        "93,0000".to_owned(),
        "-o".to_owned(),
        "94,010201".to_owned(),
        "-o".to_owned(),
        format!("97,00{}", "11".repeat(16)),
    ]
}

/// Run the proxy comparison.
pub fn run(k: &Knobs) -> Result<Vec<Row>> {
    let lan = veth_lan("proxy")?;
    let files = subdir(&lan, "ipxe")?;
    let kernel = files.join("kernel");
    crate::lan::write_pattern(&kernel, 4096)?;
    let opts = pxe_options();
    let extra: Vec<&str> = opts.iter().map(String::as_str).collect();
    let mut c = Collector::new("proxy");
    for name in ["flakeboot", "dnsmasq (proxy)"]
        .into_iter()
        .filter(|n| k.runs(n))
    {
        let server = if name == "flakeboot" {
            servers::flakeboot(
                &lan,
                &k.flakeboot_bin,
                &FlakebootSetup {
                    dhcp: DhcpMode::Proxy,
                    ipxe_dir: files.clone(),
                    kernel: kernel.clone(),
                    initrd: kernel.clone(),
                    cmdline: String::new(),
                    machines: Vec::new(),
                    ra: false,
                },
            )
        } else {
            servers::dnsmasq(
                &lan,
                "dnsmasq",
                &DnsmasqSetup {
                    proxy: true,
                    ..DnsmasqSetup::default()
                },
            )
        };
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                c.add_result(
                    "PXE DISCOVERs answered, < 0.1 % drops",
                    "1/s",
                    Better::Higher,
                    name,
                    Err(e),
                );
                continue;
            }
        };
        eprintln!("-- {name}");
        let best = highest_rate(&lan, k, &k.proxy_rates, &extra);
        c.add_result(
            "PXE DISCOVERs answered, < 0.1 % drops",
            "1/s",
            Better::Higher,
            name,
            best,
        );
        // CPU per DISCOVER at a rate both sustain: on a machine whose cores perfdhcp shares
        // with the server, the highest rate is where their CPU together runs out.
        let rate = k.proxy_cpu_rate;
        let (loaded, cpu) =
            perfdhcp::run_with_cpu(&lan, k, rate, false, &extra, || server.cpu_seconds());
        c.add_result(
            &format!("CPU seconds per 1,000 DISCOVERs at {rate}/s"),
            "s",
            Better::Lower,
            name,
            loaded.map(|r| cpu * 1000.0 / (r.completed().max(1) as f64)),
        );
        let rate = k.dhcp_latency_rate;
        let fixed = perfdhcp::run(
            lan.client(),
            CLIENT_IF,
            rate,
            k.dhcp_seconds,
            k.dhcp_clients,
            true,
            &extra,
        );
        c.add_result(
            &format!("p99 DISCOVER-OFFER at {rate}/s"),
            "ms",
            Better::Lower,
            name,
            fixed.map(|r| r.discover_offer.percentile_ms(99.0)),
        );
        server.stop();
        settle();
    }
    Ok(c.rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_class_is_hex_encoded_for_perfdhcp() {
        let opts = pxe_options();
        assert_eq!(opts[0], "-i");
        assert!(opts[2].starts_with("60,505845436c69656e74"), "{}", opts[2]);
        assert_eq!(opts[8].len(), "97,".len() + 34);
    }
}
