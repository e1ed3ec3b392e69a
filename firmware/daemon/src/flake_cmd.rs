//! `flakeboot flake ...`: thin commands over the daemon's control socket.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{FlakeArgs, FlakeCommand};
use crate::control::{self, Request};

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
    // The answer is structured data either way; --json only makes an empty answer explicit.
    if args.json || !response.data.is_null() {
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
