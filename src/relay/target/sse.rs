//! Legacy HTTP+SSE MCP servers (protocol 2024-11-05): one long-lived `GET` event stream per
//! session whose first `endpoint` event names where to POST messages; answers come back on the
//! stream as `message` events and are routed to the waiting request by JSON-RPC id (the same
//! routing as stdio servers).
//!
//! Not here: the streamable-HTTP transport (`http`).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_channel::oneshot;

use crate::http::h1::{self, ChunkedDecoder, RespBody};
use crate::mcp::sse::SseParser;
use crate::net::client::{self, Conn, HeadError, Upstream};
use crate::relay::target::shared_stream::Pending;
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::MAX_MESSAGE;
use crate::snapshot::UpstreamSettings;

/// How long a message waits for the server's `endpoint` event.
const ENDPOINT_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct SseTarget {
    pub target: String,
    upstream: Upstream,
    settings: UpstreamSettings,
    /// Path (and query) to POST messages to, from the `endpoint` event.
    endpoint: RefCell<Option<String>>,
    endpoint_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    pending: Pending,
    authorization: Option<String>,
    alive: Cell<bool>,
}

impl SseTarget {
    pub(crate) fn open(
        target: &str,
        upstream: Upstream,
        path: &str,
        authorization: Option<String>,
        unsolicited: UnboundedSender<Vec<u8>>,
        settings: UpstreamSettings,
    ) -> Rc<SseTarget> {
        let t = Rc::new(SseTarget {
            target: target.to_owned(),
            upstream,
            settings,
            endpoint: RefCell::new(None),
            endpoint_waiters: RefCell::new(Vec::new()),
            pending: Pending::new(unsolicited),
            authorization,
            alive: Cell::new(true),
        });
        monoio::spawn(stream_loop(Rc::downgrade(&t), path.to_owned()));
        t
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.get()
    }

    pub(crate) fn request(self: &Rc<Self>, id: &str, msg: Vec<u8>) -> UnboundedReceiver<TargetMsg> {
        let (tx, rx) = self.pending.add(id);
        let me = self.clone();
        monoio::spawn(async move {
            if let Err(e) = me.post(msg).await {
                let _ = tx.unbounded_send(TargetMsg::Failed(e));
            }
        });
        rx
    }

    /// Stops waiting for request `id`; whether it was waiting.
    pub(crate) fn forget(&self, id: &str) -> bool {
        self.pending.forget(id)
    }

    pub(crate) async fn send(self: &Rc<Self>, msg: Vec<u8>) {
        if let Err(e) = self.post(msg).await {
            tracing::warn!(target_name = %self.target, error = %e, "message to the SSE server not delivered");
        }
    }

    pub(crate) fn terminate(&self) {
        self.alive.set(false);
        self.fail_all("the session ended");
    }

    /// A new connection to the server (a message POST, or the event stream).
    async fn connect(&self) -> Result<Conn, String> {
        let to = client::resolve(&self.upstream.target.addr, &self.settings)
            .await
            .map_err(|e| e.to_string())?;
        client::connect_any(&to, self.upstream.tls(), self.settings.connect_timeout)
            .await
            .map(|(_, conn)| conn)
            .map_err(|e| e.to_string())
    }

