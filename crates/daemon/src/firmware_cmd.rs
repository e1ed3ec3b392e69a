//! `flakeboot firmware`: the appliance's slots and signed updates, over the API.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use flakeboot_appliance::firmware::{FirmwareInstalled, FirmwareStatus};
use serde_json::json;

use crate::api_client::ApiClient;
use crate::cli::{FirmwareArgs, FirmwareCommand};

/// How long the appliance may take to check and install a bundle after its last byte (a
/// small board writes a few hundred MiB and hashes them).
const INSTALL_WAIT: Duration = Duration::from_secs(30 * 60);

pub fn run(client: &ApiClient, args: FirmwareArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        FirmwareCommand::Status => {
            let v = client.get("/firmware")?;
            if args.json {
                return crate::commands::print_json(&v);
            }
            print!("{}", status_text(&typed(v)?));
        }
        FirmwareCommand::Upload { bundle, reboot } => {
            let file = std::fs::File::open(&bundle)
                .with_context(|| format!("cannot open {}", bundle.display()))?;
            let len = file.metadata()?.len();
            let shown = Progress::new(len);
            let v = client.upload("/firmware", file, len, INSTALL_WAIT, move |sent| {
                shown.sent(sent)
            })?;
            eprintln!();
            if args.json {
                crate::commands::print_json(&v)?;
            } else {
                let done: FirmwareInstalled = typed(v)?;
                println!(
                    "flakeboot: firmware {} installed in slot {} as {} (running slot {}); {}",
                    done.version,
                    done.slot,
                    done.uki,
                    done.running_slot,
                    if reboot {
                        "rebooting into it"
                    } else {
                        "reboot to start it (flakeboot firmware reboot)"
                    }
                );
            }
            if reboot {
                client.post("/firmware/reboot", &json!({}))?;
            }
        }
        FirmwareCommand::Reboot => {
            let v = client.post("/firmware/reboot", &json!({}))?;
            if args.json {
                return crate::commands::print_json(&v);
            }
            println!("flakeboot: the appliance is rebooting");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v)
        .context("the appliance's answer is not firmware status (is it the same version?)")
}

/// The status as lines for people.
fn status_text(v: &FirmwareStatus) -> String {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    if !v.image {
        out.push_str("not running the appliance image: no A/B slots here\n");
        return out;
    }
    out.push_str(&format!(
        "image {} on {}, running slot {}\n",
        or_dash(&v.version),
        or_dash(&v.board),
        or_dash(&v.running_slot)
    ));
    if let Some(dev) = &v.development {
        out.push_str(&format!("{dev}\n"));
    }
    match v.secure_boot {
        Some(true) => out.push_str("UEFI Secure Boot: enforcing\n"),
        Some(false) => out.push_str("UEFI Secure Boot: off\n"),
        None => {}
    }
    for slot in &v.slots {
        let mark = if slot.running { "*" } else { " " };
        match &slot.entry {
            None => out.push_str(&format!("{mark} slot {}: empty\n", slot.slot)),
            Some(e) => out.push_str(&format!(
                "{mark} slot {}: {} ({}, {})\n",
                slot.slot,
                or_dash(&e.version),
                e.state,
                e.name
            )),
        }
    }
    if let Some(last) = &v.last_update {
        let result = if last.ok { "ok" } else { "failed" };
        out.push_str(&format!("last update: {result}: {}\n", last.message));
    }
    out
}

/// Upload progress on standard error, at most once a second and at the end.
struct Progress {
    total: u64,
    started: Instant,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total,
            started: Instant::now(),
            last: std::sync::Mutex::new(None),
        }
    }

    fn sent(&self, sent: u64) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        if sent < self.total && last.is_some_and(|l| now - l < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = |b: u64| b as f64 / 1_048_576.0;
        let pct = (sent * 100).checked_div(self.total).unwrap_or(100);
        let note = if sent >= self.total {
            ", checking and installing"
        } else {
            ""
        };
        eprint!(
            "\rflakeboot: sent {:.0} of {:.0} MiB ({pct}%, {:.1} MiB/s){note}",
            mib(sent),
            mib(self.total),
            mib(sent) / secs
        );
        let _ = std::io::stderr().flush();
    }
}
