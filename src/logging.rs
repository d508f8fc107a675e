//! Logging: tracing to stderr, text on a terminal and JSON otherwise, every line redacted.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::secret::{RedactingWriter, SharedRedactor};

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber. `level` is a level (`info`) or a full filter
/// (`vantage=debug,hyper=info`). Returns an error for a filter that does not parse.
pub fn init(
    level: &str,
    format: Option<LogFormat>,
    redactor: SharedRedactor,
) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("invalid --log-level {level:?}: {e}"))?;
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let writer = move || RedactingWriter::new(redactor.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot install logger: {e}"))
}
