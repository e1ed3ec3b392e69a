//! The system's name servers: `nameserver` lines of `/etc/resolv.conf` (resolv.conf(5)), read
//! like glibc reads them: in order, at most [`MAX_NAMESERVERS`], port 53, none listed means
//! the local one ([`DEFAULT_NAMESERVER`]). Pure: the caller reads the file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where the system's resolver configuration is.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The name servers used (glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;

/// The name server when none is listed (or the file is missing), as glibc does.
pub const DEFAULT_NAMESERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// The name servers `text` lists, in order. A line `nameserver ADDR` counts when ADDR is an
/// IPv4 or IPv6 address; an IPv6 address with a zone (`fe80::1%eth0`) is skipped (it needs
/// the interface's index), and so are comments and other options.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    let listed: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .take(MAX_NAMESERVERS)
        .collect();
    if listed.is_empty() {
        vec![DEFAULT_NAMESERVER]
    } else {
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_read_in_order() {
        let text = "# from DHCP\nsearch lan\nnameserver 10.0.0.1\noptions edns0\n\
                    nameserver fe80::1%eth0\n;nameserver 10.9.9.9\nnameserver  2001:db8::53 # v6\n\
                    nameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        let servers: Vec<String> = nameservers(text).iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.0.0.1:53", "[2001:db8::53]:53", "10.0.0.2:53"]);
    }

    #[test]
    fn none_listed_means_the_local_server() {
        assert_eq!(nameservers(""), vec![DEFAULT_NAMESERVER]);
        assert_eq!(
            nameservers("nameserver\nnameserver dns.example.org\n"),
            vec![DEFAULT_NAMESERVER]
        );
    }
}
