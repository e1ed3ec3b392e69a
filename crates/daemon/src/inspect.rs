//! Read-only subcommands: check a config, print what the store recorded (on the appliance;
//! `remote_cmd` prints the same over the API).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_catalogue::MacAddr;
use flakeboot_config::{Config, ConfigError};
use flakeboot_store::Store;

use crate::cli::EventsArgs;
use crate::tables;

pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(c) => {
            println!(
                "{}: ok (interface {}, dhcp {:?}, {} host(s), {} machine(s))",
                file.display(),
                c.lan.interface,
                c.dhcp.mode,
                c.hosts.len(),
                c.machines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid { file, problems }) => {
            eprintln!("{}: {} problem(s):", file.display(), problems.len());
            for p in problems {
                eprintln!("  - {p}");
            }
            Ok(ExitCode::from(2))
        }
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::from(2))
        }
    }
}

pub fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(&args.state_dir)?;
    let events = match &args.mac {
        Some(mac) => {
            let mac: MacAddr = mac.parse()?;
            store.events_for(mac, args.limit)?
        }
        None => store.recent_events(args.limit)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
    } else {
        for e in events {
            println!("{}", tables::event_line(&e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn machines(state_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(state_dir)?;
    let machines = store.machines().context("reading machines")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&machines)?);
    } else {
        for m in machines {
            println!("{}", tables::machine_line(&m));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn leases(state_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(state_dir)?;
    let leases = store.leases().context("reading leases")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&leases)?);
    } else {
        for l in leases {
            println!("{} {} {:?}", l.ip, l.mac, l.state);
        }
    }
    Ok(ExitCode::SUCCESS)
}
