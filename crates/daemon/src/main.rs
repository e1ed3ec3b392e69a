//! `flakeboot`: the appliance daemon and its CLI. This binary only wires the crates together:
//! config -> store -> catalogue -> boot services (DHCP, TFTP, HTTP).

mod api_client;
mod api_tls;
mod build_log;
mod cli;
mod control;
mod flake_cmd;
mod inspect;
mod logging;
mod remote_cmd;
mod serve;
mod tables;
mod update;
mod web;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if cli.remote.server.is_some() && cli.command.over_api() {
        remote_cmd::run(cli.command, &cli.remote)
    } else if cli.remote.server.is_some() && cli.command.store_only() {
        Err(anyhow::anyhow!(
            "this command reads the appliance's own files: run it on the appliance, without \
             --server (and without FLAKEBOOT_SERVER)"
        ))
    } else {
        run_local(cli.command)
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flakeboot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every command on this machine (the daemon, its control socket, its store).
fn run_local(command: Command) -> anyhow::Result<ExitCode> {
    let api_only = |what: &str| {
        anyhow::anyhow!(
            "`flakeboot {what}` works over the appliance's API: pass --server https://ADDR with \
             a token (--token-file) and --pin or --cacert (see `flakeboot --help`)"
        )
    };
    match command {
        Command::Serve(args) => {
            logging::init(args.log_format);
            serve::run(args)
        }
        Command::CheckConfig { file } => inspect::check_config(&file),
        Command::Events(args) => inspect::events(args),
        Command::Machines { state_dir, json } => inspect::machines(&state_dir, json),
        Command::Leases { state_dir, json } => inspect::leases(&state_dir, json),
        Command::Flake(args) => flake_cmd::run(args),
        Command::Build(_) => Err(api_only("build")),
        Command::Machine(_) => Err(api_only("machine")),
        Command::Health { state_dir } => flake_cmd::health(&state_dir),
        Command::Update(args) => update::run(args),
    }
}
