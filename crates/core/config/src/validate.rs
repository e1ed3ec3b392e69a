//! Checks serde cannot express: references between sections, ranges, duplicates, and what may
//! go into a boot script. This is the one place these rules live: the config file
//! ([`Config::parse`], `flakeboot check-config`), the settings saved in the web UI and the API
//! and each machine's settings (through `flakeboot-appliance`) all go through them, so nothing
//! that passes can make a boot fail later. Checks against the machine the config runs on
//! (interfaces, files) are in [`crate::system`].

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use flakeboot_catalogue::text::{MAX_HOST_NAME, check_cmdline, valid_host_name};

use crate::problem::{Field, Problem};
use crate::{Config, DhcpMode, FlakeConfig, MachineConfig};

/// Longest extra kernel command line a host or a machine may add (Linux takes 2048 bytes in
/// all on x86; flakeboot adds its own parameters).
pub const MAX_CMDLINE: usize = 1024;

/// Longest menu timeout.
pub const MAX_MENU_TIMEOUT: Duration = Duration::from_secs(3600);

/// The hosts a machine or the menu may name.
#[derive(Debug, Clone)]
pub struct HostNames<'a> {
    statics: HashSet<&'a str>,
    /// The bootable flake hosts (`flake#host`), when known; `None` (the config file alone): a
    /// config with flakes may name hosts that only locking the flakes reveals.
    flake_hosts: Option<&'a [String]>,
    has_flakes: bool,
}

impl<'a> HostNames<'a> {
    /// The `[[hosts]]` of `config`, and the flake hosts when the caller knows them.
    pub fn of(config: &'a Config, flake_hosts: Option<&'a [String]>) -> HostNames<'a> {
        HostNames {
            statics: config.hosts.iter().map(|h| h.name.as_str()).collect(),
            flake_hosts,
            has_flakes: !config.flakes.is_empty(),
        }
    }

    /// Whether `name` boots something (or may, once the flakes are locked).
    pub fn knows(&self, name: &str) -> bool {
        self.statics.contains(name)
            || match self.flake_hosts {
                Some(list) => list.iter().any(|h| h == name),
                None => self.has_flakes,
            }
    }
}

