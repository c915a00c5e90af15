//! What the server decided about one request ([`Decision`]) and the plans it hands to the code
//! that carries it out: the plain forward ([`ProxyPlan`], `server::proxy`) and the MCP relay
//! ([`McpPlan`], `server::mcp`).
//!
//! Not here: how the decision is made (`server::dispatch`, `server::discovery`).

use std::sync::Arc;

use crate::http::response::LocalError;
use crate::net::addr::HostTarget;
use crate::policy::headers::HeaderModifier;
use crate::server::mcp::McpHead;
use crate::snapshot::{McpRoute, Route, Timeouts};

/// The outcome of [`decide`](crate::server::dispatch::decide).
pub(crate) enum Decision<'s> {
    /// A response was written to `out`; the status is returned for metrics and the access log.
    Local {
        status: u16,
        route: Option<&'s Route>,
        close: bool,
    },
    /// Forward to an upstream.
    Proxy(ProxyPlan<'s>),
    /// The token names a key the worker does not have: wait for the key manager's refetch of
    /// this source, then decide again (nothing was written).
    WaitForKeys(Arc<str>),
    /// The worker's share of signature-check time is spent: decide again at this instant.
    WaitToVerify(std::time::Instant),
    /// An MCP request for the relay (after authentication).
    Mcp(McpPlan<'s>),
}

/// An MCP request, once its head is no longer borrowed.
pub(crate) struct McpPlan<'s> {
    pub route: &'s Route,
    pub mcp: &'s Arc<McpRoute>,
    pub head: McpHead,
    /// CORS lines for the answer.
    pub added_headers: Vec<u8>,
    /// The route's `mcpAuthorization` and the caller.
    pub authz: Option<crate::relay::authorize::Asker>,
}

/// Everything the proxy needs once the request head is no longer borrowed.
pub(crate) struct ProxyPlan<'s> {
    /// For metrics and logs.
    pub labels: &'s crate::metrics::RouteLabels,
    /// A route's backend, or (for a request forwarded to the replica owning its MCP session)
    /// that replica's peer address.
    pub target: std::borrow::Cow<'s, HostTarget>,
    /// TLS to the backend (`backendTLS`); `None`: plain TCP.
    pub tls: Option<crate::net::client::Tls<'s>>,
    pub timeouts: Timeouts,
    pub response_headers: Option<&'s HeaderModifier>,
    /// The complete upstream request head, blank line included.
    pub head: Vec<u8>,
    /// Header lines (CRLF-terminated) to add to the downstream response: CORS.
    pub added_headers: Vec<u8>,
    pub head_request: bool,
    /// GET, HEAD, OPTIONS, TRACE, PUT or DELETE (RFC 9110 §9.2.2): safe to send twice.
    pub idempotent: bool,
    pub expect_continue: bool,
    pub client_http10: bool,
    /// To a peer replica: an unreachable one means the session is gone (404, not 502).
    pub peer: bool,
}

/// Writes the answer for `err` (with the route's CORS lines, if any) and returns the decision.
pub(crate) fn local_error<'s>(
    err: LocalError,
    route: Option<&'s Route>,
    added_headers: Option<&[u8]>,
    date: &[u8],
    close_after: bool,
    head_only: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let close = close_after || err.must_close();
    let pre = err.prebuilt();
    pre.write(out, date, added_headers.unwrap_or(b""), close, head_only);
    Decision::Local {
        status: pre.status,
        route,
        close,
    }
}
