//! The log subscriber: `--log-format text` (default; colours only when stdout is a terminal) or
//! `json` (one JSON object per line: `timestamp`, `level`, `fields.message`, other fields,
//! `target`), filtered by `RUST_LOG` (default `info`). Logs go to stdout.
use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process's subscriber; call once, first thing (a second call does nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    if let Err(e) = result {
        eprintln!("log subscriber not installed: {e}");
    }
}
