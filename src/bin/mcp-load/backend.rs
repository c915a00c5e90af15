//! The built-in MCP backend (`mcp-load backend`): a streamable-HTTP server that answers
//! initialize (issuing `Mcp-Session-Id`), notifications (202), tools/list and tools/call (an
//! `echo` tool) as JSON or as SSE, DELETE, 2026-07-28 requests (`server/discover`, calls without
//! a session; with `--legacy`, refused with -32022), and the protected-resource metadata
//! document, with as little CPU as possible so that proxy overhead is what a benchmark sees.
//! Does not: keep session state (ids are issued, not tracked) or validate tokens; with
//! `--auth-challenge` it only checks that an `Authorization` header is present.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::Value;

use crate::server::{respond, Handler, Req};

pub struct Backend {
    /// Answer requests as `text/event-stream` (a notification event, then the response).
    pub sse: bool,
    /// Require `Accept`, `Mcp-Session-Id` and `MCP-Protocol-Version` as the spec says.
    pub strict: bool,
    /// Speak the 2025 revisions only (2026-07-28 requests: 400, -32022).
    pub legacy: bool,
    /// Answer POSTs without `Authorization` with 401 and this `resource_metadata` URL.
    pub challenge: Option<String>,
    /// The `resource` in the metadata document.
    pub resource: String,
    pub sessions: AtomicU64,
    pub nonce: u64,
    /// The tools/list result, rendered at start ([`tools_list`]).
    pub tools: String,
}

/// A tools/list result of `n` tools: `echo`, then `tool_1` … with a realistic schema.
pub fn tools_list(n: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(r#"{"tools":["#);
    out.push_str(ECHO_TOOL);
    for i in 1..n {
        let _ = write!(
            out,
            r#",{{"name":"tool_{i}","description":"Does the {i}-th thing with its input and returns a structured summary","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string"}},"limit":{{"type":"integer"}}}},"required":["query"]}}}}"#
        );
    }
    out.push_str("]}");
    out
}

#[derive(Deserialize)]
struct Msg<'a> {
    id: Option<Value>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    arguments: Option<Value>,
}

const ECHO_TOOL: &str = r#"{"name":"echo","description":"Echoes its message argument","inputSchema":{"type":"object","properties":{"message":{"type":"string"}}}}"#;
const JSON: &str = "content-type: application/json\r\n";

impl Handler for Backend {
    fn handle(&self, req: &Req<'_>, out: &mut Vec<u8>) {
        match req.method {
            "POST" => self.post(req, out),
            "DELETE" => respond(out, "200 OK", "", b""),
            "GET"
                if req
                    .path
                    .starts_with("/.well-known/oauth-protected-resource") =>
            {
                let body = serde_json::json!({
                    "resource": self.resource,
                    "authorization_servers": ["http://127.0.0.1/"],
                    "bearer_methods_supported": ["header"],
                });
                respond(out, "200 OK", JSON, body.to_string().as_bytes());
            }
            "GET" if req.path == "/healthz" => respond(out, "200 OK", "", b"ok"),
            _ => respond(
                out,
                "405 Method Not Allowed",
                "allow: POST, DELETE\r\n",
                b"",
            ),
        }
    }
}

