//! The exporter thread: finished spans arrive over a bounded channel (a sampled request's
//! worker never waits: when the queue is full the spans are dropped and counted), are batched
//! (up to [`BATCH`] spans, or what arrived within [`FLUSH`]) and POSTed as an OTLP
//! `ExportTraceServiceRequest` (protobuf, encoded with the official definitions from
//! `opentelemetry-proto`) to the configured collector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    status, ResourceSpans, ScopeSpans, Span as PSpan, Status,
};
use prost::Message;

use super::{Span, TraceSettings, Value};

/// Spans per export request.
const BATCH: usize = 512;
/// The longest a finished span waits to be sent.
const FLUSH: Duration = Duration::from_millis(500);
/// Batches of spans queued for the exporter; beyond, spans are dropped (and counted).
const QUEUE: usize = 1024;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spans exported, those whose export failed, and those dropped because the exporter's queue
/// was full (`portcullis_trace_spans_total`). Touched per sampled request's export only.
pub(crate) struct Stats {
    pub exported: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub(crate) static STATS: Stats = Stats {
    exported: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
};

type Job = (Arc<TraceSettings>, Vec<Span>);

fn queue() -> &'static SyncSender<Job> {
    static TX: OnceLock<SyncSender<Job>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("portcullis-otlp".into())
            .spawn(move || run(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the trace exporter: spans will be dropped");
        }
        tx
    })
}

/// Hands a request's spans to the exporter (never blocks).
pub(crate) fn send(settings: &Arc<TraceSettings>, spans: Vec<Span>) {
    let n = spans.len() as u64;
    if queue().try_send((settings.clone(), spans)).is_err() {
        STATS.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

fn run(rx: mpsc::Receiver<Job>) {
    // Batches by destination (a reload may change the collector).
    let mut pending: Vec<(Arc<TraceSettings>, Vec<Span>)> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(3600), |t| {
            FLUSH.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok((settings, spans)) => {
                oldest.get_or_insert_with(Instant::now);
                match pending
                    .iter_mut()
                    .find(|(s, _)| Arc::ptr_eq(s, &settings) || **s == *settings)
                {
                    Some((_, v)) => v.extend(spans),
                    None => pending.push((settings, spans)),
                }
                if pending.iter().any(|(_, v)| v.len() >= BATCH) {
                    flush(&mut pending);
                    oldest = None;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                flush(&mut pending);
                oldest = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                flush(&mut pending);
                return;
            }
        }
    }
}

fn flush(pending: &mut Vec<(Arc<TraceSettings>, Vec<Span>)>) {
    for (settings, spans) in pending.drain(..) {
        for chunk in spans.chunks(BATCH) {
            let body = encode(chunk).encode_to_vec();
            let n = chunk.len() as u64;
            match crate::auth::fetch::post(
                &settings.url,
                "application/x-protobuf",
                &settings.headers,
                &body,
                EXPORT_TIMEOUT,
            ) {
                Ok(status) if (200..300).contains(&status) => {
                    STATS.exported.fetch_add(n, Ordering::Relaxed);
                }
                Ok(status) => {
                    STATS.failed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(url = %settings.url, status, spans = n, "trace export refused");
                }
                Err(e) => {
                    STATS.failed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(url = %settings.url, error = %e, spans = n, "trace export failed");
                }
            }
        }
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attr(key: &str, v: &Value) -> KeyValue {
    let value = match v {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(i) => any_value::Value::IntValue(*i),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The OTLP request for `spans`: one resource (`service.name` `portcullis`), one scope.
pub(crate) fn encode(spans: &[Span]) -> ExportTraceServiceRequest {
    let service = attr("service.name", &Value::Str("portcullis".to_owned()));
    let version = attr(
        "service.version",
        &Value::Str(env!("CARGO_PKG_VERSION").to_owned()),
    );
    let spans = spans
        .iter()
        .map(|s| PSpan {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: 0x101,
            name: s.name.clone(),
            kind: s.kind as i32,
            start_time_unix_nano: nanos(s.start),
            end_time_unix_nano: nanos(s.end),
            attributes: s.attributes.iter().map(|(k, v)| attr(k, v)).collect(),
            status: Some(Status {
                code: if s.error {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
                message: String::new(),
            }),
            ..PSpan::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service, version],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "portcullis".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
