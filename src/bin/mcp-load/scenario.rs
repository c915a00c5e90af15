//! Scenarios as per-virtual-user state machines: which request comes next, how it is written,
//! and how its answer is judged (status, challenge, JSON-RPC id and result shape).
//! Does not: do I/O or keep time (the engine does), or choose tokens (see `plan`).

use std::io::Write;
use std::net::SocketAddr;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::client::{BodyKind, Reply};
use crate::stats::{ErrClass, Op, Outcome};

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// POST initialize without a token; expects 401 and a Bearer challenge with resource_metadata.
    Unauth,
    /// GET the RFC 9728 protected-resource metadata document.
    Metadata,
    /// Per virtual user: initialize, notifications/initialized, tools/list, K x tools/call, DELETE.
    Session,
    /// Steady tools/call on sessions established before the measurement starts.
    Call,
    /// Steady tools/list on sessions established before the measurement starts (with
    /// `backend --tools N`, what relaying and filtering a long list costs).
    List,
    /// MCP 2026-07-28: per virtual user, server/discover once, then steady self-contained
    /// tools/call requests (no session; `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the
    /// `_meta` version on each).
    Modern,
    /// Plain GET of the URL, status 2xx only: the generator's own ceiling against any responder.
    /// With tokens (--token, --token-file, --sign-key) each GET carries the next one as a bearer
    /// token (and --invalid-share/--unique-tokens apply): a jwtAuth route without a backend.
    Get,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Unauth => "unauth",
            Scenario::Metadata => "metadata",
            Scenario::Session => "session",
            Scenario::Call => "call",
            Scenario::List => "list",
            Scenario::Get => "get",
            Scenario::Modern => "modern",
        }
    }

    /// Whether requests of this scenario carry a bearer token.
    pub fn uses_tokens(self) -> bool {
        matches!(
            self,
            Scenario::Session | Scenario::Call | Scenario::List | Scenario::Get | Scenario::Modern
        )
    }
}

/// What the token plan expects for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Accept,
    /// An invalid or expired token: the answer must be 401 with a Bearer challenge.
    Reject,
}

/// Where requests go and what MCP requests carry; shared read-only by all virtual users.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    pub path: String,
    pub metadata_path: String,
    pub protocol_version: String,
    /// The tool name as a JSON string literal.
    pub tool_json: String,
    /// The tool name as the `Mcp-Name` header carries it (base64 when not plain ASCII).
    pub tool_header: String,
    /// The tool arguments as JSON text.
    pub args_json: String,
    /// tools/call requests per session in the `session` scenario.
    pub calls: u32,
}

/// The per-virtual-user scenario state.
#[derive(Debug, Default)]
pub struct Vu {
    pub session: Option<String>,
    step: u32,
    next_id: u64,
    body: Vec<u8>,
    /// The whole request for scenarios whose request never changes (get, metadata, unauth),
    /// rendered once: those paths are the ones fast enough for formatting to show.
    fixed: Vec<u8>,
    /// Requests are 2026-07-28 ones (the `modern` scenario).
    modern: bool,
}

impl Vu {
    pub fn new(id_base: u64) -> Vu {
        Vu {
            next_id: id_base,
            body: Vec::with_capacity(512),
            ..Vu::default()
        }
    }

    /// The next exchange for `sc`.
    pub fn next_op(&mut self, sc: Scenario, t: &Target) -> Op {
        self.modern = sc == Scenario::Modern;
        match sc {
            Scenario::Unauth => Op::Unauth,
            Scenario::Metadata => Op::Metadata,
            Scenario::Get => Op::Get,
            Scenario::Call => match self.step {
                0 => Op::Initialize,
                1 => Op::Initialized,
                _ => Op::ToolsCall,
            },
            Scenario::List => match self.step {
                0 => Op::Initialize,
                1 => Op::Initialized,
                _ => Op::ToolsList,
            },
            Scenario::Modern => match self.step {
                0 => Op::Discover,
                _ => Op::ToolsCall,
            },
            Scenario::Session => match self.step {
                0 => Op::Initialize,
                1 => Op::Initialized,
                2 => Op::ToolsList,
                s if s < 3 + t.calls => Op::ToolsCall,
                _ => Op::Delete,
            },
        }
    }

    /// Writes the request for `op` into `w`; returns the JSON-RPC id to wait for, if any.
    pub fn write(
        &mut self,
        op: Op,
        t: &Target,
        token: Option<&str>,
        w: &mut Vec<u8>,
    ) -> Option<u64> {
        let plain_get = op == Op::Get && token.is_none();
        if plain_get || matches!(op, Op::Metadata | Op::Unauth) {
            if self.fixed.is_empty() {
                let mut f = Vec::new();
                self.render(op, t, None, &mut f);
                self.fixed = f;
            }
            w.extend_from_slice(&self.fixed);
            return None;
        }
        self.render(op, t, token, w)
    }

