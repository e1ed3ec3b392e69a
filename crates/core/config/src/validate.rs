//! Checks serde cannot express: references between sections, ranges, duplicates.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::{Config, DhcpMode};

/// Every problem found, each a sentence that says what is wrong and what to do.
pub(crate) fn validate(c: &Config) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();

    if c.lan.interface.trim().is_empty() {
        problems.push("[lan] interface is empty: name the LAN port to serve, e.g. \"eth0\"".into());
    }

    let ranges = c.dhcp.all_ranges();
    if c.dhcp.mode == DhcpMode::Router && ranges.is_empty() {
        problems.push(
            "[dhcp] mode = \"router\" needs an address range: add range = [\"10.0.0.100\", \"10.0.0.200\"]"
                .into(),
        );
    }
    for [first, last] in &ranges {
        if u32::from(*first) > u32::from(*last) {
            problems.push(format!(
                "[dhcp] range {first} - {last} is backwards: the first address must not be above the last"
            ));
        }
    }
    if c.dhcp.lease_time.as_secs() < 60 {
        problems.push("[dhcp] lease_time must be at least 1m".into());
    }

    if c.tftp.max_transfers == 0 {
        problems.push(
            "[tftp] max_transfers must be at least 1 (set enabled = false to turn TFTP off)".into(),
        );
    }
    if c.tftp.max_per_client == 0 || c.tftp.max_per_client > c.tftp.max_transfers {
        problems.push(format!(
            "[tftp] max_per_client = {} must be between 1 and max_transfers ({})",
            c.tftp.max_per_client, c.tftp.max_transfers
        ));
    }
    if c.tftp.first_ack_timeout < std::time::Duration::from_millis(100)
        || c.tftp.first_ack_timeout > std::time::Duration::from_secs(60)
    {
        problems.push("[tftp] first_ack_timeout must be between 100ms and 60s".into());
    }
    if c.http.max_connections_per_client == 0 {
        problems.push("[http] max_connections_per_client must be at least 1".into());
    }

    let mut reserved_macs = HashSet::new();
    let mut reserved_addrs: HashSet<Ipv4Addr> = HashSet::new();
    for r in &c.dhcp.reservations {
        if !reserved_macs.insert(r.mac) {
            problems.push(format!("[[dhcp.reservations]] {} is reserved twice", r.mac));
        }
        if !reserved_addrs.insert(r.address) {
            problems.push(format!(
                "[[dhcp.reservations]] {} is reserved for two machines",
                r.address
            ));
        }
    }

    let timeout = c.boot.report_timeout.as_secs();
    if !(60..=86_400).contains(&timeout) {
        problems.push(
            "[boot] report_timeout must be between 1m and 24h: a booted system needs a while to report, and a day later nobody is waiting"
                .into(),
        );
    }

    if !(16..=1_000_000).contains(&c.boot.max_machines) {
        problems.push(format!(
            "[boot] max_machines = {} must be between 16 and 1000000",
            c.boot.max_machines
        ));
    }
    if !(10..=100_000).contains(&c.boot.events_per_machine) {
        problems.push(format!(
            "[boot] events_per_machine = {} must be between 10 (one boot's events) and 100000",
            c.boot.events_per_machine
        ));
    }
    for r in &c.dhcp.reservations {
        if !r.mac.is_station() {
            problems.push(format!(
                "[[dhcp.reservations]] {} is not a machine's MAC address (zero, broadcast or multicast)",
                r.mac
            ));
        }
    }
    for m in &c.machines {
        if !m.mac.is_station() {
            problems.push(format!(
                "[[machines]] {} is not a machine's MAC address (zero, broadcast or multicast)",
                m.mac
            ));
        }
    }

    let mut host_names = HashSet::new();
    for h in &c.hosts {
        if !valid_name(&h.name) {
            problems.push(format!(
                "[[hosts]] name {:?} is not allowed: use letters, digits, '-' and '_' (it appears in URLs and menus)",
                h.name
            ));
        }
        if !host_names.insert(h.name.as_str()) {
            problems.push(format!("[[hosts]] {:?} is defined twice", h.name));
        }
        if h.cmdline.contains('\n') {
            problems.push(format!("[[hosts]] {:?}: cmdline must be one line", h.name));
        }
    }

    let mut machine_macs = HashSet::new();
    for m in &c.machines {
        if !machine_macs.insert(m.mac) {
            problems.push(format!("[[machines]] {} is listed twice", m.mac));
        }
        // Flake hosts are only known once the flakes are locked: the daemon checks those.
        if let Some(host) = &m.host
            && !host_names.contains(host.as_str())
            && c.flakes.is_empty()
        {
            problems.push(format!(
                "[[machines]] {} is assigned to host {host:?}, which no [[hosts]] entry defines",
                m.mac
            ));
        }
        if m.extra_cmdline.contains('\n') {
            problems.push(format!(
                "[[machines]] {}: extra_cmdline must be one line",
                m.mac
            ));
        }
    }

    if let Some(default) = &c.menu.default
        && default != "local"
        && !host_names.contains(default.as_str())
        && c.flakes.is_empty()
    {
        problems.push(format!(
            "[menu] default = {default:?} names no host: use a [[hosts]] name or \"local\""
        ));
    }

    problems.extend(crate::flakes::problems(&c.flakes, &c.nix, &c.state_dir));
    problems.extend(crate::vpn::problems(&c.vpn));

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Host names appear in URL paths and iPXE scripts: keep them to a safe alphabet.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}