    async fn post(&self, msg: Vec<u8>) -> Result<(), String> {
        if self.endpoint.borrow().is_none() {
            let (tx, rx) = oneshot::channel();
            self.endpoint_waiters.borrow_mut().push(tx);
            let _ = monoio::time::timeout(ENDPOINT_WAIT, rx).await;
        }
        let endpoint = self
            .endpoint
            .borrow()
            .clone()
            .ok_or_else(|| format!("the SSE server {} sent no endpoint event", self.target))?;
        let mut conn = self.connect().await?;
        let mut head = Vec::with_capacity(256 + msg.len());
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(endpoint.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        h1::write_header(&mut head, "host", self.upstream.target.authority.as_bytes());
        h1::write_header(&mut head, "content-type", b"application/json");
        h1::write_header(
            &mut head,
            "content-length",
            msg.len().to_string().as_bytes(),
        );
        h1::write_header(&mut head, "connection", b"close");
        if let Some(a) = &self.authorization {
            h1::write_header(&mut head, "authorization", a.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&msg);
        conn.write_all(head)
            .await
            .0
            .map_err(|e| format!("POST to {}: {e}", self.target))?;
        let mut buf = Vec::new();
        match client::read_head(&mut conn, &mut buf, false, |_, _| ()).await {
            Ok((h, ())) if (200..300).contains(&h.status) => Ok(()),
            Ok((h, ())) => Err(format!(
                "the SSE server {} answered HTTP {}",
                self.target, h.status
            )),
            Err(HeadError::Closed) => Err(format!("{} closed the connection", self.target)),
            Err(HeadError::Invalid) => Err(format!(
                "the SSE server {} sent an invalid HTTP response",
                self.target
            )),
        }
    }

    fn fail_all(&self, why: &str) {
        self.pending.fail_all(why);
        self.endpoint_waiters.borrow_mut().clear();
    }
}

/// The endpoint path of an `endpoint` event: a path, or a URL on the same server.
fn endpoint_path(data: &str) -> String {
    let d = data.trim();
    match d.find("://") {
        Some(i) => d[i + 3..]
            .find('/')
            .map_or("/".to_owned(), |p| d[i + 3 + p..].to_owned()),
        None if d.starts_with('/') => d.to_owned(),
        None => format!("/{d}"),
    }
}

async fn stream_loop(t: Weak<SseTarget>, path: String) {
    let Some(me) = t.upgrade() else { return };
    let fail = |me: &SseTarget, why: String| {
        tracing::warn!(target_name = %me.target, error = %why, "SSE server stream ended");
        me.alive.set(false);
        me.fail_all(&why);
    };
    let mut conn: Conn = match me.connect().await {
        Ok(c) => c,
        Err(e) => return fail(&me, e),
    };
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"GET ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    h1::write_header(&mut head, "host", me.upstream.target.authority.as_bytes());
    h1::write_header(&mut head, "accept", b"text/event-stream");
    if let Some(a) = &me.authorization {
        h1::write_header(&mut head, "authorization", a.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    if let (Err(e), _) = conn.write_all(head).await {
        return fail(&me, e.to_string());
    }
    drop(me);
    let mut buf = Vec::new();
    // The head may take as long as the server likes; the session's end stops the wait.
    let head = client::read_head(&mut conn, &mut buf, false, |_, _| ()).await;
    let Some(me) = t.upgrade() else { return };
    let body_kind = match head {
        Ok((h, ())) if h.status == 200 => {
            buf.drain(..h.head_len);
            h.body
        }
        Ok((h, ())) => return fail(&me, format!("GET {path} answered HTTP {}", h.status)),
        Err(HeadError::Closed) => {
            return fail(&me, "the SSE server closed its event stream".into())
        }
        Err(HeadError::Invalid) => return fail(&me, "invalid HTTP response".into()),
    };
    drop(me);
    let mut dec = ChunkedDecoder::new(u64::MAX);
    let mut parser = SseParser::new(MAX_MESSAGE);
    loop {
        let Some(me) = t.upgrade() else { return };
        if !me.alive.get() {
            return;
        }
        let data: Vec<u8> = if matches!(body_kind, RespBody::Chunked) {
            let mut out = Vec::new();
            match client::dechunk(&mut dec, &buf, |d| out.extend_from_slice(d)) {
                Ok((consumed, _)) => {
                    buf.drain(..consumed);
                }
                Err(e) => return fail(&me, e.to_string()),
            }
            out
        } else {
            std::mem::take(&mut buf)
        };
        if parser.feed(&data).is_err() {
            return fail(&me, "an SSE event over the size limit".into());
        }
        while let Some(ev) = parser.next_event() {
            match ev.event.as_deref() {
                Some("endpoint") => {
                    *me.endpoint.borrow_mut() = Some(endpoint_path(&ev.data));
                    for w in me.endpoint_waiters.borrow_mut().drain(..) {
                        let _ = w.send(());
                    }
                }
                _ if !ev.data.is_empty() => me.pending.dispatch(&me.target, ev.data.into_bytes()),
                _ => {}
            }
        }
        drop(me);
        let read = conn.read_more(&mut buf).await;
        if let (Ok(0) | Err(_), Some(me)) = (read, t.upgrade()) {
            if me.alive.get() {
                fail(&me, "the SSE server closed its event stream".into());
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_forms() {
        assert_eq!(
            super::endpoint_path("/messages?sessionId=1"),
            "/messages?sessionId=1"
        );
        assert_eq!(super::endpoint_path("messages?x"), "/messages?x");
        assert_eq!(super::endpoint_path("http://h:1/m?s=2"), "/m?s=2");
    }
}
