//! Routing messages from a server that answers on one shared stream (stdio servers, legacy SSE
//! servers) to the requests waiting for them, by JSON-RPC id — the id Portcullis gave the request
//! upstream (`relay::call` assigns them per session), never the client's: the response ends its request;
//! notifications and server requests go to the newest pending request (its SSE answer), or to
//! the session's server-to-client stream when nothing is pending.
//!
//! Not here: how the stream is read (`stdio`, `sse`).

use std::cell::RefCell;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::mcp::jsonrpc::{self, Kind};

/// What a target sends back for one request.
#[derive(Debug)]
pub(crate) enum TargetMsg {
    /// A notification or server request that belongs to the request's stream.
    Event(Vec<u8>),
    /// The JSON-RPC response: the request is complete.
    Final(Vec<u8>),
    /// The target failed before answering.
    Failed(String),
}

pub(crate) struct Pending {
    /// (JSON-RPC id as raw JSON text, sink) of requests waiting for their response.
    waiting: RefCell<Vec<(String, UnboundedSender<TargetMsg>)>>,
    /// Messages no pending request claims (server-initiated).
    unsolicited: UnboundedSender<Vec<u8>>,
}

impl Pending {
    pub(crate) fn new(unsolicited: UnboundedSender<Vec<u8>>) -> Self {
        Self {
            waiting: RefCell::new(Vec::new()),
            unsolicited,
        }
    }

    /// Registers request `id`; its events and response arrive on the returned receiver.
    pub(crate) fn add(
        &self,
        id: &str,
    ) -> (UnboundedSender<TargetMsg>, UnboundedReceiver<TargetMsg>) {
        let (tx, rx) = unbounded();
        self.waiting.borrow_mut().push((id.to_owned(), tx.clone()));
        (tx, rx)
    }

    /// Routes one message from the server named `target`.
    pub(crate) fn dispatch(&self, target: &str, msg: Vec<u8>) {
        let Ok(env) = jsonrpc::peek(&msg) else {
            tracing::warn!(target_name = %target, "mcp server sent something that is not JSON-RPC; ignored");
            return;
        };
        match env.kind {
            Kind::Response => {
                let id = env.id.unwrap_or("null");
                let mut waiting = self.waiting.borrow_mut();
                match waiting.iter().position(|(p, _)| p == id) {
                    Some(pos) => {
                        let (_, tx) = waiting.swap_remove(pos);
                        let _ = tx.unbounded_send(TargetMsg::Final(msg));
                    }
                    None => {
                        tracing::debug!(target_name = %target, "response to no pending request; dropped")
                    }
                }
            }
            Kind::Notification | Kind::Request => match self.waiting.borrow().last() {
                Some((_, tx)) => {
                    let _ = tx.unbounded_send(TargetMsg::Event(msg));
                }
                None => {
                    let _ = self.unsolicited.unbounded_send(msg);
                }
            },
        }
    }

    /// Stops waiting for request `id` (the call timed out or its client went away); whether it
    /// was still waiting. A late answer to it is then dropped.
    pub(crate) fn forget(&self, id: &str) -> bool {
        let mut waiting = self.waiting.borrow_mut();
        match waiting.iter().position(|(p, _)| p == id) {
            Some(pos) => {
                waiting.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    /// The newest waiting request, removed (it gets an error instead of an answer).
    pub(crate) fn pop_newest(&self) -> Option<(String, UnboundedSender<TargetMsg>)> {
        self.waiting.borrow_mut().pop()
    }

    /// Every waiting request gets `why` as a failure.
    pub(crate) fn fail_all(&self, why: &str) {
        for (_, tx) in self.waiting.borrow_mut().drain(..) {
            let _ = tx.unbounded_send(TargetMsg::Failed(why.to_owned()));
        }
    }
}
