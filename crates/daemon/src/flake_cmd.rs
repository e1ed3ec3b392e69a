//! `flakeboot flake ...` on the appliance: thin commands over the daemon's control socket
//! (`remote_cmd` does the same over the API with `--server`).

use std::process::ExitCode;

use anyhow::Context;
use flakeboot_store::{BuildRecord, FlakeRecord, GenerationRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{FlakeArgs, FlakeCommand};
use crate::control::{self, Request};
use crate::tables::{self, GenerationRow};

/// One request to the daemon's control socket, from a synchronous CLI command.
fn call(state_dir: &std::path::Path, request: &Request) -> anyhow::Result<control::Response> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(control::call(state_dir, request))
}

/// `flakeboot health`: ask the running daemon; exit 0 only if it answers healthy.
pub fn health(state_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let response = call(state_dir, &Request::Health)?;
    if response.ok {
        println!("{}", serde_json::to_string(&response.data)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "flakeboot: not healthy: {}",
            response.error.unwrap_or_default()
        );
        Ok(ExitCode::FAILURE)
    }
}

pub fn run(args: FlakeArgs) -> anyhow::Result<ExitCode> {
    let request = match args.command {
        FlakeCommand::List => Request::List,
        FlakeCommand::Add { url, name } => Request::Add { url, name },
        FlakeCommand::Update { flake, wait } => Request::Update { flake, wait },
        FlakeCommand::Build { flake, host, wait } => Request::Build { flake, host, wait },
        FlakeCommand::Generations { host } => Request::Generations { host },
        FlakeCommand::Rollback { host, generation } => Request::Rollback { host, generation },
        FlakeCommand::Unpin { host } => Request::Unpin { host },
        FlakeCommand::Cancel { build } => Request::Cancel { build },
    };
    let response = call(&args.state_dir, &request)?;
    if args.json {
        // The daemon's answer as it is; --json makes an empty answer explicit.
        println!("{}", serde_json::to_string_pretty(&response.data)?);
    } else if let Some(text) = human(&request, &response.data) {
        print!("{text}");
    } else if !response.data.is_null() {
        println!("{}", serde_json::to_string_pretty(&response.data)?);
    }
    match response.error {
        None if response.ok => Ok(ExitCode::SUCCESS),
        error => {
            eprintln!(
                "flakeboot: {}",
                error.unwrap_or_else(|| "the daemon refused the request".into())
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One generation as the control socket answers it: the record with its boot flags.
#[derive(Debug, Deserialize)]
struct LocalGeneration {
    #[serde(flatten)]
    record: GenerationRecord,
    #[serde(default)]
    current: bool,
    #[serde(default)]
    pinned: bool,
}

/// The daemon's answer as the same tables `--server` prints; `None` when it has another
/// shape (then it is printed as JSON).
fn human(request: &Request, data: &Value) -> Option<String> {
    fn typed<T: serde::de::DeserializeOwned>(data: &Value) -> Option<T> {
        serde_json::from_value(data.clone()).ok()
    }
    Some(match request {
        Request::List => tables::flakes(&typed::<Vec<FlakeRecord>>(data)?),
        Request::Add { .. } => tables::flake_added(&typed(data)?),
        Request::Update { .. } | Request::Build { .. } => {
            let builds = data.get("builds")?;
            match typed::<Vec<u64>>(builds) {
                Some(ids) => tables::queued(&ids),
                None => tables::builds(&typed::<Vec<BuildRecord>>(builds)?),
            }
        }
        Request::Generations { host } => {
            let rows: Vec<GenerationRow> = typed::<Vec<LocalGeneration>>(data)?
                .into_iter()
                .map(|g| GenerationRow {
                    record: g.record,
                    current: g.current,
                    pinned: g.pinned,
                })
                .collect();
            tables::generations(host, &rows)
        }
        Request::Rollback { host, generation } if data.is_null() => format!(
            "{host} boots generation {generation} now (pinned; `flakeboot flake unpin {host}` undoes it).\n"
        ),
        Request::Unpin { host } if data.is_null() => {
            format!("{host} boots its newest generation again.\n")
        }
        Request::Cancel { build } => match data.get("cancelled")?.as_bool()? {
            true => format!("Build {build} cancelled.\n"),
            false => format!("Build {build} had already ended.\n"),
        },
        _ => return None,
    })
}
