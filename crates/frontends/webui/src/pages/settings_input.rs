//! Reading what the settings forms send: address ranges, reservations, lists. The settings
//! as a whole are checked by the appliance ([`flakeboot_appliance::SettingsCheck`], the
//! config file's rules), for the forms and the API alike.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use flakeboot_appliance::FieldError;
use flakeboot_store::ReservationSetting;

/// Field errors by field name (a field's messages joined).
pub type FieldErrors = BTreeMap<&'static str, String>;

/// The appliance's field errors, by field.
pub fn by_field(errors: Vec<FieldError>) -> FieldErrors {
    let mut out = FieldErrors::new();
    for e in errors {
        out.entry(e.field)
            .and_modify(|m| {
                m.push(' ');
                m.push_str(&e.message);
            })
            .or_insert(e.message);
    }
    out
}

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
            && !flakeboot_config::valid_hostname(h)
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
        assert!(parse_reservations("52:54:00:12:34:56 10.0.0.5 bad_name!").is_err());
    }
}
