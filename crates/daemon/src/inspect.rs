//! Commands on this machine's files: check a config; with the daemon stopped, print what its
//! store recorded (as `commands` prints it over the API).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_appliance::system::LiveSystem;
use flakeboot_appliance::{overview, wire};
use flakeboot_catalogue::MacAddr;
use flakeboot_config::{Config, ConfigError, Field, Lines, Problem, System};
use flakeboot_nix::{FlakeRef, LocalSources};
use flakeboot_store::Store;

use crate::cli::{Command, EventsArgs};
use crate::known_hosts::{FlakeHosts, flake_hosts};
use crate::tables;

/// `flakeboot check-config`: every problem of the file, then what does not fit this machine
/// (as problems, or as warnings `for_another_machine`), in file order with line numbers. Host
/// names are checked against the flake hosts of the daemon in `state_dir` (default: the file's
/// `state_dir`), or a note says why they could not be.
pub fn check_config(
    file: &Path,
    for_another_machine: bool,
    state_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(source) => {
            let err = ConfigError::Read {
                file: file.to_path_buf(),
                source,
            };
            eprintln!("{err}");
            return Ok(ExitCode::from(2));
        }
    };
    let hosts = |c: &Config| flake_hosts(c, state_dir.unwrap_or(&c.state_dir));
    let report = check_text(file, &text, &LiveSystem, &hosts, for_another_machine);
    for line in &report.lines {
        eprintln!("{line}");
    }
    match &report.config {
        Some(c) if report.problems == 0 => {
            let warnings = if report.warnings == 0 {
                String::new()
            } else {
                format!(
                    "; {} warning(s) about this machine, which the file is not for",
                    report.warnings
                )
            };
            println!(
                "{}: ok (interface {}, dhcp {:?}, {} host(s), {} machine(s){warnings})",
                file.display(),
                c.lan.interface,
                c.dhcp.mode,
                c.hosts.len(),
                c.machines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{}: {} problem(s)", file.display(), report.problems);
            Ok(ExitCode::from(2))
        }
    }
}

/// What `check-config` says about a file's text.
#[derive(Debug)]
pub struct CheckReport {
    /// The config, when it parsed.
    pub config: Option<Config>,
    /// `FILE:LINE: FIELD: MESSAGE` (or `FILE:LINE: warning: ...`), in file order; problems
    /// the file does not place (defaults it leaves alone) last.
    pub lines: Vec<String>,
    pub problems: usize,
    pub warnings: usize,
}

/// Checks a config file's text: its syntax, the config's rules ([`flakeboot_config::problems`],
/// host names against the flake hosts `hosts` finds) and, against `system`, the LAN port and
/// the paths it names.
pub fn check_text(
    file: &Path,
    text: &str,
    system: &dyn System,
    hosts: &dyn Fn(&Config) -> FlakeHosts,
    for_another_machine: bool,
) -> CheckReport {
    let config = match Config::parse_unchecked(text, file) {
        Ok(config) => config,
        Err(err) => {
            return CheckReport {
                config: None,
                lines: vec![err.to_string()],
                problems: 1,
                warnings: 0,
            };
        }
    };
    let (known, note) = match hosts(&config) {
        FlakeHosts::Known(list) => (Some(list), None),
        FlakeHosts::Unknown(why) => (
            None,
            Some(format!(
                "{}: note: host names of flakes (flake#host) are not checked: {why}",
                file.display()
            )),
        ),
    };
    let mut found: Vec<(Problem, bool)> = flakeboot_config::problems(&config, known.as_deref())
        .into_iter()
        .map(|p| (p, false))
        .collect();
    // What `serve` refuses at start: local flakes outside [nix] allowed_paths.
    let local = LocalSources::from_config(&config);
    for (i, flake) in config.flakes.iter().enumerate() {
        if let Ok(r) = FlakeRef::parse(&flake.url)
            && let Err(e) = local.check(&r)
        {
            found.push((
                Problem::new(Field::key("flakes").at(i).then("url"), e.to_string()),
                false,
            ));
        }
    }
    found.extend(
        flakeboot_config::system::problems(&config, system)
            .into_iter()
            .map(|p| (p, for_another_machine)),
    );
    let lines = Lines::new(text);
    let mut placed: Vec<(Option<usize>, String, bool)> = found
        .into_iter()
        .map(|(p, warning)| (lines.line(&p.field), p.to_string(), warning))
        .collect();
    placed.sort_by_key(|(line, _, _)| line.unwrap_or(usize::MAX));
    let warnings = placed.iter().filter(|(_, _, w)| *w).count();
    CheckReport {
        config: Some(config),
        problems: placed.len() - warnings,
        warnings,
        lines: placed
            .into_iter()
            .map(|(line, message, warning)| {
                let at = match line {
                    Some(n) => format!("{}:{n}", file.display()),
                    None => file.display().to_string(),
                };
                let warning = if warning { "warning: " } else { "" };
                format!("{at}: {warning}{message}")
            })
            .chain(note)
            .collect(),
    }
}

/// The commands [`offline`] can answer from the store.
pub fn reads_store(command: &Command) -> bool {
    matches!(
        command,
        Command::Events(_)
            | Command::Machines { .. }
            | Command::Leases { .. }
            | Command::Audit { .. }
    )
}

/// `events`, `machines`, `leases` and `audit` with the daemon stopped: read from its store, printed as
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
            // Without the daemon: no config file pins, the default report timeout, and no
            // DHCP mode known, so no machine is judged offline.
            let ctx = overview::Context {
                pins: Default::default(),
                report_timeout: std::time::Duration::from_secs(600),
                router: false,
            };
            let page = overview::overview(
                store,
                &ctx,
                &overview::Query::all(),
                std::time::SystemTime::now(),
            )
            .context("reading machines")?;
            print(&wire::all(page.rows), *json, tables::machines)
        })),
        Command::Leases { json, .. } => Some(run(&|store| {
            let leases = store.leases().context("reading leases")?;
            print(&wire::all(leases), *json, tables::leases)
        })),
        Command::Audit { json, limit, .. } => Some(run(&|store| {
            let entries = store
                .recent_audit((*limit).min(flakeboot_store::MAX_AUDIT))
                .context("reading the audit log")?;
            print(&wire::all(entries), *json, tables::audit)
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
