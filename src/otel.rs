//! OpenTelemetry tracing (`config.tracing`): W3C trace context in and out, head sampling, and
//! the spans of a sampled request, handed to an exporter thread that sends them over OTLP/HTTP
//! (protobuf).
//!
//! Sampling is decided once, from the request head, with agentgateway's defaults: a request that
//! carries a `traceparent` is traced (`clientSampling`, default 1), one without is traced with
//! probability `randomSampling` (default 0). An unsampled request costs a header lookup and, when
//! it carries a trace context, nothing more: that context goes upstream as it came. A sampled
//! request gets a server span (its parent the client's span), an `auth` span when a policy
//! checked a token, and a client span for the upstream exchange whose id is the parent named in
//! the `traceparent` sent to `host` backends and 2026-07-28 MCP targets.
//!
//! Owns: trace ids, sampling, span records. Not here: encoding and sending (`export`).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) mod export;

/// `config.tracing`, lowered.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Where spans are POSTed (`otlpEndpoint` + `path`, default `/v1/traces`).
    pub url: String,
    /// Extra request headers of each export (`headers`: an API key, a tenant).
    pub headers: Vec<(String, String)>,
    /// Probability of tracing a request without a trace context.
    pub random: f64,
    /// Probability of tracing a request with one.
    pub client: f64,
}

/// A sampled request's trace: ids and what its spans record as the request goes.
pub(crate) struct Trace {
    pub settings: Arc<TraceSettings>,
    pub trace_id: [u8; 16],
    /// The client's span, if it sent a trace context.
    pub parent: Option<[u8; 8]>,
    pub server_span: [u8; 8],
    /// The id of the upstream exchange's span (the parent the upstream sees).
    pub upstream_span: [u8; 8],
    pub start: SystemTime,
    /// The request's method and path (without the query).
    pub method: String,
    pub path: String,
    /// When authentication ran: its start, duration and result.
    pub auth: Cell<Option<(SystemTime, Duration, &'static str)>>,
}

/// What a request head says about tracing.
pub(crate) enum Context {
    /// Traced here.
    Sampled(Box<Trace>),
    /// Not traced here; the client's `traceparent` (if any) goes upstream unchanged.
    Passed,
    /// Not configured.
    Off,
}

impl Context {
    pub(crate) fn sampled(&self) -> Option<&Trace> {
        match self {
            Context::Sampled(t) => Some(t),
            _ => None,
        }
    }
}

/// A W3C `traceparent` value: version `00`, trace id, parent span id, flags.
pub(crate) fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8])> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut parts = s.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; a later version may add some (W3C: read the four).
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex_into(trace, &mut t)?;
    hex_into(span, &mut p)?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((t, p))
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2)?;
        if !pair
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(())
}

fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(H[usize::from(b >> 4)]);
        out.push(H[usize::from(b & 15)]);
    }
}

/// The `traceparent` the upstream gets: this trace, the upstream exchange's span, sampled.
pub(crate) fn traceparent(t: &Trace) -> Vec<u8> {
    let mut v = Vec::with_capacity(55);
    v.extend_from_slice(b"00-");
    hex(&t.trace_id, &mut v);
    v.push(b'-');
    hex(&t.upstream_span, &mut v);
    v.extend_from_slice(b"-01");
    v
}

/// Decides a request's tracing from its `traceparent` header; `random` yields uniform u64s
/// (the worker's generator).
pub(crate) fn decide(
    settings: Option<&Arc<TraceSettings>>,
    header: Option<&[u8]>,
    mut random: impl FnMut() -> u64,
) -> Context {
    let Some(settings) = settings else {
        return Context::Off;
    };
    let client = header.and_then(parse_traceparent);
    let p = if client.is_some() {
        settings.client
    } else {
        settings.random
    };
    // A probability of 1 never draws; 0 never samples.
    let sampled = p >= 1.0 || (p > 0.0 && (random() >> 11) as f64 / (1u64 << 53) as f64 <= p);
    if !sampled {
        return Context::Passed;
    }
    let mut ids = [0u8; 32];
    for chunk in ids.chunks_mut(8) {
        chunk.copy_from_slice(&random().to_le_bytes());
    }
    let (trace_id, parent) = match client {
        Some((t, p)) => (t, Some(p)),
        None => {
            let mut t = [0u8; 16];
            t.copy_from_slice(&ids[..16]);
            (t, None)
        }
    };
    let mut server_span = [0u8; 8];
    server_span.copy_from_slice(&ids[16..24]);
    let mut upstream_span = [0u8; 8];
    upstream_span.copy_from_slice(&ids[24..32]);
    // Never the all-zero id W3C calls invalid.
    server_span[0] |= 1;
    upstream_span[0] |= 1;
    Context::Sampled(Box::new(Trace {
        settings: settings.clone(),
        trace_id,
        parent,
        server_span,
        upstream_span,
        start: SystemTime::now(),
        method: String::new(),
        path: String::new(),
        auth: Cell::new(None),
    }))
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
}

