//! The MCP servers behind a session, one module per kind, behind one interface ([`Target`]):
//! `stdio` (a child process speaking newline-delimited JSON-RPC), `http` (a streamable-HTTP
//! server, over the worker's pooled keep-alive connections, `net::client`) and `sse` (a legacy HTTP+SSE server: one GET
//! stream, POSTs to the endpoint it announces). It routes what a server on one shared
//! stream (stdio, SSE) sends back to the request waiting for it (`shared_stream`).
//!
//! A new target kind touches: its module here; a variant of [`Target`] and its arms (the
//! compiler lists them); `snapshot::McpTargetKind` and its lowering in `config::lower`
//! (`mcp.targets[]`); the config validation of its fields (`config::validate`); and a test in
//! `tests/it/mcp.rs`.
//!
//! Not here: sessions (`relay::session`), routing calls across targets (`relay::call`).

pub(crate) mod http;
pub(crate) mod shared_stream;
pub(crate) mod sse;
pub(crate) mod stdio;

use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::net::client::Upstream;
use crate::relay::target::http::HttpTarget;
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::target::sse::SseTarget;
use crate::relay::target::stdio::Proc;
use crate::snapshot::{McpTarget, McpTargetKind, UpstreamSettings};

/// One MCP server behind a session.
pub(crate) enum Target {
    Stdio(Rc<Proc>),
    Http(Rc<HttpTarget>),
    Sse(Rc<SseTarget>),
}

impl Target {
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Stdio(p) => &p.target,
            Target::Http(h) => &h.target,
            Target::Sse(h) => &h.target,
        }
    }

    pub(crate) fn alive(&self) -> bool {
        match self {
            Target::Stdio(p) => p.alive(),
            Target::Http(h) => h.alive(),
            Target::Sse(h) => h.alive(),
        }
    }

    /// Whether the server ended the session's upstream session (an HTTP 404): it acted on
    /// nothing sent after that.
    pub(crate) fn ended_by_server(&self) -> bool {
        matches!(self, Target::Http(h) if h.ended_by_server())
    }

    /// Sends request `msg` (upstream id `id`); `trace` is the `traceparent` an HTTP target gets
    /// with it.
    pub(crate) fn request(
        &self,
        id: &str,
        msg: Vec<u8>,
        trace: Option<&[u8]>,
    ) -> UnboundedReceiver<TargetMsg> {
        match self {
            Target::Stdio(p) => p.request(id, msg),
            Target::Http(h) => h.request(id, msg, trace),
            Target::Sse(h) => h.request(id, msg),
        }
    }

    pub(crate) async fn send(&self, msg: Vec<u8>) {
        match self {
            Target::Stdio(p) => p.send(msg),
            Target::Http(h) => {
                if let Err(e) = h.send(msg).await {
                    tracing::warn!(target_name = %h.target, error = %e, "mcp notification not delivered");
                }
            }
            Target::Sse(h) => h.send(msg).await,
        }
    }

    pub(crate) async fn terminate(&self) {
        match self {
            Target::Stdio(p) => p.terminate().await,
            Target::Http(h) => h.terminate().await,
            Target::Sse(h) => h.terminate(),
        }
    }

    /// Gives up on request `id` (as sent upstream): the server is told with
    /// `notifications/cancelled`, and a late answer is dropped.
    pub(crate) fn cancel(&self, id: &str, reason: &str) {
        let note = cancelled_notification(id, reason);
        match self {
            Target::Stdio(p) => {
                if p.forget(id) {
                    p.send(note);
                }
            }
            Target::Http(h) => {
                let h = h.clone();
                monoio::spawn(async move {
                    let _ = h.send(note).await;
                });
            }
            Target::Sse(h) => {
                if h.forget(id) {
                    let h = h.clone();
                    monoio::spawn(async move { h.send(note).await });
                }
            }
        }
    }

    /// Starts target `t` of a new session: spawns a stdio server, opens a legacy SSE stream, or
    /// just records where a streamable-HTTP server is. `unsolicited` receives what a server on
    /// one shared stream sends outside any request.
    pub(crate) fn open(
        t: &McpTarget,
        authorization: Option<&str>,
        unsolicited: &UnboundedSender<Vec<u8>>,
        upstream: UpstreamSettings,
    ) -> Result<Target, String> {
        Ok(match &t.kind {
            McpTargetKind::Stdio {
                cmd,
                args,
                env,
                clear_env,
            } => Target::Stdio(Proc::spawn(
                &t.name,
                cmd,
                args,
                env,
                *clear_env,
                unsolicited.clone(),
            )?),
            McpTargetKind::Http {
                target,
                path,
                https,
                tls,
            } => Target::Http(HttpTarget::new(
                &t.name,
                Upstream::new(target, *https, tls.as_ref()),
                path,
                authorization.map(str::to_owned),
                upstream,
            )),
            McpTargetKind::Sse {
                target,
                path,
                https,
                tls,
            } => Target::Sse(SseTarget::open(
                &t.name,
                Upstream::new(target, *https, tls.as_ref()),
                path,
                authorization.map(str::to_owned),
                unsolicited.clone(),
                upstream,
            )),
        })
    }

    pub(crate) fn set_version(&self, v: &'static str) {
        if let Target::Http(h) = self {
            h.version.set(v);
        }
    }
}

/// `notifications/cancelled` for request `id` (raw JSON id text).
pub(crate) fn cancelled_notification(id: &str, reason: &str) -> Vec<u8> {
    let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":{reason}}}}}"#
    )
    .into_bytes()
}
