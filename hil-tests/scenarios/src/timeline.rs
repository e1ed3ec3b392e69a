//! Stage timings of one client's boot, in seconds after power-on: from the appliance's boot
//! events (when it served each stage) and from the client's serial console (when the firmware
//! printed that a stage finished).

use std::fmt;

use flakeboot_catalogue::BootStage;
use flakeboot_testbed::{QemuClient, SerialLine};

use crate::events::{LoggedEvent, first_ok};

/// One row: a stage and when each side saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stage: &'static str,
    pub appliance: Option<f64>,
    pub console: Option<f64>,
}

/// A client's boot timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub scenario: String,
    pub client: String,
    pub kind: &'static str,
    pub accel: &'static str,
    pub rows: Vec<Row>,
}

impl Timeline {
    /// Build from the client's console and its (already attributed) boot events.
    pub fn new(scenario: &str, client: &QemuClient, events: &[LoggedEvent]) -> Timeline {
        let origin = client.started_at();
        let appliance = |stage| first_ok(events, stage).map(|e| e.secs_after(origin));
        let console = console_stages(&client.console().lines());
        let row = |stage: &'static str, appliance: Option<f64>| Row {
            stage,
            appliance,
            console: console.iter().find(|(s, _)| *s == stage).map(|(_, at)| *at),
        };
        Timeline {
            scenario: scenario.to_owned(),
            client: client.name().to_owned(),
            kind: client.kind().as_str(),
            accel: client.accel().as_str(),
            rows: vec![
                row("dhcp", appliance(BootStage::Dhcp)),
                row("tftp", appliance(BootStage::Tftp)),
                row("script", appliance(BootStage::Script)),
                row("kernel", appliance(BootStage::Kernel)),
                row("initrd", appliance(BootStage::Initrd)),
                row("linux", None),
                row("marker", None),
            ],
        }
    }

    /// `HIL-TIMING scenario=.. client=.. dhcp=5.26 ...`: one greppable line, per stage the time
    /// the client's console showed it done (comparable between servers), else the appliance's.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "HIL-TIMING scenario={} client={} firmware={} accel={}",
            self.scenario, self.client, self.kind, self.accel
        );
        for r in &self.rows {
            match r.console.or(r.appliance) {
                Some(t) => s.push_str(&format!(" {}={t:.2}", r.stage)),
                None => s.push_str(&format!(" {}=-", r.stage)),
            }
        }
        s
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stage timings, {} client {} ({}, {}), seconds after power-on:",
            self.scenario, self.client, self.kind, self.accel
        )?;
        writeln!(f, "  {:<8} {:>10} {:>10}", "stage", "appliance", "console")?;
        let cell = |t: Option<f64>| t.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}"));
        for r in &self.rows {
            writeln!(
                f,
                "  {:<8} {:>10} {:>10}",
                r.stage,
                cell(r.appliance),
                cell(r.console)
            )?;
        }
        Ok(())
    }
}

/// When the console showed each stage done: iPXE's DHCP (`Configuring ... ok`), native PXE's
/// DHCP (`Station IP address`), the TFTP'd NBP, the script (`[script]`), the next two HTTP
/// downloads after it (kernel, initrd), the kernel's first line, and the marker.
pub fn console_stages(lines: &[SerialLine]) -> Vec<(&'static str, f64)> {
    let mut out: Vec<(&'static str, f64)> = Vec::new();
    let mut first = |stage: &'static str, at: f64| {
        if !out.iter().any(|(s, _)| *s == stage) {
            out.push((stage, at));
        }
    };
    let mut downloads_after_script = 0;
    let mut script_seen = false;
    for l in lines {
        let t = l.at.as_secs_f64();
        let text = l.text.as_str();
        if text.contains("Station IP address")
            || (text.contains("Configuring (") && text.ends_with("ok"))
        {
            first("dhcp", t);
        } else if text.contains("NBP file downloaded successfully") {
            first("tftp", t);
        } else if text.contains("[script]") {
            first("script", t);
            script_seen = true;
        } else if script_seen && text.starts_with("http") && text.ends_with("ok") {
            downloads_after_script += 1;
            match downloads_after_script {
                1 => first("kernel", t),
                2 => first("initrd", t),
                _ => {}
            }
        }
        if text.contains("Linux version") || text.contains("EFI stub:") {
            first("linux", t);
        }
        if text.contains("FLAKEBOOT-MARKER") {
            first("marker", t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line(at: f64, text: &str) -> SerialLine {
        SerialLine {
            at: Duration::from_secs_f64(at),
            text: text.to_owned(),
        }
    }

    #[test]
    fn finds_stages_on_an_ovmf_pxe_console() {
        let lines = [
            line(7.9, "  Station IP address is 10.77.0.157"),
            line(8.9, "  NBP file downloaded successfully."),
            line(18.3, "Configuring (net0 52:54:00:12:34:56)...... ok"),
            line(
                18.35,
                "http://10.77.0.1/boot.ipxe?mac=52-54-00-12-34-56... ok",
            ),
            line(18.36, "boot.ipxe : 160 bytes [script]"),
            line(18.5, "http://10.77.0.1/files/marker/static/kernel... ok"),
            line(18.6, "http://10.77.0.1/files/marker/static/initrd... ok"),
            line(21.0, "EFI stub: Loaded initrd from command line option"),
            line(23.3, "FLAKEBOOT-MARKER t:c1 cmdline=x"),
        ];
        let stages = console_stages(&lines);
        let names: Vec<&str> = stages.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            names,
            [
                "dhcp", "tftp", "script", "kernel", "initrd", "linux", "marker"
            ]
        );
        assert_eq!(stages[0].1, 7.9);
        assert_eq!(stages[4].1, 18.6);
    }
}
