//! The LAN's own names: `<hostname>.<domain>` (and the bare host name) -> the machine's
//! address, and the reverse for the LAN subnet. Built whole from what the appliance knows
//! (leases, machine settings, reservations) and swapped in; pure.
//!
//! Names under the LAN domain are the appliance's alone: one it does not know is NXDOMAIN here,
//! never forwarded (a LAN name must not leak upstream, nor be answered by someone else), and so
//! is a reverse name of the LAN subnet.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::rr::Name;

/// At most this many names (leases and machines are bounded already; this bounds the table
/// whatever feeds it).
pub const MAX_LOCAL_NAMES: usize = 65_536;

/// One name the appliance knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    /// The host name: a single label, or a name under the LAN domain (its label is taken).
    pub hostname: String,
    pub address: Ipv4Addr,
    /// Set by the user (machine settings, a reservation): wins over a name a client sent.
    pub configured: bool,
}

/// What the table says of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Not the LAN's: forward it.
    NotLocal,
    /// A machine's name: its address (the query's other types have no data).
    Address(Ipv4Addr),
    /// The LAN domain itself: it exists, with no address.
    Apex,
    /// A reverse name of the LAN subnet with a machine behind it.
    Pointer(Name),
    /// Under the LAN domain or the LAN subnet's reverse zone, and nobody's.
    NxDomain,
}

/// The table.
#[derive(Debug, Clone, Default)]
pub struct LocalNames {
    /// The LAN domain, lower case and fully qualified.
    domain: Option<Name>,
    /// The LAN subnet (address, prefix length) whose reverse names are answered here.
    subnet: Option<(Ipv4Addr, u8)>,
    by_label: HashMap<String, Ipv4Addr>,
    by_address: HashMap<Ipv4Addr, String>,
}

/// `name` as a host label when it is one (letters, digits and '-', 1 to 63, no '-' at either
/// end), lower case.
fn host_label(name: &str) -> Option<String> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then(|| name.to_ascii_lowercase())
}

fn netmask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

impl LocalNames {
    /// The table of `entries` under `domain` (`None`: bare host names only), answering reverse
    /// names of `subnet`. Configured names come first; among the rest, earlier entries win a
    /// name or an address (the caller orders them, e.g. newest lease first). Names that are no
    /// host label, and entries past [`MAX_LOCAL_NAMES`], are left out.
    pub fn new(
        domain: Option<&str>,
        subnet: Option<(Ipv4Addr, u8)>,
        entries: impl IntoIterator<Item = LocalEntry>,
    ) -> LocalNames {
        let domain = domain
            .and_then(|d| Name::from_ascii(d.trim_end_matches('.')).ok())
            .filter(|d| !d.is_root())
            .map(|d| {
                let mut d = d.to_lowercase();
                d.set_fqdn(true);
                d
            });
        let suffix = domain
            .as_ref()
            .map(|d| format!(".{}", d.to_ascii().trim_end_matches('.')));
        let mut entries: Vec<LocalEntry> = entries.into_iter().collect();
        entries.sort_by_key(|e| !e.configured); // stable: the caller's order within each
        let mut table = LocalNames {
            domain,
            subnet,
            ..LocalNames::default()
        };
        for entry in entries {
            if table.by_label.len() >= MAX_LOCAL_NAMES {
                break;
            }
            let lower = entry.hostname.to_ascii_lowercase();
            let bare = match &suffix {
                Some(suffix) => lower.strip_suffix(suffix.as_str()).unwrap_or(&lower),
                None => &lower,
            };
            let Some(label) = host_label(bare) else {
                continue;
            };
            if table.by_label.contains_key(&label) {
                continue;
            }
            table.by_label.insert(label.clone(), entry.address);
            table.by_address.entry(entry.address).or_insert(label);
        }
        table
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.by_label.len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.by_label.is_empty()
    }

    /// The LAN domain, fully qualified.
    pub fn domain(&self) -> Option<&Name> {
        self.domain.as_ref()
    }

    /// What `name` is.
    pub fn resolve(&self, name: &Name) -> Local {
        let name = name.to_lowercase();
        if let Some(domain) = &self.domain
            && domain.zone_of(&name)
        {
            if name.num_labels() == domain.num_labels() {
                return Local::Apex;
            }
            if name.num_labels() == domain.num_labels() + 1 {
                return self.label(&name).map_or(Local::NxDomain, Local::Address);
            }
            return Local::NxDomain;
        }
        if name.num_labels() == 1
            && let Some(address) = self.label(&name)
        {
            return Local::Address(address);
        }
        match self.reverse(&name) {
            Some(Some(label)) => Local::Pointer(self.qualified(label)),
            Some(None) => Local::NxDomain,
            None => Local::NotLocal,
        }
    }

    fn label(&self, name: &Name) -> Option<Ipv4Addr> {
        let first = name.iter().next()?;
        let label = std::str::from_utf8(first).ok()?;
        self.by_label.get(label).copied()
    }