/// Every problem of `c`, in no particular order. `flake_hosts`: the flake hosts that can be
/// booted now, when known (the daemon knows; `check-config` does not).
pub fn problems(c: &Config, flake_hosts: Option<&[String]>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |field: Field, message: String| problems.push(Problem::new(field, message));
    let lan = Field::key("lan");
    if c.lan.interface.trim().is_empty() {
        add(
            lan.clone().then("interface"),
            "is empty: name the LAN port to serve, e.g. \"eth0\"".into(),
        );
    } else if !crate::vpn::valid_ifname(&c.lan.interface) {
        add(
            lan.clone().then("interface"),
            format!(
                "{:?} is not an interface name: use 1 to 15 letters, digits, '-', '_' or '.'",
                c.lan.interface
            ),
        );
    }

    let dhcp = Field::key("dhcp");
    let ranges = range_fields(c);
    if c.dhcp.mode == DhcpMode::Router && ranges.is_empty() {
        add(
            dhcp.clone().then("range"),
            "mode = \"router\" needs an address range: add range = [\"10.0.0.100\", \"10.0.0.200\"]"
                .into(),
        );
    }
    for (field, [first, last]) in &ranges {
        if u32::from(*first) > u32::from(*last) {
            add(
                field.clone(),
                format!(
                    "{first} - {last} is backwards: the first address must not be above the last"
                ),
            );
        }
    }
    if c.dhcp.lease_time.as_secs() < 60 {
        add(
            dhcp.clone().then("lease_time"),
            "must be at least 1m".into(),
        );
    }
    if let Some(domain) = &c.dhcp.domain
        && !valid_hostname(domain)
    {
        add(
            dhcp.clone().then("domain"),
            format!("{domain:?} is not a domain name: use letters, digits, '-' and '.'"),
        );
    }
    let mut reserved_macs = HashSet::new();
    let mut reserved_addrs: HashSet<Ipv4Addr> = HashSet::new();
    for (i, r) in c.dhcp.reservations.iter().enumerate() {
        let field = dhcp.clone().then("reservations").at(i);
        if !reserved_macs.insert(r.mac) {
            add(
                field.clone().then("mac"),
                format!("{} is reserved twice", r.mac),
            );
        }
        if !reserved_addrs.insert(r.address) {
            add(
                field.clone().then("address"),
                format!("{} is reserved for two machines", r.address),
            );
        }
        if let Some(h) = &r.hostname
            && !valid_hostname(h)
        {
            add(field.then("hostname"), hostname_message(h));
        }
    }
    // The subnet is known from the file alone when it pins both; else from the interface
    // (`system::problems`).
    if let (Some(address), Some(netmask)) = (c.lan.address, c.dhcp.netmask) {
        problems.extend(subnet_problems(
            c,
            address,
            netmask,
            "[lan] address and [dhcp] netmask",
        ));
        problems.extend(crate::preflight::lan_overlap_problems(
            &c.preflight,
            address,
            netmask,
            "[lan] address and [dhcp] netmask",
        ));
    }

    let mut add = |field: Field, message: String| problems.push(Problem::new(field, message));
    let tftp = Field::key("tftp");
    if c.tftp.max_transfers == 0 {
        add(
            tftp.clone().then("max_transfers"),
            "must be at least 1 (set enabled = false to turn TFTP off)".into(),
        );
    }
    if c.tftp.max_per_client == 0 || c.tftp.max_per_client > c.tftp.max_transfers {
        add(
            tftp.clone().then("max_per_client"),
            format!(
                "max_per_client = {} must be between 1 and max_transfers ({})",
                c.tftp.max_per_client, c.tftp.max_transfers
            ),
        );
    }
    if c.tftp.first_ack_timeout < Duration::from_millis(100)
        || c.tftp.first_ack_timeout > Duration::from_secs(60)
    {
        add(
            tftp.then("first_ack_timeout"),
            "must be between 100ms and 60s".into(),
        );
    }
    if c.http.max_connections_per_client == 0 {
        add(
            Field::key("http").then("max_connections_per_client"),
            "must be at least 1".into(),
        );
    }

    let timeout = c.boot.report_timeout.as_secs();
    if !(60..=86_400).contains(&timeout) {
        add(
            Field::key("boot").then("report_timeout"),
            "must be between 1m and 24h: a booted system needs a while to report, and a day later nobody is waiting"
                .into(),
        );
    }

    if !(16..=1_000_000).contains(&c.boot.max_machines) {
        add(
            Field::key("boot").then("max_machines"),
            format!("{} must be between 16 and 1000000", c.boot.max_machines),
        );
    }
    if !(10..=100_000).contains(&c.boot.events_per_machine) {
        add(
            Field::key("boot").then("events_per_machine"),
            format!(
                "{} must be between 10 (one boot's events) and 100000",
                c.boot.events_per_machine
            ),
        );
    }
    for (i, r) in c.dhcp.reservations.iter().enumerate() {
        if !r.mac.is_station() {
            add(
                Field::key("dhcp").then("reservations").at(i).then("mac"),
                format!(
                    "{} is not a machine's MAC address (zero, broadcast or multicast)",
                    r.mac
                ),
            );
        }
    }
    for (i, m) in c.machines.iter().enumerate() {
        if !m.mac.is_station() {
            add(
                Field::key("machines").at(i).then("mac"),
                format!(
                    "{} is not a machine's MAC address (zero, broadcast or multicast)",
                    m.mac
                ),
            );
        }
    }

    let mut host_names = HashSet::new();
    for (i, h) in c.hosts.iter().enumerate() {
        let field = Field::key("hosts").at(i);
        if !valid_host_name(&h.name) {
            add(
                field.clone().then("name"),
                format!(
                    "{:?} is not allowed: use 1 to {MAX_HOST_NAME} letters, digits, '-' and '_' (it appears in URLs and menus)",
                    h.name
                ),
            );
        }
        if h.name == flakeboot_catalogue::LOCAL_DISK {
            add(
                field.clone().then("name"),
                format!(
                    "{:?} is reserved: it means a machine's local disk (a menu default or a machine's host); name the host otherwise",
                    h.name
                ),
            );
        }
        if !host_names.insert(h.name.as_str()) {
            add(
                field.clone().then("name"),
                format!("{:?} is defined twice", h.name),
            );
        }
        if let Some(message) = cmdline_message(&h.cmdline) {
            add(field.then("cmdline"), message);
        }
    }

    let hosts = HostNames::of(c, flake_hosts);
    let mut machine_macs = HashSet::new();
    for (i, m) in c.machines.iter().enumerate() {
        let field = Field::key("machines").at(i);
        if !machine_macs.insert(m.mac) {
            add(
                field.clone().then("mac"),
                format!("{} is listed twice", m.mac),
            );
        }
        for p in machine_problems(m, &hosts) {
            add(field.clone().join(&p.field), p.message);
        }
    }

    let menu = Field::key("menu");
    if let Some(default) = &c.menu.default
        && default != "local"
        && !hosts.knows(default)
    {
        add(
            menu.clone().then("default"),
            format!("{default:?} names no host: use a [[hosts]] name, a flake's host or \"local\""),
        );
    }
    if c.menu.timeout > MAX_MENU_TIMEOUT {
        add(menu.then("timeout"), "must be at most 1h".into());
    }

    let nix = Field::key("nix");
    for (i, s) in c.nix.substituters.iter().flatten().enumerate() {
        if !valid_substituter(s) {
            add(
                nix.clone().then("substituters").at(i),
                format!("{s:?} is not a cache URL like https://cache.example.org"),
            );
        }
    }
    for (i, b) in c.nix.builders.iter().enumerate() {
        if b.trim().is_empty() || b.chars().any(|ch| ch.is_control() || ch == ';') {
            add(
                nix.clone().then("builders").at(i),
                format!("{b:?} is not a builder line like \"ssh://user@host x86_64-linux\""),
            );
        }
    }
    for (i, line) in c.nix.ssh_known_hosts.iter().enumerate() {
        let fields = line.split_whitespace().count();
        if fields < 3 || line.trim_start().starts_with('#') || line.chars().any(char::is_control) {
            add(
                nix.clone().then("ssh_known_hosts").at(i),
                format!(
                    "{line:?} is not a known_hosts line like \"git.example.org ssh-ed25519 AAAA...\" \
                     (ssh-keyscan prints them)"
                ),
            );
        }
    }

    problems.extend(
        crate::flakes::problems(&c.flakes, &c.nix, &c.state_dir)
            .into_iter()
            .map(|message| sectioned(message, &c.flakes)),
    );
    problems.extend(crate::vpn::problems(&c.vpn));
    problems.extend(crate::logs::problems(c));
    problems.extend(crate::wan::problems(&c.wan, &c.lan.interface));
    problems.extend(crate::dns::problems(&c.dns, c.lan.address));
    problems.extend(crate::preflight::problems(&c.preflight));
    problems.extend(crate::updates::problems(&c.updates));
    problems
}

