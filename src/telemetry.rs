//! Logging set-up: `tracing` with text or JSON lines, written by a background thread so workers
//! never block on the terminal.
//!
//! Filter precedence: `RUST_LOG`, then `config.logging.level`/`filter`, then `info`. Format: JSON
//! when `config.logging.format: json` or `PORTCULLIS_LOG_FORMAT=json`. The access log is the
//! `access` target at info level (`RUST_LOG=info,access=off` turns it off). Tokens are never
//! logged anywhere: the access log carries method, path (without query), status and route only.
//! Not here: metrics (`admin::metrics`).

use tracing_subscriber::{fmt, EnvFilter};

use crate::snapshot::LogSettings;

/// Keeps the background log writer alive; logs written before it drops are flushed.
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

pub fn init(log: &LogSettings) -> LogGuard {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| log.filter.clone())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    let json = log.json
        || std::env::var("PORTCULLIS_LOG_FORMAT")
            .map(|v| v.eq_ignore_ascii_case("json"))
            .unwrap_or(false);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_thread_names(true);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    LogGuard(guard)
}
