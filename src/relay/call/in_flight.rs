//! One message on its way to one target and back: the upstream id it is given (and the client's
//! restored in the answer), the call timeout, cancellation when the client goes away or cancels,
//! the fan-out of list methods, and relaying the answer as JSON or SSE.
//!
//! Not here: sessions and routing between targets (`relay::call`).

use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use crate::mcp::compat;
use crate::mcp::jsonrpc::{self};
use crate::mcp::sse;
use crate::relay::session::Session;
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::ReplyPart;

/// The `result` member of a JSON-RPC response, if it is one.
pub(super) fn result_of(msg: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(msg).ok()?;
    let r = v.get("result")?;
    serde_json::to_vec(r).ok()
}

/// Sends the request to every target; returns each target's final message (or an error object),
/// with the client's id. Events from any target go to the session's stream; the whole fan-out
/// waits at most the route's call timeout.
pub(super) async fn fan_out<'s>(
    s: &'s Rc<Session>,
    id: &str,
    body: &[u8],
    trace: Option<&[u8]>,
) -> Vec<(&'s str, Vec<u8>)> {
    let mut calls: Vec<(&str, InFlight<'_>, UnboundedReceiver<TargetMsg>)> = s
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (call, msg) = InFlight::start(s, i, id, body);
            let rx = t.request(&call.upstream, msg, trace);
            (t.name(), call, rx)
        })
        .collect();
    let deadline = monoio::time::Instant::now() + s.route.call_timeout;
    let mut out = Vec::with_capacity(calls.len());
    for (name, call, rx) in calls.iter_mut() {
        let mut fin = None;
        loop {
            let next = monoio::time::timeout_at(deadline, rx.next()).await;
            match next {
                Ok(Some(TargetMsg::Event(e))) => {
                    if refused_server_request(s, call.target, &e).await {
                        continue;
                    }
                    // The merged answer is one JSON document; notifications that targets send
                    // meanwhile go to the session's server-to-client stream.
                    s.forward_unsolicited(&e);
                    tracing::debug!(target_name = %name, "notification during fan-out");
                }
                Ok(Some(TargetMsg::Final(f))) => {
                    call.done = true;
                    fin = Some(with_client_id(f, id));
                    break;
                }
                Ok(Some(TargetMsg::Failed(e))) => {
                    call.done = true;
                    fin = Some(jsonrpc::error_object(
                        Some(id),
                        jsonrpc::INTERNAL_ERROR,
                        &e,
                        None,
                    ));
                    break;
                }
                Ok(None) => {
                    call.done = true;
                    break;
                }
                Err(_) => {
                    call.reason = "timed out";
                    fin = Some(timeout_error(id, s.route.call_timeout));
                    break;
                }
            }
        }
        out.push((
            *name,
            fin.unwrap_or_else(|| {
                jsonrpc::error_object(Some(id), jsonrpc::INTERNAL_ERROR, "no answer", None)
            }),
        ));
    }
    out
}

/// One request sent to one target, from sending until its answer. Dropped before the answer —
/// the call timed out, or its client went away — it gives up on the request: the server gets
/// `notifications/cancelled` and a late answer is dropped.
pub(super) struct InFlight<'s> {
    s: &'s Session,
    target: usize,
    /// The id the request carries upstream ([`Session::upstream_id`]).
    pub(super) upstream: String,
    done: bool,
    reason: &'static str,
}

impl<'s> InFlight<'s> {
    /// Gives the request (`body`, with the client's `id`) an upstream id: returns the call and
    /// the message to send.
    pub(super) fn start(
        s: &'s Session,
        target: usize,
        id: &str,
        body: &[u8],
    ) -> (InFlight<'s>, Vec<u8>) {
        let up = s.upstream_id();
        let (upstream, msg) = match jsonrpc::replace_id(body, &up) {
            Ok(msg) => (up, msg),
            // Not a request with an id (the peek said it was): sent as it is.
            Err(_) => (id.to_owned(), body.to_vec()),
        };
        s.track_call(id, target, &upstream);
        let call = InFlight {
            s,
            target,
            upstream,
            done: false,
            reason: "the client went away",
        };
        (call, msg)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.s.untrack_call(&self.upstream);
        if !self.done {
            if let Some(t) = self.s.targets.get(self.target) {
                tracing::info!(mcp.session = %self.s.id, target_name = %t.name(), reason = self.reason, "mcp call given up; cancelling it upstream");
                t.cancel(&self.upstream, self.reason);
            }
        }
    }
}

/// In a compatibility session (`relay::compat`), a server's request to its client is answered
/// here with an error (its 2026-07-28 client could not answer it): true if `msg` was one.
async fn refused_server_request(s: &Session, target: usize, msg: &[u8]) -> bool {
    if !s.compat.get() || !compat::is_request(msg) {
        return false;
    }
    if let (Some(t), Some(refusal)) = (s.targets.get(target), compat::refuse_server_request(msg)) {
        tracing::info!(mcp.session = %s.id, target_name = %t.name(), "a server request refused: its client speaks 2026-07-28 through the compatibility mode");
        t.send(refusal).await;
    }
    true
}

