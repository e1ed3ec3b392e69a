use std::fmt;
use std::path::PathBuf;

use crate::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or not the config's shape (an unknown key, a value of the wrong type).
    #[error("{}{}: {message}", file.display(), OnLine(*line))]
    Syntax {
        file: PathBuf,
        /// 1-based, when the parser said where.
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {}", file.display(), Joined(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

/// `:LINE` after a file name, or nothing.
struct OnLine(Option<usize>);

impl fmt::Display for OnLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

struct Joined<'a>(&'a [Problem]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n  ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
