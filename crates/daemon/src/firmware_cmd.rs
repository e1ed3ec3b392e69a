//! `flakeboot firmware`: the appliance's slots and signed updates, over the API.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use flakeboot_appliance::firmware::{FirmwareInstalled, FirmwareStatus};
use serde_json::json;

use crate::api_client::ApiClient;
use crate::cli::{FirmwareArgs, FirmwareCommand};
use crate::progress::Progress;

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
            let shown = Progress::new(len, "checking and installing");
            let v = client.upload("/firmware", file, len, INSTALL_WAIT, move |sent| {
                shown.sent(sent)
            })?;
            eprintln!();
            if args.json {
                crate::commands::print_json(&v)?;
            } else {
                let done: FirmwareInstalled = typed(v)?;
                println!(
                    "flakeboot: firmware {}{} installed in slot {} as {} (running slot {}); {}",
                    done.version,
                    done.delta_from
                        .map(|from| format!(" (a delta of {} bytes from {from})", done.bytes))
                        .unwrap_or_default(),
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
        FirmwareCommand::Reboot { development } => {
            let v = client.post("/firmware/reboot", &json!({ "development": development }))?;
            if args.json {
                return crate::commands::print_json(&v);
            }
            match development {
                true => println!(
                    "flakeboot: the appliance is rebooting into the development mode (this boot only)"
                ),
                false => println!("flakeboot: the appliance is rebooting"),
            }
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
    if v.development_mode {
        out.push_str(&format!(
            "development mode: the root is a writable overlay in memory ({}), discarded at the next boot\n",
            v.root_fs.as_deref().unwrap_or("unknown")
        ));
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
