//! Per-worker request metrics, kept in plain (non-atomic) counters owned by one worker and copied
//! out when the stats endpoint scrapes; the admin thread sums the copies.
//!
//! Owns: counters by route and status, a fixed-bucket latency histogram, connection gauges, and
//! the Prometheus text rendering. Not here: the HTTP server for `/metrics` (see `admin`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Why a protection limit refused a request: the `reason` label of `portcullis_refused_total`
/// (README, "Limits and protection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A route's `localRateLimit` (429; also counted per route).
    RateLimit,
    /// The client's address spent its budget of failed token verifications (401).
    FailedVerifications,
    /// More requests waiting for signature-check time than the worker queues (503).
    VerifyQueueFull,
    /// `config.mcp.maxSessionsPerSubject` (429).
    SessionsPerSubject,
    /// `config.mcp.maxSessionsPerWorker` (503).
    SessionsPerWorker,
    /// `config.mcp.maxStdioProcesses` (503).
    StdioProcesses,
    /// `config.mcp.maxBufferedBytes` (503).
    BufferedBodies,
    /// A request body arriving below the minimum rate (408).
    BodyTooSlow,
}

impl Refused {
    pub(crate) const ALL: [Refused; 8] = [
        Refused::RateLimit,
        Refused::FailedVerifications,
        Refused::VerifyQueueFull,
        Refused::SessionsPerSubject,
        Refused::SessionsPerWorker,
        Refused::StdioProcesses,
        Refused::BufferedBodies,
        Refused::BodyTooSlow,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Refused::RateLimit => "rate_limit",
            Refused::FailedVerifications => "failed_verifications",
            Refused::VerifyQueueFull => "verify_queue_full",
            Refused::SessionsPerSubject => "sessions_per_subject",
            Refused::SessionsPerWorker => "sessions_per_worker",
            Refused::StdioProcesses => "stdio_processes",
            Refused::BufferedBodies => "buffered_bodies",
            Refused::BodyTooSlow => "body_too_slow",
        }
    }
}

/// Why authorization refused something (`portcullis_authorization_denied_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// A tool call, prompt get or resource read no rule allows (never forwarded).
    Call,
    /// The same, where more scopes would allow it: answered 403 `insufficient_scope`.
    InsufficientScope,
    /// A tool, prompt or resource left out of a list.
    ListItem,
    /// An HTTP request `authorization` refused (403).
    Http,
}

