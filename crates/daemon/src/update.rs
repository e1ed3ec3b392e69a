//! `flakeboot update`: the CLI over `flakeboot_board::update`.

use std::process::{Command, ExitCode};

use flakeboot_board::update::{bundle_id, install};

use crate::cli::{UpdateArgs, UpdateCommand};

pub fn run(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UpdateCommand::Id { bundle } => {
            let (id, version) = bundle_id(&bundle)?;
            println!("{id} {version}");
        }
        UpdateCommand::Apply {
            bundle,
            disk,
            esp,
            no_reboot,
        } => {
            let done = install(&bundle, disk, esp)?;
            println!(
                "flakeboot: update {} installed in slot {} as {} (running slot {})",
                done.version,
                done.slot.letter(),
                done.uki,
                done.running.letter()
            );
            if !no_reboot && done.on_device {
                let status = Command::new("systemctl").arg("reboot").status()?;
                if !status.success() {
                    anyhow::bail!("systemctl reboot: {status}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
