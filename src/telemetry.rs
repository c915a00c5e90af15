//! Logging set-up: `tracing` with text or JSON lines, written by a background thread so workers
//! never block on the terminal.
//!
//! Filter precedence: `RUST_LOG`, then `config.logging.level`/`filter`, then `info`. Format: JSON
//! when `config.logging.format: json` or `PORTCULLIS_LOG_FORMAT=json`. The access log is the
//! `access` target at info level (`RUST_LOG=info,access=off` turns it off). Tokens are never
//! logged anywhere: the access log carries method, path (without query), status and route only.
//! Not here: metrics (`admin::metrics`).

// The filter's lock is the admin thread's and the callsite registry's (see `Dynamic`).
#![allow(clippy::disallowed_types)]

use std::sync::{OnceLock, RwLock};

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::snapshot::LogSettings;

/// The log filter, replaceable at run time (the admin endpoint's `/logging`) without a lock on
/// the request path: `tracing` caches every callsite's interest (always or never for the
/// directives Portcullis is run with), so the lock below is taken when a callsite registers and
/// when the filter changes (every interest is then rebuilt), not per event. Only a filter with
/// span-field directives asks `enabled` per event.
struct Dynamic {
    filter: RwLock<EnvFilter>,
    /// Its text, as `EnvFilter` prints it.
    current: RwLock<String>,
    /// The filter the process started with (`/logging?reset`).
    initial: String,
}

static FILTER: OnceLock<Dynamic> = OnceLock::new();

struct DynamicLayer(&'static Dynamic);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for DynamicLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        match self.0.filter.read() {
            Ok(f) => <EnvFilter as Layer<S>>::register_callsite(&f, meta),
            Err(_) => Interest::sometimes(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0
            .filter
            .read()
            .is_ok_and(|f| <EnvFilter as Layer<S>>::enabled(&f, meta, ctx))
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // Any level may be turned on later: no hint, so nothing is compiled out of the cache.
        None
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let Ok(f) = self.0.filter.read() {
            f.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Ok(f) = self.0.filter.read() {
            <EnvFilter as Layer<S>>::on_record(&f, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if let Ok(f) = self.0.filter.read() {
            <EnvFilter as Layer<S>>::on_enter(&f, id, ctx);
        }
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if let Ok(f) = self.0.filter.read() {
            <EnvFilter as Layer<S>>::on_exit(&f, id, ctx);
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if let Ok(f) = self.0.filter.read() {
            <EnvFilter as Layer<S>>::on_close(&f, id, ctx);
        }
    }
}

/// The log filter in effect (`RUST_LOG` syntax).
pub(crate) fn current_filter() -> Option<String> {
    let f = FILTER.get()?;
    Some(f.current.read().map(|c| c.clone()).unwrap_or_default())
}

/// The filter the process started with.
pub(crate) fn initial_filter() -> String {
    FILTER
        .get()
        .map_or_else(|| "info".to_owned(), |f| f.initial.clone())
}

/// Replaces the log filter (`RUST_LOG` syntax, e.g. `info,portcullis=debug`); the filter in
/// effect afterwards, or why `spec` was refused.
pub(crate) fn set_filter(spec: &str) -> Result<String, String> {
    let f = FILTER
        .get()
        .ok_or("logging is not set up by Portcullis in this process")?;
    let parsed = EnvFilter::try_new(spec).map_err(|e| format!("invalid filter {spec:?}: {e}"))?;
    let now = parsed.to_string();
    *f.filter.write().map_err(|_| "the log filter is poisoned")? = parsed;
    *f.current
        .write()
        .map_err(|_| "the log filter is poisoned")? = now.clone();
    tracing::callsite::rebuild_interest_cache();
    tracing::info!(filter = %now, "log filter changed");
    Ok(now)
}

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
    let current = filter.to_string();
    let dynamic = FILTER.get_or_init(|| Dynamic {
        filter: RwLock::new(filter),
        current: RwLock::new(current.clone()),
        initial: current,
    });
    let registry = tracing_subscriber::registry().with(DynamicLayer(dynamic));
    let layer = fmt::layer().with_writer(writer).with_thread_names(true);
    let _ = if json {
        registry.with(layer.json().flatten_event(true)).try_init()
    } else {
        registry.with(layer.with_ansi(false)).try_init()
    };
    LogGuard(guard)
}
