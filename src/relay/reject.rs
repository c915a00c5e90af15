//! Every MCP request refused before (or instead of) reaching a server, as one `Copy` value, and
//! the one place that maps it to an HTTP status and a JSON-RPC error: the transport rules of
//! `server::mcp` and the session rules of `relay::call` choose a [`Reject`]; [`Reject::reply`]
//! renders it.
//!
//! The refusals that carry more than a `Copy` value are rendered here too: an unsupported
//! protocol version ([`unsupported_version`], whose body lists the versions served) and
//! parameters the relay cannot route ([`invalid_params`]); so is the header a refusal carries
//! ([`refusal_header`]).
//!
//! Not here: errors a server sent (relayed as they are), call timeouts (`relay::call`).

use std::borrow::Cow;

use crate::mcp::jsonrpc;
use crate::relay::ReplyPart;

/// MCP's "session not found" / "request timed out" code as the SDKs use it.
pub(crate) const SESSION_NOT_FOUND: i64 = -32001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// On a loopback listener, a `Host` that is not a loopback name (DNS rebinding).
    HostNotAllowed,
    OriginNotAllowed,
    /// A stateful route, and the token names neither a subject nor a client.
    NoIdentity,
    /// A POST whose `Accept` lacks `application/json` or `text/event-stream`.
    NotAcceptablePost,
    /// A GET whose `Accept` lacks `text/event-stream`.
    NotAcceptableStream,
    UnsupportedMediaType,
    /// A method the route does not serve (GET or DELETE on a stateless route, any other).
    MethodNotAllowed,
    SessionIdRequired,
    SessionNotFound,
    SessionEnded,
    /// A JSON-RPC batch in a session of a version that has none (T4).
    BatchNotAllowed,
    /// The body is not one JSON-RPC message.
    NotJsonRpc(jsonrpc::PeekError),
    /// The worker holds `config.mcp.maxSessionsPerWorker` sessions.
    SessionsPerWorker {
        max: usize,
    },
    /// The client holds `held` sessions, the most `config.mcp.maxSessionsPerSubject` allows.
    SessionsPerSubject {
        held: usize,
        max: usize,
    },
    /// The process runs `running` stdio servers, the most `config.mcp.maxStdioProcesses` allows.
    StdioProcesses {
        running: usize,
        max: usize,
    },
    /// The session's MCP server could not be started.
    ServerNotStarted,
    /// A 2026-07-28 request's server could not be reached or broke off before answering.
    ServerUnreachable,
    /// A 2026-07-28 request's server did not answer within the route's call timeout.
    ServerTimedOut,
}

