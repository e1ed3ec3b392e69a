//! `flakeboot-board`: checks board files and prints one as shell variables for image/build.sh.
//!   flakeboot-board check FILE...   parse and validate, print each problem
//!   flakeboot-board shell FILE      print FB_* variable assignments
//!   flakeboot-board delta BASE NEW OUT  write OUT, the delta that makes NEW from BASE

use std::path::Path;
use std::process::ExitCode;

use flakeboot_board::{Board, delta, to_shell};

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
        [cmd, base, new, out] if cmd == "delta" => {
            let read = |p: &String| std::fs::read(p).map_err(|e| anyhow::anyhow!("{p}: {e}"));
            let (base, new) = (read(base)?, read(new)?);
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(out).map_err(|e| anyhow::anyhow!("{out}: {e}"))?,
            );
            let stats = delta::encode(&base, &new, &mut file)?;
            std::io::Write::flush(&mut file)?;
            println!(
                "{} bytes: {} copied from the base, {} carried",
                stats.size, stats.copied, stats.carried
            );
            Ok(())
        }
        _ => anyhow::bail!(
            "usage: flakeboot-board check FILE... | flakeboot-board shell FILE | flakeboot-board delta BASE NEW OUT"
        ),
    }
}