    fn render(&mut self, op: Op, t: &Target, token: Option<&str>, w: &mut Vec<u8>) -> Option<u64> {
        if self.modern || op == Op::Discover {
            return self.render_modern(op, t, token, w);
        }
        let id = self.next_id;
        let b = &mut self.body;
        b.clear();
        // Writes into a Vec cannot fail.
        let _ = match op {
            Op::Get => {
                let _ = write!(w, "GET {} HTTP/1.1\r\nHost: {}\r\n", t.path, t.host);
                if let Some(tok) = token {
                    let _ = write!(w, "Authorization: Bearer {tok}\r\n");
                }
                w.extend_from_slice(b"\r\n");
                return None;
            }
            Op::Metadata => {
                let _ = write!(
                    w,
                    "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
                    t.metadata_path, t.host
                );
                return None;
            }
            Op::Delete => {
                let _ = write!(w, "DELETE {} HTTP/1.1\r\nHost: {}\r\n", t.path, t.host);
                self.mcp_headers(t, token, w);
                w.extend_from_slice(b"\r\n");
                return None;
            }
            Op::Initialize | Op::Unauth => write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"mcp-load","version":"{}"}}}}}}"#,
                t.protocol_version,
                env!("CARGO_PKG_VERSION")
            ),
            Op::Initialized => write!(
                b,
                r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
            ),
            Op::ToolsList => write!(b, r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#),
            Op::Discover => unreachable!("rendered by render_modern"),
            Op::ToolsCall => write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":{},"arguments":{}}}}}"#,
                t.tool_json, t.args_json
            ),
        };
        let _ = write!(
            w,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
            t.path, t.host
        );
        if op != Op::Unauth {
            self.mcp_headers(t, token, w);
        }
        let _ = write!(w, "Content-Length: {}\r\n\r\n", self.body.len());
        w.extend_from_slice(&self.body);
        if op == Op::Initialized {
            return None;
        }
        self.next_id += 1;
        Some(id)
    }

    /// A 2026-07-28 request: self-contained, with the mirrored headers and `_meta`.
    fn render_modern(
        &mut self,
        op: Op,
        t: &Target,
        token: Option<&str>,
        w: &mut Vec<u8>,
    ) -> Option<u64> {
        let id = self.next_id;
        let b = &mut self.body;
        b.clear();
        let meta = concat!(
            r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
            r#""io.modelcontextprotocol/clientInfo":{"name":"mcp-load","version":""#,
            env!("CARGO_PKG_VERSION"),
            r#""},"io.modelcontextprotocol/clientCapabilities":{}}"#
        );
        let (method, name) = match op {
            Op::Discover => {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"server/discover","params":{{{meta}}}}}"#
                );
                ("server/discover", None)
            }
            _ => {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":{},"arguments":{},{meta}}}}}"#,
                    t.tool_json, t.args_json
                );
                ("tools/call", Some(t.tool_header.as_str()))
            }
        };
        let _ = write!(
            w,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\n",
            t.path, t.host
        );
        if let Some(n) = name {
            let _ = write!(w, "Mcp-Name: {n}\r\n");
        }
        if let Some(tok) = token {
            let _ = write!(w, "Authorization: Bearer {tok}\r\n");
        }
        let _ = write!(w, "Content-Length: {}\r\n\r\n", self.body.len());
        w.extend_from_slice(&self.body);
        self.next_id += 1;
        Some(id)
    }

    fn mcp_headers(&self, t: &Target, token: Option<&str>, w: &mut Vec<u8>) {
        if let Some(tok) = token {
            let _ = write!(w, "Authorization: Bearer {tok}\r\n");
        }
        if let Some(s) = &self.session {
            let _ = write!(w, "Mcp-Session-Id: {s}\r\n");
        }
        if self.step > 0 {
            let _ = write!(w, "MCP-Protocol-Version: {}\r\n", t.protocol_version);
        }
    }

    /// Moves the state machine on after `op` ended with `out`.
    pub fn advance(&mut self, sc: Scenario, t: &Target, op: Op, out: Outcome, r: &Reply) {
        self.modern = sc == Scenario::Modern;
        match (op, out) {
            // No session to lose: a failed discover is tried again, calls go on regardless.
            (Op::Discover, Outcome::Ok) => self.step = 1,
            (Op::Discover, _) => {}
            (Op::ToolsCall, _) if sc == Scenario::Modern => {}
            (Op::Initialize, Outcome::Ok) => {
                self.session = r.session.clone();
                self.step = 1;
            }
            (Op::Initialize, _) => self.restart(),
            (Op::Delete, _) => self.restart(),
            (_, Outcome::Err(ErrClass::SessionLost)) => self.restart(),
            (_, Outcome::Err(_)) if sc == Scenario::Session => self.restart(),
            (Op::ToolsCall, _) if sc == Scenario::Call => {}
            (Op::ToolsList, _) if sc == Scenario::List => {}
            (Op::Initialized | Op::ToolsList | Op::ToolsCall, _) => {
                self.step += 1;
                if sc == Scenario::Session && self.step > 3 + t.calls {
                    self.restart();
                }
            }
            _ => {}
        }
    }

    fn restart(&mut self) {
        self.session = None;
        self.step = 0;
    }
}