impl Reject {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::HostNotAllowed | Self::OriginNotAllowed | Self::NoIdentity => 403,
            Self::NotAcceptablePost | Self::NotAcceptableStream => 406,
            Self::UnsupportedMediaType => 415,
            Self::MethodNotAllowed => 405,
            Self::SessionIdRequired | Self::BatchNotAllowed | Self::NotJsonRpc(_) => 400,
            Self::SessionNotFound | Self::SessionEnded => 404,
            Self::SessionsPerSubject { .. } => 429,
            Self::SessionsPerWorker { .. } | Self::StdioProcesses { .. } => 503,
            Self::ServerNotStarted | Self::ServerUnreachable => 502,
            Self::ServerTimedOut => 504,
        }
    }

    fn code(self) -> i64 {
        match self {
            Self::SessionNotFound | Self::SessionEnded => SESSION_NOT_FOUND,
            Self::NotJsonRpc(e) => e.code(),
            Self::SessionsPerWorker { .. }
            | Self::SessionsPerSubject { .. }
            | Self::StdioProcesses { .. }
            | Self::ServerNotStarted
            | Self::ServerUnreachable
            | Self::ServerTimedOut => jsonrpc::INTERNAL_ERROR,
            _ => jsonrpc::INVALID_REQUEST,
        }
    }

    fn message(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::HostNotAllowed => "Host not allowed (DNS rebinding protection)",
            Self::OriginNotAllowed => "Origin not allowed",
            Self::NoIdentity => "the token names no subject (sub) or client (client_id, azp) to bind an MCP session to",
            Self::NotAcceptablePost => "Not Acceptable: the client must accept both application/json and text/event-stream",
            Self::NotAcceptableStream => "Not Acceptable: the client must accept text/event-stream",
            Self::UnsupportedMediaType => "Unsupported Media Type: Content-Type must be application/json",
            Self::MethodNotAllowed => "",
            Self::SessionIdRequired => "Bad Request: Mcp-Session-Id header is required",
            Self::SessionNotFound => "session not found",
            Self::SessionEnded => "session not found (it has ended)",
            Self::BatchNotAllowed => "JSON-RPC batches are not allowed in this protocol version",
            Self::NotJsonRpc(e) => e.message(),
            Self::ServerNotStarted => "the MCP server could not be started",
            Self::ServerUnreachable => "the MCP server could not be reached, or closed the connection before answering",
            Self::ServerTimedOut => "the MCP server did not answer in time",
            Self::SessionsPerWorker { max } => {
                return Cow::Owned(format!(
                    "the proxy holds its maximum of {max} MCP sessions on this worker; retry later"
                ))
            }
            Self::SessionsPerSubject { held, max } => {
                return Cow::Owned(format!("this client holds {held} MCP sessions, the most allowed (config.mcp.maxSessionsPerSubject = {max}): end one with DELETE or let one expire"))
            }
            Self::StdioProcesses { running, max } => {
                return Cow::Owned(format!("the proxy runs {running} MCP server processes, the most allowed (config.mcp.maxStdioProcesses = {max}); retry later"))
            }
        })
    }

    /// The answer, with the request's JSON-RPC `id` where it is known. A 405 has no body.
    pub(crate) fn reply(self, id: Option<&str>) -> ReplyPart {
        let body = match self {
            Self::MethodNotAllowed => Vec::new(),
            _ => jsonrpc::error_object(id, self.code(), &self.message(), None),
        };
        ReplyPart::Error {
            status: self.status(),
            body,
        }
    }
}

/// A 2026-07-28 request whose mirrored headers or body are refused (400).
pub(crate) fn modern_refused(r: &crate::mcp::modern::Refused) -> ReplyPart {
    ReplyPart::Error {
        status: 400,
        body: r.body(),
    }
}

/// A request for a protocol version this route does not serve: 400 with the versions it does
/// (and the request's id, when it has one).
pub(crate) fn unsupported_version(requested: &str, id: Option<&str>) -> ReplyPart {
    ReplyPart::Error {
        status: 400,
        body: crate::mcp::protocol::unsupported_version_error(requested, id),
    }
}

/// The header a refusal with `status` carries: `Allow` on a 405 (a stateless route serves POST
/// only), `Retry-After` when a limit may lift (429: a client's sessions; 503: the worker's).
pub(crate) fn refusal_header(status: u16, stateful: bool) -> Option<(&'static str, &'static [u8])> {
    match status {
        405 if stateful => Some(("allow", b"GET, POST, DELETE")),
        405 => Some(("allow", b"POST")),
        429 => Some(("retry-after", b"30")),
        503 => Some(("retry-after", b"5")),
        _ => None,
    }
}

/// Parameters the relay cannot route (a prefixed name of an unknown target and the like).
pub(crate) fn invalid_params(id: &str, why: &str) -> ReplyPart {
    ReplyPart::Error {
        status: 400,
        body: jsonrpc::error_object(Some(id), jsonrpc::INVALID_PARAMS, why, None),
    }
}

/// A call `mcpAuthorization` denies, answered as agentgateway answers it: 400, -32602
/// `Unknown tool: <name>` (prompt, resource), so a forbidden item looks like a missing one.
pub(crate) fn unknown_item(
    id: &str,
    kind: crate::policy::authz::ItemKind,
    name: &str,
) -> ReplyPart {
    let msg = format!("Unknown {}: {name}", kind.as_str());
    ReplyPart::Error {
        status: 400,
        body: jsonrpc::error_object(Some(id), jsonrpc::INVALID_PARAMS, &msg, None),
    }
}

/// A call the rules would allow with more scopes: 403 with the challenge that names them.
pub(crate) fn insufficient_scope(challenge_url: Option<&str>, scopes: &str) -> ReplyPart {
    let (challenge, body) = crate::auth::challenge::insufficient_scope(challenge_url, scopes);
    ReplyPart::Forbidden { challenge, body }
}
