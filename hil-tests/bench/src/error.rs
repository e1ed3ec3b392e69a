//! The one error type of the harness: a benchmark that cannot run says exactly what failed.

use std::io;

/// Why a benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A peer or load generator exited with an error.
    #[error("{tool} failed ({status}): {output}")]
    Tool {
        tool: String,
        status: String,
        output: String,
    },
    /// A tool's output did not hold the figure we look for.
    #[error("cannot read {what} from the output of {tool}: {output}")]
    Parse {
        tool: String,
        what: String,
        output: String,
    },
    /// A server did not become ready.
    #[error("{server} did not start: {detail}")]
    NotReady { server: String, detail: String },
    /// A transfer or boot the benchmark needs did not complete.
    #[error("{what}: {detail}")]
    Incomplete { what: String, detail: String },
}

impl BenchError {
    /// An [`BenchError::Io`] with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

/// Shorthand for the harness's results.
pub type Result<T> = std::result::Result<T, BenchError>;