/// A target's answer carries the id we gave the request; the client gets its own back.
pub(super) fn with_client_id(msg: Vec<u8>, id: &str) -> Vec<u8> {
    match jsonrpc::replace_id(&msg, id) {
        Ok(m) => m,
        Err(_) => msg,
    }
}

pub(super) fn timeout_error(id: &str, after: std::time::Duration) -> Vec<u8> {
    let msg = format!(
        "the MCP server did not answer within {} s (the route's timeout); the call was cancelled",
        after.as_secs_f64()
    );
    jsonrpc::error_object(Some(id), REQUEST_TIMEOUT, &msg, None)
}

/// The MCP SDKs' code for a request that timed out.
const REQUEST_TIMEOUT: i64 = -32001;

/// How often a call waiting for its answer checks that its client is still there.
const CLIENT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A client's `notifications/cancelled`: forwarded to the target that has the call, with the id
/// that target knows it by (a call already answered is not cancelled anywhere).
pub(super) fn cancel_from_client(s: &Session, body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let Some(wanted) = v.pointer("/params/requestId") else {
        return;
    };
    let reason = v
        .pointer("/params/reason")
        .and_then(|r| r.as_str())
        .unwrap_or("cancelled by the client");
    let calls: Vec<(usize, String)> = s.calls_of_value(wanted);
    for (ti, up) in calls {
        if let Some(t) = s.targets.get(ti) {
            t.cancel(&up, reason);
        }
    }
}

/// Relays one target's output for request `id` (the client's): JSON if the response comes
/// first, else SSE. Bounded by the route's call timeout; ends early, cancelling the call, when
/// the client's side of the reply is gone.
pub(super) async fn relay(
    s: &Rc<Session>,
    mut call: InFlight<'_>,
    id: &str,
    mut rx: UnboundedReceiver<TargetMsg>,
    reply: &UnboundedSender<ReplyPart>,
    session: Option<String>,
    filter: Option<&super::ListFilter<'_>>,
) {
    let deadline = monoio::time::Instant::now() + s.route.call_timeout;
    let mut sse_started = false;
    let err = loop {
        let now = monoio::time::Instant::now();
        let wait = deadline.saturating_duration_since(now).min(CLIENT_CHECK);
        let m = match monoio::time::timeout(wait, rx.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                call.done = true;
                break jsonrpc::error_object(
                    Some(id),
                    jsonrpc::INTERNAL_ERROR,
                    "the MCP server went away without answering",
                    None,
                );
            }
            Err(_) if reply.is_closed() => return, // dropping `call` cancels upstream
            Err(_) if monoio::time::Instant::now() >= deadline => {
                call.reason = "timed out";
                tracing::warn!(mcp.session = %s.id, timeout_ms = s.route.call_timeout.as_millis() as u64, "mcp call timed out");
                break timeout_error(id, s.route.call_timeout);
            }
            Err(_) => continue,
        };
        let (data, last) = match m {
            TargetMsg::Event(e) => {
                if refused_server_request(s, call.target, &e).await {
                    continue;
                }
                (e, false)
            }
            TargetMsg::Final(f) => {
                call.done = true;
                let answer = with_client_id(f, id);
                match filter {
                    Some(filter) => (filter.apply(s, id, answer), true),
                    None => (answer, true),
                }
            }
            TargetMsg::Failed(e) => {
                call.done = true;
                tracing::warn!(mcp.session = %s.id, error = %e, "mcp target failed");
                (
                    jsonrpc::error_object(Some(id), jsonrpc::INTERNAL_ERROR, &e, None),
                    true,
                )
            }
        };
        if last && !sse_started {
            let _ = reply.unbounded_send(ReplyPart::Json {
                body: data,
                session,
            });
            return;
        }
        if !sse_started {
            sse_started = true;
            let _ = reply.unbounded_send(ReplyPart::SseStart {
                session: session.clone(),
            });
        }
        let mut ev = Vec::with_capacity(data.len() + 32);
        sse::write_event(
            &mut ev,
            Some(&format!("r{}", s.next_event_id())),
            Some("message"),
            &data,
        );
        let _ = reply.unbounded_send(ReplyPart::Event(ev));
        if last {
            let _ = reply.unbounded_send(ReplyPart::End);
            return;
        }
    };
    if sse_started {
        let mut ev = Vec::new();
        sse::write_event(&mut ev, None, Some("message"), &err);
        let _ = reply.unbounded_send(ReplyPart::Event(ev));
        let _ = reply.unbounded_send(ReplyPart::End);
    } else {
        let _ = reply.unbounded_send(ReplyPart::Json { body: err, session });
    }
}
