//! The MCP relay: sessions, and the calls they carry to stdio / streamable-HTTP / SSE servers,
//! in a shared-nothing runtime. It sees calls ([`McpCall`]) and answers them with reply parts
//! ([`ReplyPart`]); the HTTP rules toward clients are `server::mcp`'s.
//!
//! Sessions across cores. A session lives on exactly one worker — the one that answered its
//! `initialize` — and that worker owns its child processes and upstream connections. The session
//! id names its owner: two hex digits of worker index, then 128 random bits from the OS CSPRNG
//! (visible ASCII). A request for a session that lands on another worker (SO_REUSEPORT spreads
//! connections, not sessions) is handed to the owner as a [`McpCall`] through the owner's call
//! inbox ([`Relay::inbox`]); the owner runs it like a local call and streams the answer back as
//! [`ReplyPart`]s over a channel that the receiving worker copies to its client. Local calls
//! take the same path through a local channel, so there is one code path and no lock anywhere:
//! the only shared things are the per-worker channels. A session is bound to the authenticated
//! subject (issuer + `sub`); another subject presenting the id gets 404, like an unknown id.
//!
//! Modules: `session` (the per-worker table, ids, expiry), `call` (one call on the owner:
//! routing, fan-out and merging across targets), `target` (one module per kind of MCP server),
//! `modern` (2026-07-28 requests: no session, relayed on the worker that received them),
//! `compat` (2026-07-28 clients of 2025-era servers, through sessions Portcullis holds).
//! Not here: JSON-RPC/SSE/merge parsing (`mcp`, sans-IO), the HTTP transport toward clients
//! (`server::mcp`) or authentication (`auth`).

pub(crate) mod authorize;
pub(crate) mod call;
pub(crate) mod compat;
pub(crate) mod fanout;
pub(crate) mod modern;
pub(crate) mod reject;
pub(crate) mod session;
pub(crate) mod target;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use crate::shard::Shard;

/// One worker's relay: the sessions it owns, the calls for them that arrived through other
/// workers' connections, and every worker's call inbox (index = worker id). Built by
/// `runtime::worker`, which also runs [`Relay::serve_inbox`].
pub(crate) struct Relay {
    pub shard: Rc<Shard>,
    /// MCP sessions this worker owns.
    pub sessions: session::Sessions,
    /// Calls for this worker's sessions that arrived through another worker's connection and
    /// are still running: a drain waits for them as for its own connections.
    pub remote_calls: Cell<usize>,
    /// Upstream sessions held for 2026-07-28 clients, and what servers speak.
    pub compat: compat::Compat,
    inboxes: Arc<Vec<UnboundedSender<McpCall>>>,
}

impl Relay {
    pub(crate) fn new(shard: Rc<Shard>, inboxes: Arc<Vec<UnboundedSender<McpCall>>>) -> Self {
        Relay {
            shard,
            sessions: session::Sessions::default(),
            remote_calls: Cell::new(0),
            compat: compat::Compat::default(),
            inboxes,
        }
    }

    /// The call inbox of worker `id`.
    pub(crate) fn inbox(&self, id: usize) -> Option<&UnboundedSender<McpCall>> {
        self.inboxes.get(id)
    }

    /// Runs the calls other workers hand to this one (for sessions it owns), each in a task of
    /// its own, until every sender is gone.
    pub(crate) async fn serve_inbox(self: Rc<Self>, mut calls: UnboundedReceiver<McpCall>) {
        while let Some(call) = calls.next().await {
            let relay = self.clone();
            relay.remote_calls.set(relay.remote_calls.get() + 1);
            monoio::spawn(async move {
                call::run(relay.clone(), call).await;
                relay.remote_calls.set(relay.remote_calls.get() - 1);
            });
        }
    }
}

/// Largest MCP message accepted from a client or a server.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The authenticated party a session is bound to (issuer, then `sub:<sub>` or, for a token
/// without a subject, `client:<client_id or azp>`); `None` on open routes.
pub(crate) type Subject = Option<(String, String)>;

/// A verified token that names neither a subject nor a client: no session can be bound to it
/// (binding them all to the issuer alone would let their holders share each other's sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoIdentity;

/// The session binding of a request's verified token (`Ok(None)` when there is none).
pub(crate) fn binding(
    principal: Option<&crate::policy::mcp_auth::Principal>,
) -> Result<Subject, NoIdentity> {
    let Some(p) = principal else {
        return Ok(None);
    };
    let named = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    match (named(&p.sub), named(&p.client_id)) {
        (Some(sub), _) => Ok(Some((p.iss.clone(), format!("sub:{sub}")))),
        (None, Some(client)) => Ok(Some((p.iss.clone(), format!("client:{client}")))),
        (None, None) => Err(NoIdentity),
    }
}

/// One client request for a session, handed to the session's owning worker.
pub(crate) struct McpCall {
    pub session: String,
    /// [`McpRoute::key`](crate::snapshot::McpRoute::key) of the route the request came on.
    pub route: u64,
    pub op: CallOp,
    pub subject: Subject,
    /// The route's `mcpAuthorization` and the caller, for filtering lists on the owner.
    pub authz: Option<authorize::Authz>,
    pub reply: UnboundedSender<ReplyPart>,
    /// The `traceparent` HTTP targets get with this call's message (`config.tracing`).
    pub trace: Option<Vec<u8>>,
}

pub(crate) enum CallOp {
    /// A POSTed JSON-RPC message (or a batch, in 2025-03-26 sessions).
    Post(Vec<u8>),
    /// Open the server-to-client SSE stream, resuming after `Last-Event-ID` if given.
    Get(Option<String>),
    Delete,
}

/// The answer to a call, as it is produced.
#[derive(Debug)]
pub(crate) enum ReplyPart {
    /// A whole JSON answer, and the session id to announce (after initialize).
    Json {
        body: Vec<u8>,
        session: Option<String>,
    },
    /// Notifications and responses taken (no JSON-RPC body).
    Accepted,
    /// The session was ended by the client's DELETE.
    SessionDeleted,
    /// A server's whole answer relayed with its own status (2026-07-28 requests: a refusal
    /// such as -32022 must reach the client as the server sent it).
    Relayed { status: u16, body: Vec<u8> },
    /// 403 `insufficient_scope`: the `WWW-Authenticate` value and the body.
    Forbidden { challenge: String, body: Vec<u8> },
    /// A refusal at the HTTP level, with a JSON-RPC error body (or none, for 405); its status
    /// is chosen in one place, `relay::reject`.
    Error { status: u16, body: Vec<u8> },
    /// Switch to `text/event-stream`; events follow.
    SseStart { session: Option<String> },
    /// One rendered SSE event (`id:`/`data:` lines and the blank line).
    Event(Vec<u8>),
    /// The SSE stream is complete.
    End,
}