impl Backend {
    fn post(&self, req: &Req<'_>, out: &mut Vec<u8>) {
        if let Some(url) = &self.challenge {
            if req.header("authorization").is_none() {
                let h = format!("www-authenticate: Bearer resource_metadata=\"{url}\"\r\n{JSON}");
                return respond(out, "401 Unauthorized", &h, br#"{"error":"unauthorized"}"#);
            }
        }
        let Ok(msg) = serde_json::from_slice::<Msg<'_>>(req.body) else {
            return respond(
                out,
                "400 Bad Request",
                JSON,
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
            );
        };
        let method = msg.method.as_deref().unwrap_or("");
        if self.legacy && req.header("mcp-protocol-version") == Some(b"2026-07-28") {
            let mut body = br#"{"jsonrpc":"2.0","id":"#.to_vec();
            let _ = serde_json::to_writer(&mut body, &msg.id);
            body.extend_from_slice(br#","error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2025-11-25","2025-06-18"],"requested":"2026-07-28"}}}"#);
            return respond(out, "400 Bad Request", JSON, &body);
        }
        if self.strict {
            let accept = req.header("accept").unwrap_or(b"");
            let has = |s: &[u8]| accept.windows(s.len()).any(|w| w == s);
            if !has(b"application/json") || !has(b"text/event-stream") {
                return respond(out, "406 Not Acceptable", "", b"");
            }
            // 2026-07-28 requests are self-contained: no session.
            let modern = req.header("mcp-protocol-version") == Some(b"2026-07-28");
            if method != "initialize"
                && !modern
                && (req.header("mcp-session-id").is_none()
                    || req.header("mcp-protocol-version").is_none())
            {
                return respond(out, "400 Bad Request", JSON, br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"missing session or protocol version header"}}"#);
            }
        }
        let Some(id) = msg.id.as_ref().filter(|_| msg.method.is_some()) else {
            // A notification or a response: accepted, no body.
            return respond(out, "202 Accepted", "", b"");
        };
        let mut extra = String::new();
        let mut body = Vec::with_capacity(256);
        let _ = write!(body, r#"{{"jsonrpc":"2.0","id":"#);
        let _ = serde_json::to_writer(&mut body, id);
        let params = msg.params.as_ref();
        match method {
            "initialize" => {
                let n = self.sessions.fetch_add(1, Ordering::Relaxed);
                extra = format!("mcp-session-id: {:016x}-{n:x}\r\n", self.nonce);
                let pv = params
                    .and_then(|p| p.protocol_version.as_deref())
                    .unwrap_or("2025-06-18");
                let _ = write!(body, r#","result":{{"protocolVersion":"#);
                let _ = serde_json::to_writer(&mut body, pv);
                let _ = write!(
                    body,
                    r#","capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"mcp-load-backend","version":"{}"}}}}}}"#,
                    env!("CARGO_PKG_VERSION")
                );
            }
            "tools/list" => {
                let _ = write!(body, r#","result":{}}}"#, self.tools);
            }
            "server/discover" => {
                let _ = write!(
                    body,
                    r#","result":{{"supportedVersions":["2026-07-28","2025-11-25","2025-06-18"],"capabilities":{{"tools":{{"listChanged":false}}}},"_meta":{{"io.modelcontextprotocol/serverInfo":{{"name":"mcp-load-backend","version":"{}"}}}}}}}}"#,
                    env!("CARGO_PKG_VERSION")
                );
            }
            "tools/call" if params.and_then(|p| p.name.as_deref()) == Some("echo") => {
                let args = params.and_then(|p| p.arguments.as_ref());
                // `message`, as the quickstart's demo server takes it (`text` from older runs).
                let arg = args.and_then(|a| a.get("message").or_else(|| a.get("text")));
                let text = match arg {
                    Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
                    _ => Cow::Owned(args.map(|a| a.to_string()).unwrap_or_default()),
                };
                let _ = write!(body, r#","result":{{"content":[{{"type":"text","text":"#);
                let _ = serde_json::to_writer(&mut body, &text);
                let _ = write!(body, r#"}}],"isError":false}}}}"#);
            }
            "tools/call" => {
                let _ = write!(
                    body,
                    r#","error":{{"code":-32602,"message":"unknown tool"}}}}"#
                );
            }
            "ping" => {
                let _ = write!(body, r#","result":{{}}}}"#);
            }
            _ => {
                let _ = write!(
                    body,
                    r#","error":{{"code":-32601,"message":"Method not found"}}}}"#
                );
            }
        }
        if !self.sse {
            extra.push_str(JSON);
            return respond(out, "200 OK", &extra, &body);
        }
        let mut events = Vec::with_capacity(body.len() + 160);
        if method == "tools/call" {
            // An unrelated event first: clients must wait for the one carrying their id.
            events.extend_from_slice(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n");
        }
        events.extend_from_slice(b"event: message\ndata: ");
        events.extend_from_slice(&body);
        events.extend_from_slice(b"\n\n");
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\n{extra}content-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
            events.len()
        );
        out.extend_from_slice(&events);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    }
}

/// Serves a fixed JWKS document on every GET.
pub struct JwksHandler {
    pub body: String,
}

impl Handler for JwksHandler {
    fn handle(&self, req: &Req<'_>, out: &mut Vec<u8>) {
        if req.method == "GET" {
            let h = format!("{JSON}cache-control: max-age=300\r\n");
            respond(out, "200 OK", &h, self.body.as_bytes());
        } else {
            respond(out, "405 Method Not Allowed", "allow: GET\r\n", b"");
        }
    }
}
