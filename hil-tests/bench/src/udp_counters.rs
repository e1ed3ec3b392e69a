//! A namespace's UDP counters (`/proc/net/snmp`): where the datagrams of a DHCP step were lost.
//! A reply perfdhcp did not count was either never sent (the server's namespace received more
//! than it sent, or dropped some in its socket: `RcvbufErrors` there) or sent and dropped in
//! perfdhcp's own socket (`RcvbufErrors` in the client's namespace).

use flakeboot_testbed::Netns;

/// The counters of the `Udp:` line that say where datagrams went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounters {
    pub in_datagrams: u64,
    pub out_datagrams: u64,
    /// Datagrams dropped because a socket's receive buffer was full.
    pub rcvbuf_errors: u64,
}

impl UdpCounters {
    /// What was counted between `before` and `self`.
    pub fn since(self, before: UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(before.in_datagrams),
            out_datagrams: self.out_datagrams.saturating_sub(before.out_datagrams),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(before.rcvbuf_errors),
        }
    }
}

/// Parse the `Udp:` header and value lines of a `/proc/net/snmp` text.
pub fn parse(text: &str) -> Option<UdpCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(UdpCounters {
        in_datagrams: field("InDatagrams")?,
        out_datagrams: field("OutDatagrams")?,
        rcvbuf_errors: field("RcvbufErrors")?,
    })
}

/// The counters of namespace `ns` now, if they can be read.
pub fn read(ns: &Netns) -> Option<UdpCounters> {
    parse(&ns.run(&["cat", "/proc/net/snmp"]).ok()?)
}

/// Where a step's losses were, for its log line: the drops in the server's socket and in
/// perfdhcp's (`server` and `client` are each namespace's counts over the step).
pub fn losses(server: UdpCounters, client: UdpCounters) -> String {
    if server == UdpCounters::default() {
        // Kea receives and sends on raw sockets, which these counters do not see.
        return format!(
            "the server's namespace counted no UDP (raw sockets); {} dropped in perfdhcp's socket",
            client.rcvbuf_errors
        );
    }
    format!(
        "server received {} sent {}, {} dropped in its socket; {} dropped in perfdhcp's socket",
        server.in_datagrams, server.out_datagrams, server.rcvbuf_errors, client.rcvbuf_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.1's /proc/net/snmp, the Udp lines and one around them.
    const SNMP: &str = "Icmp: InMsgs InErrors\nIcmp: 0 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 120000 3 89 119911 89 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn reads_the_udp_line_by_its_names() {
        let c = parse(SNMP).unwrap();
        assert_eq!(
            c,
            UdpCounters {
                in_datagrams: 120_000,
                out_datagrams: 119_911,
                rcvbuf_errors: 89,
            }
        );
        let later = UdpCounters {
            in_datagrams: 120_010,
            out_datagrams: 119_920,
            rcvbuf_errors: 89,
        };
        assert_eq!(later.since(c).in_datagrams, 10);
        assert_eq!(later.since(c).rcvbuf_errors, 0);
        // A counter that went back (another namespace) is no negative count.
        assert_eq!(c.since(later).in_datagrams, 0);
    }

    #[test]
    fn losses_say_which_socket() {
        let server = UdpCounters {
            in_datagrams: 100,
            out_datagrams: 100,
            rcvbuf_errors: 3,
        };
        let client = UdpCounters {
            rcvbuf_errors: 7,
            ..UdpCounters::default()
        };
        assert_eq!(
            losses(server, client),
            "server received 100 sent 100, 3 dropped in its socket; 7 dropped in perfdhcp's socket"
        );
        assert!(
            losses(UdpCounters::default(), client)
                .starts_with("the server's namespace counted no UDP")
        );
    }

    #[test]
    fn no_udp_line_is_none() {
        assert_eq!(parse("Icmp: InMsgs\nIcmp: 0\n"), None);
        assert_eq!(parse("Udp: InDatagrams\nUdp: x\n"), None);
    }
}
