//! `flakeboot`: the appliance daemon and its CLI. This binary only wires the crates together:
//! config -> store -> catalogue -> boot services (DHCP, TFTP, HTTP).

mod api_client;
mod api_tls;
mod backup_cmd;
mod build_log;
mod cli;
mod commands;
mod firmware_cmd;
mod inspect;
mod known_hosts;
mod logging;
mod malloc;
mod progress;
mod serve;
mod tables;
mod update;
mod web;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let result = match cli.command.api_state_dir() {
        Some(state_dir) => {
            let state_dir = state_dir.to_owned();
            commands::run(cli.command, &cli.remote, &state_dir)
        }
        None => run_local(cli.command, &cli.remote),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flakeboot: error: {}", logging::chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The commands that work on this machine's files: the daemon itself, a config file, the
/// A/B slots; and a restore, here or onto a fresh appliance with `--server`.
fn run_local(command: Command, remote: &cli::RemoteArgs) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            malloc::limit_arenas();
            logging::init(args.log_format);
            serve::run(args)
        }
        Command::CheckConfig {
            file,
            for_another_machine,
            state_dir,
        } => inspect::check_config(&file, for_another_machine, state_dir.as_deref()),
        Command::Update(args) => update::run(args),
        Command::Restore {
            file,
            state_dir,
            config,
        } => match &remote.server {
            Some(server) => {
                anyhow::ensure!(
                    config.is_none(),
                    "--config is for a restore on this machine; with --server the appliance \
                     puts the backup's config file where its daemon reads its config"
                );
                backup_cmd::restore_remote(server, remote, &file)
            }
            None => backup_cmd::restore(&file, &state_dir, config.as_deref()),
        },
        other => Err(anyhow::anyhow!("{other:?} works over the API")),
    }
}