impl Denied {
    pub(crate) const ALL: [Denied; 4] = [
        Denied::Call,
        Denied::InsufficientScope,
        Denied::ListItem,
        Denied::Http,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denied::Call => "call",
            Denied::InsufficientScope => "insufficient_scope",
            Denied::ListItem => "list_item",
            Denied::Http => "http",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct WorkerMetrics {
    /// Requests refused by a protection limit, indexed by [`Refused`] (as `usize`).
    pub refused: [u64; Refused::ALL.len()],
    /// Requests refused by `localRateLimit`, by route name.
    pub rate_limited: HashMap<Box<str>, u64, foldhash::fast::RandomState>,
    /// Authorization denials (`mcpAuthorization`, `authorization`) by route, indexed by
    /// [`Denied`] (as `usize`).
    pub denied: HashMap<Box<str>, [u64; Denied::ALL.len()], foldhash::fast::RandomState>,
    /// route name → (status, count) pairs. Requests that matched no route use the name "".
    /// Keyed by an owned copy of the name so that counting never touches the snapshot's shared
    /// reference counts.
    pub requests: HashMap<Box<str>, Vec<(u16, u64)>, foldhash::fast::RandomState>,
    /// Cumulative-free counts per bucket; the last slot counts everything above the last bound.
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum: Duration,
    pub latency_count: u64,
    pub open_connections: u64,
    pub accepted_connections: u64,
}

impl WorkerMetrics {
    pub(crate) fn record(&mut self, route: &str, status: u16, elapsed: Duration) {
        let counts = match self.requests.get_mut(route) {
            Some(c) => c,
            None => self.requests.entry(route.into()).or_default(),
        };
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
        let secs = elapsed.as_secs_f64();
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[idx] += 1;
        self.latency_sum += elapsed;
        self.latency_count += 1;
    }

    pub(crate) fn refuse(&mut self, why: Refused) {
        self.refused[why as usize] += 1;
    }

    /// A request `localRateLimit` refused on `route`.
    pub(crate) fn rate_limited(&mut self, route: &str) {
        self.refuse(Refused::RateLimit);
        match self.rate_limited.get_mut(route) {
            Some(n) => *n += 1,
            None => {
                self.rate_limited.insert(route.into(), 1);
            }
        }
    }

    /// An authorization denial on `route`.
    pub(crate) fn denied(&mut self, route: &str, why: Denied, n: u64) {
        match self.denied.get_mut(route) {
            Some(c) => c[why as usize] += n,
            None => {
                let mut c = [0; Denied::ALL.len()];
                c[why as usize] = n;
                self.denied.insert(route.into(), c);
            }
        }
    }

    /// Adds `other`'s counts. Destructured so that a field added to [`WorkerMetrics`] does not
    /// compile until it is merged here (a forgotten field would read 0 at every scrape).
    pub(crate) fn merge(&mut self, other: &WorkerMetrics) {
        let WorkerMetrics {
            refused,
            rate_limited,
            denied,
            requests,
            latency,
            latency_sum,
            latency_count,
            open_connections,
            accepted_connections,
        } = other;
        for (a, b) in self.refused.iter_mut().zip(refused.iter()) {
            *a += b;
        }
        for (route, n) in rate_limited {
            *self.rate_limited.entry(route.clone()).or_default() += n;
        }
        for (route, counts) in denied {
            let mine = self.denied.entry(route.clone()).or_default();
            for (a, b) in mine.iter_mut().zip(counts) {
                *a += b;
            }
        }
        for (route, counts) in requests {
            let mine = self.requests.entry(route.clone()).or_default();
            for (status, n) in counts {
                match mine.iter_mut().find(|(s, _)| s == status) {
                    Some((_, m)) => *m += n,
                    None => mine.push((*status, *n)),
                }
            }
        }
        for (a, b) in self.latency.iter_mut().zip(latency.iter()) {
            *a += b;
        }
        self.latency_sum += *latency_sum;
        self.latency_count += latency_count;
        self.open_connections += open_connections;
        self.accepted_connections += accepted_connections;
    }
}

/// Renders per-worker snapshots (index = worker id) in the Prometheus text format, with
/// per-worker connection gauges and totals summed across workers.
pub(crate) fn render(workers: &[WorkerMetrics]) -> String {
    let mut total = WorkerMetrics::default();
    for w in workers {
        total.merge(w);
    }
    let mut s = String::with_capacity(4096);
    s.push_str("# HELP portcullis_requests_total HTTP requests served, by route and status.\n");
    s.push_str("# TYPE portcullis_requests_total counter\n");
    let mut rows: Vec<(&str, u16, u64)> = total
        .requests
        .iter()
        .flat_map(|(r, c)| c.iter().map(move |(s, n)| (&**r, *s, *n)))
        .collect();
    rows.sort();
    for (route, status, n) in rows {
        let _ = writeln!(
            s,
            "portcullis_requests_total{{route=\"{}\",status=\"{}\"}} {}",
            escape_label(route),
            status,
            n
        );
    }
    s.push_str(
        "# HELP portcullis_request_duration_seconds Time from request head to response end.\n",
    );
    s.push_str("# TYPE portcullis_request_duration_seconds histogram\n");
    let mut cum = 0u64;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cum += total.latency[i];
        let _ = writeln!(
            s,
            "portcullis_request_duration_seconds_bucket{{le=\"{bound}\"}} {cum}"
        );
    }
    cum += total.latency[LATENCY_BUCKETS.len()];
    let _ = writeln!(
        s,
        "portcullis_request_duration_seconds_bucket{{le=\"+Inf\"}} {cum}"
    );
    let _ = writeln!(
        s,
        "portcullis_request_duration_seconds_sum {}",
        total.latency_sum.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "portcullis_request_duration_seconds_count {}",
        total.latency_count
    );
    s.push_str(
        "# HELP portcullis_refused_total Requests refused by a protection limit, by reason.\n",
    );
    s.push_str("# TYPE portcullis_refused_total counter\n");
    for why in Refused::ALL {
        let _ = writeln!(
            s,
            "portcullis_refused_total{{reason=\"{}\"}} {}",
            why.as_str(),
            total.refused[why as usize]
        );
    }
    s.push_str(
        "# HELP portcullis_rate_limited_total Requests refused by localRateLimit, by route.\n",
    );
    s.push_str("# TYPE portcullis_rate_limited_total counter\n");
    let mut limited: Vec<(&str, u64)> =
        total.rate_limited.iter().map(|(r, n)| (&**r, *n)).collect();
    limited.sort();
    for (route, n) in limited {
        let _ = writeln!(
            s,
            "portcullis_rate_limited_total{{route=\"{}\"}} {n}",
            escape_label(route)
        );
    }
    s.push_str("# HELP portcullis_authorization_denied_total Requests and list items refused by mcpAuthorization or authorization, by route and reason.\n");
    s.push_str("# TYPE portcullis_authorization_denied_total counter\n");
    let mut denied: Vec<(&str, &[u64; Denied::ALL.len()])> =
        total.denied.iter().map(|(r, n)| (&**r, n)).collect();
    denied.sort();
    for (route, counts) in denied {
        for why in Denied::ALL {
            let _ = writeln!(
                s,
                "portcullis_authorization_denied_total{{route=\"{}\",reason=\"{}\"}} {}",
                escape_label(route),
                why.as_str(),
                counts[why as usize]
            );
        }
    }
    s.push_str("# HELP portcullis_open_connections Downstream connections open, per worker.\n");
    s.push_str("# TYPE portcullis_open_connections gauge\n");
    for (i, w) in workers.iter().enumerate() {
        let _ = writeln!(
            s,
            "portcullis_open_connections{{worker=\"{i}\"}} {}",
            w.open_connections
        );
    }
    s.push_str("# HELP portcullis_connections_accepted_total Downstream connections accepted, per worker.\n");
    s.push_str("# TYPE portcullis_connections_accepted_total counter\n");
    for (i, w) in workers.iter().enumerate() {
        let _ = writeln!(
            s,
            "portcullis_connections_accepted_total{{worker=\"{i}\"}} {}",
            w.accepted_connections
        );
    }
    s
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_renders() {
        let r = "r1";
        let mut a = WorkerMetrics::default();
        a.record(r, 200, Duration::from_micros(50));
        a.open_connections = 2;
        let mut b = WorkerMetrics::default();
        b.record(r, 200, Duration::from_millis(2));
        b.record("r\"2", 404, Duration::from_secs(9));
        a.rate_limited("r1");
        b.rate_limited("r1");
        b.refuse(Refused::StdioProcesses);
        let text = render(&[a, b]);
        assert!(
            text.contains("portcullis_rate_limited_total{route=\"r1\"} 2"),
            "{text}"
        );
        assert!(text.contains("portcullis_refused_total{reason=\"rate_limit\"} 2"));
        assert!(text.contains("portcullis_refused_total{reason=\"stdio_processes\"} 1"));
        assert!(text.contains("portcullis_refused_total{reason=\"body_too_slow\"} 0"));
        assert!(
            text.contains("portcullis_requests_total{route=\"r1\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("route=\"r\\\"2\",status=\"404\"} 1"));
        assert!(text.contains("portcullis_request_duration_seconds_bucket{le=\"0.0001\"} 1"));
        assert!(text.contains("portcullis_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("portcullis_open_connections{worker=\"0\"} 2"));
        assert!(text.contains("portcullis_request_duration_seconds_count 3"));
    }
}