/// The span kinds Portcullis records (OTLP's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// One finished span, as the exporter encodes it.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: bool,
}

/// What the server span records of a finished request.
pub(crate) struct Finished<'a> {
    pub route: &'a str,
    pub status: u16,
    pub client: std::net::SocketAddr,
    pub worker: usize,
    /// The upstream exchange (start, duration, the span's name and the server it went to),
    /// when there was one.
    pub upstream: Option<(SystemTime, Duration, &'static str, String)>,
}

/// Ends a sampled request: its spans go to the exporter.
pub(crate) fn finish(t: &Trace, f: Finished<'_>) {
    let end = SystemTime::now();
    let mut spans = Vec::with_capacity(3);
    let name = if f.route.is_empty() {
        t.method.clone()
    } else {
        format!("{} {}", t.method, f.route)
    };
    let mut attributes = vec![
        ("http.request.method", Value::Str(t.method.clone())),
        ("url.path", Value::Str(t.path.clone())),
        ("http.response.status_code", Value::Int(i64::from(f.status))),
        ("client.address", Value::Str(f.client.ip().to_string())),
        ("portcullis.worker", Value::Int(f.worker as i64)),
    ];
    if !f.route.is_empty() {
        attributes.push(("http.route", Value::Str(f.route.to_owned())));
    }
    spans.push(Span {
        trace_id: t.trace_id,
        span_id: t.server_span,
        parent: t.parent,
        name,
        kind: Kind::Server,
        start: t.start,
        end,
        attributes,
        error: f.status >= 500,
    });
    if let Some((start, took, result)) = t.auth.get() {
        let mut id = t.server_span;
        id[7] ^= 0x5a;
        spans.push(Span {
            trace_id: t.trace_id,
            span_id: id,
            parent: Some(t.server_span),
            name: "auth".to_owned(),
            kind: Kind::Internal,
            start,
            end: start + took,
            attributes: vec![("portcullis.auth.result", Value::Str(result.to_owned()))],
            error: false,
        });
    }
    if let Some((start, took, name, server)) = f.upstream {
        spans.push(Span {
            trace_id: t.trace_id,
            span_id: t.upstream_span,
            parent: Some(t.server_span),
            name: name.to_owned(),
            kind: Kind::Client,
            start,
            end: start + took,
            attributes: vec![("server.address", Value::Str(server))],
            error: f.status >= 500,
        });
    }
    export::send(&t.settings, spans);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_in_and_out() {
        let v = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (t, p) = parse_traceparent(v).unwrap();
        assert_eq!(t[0], 0x4b);
        assert_eq!(p[7], 0xb7);
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"garbage",
        ] {
            assert!(
                parse_traceparent(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version may carry more fields: the first four are read.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab")
                .is_some()
        );
        let s = Arc::new(TraceSettings {
            url: String::new(),
            headers: Vec::new(),
            random: 0.0,
            client: 1.0,
        });
        let mut n = 0u64;
        let ctx = decide(Some(&s), Some(v), || {
            n += 1;
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let t = ctx
            .sampled()
            .expect("a client trace is followed by default");
        assert_eq!(t.parent, Some(p));
        let out = traceparent(t);
        assert_eq!(&out[..36], &v[..36]);
        assert_eq!(out.len(), 55);
        assert!(matches!(decide(Some(&s), None, || 7), Context::Passed));
        assert!(matches!(decide(None, Some(v), || 7), Context::Off));
    }

    #[test]
    fn random_sampling_is_a_probability() {
        let s = Arc::new(TraceSettings {
            url: String::new(),
            headers: Vec::new(),
            random: 0.25,
            client: 1.0,
        });
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let sampled = (0..4000)
            .filter(|_| decide(Some(&s), None, &mut next).sampled().is_some())
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
    }
}
