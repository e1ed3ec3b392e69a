//! `flakeboot`: the appliance daemon and its CLI. This binary only wires the crates together:
//! config -> store -> catalogue -> boot services (DHCP, TFTP, HTTP).

mod catalogue;
mod cli;
mod control;
mod event_writer;
mod flake_cmd;
mod inspect;
mod lan;
mod logging;
mod router_mode;
mod serve;
mod update;
mod web;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            logging::init(args.log_format);
            serve::run(args)
        }
        Command::CheckConfig { file } => inspect::check_config(&file),
        Command::Events(args) => inspect::events(args),
        Command::Machines { state_dir, json } => inspect::machines(&state_dir, json),
        Command::Leases { state_dir, json } => inspect::leases(&state_dir, json),
        Command::Flake(args) => flake_cmd::run(args),
        Command::Health { state_dir } => flake_cmd::health(&state_dir),
        Command::Update(args) => update::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flakeboot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
