//! Per-thread measurements: HdrHistograms of latency (nanoseconds, 3 significant digits) per
//! exchange kind and overall, outcome counters and errors by class; merged at the end.
//! Does not: decide what is measured when (the engine does) or print (see `report`).

use hdrhistogram::Histogram;

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer the scenario expects.
    Ok,
    /// A 401 for a deliberately invalid or expired token (the mix asked for it).
    Rejected,
    Err(ErrClass),
}

/// Error classes, counted separately in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrClass {
    Connect,
    Io,
    Timeout,
    /// Malformed HTTP framing.
    Http,
    /// An unexpected status code.
    Status,
    /// 401 for a token that should have been accepted.
    Unauthorized,
    /// 401 without `WWW-Authenticate: Bearer …` (and `resource_metadata=` where required).
    Challenge,
    /// A 2xx for a request without a valid token.
    AcceptedInvalid,
    /// 404 for a session the server had issued.
    SessionLost,
    /// SSE stream ended without an event carrying the response id.
    NoEvent,
    /// Not JSON, wrong id, or a result without the expected members.
    BadResponse,
    /// A JSON-RPC error object.
    JsonRpcError,
    /// A tools/call result with `isError: true`.
    ToolError,
}

impl ErrClass {
    pub const COUNT: usize = 13;
    pub const ALL: [ErrClass; ErrClass::COUNT] = [
        ErrClass::Connect,
        ErrClass::Io,
        ErrClass::Timeout,
        ErrClass::Http,
        ErrClass::Status,
        ErrClass::Unauthorized,
        ErrClass::Challenge,
        ErrClass::AcceptedInvalid,
        ErrClass::SessionLost,
        ErrClass::NoEvent,
        ErrClass::BadResponse,
        ErrClass::JsonRpcError,
        ErrClass::ToolError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrClass::Connect => "connect",
            ErrClass::Io => "io",
            ErrClass::Timeout => "timeout",
            ErrClass::Http => "http",
            ErrClass::Status => "status",
            ErrClass::Unauthorized => "unauthorized",
            ErrClass::Challenge => "challenge",
            ErrClass::AcceptedInvalid => "accepted_invalid",
            ErrClass::SessionLost => "session_lost",
            ErrClass::NoEvent => "no_event",
            ErrClass::BadResponse => "bad_response",
            ErrClass::JsonRpcError => "jsonrpc_error",
            ErrClass::ToolError => "tool_error",
        }
    }

    fn index(self) -> usize {
        ErrClass::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }
}

pub fn new_hist() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (1 ns .. 60 s, 3 digits).
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Everything one generator thread measured (or, merged, the whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    pub all: Histogram<u64>,
    pub ops: Vec<Option<Histogram<u64>>>,
    pub ok: u64,
    pub rejected: u64,
    pub errors: [u64; ErrClass::COUNT],
    /// `session` scenario: sessions that reached DELETE.
    pub sessions: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            all: new_hist(),
            ops: vec![None; Op::COUNT],
            ok: 0,
            rejected: 0,
            errors: [0; ErrClass::COUNT],
            sessions: 0,
        }
    }
}

impl Stats {
    /// Counts an outcome; answers (Ok and Rejected) also record their latency.
    pub fn record(&mut self, op: Op, latency_ns: u64, out: Outcome) {
        match out {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Err(c) => {
                self.errors[c.index()] += 1;
                return;
            }
        }
        let v = latency_ns.clamp(1, 60_000_000_000);
        // `v` is within the bounds, so recording cannot fail.
        let _ = self.all.record(v);
        let i = Op::ALL.iter().position(|&o| o == op).unwrap_or(0);
        let _ = self.ops[i].get_or_insert_with(new_hist).record(v);
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn answered(&self) -> u64 {
        self.ok + self.rejected
    }

    pub fn merge(&mut self, o: &Stats) {
        let _ = self.all.add(&o.all);
        for (mine, theirs) in self.ops.iter_mut().zip(&o.ops) {
            if let Some(t) = theirs {
                let _ = mine.get_or_insert_with(new_hist).add(t);
            }
        }
        self.ok += o.ok;
        self.rejected += o.rejected;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        self.sessions += o.sessions;
    }
}

/// One second of one thread's progress, for the live line.
#[derive(Debug)]
pub struct Tick {
    pub answered: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// One kind of HTTP exchange; each has its own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Initialize,
    Initialized,
    ToolsList,
    ToolsCall,
    Delete,
    Unauth,
    Metadata,
    Get,
    /// 2026-07-28 `server/discover`.
    Discover,
}

impl Op {
    pub const COUNT: usize = 9;
    pub const ALL: [Op; Op::COUNT] = [
        Op::Initialize,
        Op::Initialized,
        Op::ToolsList,
        Op::ToolsCall,
        Op::Delete,
        Op::Unauth,
        Op::Metadata,
        Op::Get,
        Op::Discover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Initialize => "initialize",
            Op::Initialized => "notifications/initialized",
            Op::ToolsList => "tools/list",
            Op::ToolsCall => "tools/call",
            Op::Delete => "DELETE",
            Op::Unauth => "initialize (no token)",
            Op::Metadata => "GET metadata",
            Op::Get => "GET",
            Op::Discover => "server/discover",
        }
    }
}
