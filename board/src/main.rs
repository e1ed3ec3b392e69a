//! `flakeboot-board`: checks board files and prints one as shell variables for image/build.sh.
//!   flakeboot-board check FILE...   parse and validate, print each problem
//!   flakeboot-board shell FILE      print FB_* variable assignments

use std::path::Path;
use std::process::ExitCode;

use flakeboot_board::{Board, to_shell};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flakeboot-board: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args {
        [cmd, file] if cmd == "shell" => {
            print!("{}", to_shell(&Board::load(Path::new(file))?));
            Ok(())
        }
        [cmd, files @ ..] if cmd == "check" && !files.is_empty() => {
            for file in files {
                Board::load(Path::new(file))?;
            }
            Ok(())
        }
        _ => anyhow::bail!("usage: flakeboot-board check FILE... | flakeboot-board shell FILE"),
    }
}