#[derive(Deserialize)]
struct RpcMsg {
    id: Option<serde_json::Value>,
    result: Option<RpcResult>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcResult {
    protocol_version: Option<IgnoredAny>,
    supported_versions: Option<Vec<IgnoredAny>>,
    tools: Option<Vec<IgnoredAny>>,
    content: Option<Vec<IgnoredAny>>,
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct Prm {
    resource: Option<String>,
}

fn is_bearer_challenge(r: &Reply) -> bool {
    r.www_auth()
        .is_some_and(|v| v.len() >= 7 && v[..7].eq_ignore_ascii_case("bearer "))
}

/// Judges the answer to `op`.
pub fn judge(op: Op, expect: Expect, id: Option<u64>, r: &Reply) -> Outcome {
    let ok2xx = (200..300).contains(&r.status);
    if expect == Expect::Reject {
        return match r.status {
            401 if is_bearer_challenge(r) => Outcome::Rejected,
            401 => Outcome::Err(ErrClass::Challenge),
            _ if ok2xx => Outcome::Err(ErrClass::AcceptedInvalid),
            _ => Outcome::Err(ErrClass::Status),
        };
    }
    match op {
        Op::Unauth => match r.status {
            401 if is_bearer_challenge(r)
                && r.www_auth()
                    .is_some_and(|v| v.contains("resource_metadata=")) =>
            {
                Outcome::Ok
            }
            401 => Outcome::Err(ErrClass::Challenge),
            _ if ok2xx => Outcome::Err(ErrClass::AcceptedInvalid),
            _ => Outcome::Err(ErrClass::Status),
        },
        Op::Metadata if r.status == 200 => match serde_json::from_slice::<Prm>(&r.body) {
            Ok(Prm { resource: Some(_) }) => Outcome::Ok,
            _ => Outcome::Err(ErrClass::BadResponse),
        },
        Op::Get if ok2xx => Outcome::Ok,
        Op::Initialized if ok2xx => Outcome::Ok,
        Op::Delete if ok2xx || r.status == 405 => Outcome::Ok,
        Op::Initialize | Op::ToolsList | Op::ToolsCall | Op::Discover if ok2xx => {
            judge_rpc(op, id, r)
        }
        _ => Outcome::Err(match r.status {
            401 => ErrClass::Unauthorized,
            404 if matches!(
                op,
                Op::ToolsList | Op::ToolsCall | Op::Initialized | Op::Delete
            ) =>
            {
                ErrClass::SessionLost
            }
            _ => ErrClass::Status,
        }),
    }
}

fn judge_rpc(op: Op, id: Option<u64>, r: &Reply) -> Outcome {
    if r.kind == BodyKind::Sse && !r.matched {
        return Outcome::Err(ErrClass::NoEvent);
    }
    let Ok(m) = serde_json::from_slice::<RpcMsg>(&r.body) else {
        return Outcome::Err(ErrClass::BadResponse);
    };
    if m.id.as_ref().and_then(|v| v.as_u64()) != id {
        return Outcome::Err(ErrClass::BadResponse);
    }
    if m.error.is_some() {
        return Outcome::Err(ErrClass::JsonRpcError);
    }
    let Some(res) = m.result else {
        return Outcome::Err(ErrClass::BadResponse);
    };
    let shaped = match op {
        Op::Initialize => res.protocol_version.is_some(),
        Op::Discover => res.supported_versions.is_some(),
        Op::ToolsList => res.tools.is_some(),
        _ => res.content.is_some(),
    };
    if !shaped {
        Outcome::Err(ErrClass::BadResponse)
    } else if res.is_error == Some(true) {
        Outcome::Err(ErrClass::ToolError)
    } else {
        Outcome::Ok
    }
}
