//! Reading and checking what the settings forms and the API send: address ranges,
//! reservations, lists, and the settings as a whole.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use flakeboot_store::{ApplianceSettings, ReservationSetting};

use crate::pages::setup::valid_interface;

/// Field errors by field name.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Parses `first-last` ranges, one per line.
pub fn parse_ranges(text: &str) -> Result<Vec<[Ipv4Addr; 2]>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || format!("“{line}” is not a range like 10.0.0.100-10.0.0.200");
        let (a, b) = line.split_once('-').ok_or_else(bad)?;
        let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if u32::from(a) > u32::from(b) {
            return Err(format!("“{line}”: the first address is after the last"));
        }
        out.push([a, b]);
    }
    Ok(out)
}

/// Parses `MAC ADDRESS [HOSTNAME]` reservations, one per line.
pub fn parse_reservations(text: &str) -> Result<Vec<ReservationSetting>, String> {
    let mut out: Vec<ReservationSetting> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || format!("“{line}” is not like 52:54:00:12:34:56 10.0.0.5 node5");
        let mut parts = line.split_whitespace();
        let mac = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let address = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let hostname = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(bad());
        }
        if let Some(h) = &hostname
            && !crate::pages::machines::valid_hostname(h)
        {
            return Err(format!("“{h}” is not a valid host name"));
        }
        if out.iter().any(|r| r.mac == mac || r.address == address) {
            return Err(format!("“{line}” repeats a MAC or an address"));
        }
        out.push(ReservationSetting {
            mac,
            address,
            hostname,
        });
    }
    Ok(out)
}

pub(crate) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks settings from the UI or the API.
pub fn validate(settings: &ApplianceSettings) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if !settings.lan_interface.is_empty() && !valid_interface(&settings.lan_interface) {
        errors.insert("lan_interface", "Not a network interface name.".into());
    }
    if settings
        .dhcp_ranges
        .iter()
        .any(|[a, b]| u32::from(*a) > u32::from(*b))
    {
        errors.insert(
            "dhcp_ranges",
            "A range's first address is after its last.".into(),
        );
    }
    if settings.dhcp_mode == flakeboot_store::DhcpModeSetting::Router
        && settings.dhcp_ranges.is_empty()
    {
        errors.insert(
            "dhcp_ranges",
            "Router mode needs at least one address range.".into(),
        );
    }
    if let Some(r) = settings.reservations.iter().find(|r| !r.mac.is_station()) {
        errors.insert(
            "reservations",
            format!(
                "{} is not a machine's MAC address (zero, broadcast or multicast).",
                r.mac
            ),
        );
    }
    if settings.menu_timeout_secs > 3600 {
        errors.insert("menu_timeout_secs", "At most 3600 seconds.".into());
    }
    for s in &settings.substituters {
        let ok = [
            "https://",
            "http://",
            "file://",
            "ssh://",
            "ssh-ng://",
            "s3://",
        ]
        .iter()
        .any(|p| s.starts_with(p))
            && !s.chars().any(char::is_whitespace);
        if !ok {
            errors.insert(
                "substituters",
                format!("“{s}” is not a cache URL like https://cache.example.org"),
            );
        }
    }
    for b in &settings.builders {
        if b.chars().any(|c| c.is_control() || c == ';') {
            errors.insert("builders", format!("“{b}” is not a builder line"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_reservations_parse_or_say_which_line_is_wrong() {
        assert_eq!(
            parse_ranges(" 10.0.0.100 - 10.0.0.200\n\n10.0.1.1-10.0.1.9").unwrap(),
            vec![
                [Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 200)],
                [Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 1, 9)]
            ]
        );
        assert!(
            parse_ranges("10.0.0.9-10.0.0.1")
                .unwrap_err()
                .contains("after")
        );
        assert!(parse_ranges("10.0.0.9").unwrap_err().contains("10.0.0.9"));
        let r = parse_reservations("52:54:00:12:34:56 10.0.0.5 node5\n52:54:00:12:34:57 10.0.0.6")
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].hostname.as_deref(), Some("node5"));
        assert!(
            parse_reservations("52:54:00:12:34:56 10.0.0.5\n52:54:00:12:34:56 10.0.0.6").is_err()
        );
        assert!(parse_reservations("zz 10.0.0.5").is_err());
        let group = ApplianceSettings {
            reservations: parse_reservations("ff:ff:ff:ff:ff:ff 10.0.0.5").unwrap(),
            ..ApplianceSettings::default()
        };
        assert!(validate(&group)["reservations"].contains("not a machine's MAC"));
        assert!(parse_reservations("52:54:00:12:34:56 10.0.0.5 bad_name!").is_err());
    }

    #[test]
    fn settings_validation_names_the_field() {
        let mut s = ApplianceSettings {
            dhcp_mode: flakeboot_store::DhcpModeSetting::Router,
            substituters: vec!["cache.example".into()],
            menu_timeout_secs: 7200,
            ..ApplianceSettings::default()
        };
        let errors = validate(&s);
        assert!(errors.contains_key("dhcp_ranges"));
        assert!(errors.contains_key("substituters"));
        assert!(errors.contains_key("menu_timeout_secs"));
        s.dhcp_ranges = vec![[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9)]];
        s.substituters = vec!["https://cache.example".into()];
        s.menu_timeout_secs = 5;
        assert!(validate(&s).is_empty());
    }
}
