//! `flakeboot update`: the CLI over `flakeboot_board::update`.

use std::process::{Command, ExitCode};

use anyhow::Context;
use flakeboot_board::signing::{BOARD_FILE, Trust};
use flakeboot_board::update::{bundle_id, install, verify};

use crate::cli::{TrustArgs, UpdateArgs, UpdateCommand};

pub fn run(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UpdateCommand::Id { bundle } => {
            let (id, version) = bundle_id(&bundle)?;
            println!("{id} {version}");
        }
        UpdateCommand::Verify { bundle, trust } => {
            let (manifest, id) = verify(&bundle, &load(trust)?)?;
            println!(
                "flakeboot: bundle {} for {} ({id}) verifies",
                manifest.version, manifest.board
            );
        }
        UpdateCommand::Apply {
            bundle,
            disk,
            esp,
            no_reboot,
            trust,
        } => {
            let done = install(&bundle, disk, esp, &load(trust)?)?;
            println!(
                "flakeboot: update {}{} installed in slot {} as {} (running slot {})",
                done.version,
                done.delta_from
                    .map(|from| format!(" (delta from {from})"))
                    .unwrap_or_default(),
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

fn load(args: TrustArgs) -> anyhow::Result<Trust> {
    let board = match args.board {
        Some(board) => board,
        None => std::fs::read_to_string(BOARD_FILE)
            .with_context(|| format!("{BOARD_FILE} (not an appliance image? pass --board)"))?
            .trim()
            .to_owned(),
    };
    Ok(Trust::load(&args.keys, board)?)
}
