//! Logging: tracing to stderr, every line redacted. On a terminal the default is tracing's
//! compact format with colours; otherwise JSON. `--log-format` chooses: `compact` (alias
//! `text`), `pretty` (multi-line, for reading one event at a time) or `json`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::secret::{RedactingWriter, SharedRedactor};

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One short line per event.
    #[value(alias = "text")]
    Compact,
    /// Several lines per event, fields one per line.
    Pretty,
    Json,
}

/// The format when none is chosen: compact for a person at a terminal, JSON for machines.
pub fn default_format(stderr_is_terminal: bool) -> LogFormat {
    if stderr_is_terminal {
        LogFormat::Compact
    } else {
        LogFormat::Json
    }
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
    let tty = std::io::stderr().is_terminal();
    let format = format.unwrap_or(default_format(tty));
    let writer = move || RedactingWriter::new(redactor.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Compact => builder.with_ansi(tty).compact().try_init(),
        LogFormat::Pretty => builder.with_ansi(tty).pretty().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot install logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn formats_and_defaults() {
        assert_eq!(default_format(true), LogFormat::Compact);
        assert_eq!(default_format(false), LogFormat::Json);
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Compact));
        assert_eq!(LogFormat::from_str("pretty", false), Ok(LogFormat::Pretty));
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert!(LogFormat::from_str("xml", false).is_err());
    }
}
