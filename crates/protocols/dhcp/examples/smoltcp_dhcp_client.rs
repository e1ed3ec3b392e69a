//! smoltcp's DHCPv4 client on a TAP device: an independent DHCP implementation that the
//! router-mode tests (`tests/router_clients.rs`) point at flakeboot.
//!
//! Usage: `smoltcp_dhcp_client TAP [MAC] [TIMEOUT_SECS]`. Prints `address A/N`, `router R`
//! (or `router none`) and `server S` (option 54) once configured, then exits 0; exits 1 on timeout.

use std::error::Error;
use std::os::unix::io::AsRawFd;
use std::time::SystemTime;

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface, wait as phy_wait};
use smoltcp::socket::dhcpv4;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress};

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let tap = args
        .next()
        .ok_or("usage: smoltcp_dhcp_client TAP [MAC] [TIMEOUT_SECS]")?;
    let mac = match args.next() {
        Some(text) => parse_mac(&text).ok_or("MAC must look like 02:00:00:00:00:42")?,
        None => [0x02, 0x00, 0x00, 0x00, 0x00, 0x42],
    };
    let timeout: u64 = args.next().map(|t| t.parse()).transpose()?.unwrap_or(30);

    let mut device = TunTapInterface::new(&tap, Medium::Ethernet)?;
    let fd = device.as_raw_fd();
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut iface = Interface::new(config, &mut device, Instant::now());
    let mut sockets = SocketSet::new(vec![]);
    let dhcp = sockets.add(dhcpv4::Socket::new());

    let deadline = Instant::now() + Duration::from_secs(timeout);
    while Instant::now() < deadline {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        if let Some(dhcpv4::Event::Configured(cfg)) = sockets.get_mut::<dhcpv4::Socket>(dhcp).poll()
        {
            println!("address {}", cfg.address);
            match cfg.router {
                Some(router) => println!("router {router}"),
                None => println!("router none"),
            }
            println!("server {}", cfg.server.identifier);
            return Ok(());
        }
        let wait = iface
            .poll_delay(now, &sockets)
            .map_or(Duration::from_millis(100), |d| {
                d.min(Duration::from_millis(100))
            });
        phy_wait(fd, Some(wait))?;
    }
    eprintln!("no DHCP lease within {timeout} s");
    std::process::exit(1);
}
