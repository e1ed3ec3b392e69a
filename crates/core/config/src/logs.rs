//! `[logs]`: the receiver of the machines' console and logs on the LAN address (syslog on UDP
//! 514, netconsole on UDP 6666), its rate limits and how much of it is kept.

use serde::Deserialize;

use crate::Config;
use crate::problem::{Field, Problem};

/// `[logs]` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Receive the machines' logs.
    pub enabled: bool,
    /// Syslog (RFC 5424 and RFC 3164) over UDP.
    pub syslog_port: u16,
    /// The kernel's netconsole over UDP.
    pub netconsole_port: u16,
    /// Lines a second from one address (bursts of twice that); beyond, counted and dropped.
    pub rate_per_source: u32,
    /// Lines a second from all addresses together (bursts of twice that).
    pub rate_total: u32,
    /// The newest lines kept per machine.
    pub lines_per_machine: usize,
    /// The newest lines kept in all.
    pub max_lines: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            enabled: true,
            syslog_port: 514,
            netconsole_port: 6666,
            rate_per_source: 200,
            rate_total: 2000,
            lines_per_machine: 2000,
            max_lines: 100_000,
        }
    }
}

/// The most lines kept per machine (each line is at most about 1.2 KiB in the store).
pub const MAX_LINES_PER_MACHINE: usize = 100_000;

/// The most lines kept in all.
pub const MAX_LINES: usize = 1_000_000;

/// Problems in `[logs]`, each a sentence that says what to do.
pub(crate) fn problems(c: &Config) -> Vec<Problem> {
    let logs = &c.logs;
    let mut problems = Vec::new();
    let mut add = |key: &str, message: String| {
        problems.push(Problem::new(Field::key("logs").then(key), message));
    };
    // UDP ports the appliance already uses on the LAN address.
    let taken = [
        (67, "DHCP"),
        (68, "the DHCP server watch"),
        (4011, "the PXE boot server"),
        (c.tftp.port, "[tftp] port"),
    ];
    for (key, port) in [
        ("syslog_port", logs.syslog_port),
        ("netconsole_port", logs.netconsole_port),
    ] {
        if port == 0 {
            add(key, "must be a port number (1-65535)".into());
        } else if let Some((_, what)) = taken.iter().find(|(p, _)| *p == port) {
            add(
                key,
                format!("{port} is used by {what}: choose another port"),
            );
        }
    }
    if logs.syslog_port == logs.netconsole_port && logs.syslog_port != 0 {
        add(
            "netconsole_port",
            "must differ from syslog_port (the receiver tells the formats apart by port)".into(),
        );
    }
    for (key, rate) in [
        ("rate_per_source", logs.rate_per_source),
        ("rate_total", logs.rate_total),
    ] {
        if !(1..=1_000_000).contains(&rate) {
            add(
                key,
                format!("{rate} must be between 1 and 1000000 lines a second"),
            );
        }
    }
    if logs.rate_per_source > logs.rate_total {
        add(
            "rate_per_source",
            format!(
                "{} must be at most rate_total ({})",
                logs.rate_per_source, logs.rate_total
            ),
        );
    }
    if !(1..=MAX_LINES_PER_MACHINE).contains(&logs.lines_per_machine) {
        add(
            "lines_per_machine",
            format!("must be between 1 and {MAX_LINES_PER_MACHINE}"),
        );
    }
    if logs.max_lines < logs.lines_per_machine || logs.max_lines > MAX_LINES {
        add(
            "max_lines",
            format!(
                "must be between lines_per_machine ({}) and {MAX_LINES}",
                logs.lines_per_machine
            ),
        );
    }
    problems
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    fn fields(logs: &str) -> Vec<String> {
        let text = format!("[lan]\ninterface = \"eth0\"\n[logs]\n{logs}");
        let config: crate::Config = toml::from_str(&text).unwrap();
        super::problems(&config)
            .into_iter()
            .map(|p| p.field.to_string())
            .collect()
    }

    #[test]
    fn defaults_are_syslog_and_netconsole_ports() {
        let config = crate::Config::parse("[lan]\ninterface = \"eth0\"", Path::new("t")).unwrap();
        assert!(config.logs.enabled);
        assert_eq!(
            (config.logs.syslog_port, config.logs.netconsole_port),
            (514, 6666)
        );
        assert!(fields("").is_empty());
    }

    #[test]
    fn ports_rates_and_bounds_are_checked() {
        assert_eq!(fields("syslog_port = 0"), ["logs.syslog_port"]);
        assert_eq!(fields("syslog_port = 67"), ["logs.syslog_port"]);
        assert_eq!(fields("netconsole_port = 69"), ["logs.netconsole_port"]);
        assert_eq!(fields("netconsole_port = 514"), ["logs.netconsole_port"]);
        assert_eq!(fields("rate_per_source = 0"), ["logs.rate_per_source"]);
        assert_eq!(
            fields("rate_per_source = 500\nrate_total = 100"),
            ["logs.rate_per_source"]
        );
        assert_eq!(fields("lines_per_machine = 0"), ["logs.lines_per_machine"]);
        assert_eq!(
            fields("lines_per_machine = 500\nmax_lines = 100"),
            ["logs.max_lines"]
        );
        let text = "[lan]\ninterface = \"eth0\"\n[logs]\nunknown = 1";
        assert!(crate::Config::parse(text, Path::new("t")).is_err());
    }
}