/// Problems of one machine's settings (`[[machines]]`, or a machine's page in the UI), with
/// fields relative to the machine (`host`, `hostname`, `extra_cmdline`).
pub fn machine_problems(m: &MachineConfig, hosts: &HostNames<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(host) = &m.host
        && host != flakeboot_catalogue::LOCAL_DISK
        && !hosts.knows(host)
    {
        problems.push(Problem::new(
            Field::key("host"),
            format!("there is no host named {host:?}: use a [[hosts]] name, a flake's host (flake#host) or \"local\" (the local disk)"),
        ));
    }
    if let Some(h) = &m.hostname
        && !valid_hostname(h)
    {
        problems.push(Problem::new(Field::key("hostname"), hostname_message(h)));
    }
    if let Some(message) = cmdline_message(&m.extra_cmdline) {
        problems.push(Problem::new(Field::key("extra_cmdline"), message));
    }
    problems
}

/// Problems of what a flake says of one of its hosts (`nixosConfigurations.<name>`): its name,
/// `system.boot.loader.kernelFile` and `boot.kernelParams`, with fields relative to the host
/// (`name`, `kernel_file`, `kernel_params[i]`, `kernel_params` for the whole line). These values
/// come from the flake, not from a form, so they are checked when the flake's hosts are
/// discovered and again before a build becomes a generation (`flakeboot_nix`): a host the boot
/// script could not carry never becomes current, and `boot.ipxe` never fails on it.
pub fn flake_host_problems(
    name: &str,
    kernel_file: &str,
    kernel_params: &[String],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !valid_host_name(name) {
        problems.push(Problem::new(
            Field::key("name"),
            format!(
                "{} is not a host name flakeboot can boot (URL paths, menu labels): use 1-{MAX_HOST_NAME} \
                 letters, digits, '-' or '_' for the nixosConfigurations attribute",
                shown(name)
            ),
        ));
    }
    if !valid_kernel_file(kernel_file) {
        problems.push(Problem::new(
            Field::key("kernel_file"),
            format!(
                "{} is not a file name inside the kernel's store path (system.boot.loader.kernelFile, \
                 like \"bzImage\")",
                shown(kernel_file)
            ),
        ));
    }
    for (i, param) in kernel_params.iter().enumerate() {
        if let Some(message) = cmdline_message(param) {
            problems.push(Problem::new(
                Field::key("kernel_params").at(i),
                format!("{} {message}", shown(param)),
            ));
        }
    }
    let line = kernel_params.join(" ");
    if line.len() > MAX_CMDLINE {
        problems.push(Problem::new(
            Field::key("kernel_params"),
            format!(
                "are {} characters long together: at most {MAX_CMDLINE}",
                line.len()
            ),
        ));
    }
    problems
}

