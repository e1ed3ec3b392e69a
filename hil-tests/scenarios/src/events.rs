//! Boot events as the appliance logs them (`boot event` lines of `--log-format json`), read back
//! so a scenario can check which stages the appliance served and when.

use std::fmt;
use std::time::SystemTime;

use flakeboot_catalogue::{BootStage, ClientFirmware};
use serde_json::Value;

/// One `boot event` log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub at: SystemTime,
    /// Lower-case `aa:bb:..`, or empty when the protocol did not carry it.
    pub mac: String,
    /// The client's address, or empty.
    pub peer: String,
    pub stage: String,
    /// `Ok`, `Declined` or `Failed`.
    pub outcome: String,
    pub firmware: String,
    pub detail: String,
}

impl LoggedEvent {
    /// Parse one log line; `None` for any line that is not a JSON `boot event`.
    pub fn parse(line: &str) -> Option<LoggedEvent> {
        let v: Value = serde_json::from_str(line.trim()).ok()?;
        // flatten_event(true) puts the fields at the top; without it they are under "fields".
        let fields = match v.get("fields") {
            Some(f) if f.is_object() => f,
            _ => &v,
        };
        let text = |key: &str| -> String {
            match fields.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            }
        };
        if text("message") != "boot event" {
            return None;
        }
        let at = v
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())?;
        Some(LoggedEvent {
            at,
            mac: text("mac").to_ascii_lowercase(),
            peer: text("peer"),
            stage: text("stage"),
            outcome: text("outcome"),
            firmware: text("firmware"),
            detail: text("detail"),
        })
    }

    /// Every boot event in a log.
    pub fn parse_log(log: &str) -> Vec<LoggedEvent> {
        log.lines().filter_map(LoggedEvent::parse).collect()
    }

    pub fn is_ok(&self) -> bool {
        self.outcome.eq_ignore_ascii_case("ok")
    }

    pub fn is_stage(&self, stage: BootStage) -> bool {
        self.stage == stage.as_str()
    }

    /// The firmware type, when the event named one flakeboot knows.
    pub fn firmware(&self) -> Option<ClientFirmware> {
        serde_json::from_value(Value::String(self.firmware.clone())).ok()
    }

    /// Seconds after `origin` (negative when earlier).
    pub fn secs_after(&self, origin: SystemTime) -> f64 {
        match self.at.duration_since(origin) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }
}

impl fmt::Display for LoggedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mac = if self.mac.is_empty() { "-" } else { &self.mac };
        let peer = if self.peer.is_empty() {
            "-"
        } else {
            &self.peer
        };
        let fw = if self.firmware.is_empty() {
            "-"
        } else {
            &self.firmware
        };
        write!(
            f,
            "{} {mac} {peer} {} {} {fw} {}",
            humantime::format_rfc3339_millis(self.at),
            self.stage,
            self.outcome,
            self.detail
        )
    }
}

/// The events that belong to the client with `mac`: those that name it, and MAC-less ones
/// (TFTP, HTTP) from an address the appliance saw it use. With `lone_client`, MAC-less events
/// from unknown addresses count too (only one client is on the link).
pub fn events_for(events: &[LoggedEvent], mac: &str, lone_client: bool) -> Vec<LoggedEvent> {
    let mac = mac.to_ascii_lowercase();
    let peers: Vec<&str> = events
        .iter()
        .filter(|e| e.mac == mac && !e.peer.is_empty() && e.peer != "0.0.0.0")
        .map(|e| e.peer.as_str())
        .collect();
    events
        .iter()
        .filter(|e| {
            e.mac == mac || (e.mac.is_empty() && (lone_client || peers.contains(&e.peer.as_str())))
        })
        .cloned()
        .collect()
}

/// The first served (`Ok`) event of `stage`.
pub fn first_ok(events: &[LoggedEvent], stage: BootStage) -> Option<&LoggedEvent> {
    events.iter().find(|e| e.is_stage(stage) && e.is_ok())
}

/// `stages` that have no served event.
pub fn missing_stages(events: &[LoggedEvent], stages: &[BootStage]) -> Vec<BootStage> {
    stages
        .iter()
        .copied()
        .filter(|s| first_ok(events, *s).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"timestamp":"2026-11-22T00:30:00.000000Z","level":"INFO","message":"serving","target":"flakeboot::serve"}
{"timestamp":"2026-11-22T00:30:03.250000Z","level":"INFO","message":"boot event","mac":"52:54:00:00:00:01","peer":"10.77.0.100","stage":"dhcp","outcome":"Ok","firmware":"ipxe-bios","detail":"ack 10.77.0.100","target":"flakeboot::event_writer"}
{"timestamp":"2026-11-22T00:30:04.000000Z","level":"INFO","message":"boot event","mac":"","peer":"10.77.0.100","stage":"script","outcome":"Ok","firmware":"","detail":"boot.ipxe","target":"flakeboot::event_writer"}
{"timestamp":"2026-11-22T00:30:04.100000Z","level":"INFO","message":"boot event","mac":"","peer":"10.77.0.101","stage":"kernel","outcome":"Ok","firmware":"","detail":"vmlinuz","target":"flakeboot::event_writer"}
2026-11-22T00:30:05Z  INFO text line, not json
{"timestamp":"2026-11-22T00:30:06.000000Z","level":"INFO","fields":{"message":"boot event","mac":"52:54:00:00:00:01","stage":"initrd","outcome":"Failed","detail":"client aborted"},"target":"x"}"#;

    #[test]
    fn parses_flattened_and_nested_events() {
        let events = LoggedEvent::parse_log(LOG);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].stage, "dhcp");
        assert_eq!(events[0].firmware(), Some(ClientFirmware::IpxeBios));
        assert!(events[0].is_ok());
        assert_eq!(events[3].outcome, "Failed");
        let origin = humantime::parse_rfc3339("2026-11-22T00:30:00Z").unwrap();
        assert!((events[0].secs_after(origin) - 3.25).abs() < 1e-6);
    }

    #[test]
    fn attributes_macless_events_by_peer() {
        let events = LoggedEvent::parse_log(LOG);
        let mine = events_for(&events, "52:54:00:00:00:01", false);
        let stages: Vec<&str> = mine.iter().map(|e| e.stage.as_str()).collect();
        assert_eq!(stages, ["dhcp", "script", "initrd"]);
        assert_eq!(
            missing_stages(
                &mine,
                &[BootStage::Dhcp, BootStage::Script, BootStage::Initrd]
            ),
            [BootStage::Initrd]
        );
        let lone = events_for(&events, "52:54:00:00:00:01", true);
        assert_eq!(lone.len(), 4);
    }
}