    /// For a reverse name of an address in the subnet: the label behind it, if any; `None`
    /// for any other name.
    fn reverse(&self, name: &Name) -> Option<Option<&str>> {
        let (net, prefix) = self.subnet?;
        if name.num_labels() != 6 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        let [d, c, b, a, in_addr, arpa] = labels.as_slice() else {
            return None;
        };
        if *in_addr != b"in-addr" || *arpa != b"arpa" {
            return None;
        }
        let mut octets = [0u8; 4];
        for (octet, label) in octets.iter_mut().zip([a, b, c, d]) {
            *octet = std::str::from_utf8(label).ok()?.parse().ok()?;
        }
        let address = Ipv4Addr::from(octets);
        let mask = netmask(prefix);
        if u32::from(address) & mask != u32::from(net) & mask {
            return None;
        }
        Some(self.by_address.get(&address).map(String::as_str))
    }

    /// `label` under the domain (or alone, without one), fully qualified.
    fn qualified(&self, label: &str) -> Name {
        let mut name = Name::from_labels([label.as_bytes()]).unwrap_or_default();
        name.set_fqdn(true);
        match &self.domain {
            Some(domain) => name.clone().append_domain(domain).unwrap_or(name),
            None => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hostname: &str, last: u8, configured: bool) -> LocalEntry {
        LocalEntry {
            hostname: hostname.into(),
            address: Ipv4Addr::new(10, 0, 0, last),
            configured,
        }
    }

    fn table() -> LocalNames {
        LocalNames::new(
            Some("Lan.Example"),
            Some((Ipv4Addr::new(10, 0, 0, 0), 24)),
            [
                entry("pc1", 11, false),
                entry("PC2", 12, false),
                entry("pc2", 13, false), // a later client with the same name: loses
                entry("pc1", 14, true),  // the user's name wins over the client's
                entry("bad name", 15, false),
                entry("-x", 16, false),
                entry("node.lan.example", 17, true),
                entry("a.b", 18, false),
            ],
        )
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn names_under_the_domain_and_bare_names_resolve() {
        let t = table();
        assert_eq!(t.len(), 3);
        let ip = |n| Local::Address(Ipv4Addr::new(10, 0, 0, n));
        assert_eq!(t.resolve(&name("pc1.lan.example.")), ip(14));
        assert_eq!(t.resolve(&name("PC2.LAN.example.")), ip(12));
        assert_eq!(t.resolve(&name("pc2.")), ip(12));
        assert_eq!(t.resolve(&name("node.lan.example.")), ip(17));
        assert_eq!(t.resolve(&name("lan.example.")), Local::Apex);
    }

    #[test]
    fn unknown_lan_names_are_nxdomain_and_others_are_forwarded() {
        let t = table();
        for n in [
            "nobody.lan.example.",
            "x.pc1.lan.example.",
            "a.lan.example.",
        ] {
            assert_eq!(t.resolve(&name(n)), Local::NxDomain, "{n}");
        }
        for n in ["www.example.test.", "example.", "com.", "pc1.example.test."] {
            assert_eq!(t.resolve(&name(n)), Local::NotLocal, "{n}");
        }
    }

    #[test]
    fn reverse_names_of_the_subnet_are_answered_here() {
        let t = table();
        assert_eq!(
            t.resolve(&name("14.0.0.10.in-addr.arpa.")),
            Local::Pointer(name("pc1.lan.example."))
        );
        assert_eq!(t.resolve(&name("11.0.0.10.in-addr.arpa.")), Local::NxDomain);
        assert_eq!(t.resolve(&name("99.0.0.10.in-addr.arpa.")), Local::NxDomain);
        assert_eq!(t.resolve(&name("1.1.1.1.in-addr.arpa.")), Local::NotLocal);
        assert_eq!(t.resolve(&name("x.0.0.10.in-addr.arpa.")), Local::NotLocal);
    }

    #[test]
    fn without_a_domain_only_bare_names() {
        let t = LocalNames::new(None, None, [entry("pc1", 11, false)]);
        assert_eq!(
            t.resolve(&name("pc1.")),
            Local::Address(Ipv4Addr::new(10, 0, 0, 11))
        );
        assert_eq!(t.resolve(&name("pc1.lan.")), Local::NotLocal);
        assert_eq!(t.resolve(&name("14.0.0.10.in-addr.arpa.")), Local::NotLocal);
        assert!(LocalNames::new(None, None, []).is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let many = (0..MAX_LOCAL_NAMES + 10).map(|i| LocalEntry {
            hostname: format!("h{i}"),
            address: Ipv4Addr::from(0x0a00_0000 + i as u32),
            configured: false,
        });
        assert_eq!(
            LocalNames::new(Some("lan"), None, many).len(),
            MAX_LOCAL_NAMES
        );
    }
}