/// A file name inside a store path: one path component, not `.` or `..`, printable ASCII.
fn valid_kernel_file(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
}

/// A value from outside, for a message: quoted and escaped, and cut to 80 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    if cut.len() < value.len() {
        format!("{cut:?}... ({} characters)", value.chars().count())
    } else {
        format!("{cut:?}")
    }
}

/// Why a kernel command line (a host's, or a machine's extra one) cannot be booted, or `None`.
fn cmdline_message(cmdline: &str) -> Option<String> {
    if cmdline.len() > MAX_CMDLINE {
        return Some(format!(
            "is {} characters long: at most {MAX_CMDLINE}",
            cmdline.len()
        ));
    }
    check_cmdline(cmdline).err().map(|reason| {
        format!(
            "{reason}: the iPXE boot script could not carry it safely; use kernel parameters \
             like \"console=ttyS0 loglevel=4\" on one line"
        )
    })
}

fn hostname_message(name: &str) -> String {
    format!("{name:?} is not a host name: use letters, digits, '-' and '.', like \"rack3-node1\"")
}

/// A host name as DHCP and Linux accept it (RFC 1123 labels, dots allowed).
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn valid_substituter(s: &str) -> bool {
    [
        "https://",
        "http://",
        "file://",
        "ssh://",
        "ssh-ng://",
        "s3://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Every DHCP range with its field: `dhcp.range`, then `dhcp.ranges[i]`.
pub(crate) fn range_fields(c: &Config) -> Vec<(Field, [Ipv4Addr; 2])> {
    let dhcp = Field::key("dhcp");
    c.dhcp
        .range
        .iter()
        .map(|r| (dhcp.clone().then("range"), *r))
        .chain(
            c.dhcp
                .ranges
                .iter()
                .enumerate()
                .map(|(i, r)| (dhcp.clone().then("ranges").at(i), *r)),
        )
        .collect()
}

/// Router mode hands out addresses of the LAN's subnet only: every range, reservation and the
/// router option must lie in it. `how` says where the subnet comes from.
pub(crate) fn subnet_problems(
    c: &Config,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
    how: &str,
) -> Vec<Problem> {
    if c.dhcp.mode != DhcpMode::Router {
        return Vec::new();
    }
    let mask = u32::from(netmask);
    let network = u32::from(address) & mask;
    let inside = |ip: Ipv4Addr| u32::from(ip) & mask == network;
    let subnet = format!("{}/{}", Ipv4Addr::from(network), mask.leading_ones());
    let mut problems = Vec::new();
    for (field, [first, last]) in range_fields(c) {
        if !inside(first) || !inside(last) {
            problems.push(Problem::new(
                field,
                format!(
                    "{first} - {last} is not inside the LAN's subnet {subnet} ({how}): no machine there could use those addresses"
                ),
            ));
        }
    }
    for (i, r) in c.dhcp.reservations.iter().enumerate() {
        if !inside(r.address) {
            problems.push(Problem::new(
                Field::key("dhcp")
                    .then("reservations")
                    .at(i)
                    .then("address"),
                format!(
                    "{} is not inside the LAN's subnet {subnet} ({how})",
                    r.address
                ),
            ));
        }
    }
    if let Some(router) = c.dhcp.router
        && !inside(router)
    {
        problems.push(Problem::new(
            Field::key("dhcp").then("router"),
            format!("{router} is not inside the LAN's subnet {subnet} ({how})"),
        ));
    }
    problems
}

/// A problem from `flakes.rs`, which says where itself (`[nix] max_jobs ...`, `[[flakes]] ...`):
/// the section (and the key, or the flake it quotes) becomes the field.
fn sectioned(message: String, flakes: &[FlakeConfig]) -> Problem {
    let (section, rest) = match message
        .strip_prefix("[[")
        .and_then(|m| m.split_once("]] "))
        .or_else(|| message.strip_prefix('[').and_then(|m| m.split_once("] ")))
    {
        Some((section, rest)) => (section, rest),
        None => return Problem::new(Field::default(), message.clone()),
    };
    let mut field = Field::key(section);
    if section == "flakes" {
        let quoted = |s: &str| rest.contains(&format!("{s:?}"));
        let index = flakes
            .iter()
            .rposition(|f| quoted(f.url.trim()) || f.name.as_deref().is_some_and(quoted));
        let index = index.or_else(|| flakes.iter().position(|f| f.url.trim().is_empty()));
        if let Some(i) = index {
            field = field.at(i);
        }
    }
    match rest.split_once(' ') {
        Some((key, after))
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            Problem::new(field.then(key), after.to_owned())
        }
        _ => Problem::new(field, rest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fields(text: &str, flake_hosts: Option<&[String]>) -> Vec<String> {
        let c = Config::parse_unchecked(text, Path::new("t.toml")).unwrap();
        problems(&c, flake_hosts)
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    const HOST: &str = "[[hosts]]\nname = \"demo\"\nkernel = \"/k\"\ninitrd = \"/i\"\n";

    #[test]
    fn a_host_named_local_is_refused_for_local_means_the_disk() {
        let text = format!(
            "[lan]\ninterface = \"eth0\"\n{}",
            HOST.replace("demo", "local")
        );
        let p = fields(&text, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("hosts[0].name: \"local\" is reserved"),
            "{p:?}"
        );
        assert!(fields(&format!("[lan]\ninterface = \"eth0\"\n{HOST}"), None).is_empty());
    }

    #[test]
    fn command_lines_that_would_break_the_boot_script_are_refused() {
        for bad in [
            "quiet || shell",
            "root=${x}",
            "a && b",
            "x #!ipxe",
            "a ; b",
            "x=\"y\"",
        ] {
            let text = format!(
                "[lan]\ninterface = \"eth0\"\n{HOST}cmdline = {bad:?}\n\
                 [[machines]]\nmac = \"52:54:00:00:00:01\"\nextra_cmdline = {bad:?}\n"
            );
            let p = fields(&text, None);
            assert_eq!(p.len(), 2, "{bad:?}: {p:?}");
            assert!(p[0].starts_with("hosts[0].cmdline: contains"), "{p:?}");
            assert!(
                p[1].starts_with("machines[0].extra_cmdline: contains"),
                "{p:?}"
            );
        }
        let long = "a".repeat(MAX_CMDLINE + 1);
        let text = format!("[lan]\ninterface = \"eth0\"\n{HOST}cmdline = {long:?}\n");
        assert!(fields(&text, None)[0].contains("at most 1024"));
    }

    #[test]
    fn machine_host_names_and_reservation_names_are_host_names() {
        let text = "[lan]\ninterface = \"eth0\"\n\
            [[dhcp.reservations]]\nmac = \"52:54:00:00:00:01\"\naddress = \"10.0.0.5\"\nhostname = \"a b\"\n\
            [[machines]]\nmac = \"52:54:00:00:00:01\"\nhostname = \"-x\"\n";
        let p = fields(text, None);
        assert!(
            p[0].starts_with("dhcp.reservations[0].hostname: \"a b\" is not a host name"),
            "{p:?}"
        );
        assert!(p[1].starts_with("machines[0].hostname: \"-x\""), "{p:?}");
    }

    #[test]
    fn a_machine_may_boot_its_local_disk() {
        let text = format!(
            "[lan]\ninterface = \"eth0\"\n{HOST}\
             [[machines]]\nmac = \"52:54:00:00:00:01\"\nhost = \"local\"\n"
        );
        assert!(fields(&text, None).is_empty());
        assert!(fields(&text, Some(&[])).is_empty());
    }

    #[test]
    fn a_menu_default_or_machine_host_must_name_a_host() {
        let text = format!(
            "[lan]\ninterface = \"eth0\"\n[menu]\ndefault = \"ghost\"\n{HOST}\
             [[machines]]\nmac = \"52:54:00:00:00:01\"\nhost = \"lab#gone\"\n"
        );
        let p = fields(&text, None);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("machines[0].host: there is no host named \"lab#gone\""));
        assert!(
            p[1].starts_with("menu.default: \"ghost\" names no host"),
            "{p:?}"
        );
        // With flakes, the file alone cannot tell; the daemon knows the flake hosts.
        let with_flake = format!("{text}[[flakes]]\nurl = \"github:a/lab\"\n");
        assert!(fields(&with_flake, None).is_empty());
        let known = ["lab#alpha".to_owned()];
        let p = fields(&with_flake, Some(&known));
        assert_eq!(p.len(), 2, "{p:?}");
        let known = ["lab#gone".to_owned(), "ghost".to_owned()];
        assert!(fields(&with_flake, Some(&known)).is_empty());
    }

    #[test]
    fn a_pinned_subnet_holds_the_router_mode_ranges() {
        let text = "[lan]\ninterface = \"eth0\"\naddress = \"10.0.0.2\"\n[dhcp]\nmode = \"router\"\n\
             netmask = \"255.255.255.0\"\nrange = [\"10.0.1.100\", \"10.0.1.200\"]\n";
        let p = fields(text, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "dhcp.range: 10.0.1.100 - 10.0.1.200 is not inside the LAN's subnet 10.0.0.0/24"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn the_settings_rules_apply_to_the_file_too() {
        let text = "[lan]\ninterface = \"eth 0\"\n[menu]\ntimeout = \"2h\"\n[nix]\n\
             substituters = [\"https://ok\", \"cache.example\"]\nbuilders = [\"a; rm\"]\n";
        let p = fields(text, None);
        let fields: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "lan.interface",
                "menu.timeout",
                "nix.substituters[1]",
                "nix.builders[0]"
            ],
            "{p:?}"
        );
    }

    #[test]
    fn pinned_ssh_host_keys_are_known_hosts_lines() {
        let text = "[lan]\ninterface = \"eth0\"\n[nix]\nssh_known_hosts = [\n\
             \"git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ\",\n\
             \"[10.0.0.5]:2222,forge ecdsa-sha2-nistp256 AAAAE2\",\n\
             \"ssh-ed25519 AAAAC3Nz\",\n\"# a comment here\",\n\"a b c\\nd e f\"]\n";
        let p = fields(text, None);
        let fields: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "nix.ssh_known_hosts[2]",
                "nix.ssh_known_hosts[3]",
                "nix.ssh_known_hosts[4]"
            ],
            "{p:?}"
        );
        assert!(p[0].contains("ssh-keyscan"), "{p:?}");
    }

    #[test]
    fn flake_problems_get_the_entry_they_are_about() {
        let text = "[lan]\ninterface = \"eth0\"\n[[flakes]]\nurl = \"github:a/b\"\n\
             [[flakes]]\nurl = \"github:a/b\"\n[[flakes]]\nurl = \"github:c/d\"\nname = \"c d\"\n\
             [nix]\nmax_concurrent_builds = 0\n";
        let p = fields(text, None);
        assert_eq!(
            p,
            [
                "flakes[1]: \"github:a/b\" is listed twice",
                "flakes[2].name: \"c d\" is not allowed: use letters, digits, '-' and '_'",
                "nix.max_concurrent_builds: must be at least 1",
            ]
        );
    }

    fn flake_host(name: &str, kernel_file: &str, params: &[&str]) -> Vec<String> {
        let params: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
        flake_host_problems(name, kernel_file, &params)
            .iter()
            .map(|p| p.field.to_string())
            .collect()
    }

    #[test]
    fn flake_host_values_are_what_a_boot_script_can_carry() {
        let none: Vec<String> = Vec::new();
        let long = "a".repeat(2000);
        assert_eq!(
            flake_host("alpha", "bzImage", &["console=ttyS0", "quiet"]),
            none
        );
        assert_eq!(
            flake_host("web-01_b", "Image", &["a|b", "x#y", "k=v=w"]),
            none
        );
        assert_eq!(flake_host(&"n".repeat(63), "bzImage", &[]), none);
        // Names: too long, dotted, spaced, `$`, newline, empty.
        for name in [&"n".repeat(64), "a.b", "a b", "x${y}", "a\nb", ""] {
            assert_eq!(flake_host(name, "bzImage", &[]), ["name"], "{name:?}");
        }
        // Kernel files: anything but one file name inside the store path.
        for file in [
            "",
            ".",
            "..",
            "../../etc/shadow",
            "/etc/shadow",
            "a\nb",
            "a b",
        ] {
            assert_eq!(flake_host("alpha", file, &[]), ["kernel_file"], "{file:?}");
        }
        // Parameters: `$`, `||`, `;`, a newline, a comment, a quote, one too long, and in all.
        assert_eq!(
            flake_host(
                "alpha",
                "bzImage",
                &[
                    "root=${x}",
                    "quiet || shell",
                    "ok",
                    ";",
                    "a\nkernel evil",
                    "#c",
                    "x=\"y\"",
                    &long
                ]
            ),
            [
                "kernel_params[0]",
                "kernel_params[1]",
                "kernel_params[3]",
                "kernel_params[4]",
                "kernel_params[5]",
                "kernel_params[6]",
                "kernel_params[7]",
                "kernel_params"
            ]
        );
        let many = vec!["loglevel=4"; 100];
        assert_eq!(flake_host("alpha", "bzImage", &many), ["kernel_params"]);
        // The message shows a long value cut, escaped.
        let p = flake_host_problems(&format!("{long}\n"), "bzImage", &[]);
        assert!(
            p[0].message.starts_with(&format!(
                "\"{}\"... (2001 characters) is not",
                "a".repeat(80)
            )),
            "{}",
            p[0].message
        );
    }
}
