//! Commands on this machine's files: check a config; with the daemon stopped, print what its
//! store recorded (as `commands` prints it over the API).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_appliance::wire;
use flakeboot_catalogue::MacAddr;
use flakeboot_config::{Config, ConfigError};
use flakeboot_nix::LocalSources;
use flakeboot_store::Store;

use crate::cli::{Command, EventsArgs};
use crate::tables;

pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    let loaded = Config::load(file).and_then(|c| {
        // What `serve` refuses at start: local flakes outside [nix] allowed_paths.
        let refused = LocalSources::from_config(&c).problems(&c.flakes);
        if refused.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems: refused,
            })
        }
    });
    match loaded {
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

/// The commands [`offline`] can answer from the store.
pub fn reads_store(command: &Command) -> bool {
    matches!(
        command,
        Command::Events(_) | Command::Machines { .. } | Command::Leases { .. }
    )
}

/// `events`, `machines` and `leases` with the daemon stopped: read from its store, printed as
/// over the API. `None` for other commands, or where `state_dir` holds no store (a typo must
/// not create an empty one).
pub fn offline(command: &Command, state_dir: &Path) -> Option<anyhow::Result<ExitCode>> {
    let run = |f: &dyn Fn(&Store) -> anyhow::Result<ExitCode>| {
        if !state_dir.join(flakeboot_store::DB_FILE).exists() {
            return Err(anyhow::anyhow!(
                "{} holds no flakeboot state (no {}): check --state-dir",
                state_dir.display(),
                flakeboot_store::DB_FILE
            ));
        }
        let store = Store::open(state_dir)?;
        f(&store)
    };
    match command {
        Command::Events(args) => Some(run(&|store| events(store, args))),
        Command::Machines { json, .. } => Some(run(&|store| {
            let machines = store.machines().context("reading machines")?;
            print(&wire::all(machines), *json, tables::machines)
        })),
        Command::Leases { json, .. } => Some(run(&|store| {
            let leases = store.leases().context("reading leases")?;
            print(&wire::all(leases), *json, tables::leases)
        })),
        _ => None,
    }
}

fn print<T: serde::Serialize>(
    items: &[T],
    json: bool,
    table: fn(&[T]) -> String,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else {
        print!("{}", table(items));
    }
    Ok(ExitCode::SUCCESS)
}

fn events(store: &Store, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let events = match &args.mac {
        Some(mac) => {
            let mac: MacAddr = mac
                .parse()
                .map_err(|e| anyhow::anyhow!("{mac:?} is not a MAC address: {e}"))?;
            store.events_for(mac, args.limit)?
        }
        None => store.recent_events(args.limit)?,
    };
    print(&wire::all(events), args.json, tables::events)
}
