//! Other servers on the test LAN, all real programs: dnsmasq as the LAN's existing DHCP server
//! (proxy-mode scenarios), and a reference boot server (dnsmasq + busybox httpd) that proves the
//! QEMU plumbing independently of flakeboot.

use std::io;
use std::path::Path;

use flakeboot_testbed::{Netns, Proc, require_tool};

use crate::lan::{APPLIANCE_V4, LAN_IF, POOL, ROUTER_V4};

/// dnsmasq as a home router's DHCP server on `eth0` of `ns`: addresses, router advertisements
/// and a DNS server (answering `router.lan` only), no PXE options.
pub fn lan_dhcp_server(ns: &Netns, dir: &Path) -> io::Result<Proc> {
    let dnsmasq = require_tool("dnsmasq");
    ns.spawn(
        "dnsmasq",
        &[
            &dnsmasq.to_string_lossy(),
            "--no-daemon",
            "--conf-file=/dev/null",
            // DNS for the LAN (no upstream): the lease names this server, as a LAN's router does.
            "--no-resolv",
            "--no-hosts",
            &format!("--host-record=router.lan,{ROUTER_V4}"),
            &format!("--dhcp-option=option:dns-server,{ROUTER_V4}"),
            "--interface=eth0",
            "--bind-interfaces",
            "--no-ping",
            "--log-dhcp",
            "--user=root",
            &format!("--dhcp-range={},{},255.255.255.0,1h", POOL[0], POOL[1]),
            &format!("--dhcp-option=option:router,{ROUTER_V4}"),
            "--enable-ra",
            "--dhcp-range=fd77::,ra-only",
            &format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
            &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
        ],
    )
}

/// The reference boot server on the appliance's LAN port: dnsmasq (DHCP, RAs, and
/// `http://10.77.0.1:8080/boot.ipxe` as boot file) and busybox's httpd serving `www`.
pub fn reference_boot_server(ns: &Netns, dir: &Path, www: &Path) -> io::Result<(Proc, Proc)> {
    let dnsmasq = require_tool("dnsmasq");
    let busybox = require_tool("busybox");
    let dhcp = ns.spawn(
        "dnsmasq-reference",
        &[
            &dnsmasq.to_string_lossy(),
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            &format!("--interface={LAN_IF}"),
            "--bind-interfaces",
            "--no-ping",
            "--log-dhcp",
            "--user=root",
            &format!("--dhcp-range={},{},255.255.255.0,1h", POOL[0], POOL[1]),
            &format!("--dhcp-boot=http://{APPLIANCE_V4}:8080/boot.ipxe"),
            "--enable-ra",
            "--dhcp-range=fd77::,ra-only",
            &format!(
                "--dhcp-leasefile={}",
                dir.join("reference.leases").display()
            ),
            &format!("--pid-file={}", dir.join("reference.pid").display()),
        ],
    )?;
    let http = ns.spawn(
        "http-reference",
        &[
            &busybox.to_string_lossy(),
            "httpd",
            "-f",
            "-vv",
            "-p",
            &format!("{APPLIANCE_V4}:8080"),
            "-h",
            &www.to_string_lossy(),
        ],
    )?;
    Ok((dhcp, http))
}
