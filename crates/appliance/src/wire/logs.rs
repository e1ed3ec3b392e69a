//! A machine's log lines as the API sends them (`GET /api/v1/machines/{mac}/logs`).

use std::net::IpAddr;
use std::time::SystemTime;

use flakeboot_store::LogRecord;
use serde::{Deserialize, Serialize};

use super::time::rfc3339;

/// One line of a machine's console or logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it arrived.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// The address it came from.
    pub peer: IpAddr,
    /// `rfc5424`, `rfc3164` or `netconsole`.
    pub proto: String,
    /// 0 (emergency) to 7 (debug), when the sender gave one.
    pub severity: Option<u8>,
    /// The syslog facility, when the sender gave one.
    pub facility: Option<u8>,
    /// The host name the line names (a claim: lines are attributed by their address).
    pub hostname: Option<String>,
    /// The program that sent it.
    pub app: Option<String>,
    /// The text: control characters escaped, at most 1 KiB.
    pub text: String,
    /// The text was cut at 1 KiB.
    pub truncated: bool,
}

impl From<LogRecord> for LogLine {
    fn from(r: LogRecord) -> LogLine {
        LogLine {
            at: r.at,
            peer: r.peer,
            proto: r.proto,
            severity: r.severity,
            facility: r.facility,
            hostname: r.hostname,
            app: r.app,
            text: r.text,
            truncated: r.truncated,
        }
    }
}

/// A severity's name: `emerg`, `alert`, `crit`, `err`, `warning`, `notice`, `info`, `debug`.
pub fn severity_name(severity: u8) -> &'static str {
    match severity {
        0 => "emerg",
        1 => "alert",
        2 => "crit",
        3 => "err",
        4 => "warning",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}
