use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Logs go to stderr; `RUST_LOG` overrides the default level (info).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// An error and its causes on one line, like `{:#}`, but a cause whose text the message before
/// it already ends with is left out: many errors put their source in their own message.
pub fn chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(Read {
            path: "/x",
            source: io,
        })
        .context("serve failed");
        assert_eq!(chain(&err), "serve failed: cannot read /x: No such file");
    }

    #[test]
    fn a_cause_not_in_the_message_is_added() {
        let err = anyhow::anyhow!("disk full").context("cannot save");
        assert_eq!(chain(&err), "cannot save: disk full");
    }
}
