//! The MCP relay through the real binary: streamable-HTTP rules, sessions (across workers,
//! bound to subjects, expiring), stdio process lifecycle, several targets, stateless mode and
//! streamable-HTTP upstreams.
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

pub fn mini_server() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mcp/demo_server.py").to_owned()
}

fn stdio_route(extra_backend: &str, policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}  mcp:\n    sessionTtl: {{TTL}}\nbinds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n{policies}      backends:\n      - mcp:\n{extra_backend}          targets:\n          - name: mini\n            stdio:\n              cmd: python3\n              args: ['{}']\n",
        mini_server()
    )
}

pub struct Mcp {
    pub addr: SocketAddr,
    pub path: String,
    pub session: Option<String>,
    pub token: Option<String>,
    pub next_id: u64,
}

pub const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"1"}}}"#;

impl Mcp {
    pub fn new(addr: SocketAddr) -> Mcp {
        Mcp {
            addr,
            path: "/mcp".into(),
            session: None,
            token: None,
            next_id: 10,
        }
    }

    pub fn raw(&self, method: &str, body: &str, extra: &str) -> Response {
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\n{session}{auth}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.addr.port(),
            body.len()
        );
        request(self.addr, req.as_bytes())
    }

    pub fn initialize(&mut self) -> Response {
        let r = self.raw("POST", INIT, "");
        if let Some(s) = r.header("mcp-session-id") {
            self.session = Some(s.to_owned());
        }
        if r.status == 200 {
            let n = self.raw(
                "POST",
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                "",
            );
            assert_eq!(n.status, 202, "{}", n.text());
        }
        r
    }

    /// A request; returns the JSON-RPC messages of the answer (one for JSON, all events for SSE).
    pub fn call(&mut self, method: &str, params: &str) -> (Response, Vec<serde_json::Value>) {
        self.next_id += 1;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"{method}","params":{params}}}"#,
            self.next_id
        );
        let r = self.raw("POST", &body, "");
        let msgs = messages(&r);
        (r, msgs)
    }

    pub fn tool(&mut self, name: &str, args: &str) -> serde_json::Value {
        let (r, msgs) = self.call(
            "tools/call",
            &format!(r#"{{"name":"{name}","arguments":{args}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        msgs.last().cloned().unwrap_or_default()
    }
}

/// JSON-RPC messages in a JSON or SSE answer.
pub fn messages(r: &Response) -> Vec<serde_json::Value> {
    if r.header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        r.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        serde_json::from_slice(&r.body)
            .map(|v| vec![v])
            .unwrap_or_default()
    }
}

fn text_of(v: &serde_json::Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Child processes of `pid` (all threads), from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

pub(crate) fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

both_drivers!(stdio_session_lifecycle, |d| {
    let p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = c
        .session
        .clone()
        .expect("Mcp-Session-Id on the initialize answer");
    assert!(
        sid.len() >= 32 && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{sid}"
    );
    let init = &messages(&r)[0];
    assert_eq!(init["result"]["serverInfo"]["name"], "mini");
    assert_eq!(init["id"], 1);

    let (_, list) = c.call("tools/list", "{}");
    let names: Vec<&str> = list[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"slow"),
        "{names:?}"
    );
    assert_eq!(
        text_of(&c.tool("echo", r#"{"message":"hi"}"#)),
        "mini echo: hi"
    );

    // Every worker serves the session: new connections spread across workers.
    let pid1 = text_of(&c.tool("whoami", "{}"));
    for _ in 0..8 {
        assert_eq!(
            text_of(&c.tool("whoami", "{}")),
            pid1,
            "one process per session, whichever worker answers"
        );
    }
    assert_eq!(children(p.pid()).len(), 1);

    // A second session gets its own process.
    let mut c2 = Mcp::new(p.addr());
    c2.initialize();
    assert_ne!(text_of(&c2.tool("whoami", "{}")), pid1);
    assert_eq!(children(p.pid()).len(), 2);

    // DELETE ends the session and its process; the id is then unknown.
    assert_eq!(c2.raw("DELETE", "", "").status, 200);
    assert_eq!(c2.call("tools/list", "{}").0.status, 404);
    wait_until(10, "the child to be reaped", || {
        children(p.pid()).len() == 1
    });
});

both_drivers!(transport_rules, |d| {
    let p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    c.initialize();
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let send = |extra: &str, accept: &str, ctype: &str, session: Option<&str>| {
        let s = session
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        request(
            p.addr(),
            format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: {accept}\r\nContent-Type: {ctype}\r\n{s}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{list}", p.port, list.len()).as_bytes(),
        )
    };
    let sid = c.session.clone();
    let sid = sid.as_deref();
    assert_eq!(
        send("", "application/json", "application/json", sid).status,
        406
    );
    assert_eq!(
        send("", "application/json, text/event-stream", "text/plain", sid).status,
        415
    );
    assert_eq!(
        send(
            "",
            "application/json, text/event-stream",
            "application/json",
            None
        )
        .status,
        400,
        "no session id"
    );
    assert_eq!(
        send(
            "",
            "application/json, text/event-stream",
            "application/json",
            Some("00ffffffffffffffffffffffffffffffff")
        )
        .status,
        404
    );
    let r = send(
        "MCP-Protocol-Version: 1999-01-01\r\n",
        "application/json, text/event-stream",
        "application/json",
        sid,
    );
    assert_eq!(r.status, 400);
    // A 2026-07-28 request (served through the compatibility mode) without the revision's
    // envelope: 400 with -32602, whatever session id it names.
    let r = send(
        "MCP-Protocol-Version: 2026-07-28\r\n",
        "application/json, text/event-stream",
        "application/json",
        sid,
    );
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let r = send(
        "Origin: http://evil.example\r\n",
        "application/json, text/event-stream",
        "application/json",
        sid,
    );
    assert_eq!(r.status, 403, "foreign origins are refused");
    let ok = send(
        &format!("Origin: http://127.0.0.1:{}\r\n", p.port),
        "application/json, text/event-stream",
        "application/json",
        sid,
    );
    assert_eq!(ok.status, 200, "same-host origins are fine");
    // A batch is only for 2025-03-26 sessions.
    let batch = c.raw("POST", r#"[{"jsonrpc":"2.0","id":7,"method":"ping"}]"#, "");
    assert_eq!(batch.status, 400);
    // Malformed JSON is a JSON-RPC parse error.
    let bad = c.raw("POST", "{not json", "");
    assert_eq!(bad.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
    assert_eq!(v["error"]["code"], -32700);
    // Unknown HTTP method.
    assert_eq!(c.raw("PUT", "", "").status, 405);
});

both_drivers!(progress_streams_as_sse_event_by_event, |d| {
    let p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    c.initialize();
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow","arguments":{"steps":3,"delay_ms":400},"_meta":{"progressToken":"tok"}}}"#;
    let mut s = connect(p.addr());
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Session-Id: {}\r\nContent-Length: {}\r\n\r\n{body}",
        p.port,
        c.session.as_ref().unwrap(),
        body.len()
    )
    .unwrap();
    let t0 = Instant::now();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut seen = Vec::new();
    let mut sse = false;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")
        {
            sse = true;
        }
        if let Some(d) = line.strip_prefix("data:") {
            let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap();
            let done = v.get("result").is_some();
            seen.push((v, t0.elapsed()));
            if done {
                break;
            }
        }
    }
    assert!(sse, "notifications before the result make it an SSE answer");
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0].0["method"], "notifications/progress");
    assert_eq!(seen[0].0["params"]["progressToken"], "tok");
    assert!(
        seen[0].1 < Duration::from_millis(350),
        "the first progress event is relayed at once: {:?}",
        seen[0].1
    );
    assert!(seen[3].1 >= Duration::from_millis(1000));
    assert_eq!(text_of(&seen[3].0), "done");
});

both_drivers!(child_crash_expiry_and_shutdown, |d| {
    let mut p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "2s".into())], &[]);
    let mut c = Mcp::new(p.addr());
    c.initialize();
    // The child dies mid-request: a JSON-RPC error, then the session is gone.
    let v = c.tool("crash", "{}");
    assert!(v.get("error").is_some(), "{v}");
    assert_eq!(c.call("tools/list", "{}").0.status, 404);
    wait_until(10, "the crashed child to be reaped", || {
        children(p.pid()).is_empty()
    });
    // Idle sessions expire (sessionTtl 2s) and their processes are reaped.
    let mut c2 = Mcp::new(p.addr());
    c2.initialize();
    assert_eq!(children(p.pid()).len(), 1);
    wait_until(15, "the idle session to expire", || {
        children(p.pid()).is_empty()
    });
    assert_eq!(c2.call("tools/list", "{}").0.status, 404);
    // SIGTERM of the proxy leaves no child behind.
    let mut c3 = Mcp::new(p.addr());
    c3.initialize();
    let kids = children(p.pid());
    assert_eq!(kids.len(), 1);
    assert!(p.terminate().success());
    for k in kids {
        wait_until(5, "the child to be gone with the proxy", || {
            !std::path::Path::new(&format!("/proc/{k}")).exists()
        });
    }
});

both_drivers!(several_targets_are_merged_and_prefixed, |d| {
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: alpha\n            stdio: {{cmd: python3, args: ['{0}'], env: {{MINI_MCP_NAME: alpha}}}}\n          - name: beta\n            stdio: {{cmd: python3, args: ['{0}'], env: {{MINI_MCP_NAME: beta}}}}\n",
        mini_server()
    );
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    let init = &messages(&r)[0];
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    let (_, list) = c.call("tools/list", "{}");
    let names: Vec<String> = list[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"alpha_echo".to_owned()) && names.contains(&"beta_echo".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        text_of(&c.tool("beta_echo", r#"{"message":"x"}"#)),
        "beta echo: x"
    );
    assert_eq!(
        text_of(&c.tool("alpha_echo", r#"{"message":"y"}"#)),
        "alpha echo: y"
    );
    let v = c.tool("gamma_echo", "{}");
    assert!(v.get("error").is_some(), "unknown target: {v}");
    // One target failing does not fail the others' list.
    c.tool("alpha_crash", "{}");
});

// `clear_env: true` (agentgateway's spelling) starts a stdio server with only its own `env`:
// a variable set for Portcullis reaches a target without it and not one with it.
both_drivers!(stdio_clear_env_starts_from_an_empty_environment, |d| {
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: kept\n      matches: [{{path: {{exact: /kept}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: t\n            stdio: {{cmd: python3, args: ['{0}']}}\n    - name: cleared\n      matches: [{{path: {{exact: /cleared}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: t\n            stdio: {{cmd: python3, args: ['{0}'], clear_env: true}}\n",
        mini_server()
    );
    let p = Proxy::start_env(&cfg, d, &[], &[], &[("MINI_MCP_NAME", "inherited")]);
    let server_name = |path: &str| {
        let mut c = Mcp::new(p.addr());
        c.path = path.into();
        let r = c.initialize();
        assert_eq!(r.status, 200, "{}", r.text());
        messages(&r)[0]["result"]["serverInfo"]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(server_name("/kept"), "inherited");
    assert_eq!(server_name("/cleared"), "mini");
});

both_drivers!(stateless_mode_leaks_no_process, |d| {
    let p = Proxy::start_with(
        &stdio_route("          statefulMode: stateless\n", ""),
        d,
        &[("TTL", "30m".into())],
        &[],
    );
    let c = Mcp::new(p.addr());
    let r = c.raw("POST", r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"s"}}}"#, "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("mcp-session-id").is_none());
    assert_eq!(text_of(&messages(&r)[0]), "mini echo: s");
    for _ in 0..5 {
        assert_eq!(
            c.raw(
                "POST",
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
                ""
            )
            .status,
            200
        );
    }
    let get = c.raw("GET", "", "");
    assert_eq!(get.status, 405);
    assert_eq!(
        get.header("allow"),
        Some("POST"),
        "a stateless route serves POST only"
    );
    wait_until(10, "stateless children to be reaped", || {
        children(p.pid()).is_empty()
    });
});

/// A streamable-HTTP MCP server on a thread: its own session ids, JSON or SSE answers.
/// A route at /mcp with one streamable-HTTP target, `web`, at 127.0.0.1:`port`.
fn http_target_route(port: u16) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: web\n            mcp: {{host: 127.0.0.1, port: {port}, path: /mcp}}\n"
    )
}

fn http_mcp_server() -> Upstream {
    http_mcp_server_closing_idle(None)
}

/// The streamable-HTTP server above, closing connections idle for `idle` (as uvicorn does).
fn http_mcp_server_closing_idle(idle: Option<Duration>) -> Upstream {
    Upstream::start(move |s| {
        s.set_read_timeout(idle).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            let h = |n: &str| {
                req.headers
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            };
            let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let id = msg.get("id").cloned();
            if req.method == "DELETE" {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                continue;
            }
            let method = msg["method"].as_str().unwrap_or("");
            if method != "initialize"
                && h("mcp-session-id").as_deref() != Some("upstream-session-1")
            {
                let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                continue;
            }
            if h("authorization").is_some() {
                let _ = w.write_all(b"HTTP/1.1 500 Token Leaked\r\ncontent-length: 0\r\n\r\n");
                continue;
            }
            let Some(id) = id else {
                let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                continue;
            };
            let result = match method {
                "initialize" => {
                    serde_json::json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"http-up","version":"1"}})
                }
                "tools/list" => {
                    serde_json::json!({"tools":[{"name":"hello","inputSchema":{"type":"object"}}]})
                }
                _ => {
                    serde_json::json!({"content":[{"type":"text","text":format!("http says hi to {}", msg["params"]["arguments"]["who"])}]})
                }
            };
            let resp = serde_json::json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
            if method == "tools/call" {
                // Answer as SSE with a notification first.
                let note = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"working"}}"#;
                let body =
                    format!("event: message\ndata: {note}\n\nevent: message\ndata: {resp}\n\n");
                let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: upstream-session-1\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
            } else {
                let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: upstream-session-1\r\ncontent-length: {}\r\n\r\n{resp}", resp.len()).as_bytes());
            }
        }
    })
}

both_drivers!(streamable_http_upstream, |d| {
    let up = http_mcp_server();
    let cfg = http_target_route(up.port);
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    let ours = c.session.clone().unwrap();
    assert_ne!(
        ours, "upstream-session-1",
        "the client sees the proxy's session id, not the upstream's"
    );
    let (r, msgs) = c.call(
        "tools/call",
        r#"{"name":"hello","arguments":{"who":"bob"}}"#,
    );
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers
    );
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["method"], "notifications/message");
    assert_eq!(text_of(&msgs[1]), "http says hi to \"bob\"");
});

both_drivers!(upstream_closing_idle_connections_loses_no_call, |d| {
    let up = http_mcp_server_closing_idle(Some(Duration::from_millis(300)));
    let cfg = http_target_route(up.port);
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    for who in ["ann", "bob"] {
        // Longer than the upstream keeps an idle connection: the pooled one is closed by now.
        std::thread::sleep(Duration::from_millis(1500));
        let args = format!(r#"{{"name":"hello","arguments":{{"who":"{who}"}}}}"#);
        let (r, msgs) = c.call("tools/call", &args);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            msgs.last().map(text_of),
            Some(format!("http says hi to \"{who}\"")),
            "{msgs:?}"
        );
    }
    assert!(
        up.hits.load(std::sync::atomic::Ordering::Relaxed) >= 3,
        "a fresh upstream connection per idle gap"
    );
});

/// A 2024-11-05 HTTP+SSE MCP server: GET /sse streams events (first `endpoint`), answers to
/// POSTed messages arrive on that stream.
fn legacy_sse_server() -> Upstream {
    use std::sync::{Arc, Mutex};
    let stream: Arc<Mutex<Option<std::net::TcpStream>>> = Arc::new(Mutex::new(None));
    Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            if req.method == "GET" {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\nevent: endpoint\ndata: /messages?sessionId=legacy-1\n\n");
                *stream.lock().unwrap() = Some(w.try_clone().unwrap());
                continue;
            }
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
            assert!(
                req.target.starts_with("/messages?sessionId=legacy-1"),
                "{}",
                req.target
            );
            let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let Some(id) = msg.get("id").cloned() else {
                continue;
            };
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => {
                    serde_json::json!({"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"legacy","version":"1"}})
                }
                "tools/list" => {
                    serde_json::json!({"tools":[{"name":"old","inputSchema":{"type":"object"}}]})
                }
                _ => serde_json::json!({"content":[{"type":"text","text":"legacy answer"}]}),
            };
            let ev = format!(
                "event: message\ndata: {}\n\n",
                serde_json::json!({"jsonrpc":"2.0","id":id,"result":result})
            );
            if let Some(g) = stream.lock().unwrap().as_mut() {
                let _ = g.write_all(ev.as_bytes());
            }
        }
    })
}

both_drivers!(legacy_sse_upstream, |d| {
    let up = legacy_sse_server();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: old\n            sse: {{host: 'http://127.0.0.1:{}/sse'}}\n",
        up.port
    );
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(messages(&r)[0]["result"]["serverInfo"]["name"], "legacy");
    let (_, list) = c.call("tools/list", "{}");
    assert_eq!(list[0]["result"]["tools"][0]["name"], "old", "{list:?}");
    assert_eq!(text_of(&c.tool("old", "{}")), "legacy answer");
});

both_drivers!(quickstart_walkthrough, |d| {
    // config/quickstart.yaml as README runs it (from the repository root), on free ports.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/quickstart.yaml"))
        .unwrap()
        .replace("3000", "{PORT}")
        .replace("15020", "{STATS}")
        .replace("15021", "{READY}")
        .replace(
            "file: dev/jwks.json",
            &format!("file: {}", root.join("config/dev/jwks.json").display()),
        );
    let p = Proxy::start_full(&text, d, &[], &[], &[], Some(&root));
    let origin = format!("http://localhost:{}", p.port);
    // 1. No token: the challenge names the metadata.
    let mut c = Mcp::new(p.addr());
    let r = c.raw("POST", INIT, "");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains(&format!(
        "{origin}/.well-known/oauth-protected-resource/mcp"
    )));
    // 2. A dev token minted with mcp-load, as README shows.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-load"))
        .args(["token", "--sign-key"])
        .arg(root.join("config/dev/dev-signing-key.pem"))
        .args([
            "--iss",
            &format!("{origin}/dev-issuer"),
            "--aud",
            &format!("{origin}/mcp"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.token = Some(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    // 3. initialize and tools/call succeed.
    let r = c.initialize();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        text_of(&c.tool("echo", r#"{"message":"quickstart"}"#)),
        "mini echo: quickstart"
    );
    // The demo implements what it advertises: logging (the Inspector sets a level on connect).
    let (r, msgs) = c.call("logging/setLevel", r#"{"level":"debug"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(msgs[0]["result"], serde_json::json!({}), "{msgs:?}");
    let (_, msgs) = c.call(
        "tools/call",
        r#"{"name":"echo","arguments":{"message":"x"}}"#,
    );
    assert_eq!(msgs[0]["method"], "notifications/message", "{msgs:?}");
    // A normal session end is not a warning.
    assert_eq!(c.raw("DELETE", "", "").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!p.log_contains("WARN"), "{}", p.log());
    // The rest of the quickstart still answers, with a content type.
    let r = p.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    // The dev issuer's discovery URLs answer 404 with JSON, never the catch-all.
    for path in [
        "/.well-known/oauth-authorization-server/dev-issuer",
        "/.well-known/openid-configuration/dev-issuer",
        "/dev-issuer/.well-known/openid-configuration",
    ] {
        let r = p.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert!(r.text().contains("mcp-load token"), "{path}: {}", r.text());
    }
    assert_eq!(
        p.get("/.well-known/oauth-protected-resource/mcp").status,
        200
    );
});

both_drivers!(a_stdio_server_that_cannot_start_names_why, |d| {
    // Relative stdio paths are relative to the proxy's working directory: started elsewhere,
    // the client learns that the server never answered and the log quotes the server's own
    // complaint (stderr is not sent to clients: it may hold paths or secrets).
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: demo\n            stdio: {{cmd: python3, args: [examples/mcp/no_such_server.py]}}\n"
    );
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    c.path = "/".into();
    let text = c.raw("POST", INIT, "").text();
    assert!(
        text.contains("the MCP server demo has exited before answering (the proxy's log has its error output)"),
        "{text}"
    );
    assert!(!text.contains("no_such_server.py"), "{text}");
    assert!(
        p.wait_log(
            "the MCP server demo has exited before answering; it printed: ",
            5
        ) && p.log_contains("no_such_server.py"),
        "{}",
        p.log()
    );
});

both_drivers!(server_to_client_stream, |d| {
    let p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    c.initialize();
    let sid = c.session.clone().unwrap();
    // GET opens the server-to-client SSE stream; it stays open until the session ends.
    let mut s = connect(p.addr());
    write!(
        s,
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nLast-Event-ID: 0\r\n\r\n",
        p.port
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut ctype = false;
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")
        {
            ctype = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    assert!(ctype);
    // Without Accept: text/event-stream the GET is refused.
    let plain = request(
        p.addr(),
        format!("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\nMcp-Session-Id: {sid}\r\nConnection: close\r\n\r\n", p.port).as_bytes(),
    );
    assert_eq!(plain.status, 406);
    // DELETE ends the session, and with it the open stream.
    assert_eq!(c.raw("DELETE", "", "").status, 200);
    let t0 = Instant::now();
    let mut rest = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => rest.push_str(&line),
        }
        if rest.ends_with("0\r\n\r\n") {
            break;
        }
    }
    assert!(
        rest.ends_with("0\r\n\r\n"),
        "the stream ends with the session: {rest:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
});

/// A streamable-HTTP MCP server whose `tools/call` answers are SSE streams that stay open for
/// `linger` after the response event (servers SHOULD close them; not all do at once). Counts in
/// `requests` the streams the client closed before `linger` was over.
fn http_mcp_server_lingering(linger: Duration) -> Upstream {
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dropped.clone();
    let mut up = Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let method = msg["method"].as_str().unwrap_or("").to_owned();
            let Some(id) = msg.get("id").cloned() else {
                let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                continue;
            };
            let result = if method == "initialize" {
                serde_json::json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"slow-close","version":"1"}})
            } else {
                serde_json::json!({"content":[{"type":"text","text":format!("done {id}")}]})
            };
            let resp = serde_json::json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
            if method == "tools/call" {
                let ev = format!("event: message\ndata: {resp}\n\n");
                let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: up-1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
                w.set_read_timeout(Some(linger)).unwrap();
                let mut byte = [0u8; 1];
                if matches!(std::io::Read::read(&mut w, &mut byte), Ok(0)) {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                let _ = w.write_all(b"0\r\n\r\n");
                w.set_read_timeout(None).unwrap();
            } else {
                let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: up-1\r\ncontent-length: {}\r\n\r\n{resp}", resp.len()).as_bytes());
            }
        }
    });
    up.requests = dropped;
    up
}

both_drivers!(upstream_stream_left_open_does_not_hold_the_client, |d| {
    let up = http_mcp_server_lingering(Duration::from_secs(6));
    let cfg = http_target_route(up.port);
    let p = Proxy::start(&cfg, d);
    // One keep-alive client connection for the whole conversation.
    let mut s = connect(p.addr());
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut post = |sid: Option<&str>, body: &str| {
        let sid = sid
            .map(|v| format!("Mcp-Session-Id: {v}\r\n"))
            .unwrap_or_default();
        let req = format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\n{sid}Content-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).unwrap();
        let t0 = Instant::now();
        let resp =
            read_response(&mut r, false).unwrap_or_else(|e| panic!("no answer to {body}: {e}"));
        (resp, t0.elapsed())
    };
    let (init, _) = post(None, INIT);
    assert_eq!(init.status, 200, "{}", init.text());
    let sid = init.header("mcp-session-id").unwrap().to_owned();
    let (n, _) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(n.status, 202);
    for id in [2, 3] {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"x","arguments":{{}}}}}}"#
        );
        // Each answer is complete as soon as the response event arrives, and the next request
        // on this connection is read at once, while the upstream still holds its stream open.
        let (resp, took) = post(Some(&sid), &call);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            messages(&resp).last().map(text_of),
            Some(format!("done {id}"))
        );
        assert!(took < Duration::from_secs(2), "answer {id} took {took:?}");
    }
    // Once answered, a stream left open is given a second, then its connection is closed
    // rather than kept (with a task) for as long as the server likes.
    wait_until(
        4,
        "both lingering upstream streams closed by the proxy",
        || up.requests.load(std::sync::atomic::Ordering::Relaxed) == 2,
    );
    // And the session goes on.
    let (resp, _) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
    );
    assert_eq!(messages(&resp).last().map(text_of), Some("done 4".into()));
});

both_drivers!(upstream_stream_ended_late_keeps_its_connection, |d| {
    // The stream ends 200 ms after the response event: the connection goes back to the pool.
    let up = http_mcp_server_lingering(Duration::from_millis(200));
    let cfg = http_target_route(up.port);
    let p = Proxy::start(&cfg, d);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    for who in ["ann", "bob", "cy"] {
        let (r, msgs) = c.call(
            "tools/call",
            &format!(r#"{{"name":"x","arguments":{{"who":"{who}"}}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            msgs.last()
                .map(text_of)
                .is_some_and(|t| t.starts_with("done")),
            "{msgs:?}"
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one upstream connection, reused after each stream ended"
    );
    assert_eq!(up.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
});

both_drivers!(expiring_sessions_do_not_stop_the_clock, |d| {
    // A server that ignores SIGTERM and lingers after stdin closes: each session's teardown
    // waits out the grace period. Many expiring at once must not freeze the worker's clock
    // (the `Date` header and the time token expiry is checked against).
    let script = format!(
        "import signal,sys,runpy,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.argv=['demo']; runpy.run_path('{}', run_name='__main__'); time.sleep(5)",
        mini_server()
    );
    let cfg = format!(
        "{CONFIG_HEAD}  mcp:\n    sessionTtl: 1s\nbinds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: stubborn\n            stdio: {{cmd: python3, args: ['-c', \"{script}\"]}}\n    - name: hello\n      policies:\n        directResponse: {{body: hi, status: 200}}\n"
    );
    let p = Proxy::start(&cfg, d);
    for _ in 0..8 {
        let mut c = Mcp::new(p.addr());
        assert_eq!(c.initialize().status, 200);
    }
    assert!(p.wait_log("mcp session expired", 15), "{}", p.log());
    // Through the teardowns (8 × 2 s if they ran one after another): every answer's Date is
    // current on both workers.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let r = p.get("/");
        let date = httpdate::parse_http_date(r.header("date").unwrap()).unwrap();
        let lag = std::time::SystemTime::now()
            .duration_since(date)
            .unwrap_or_default();
        assert!(
            lag < Duration::from_secs(3),
            "Date lags by {lag:?}:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
});

both_drivers!(drain_lets_calls_through_other_workers_finish, |d| {
    // Calls for one session on several connections: some arrive through the worker that does
    // not own the session (all on the owner: 1 chance in 256). SIGTERM while they run (the
    // demo server answers one at a time: 8 × 0.25 s): every one finishes, then the process
    // exits.
    let mut p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    let sid = c.session.clone().unwrap();
    let addr = p.addr();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let sid = sid.clone();
            std::thread::spawn(move || {
                let mut m = Mcp::new(addr);
                m.session = Some(sid);
                m.next_id = 100 * (i + 1);
                m.tool("slow", r#"{"steps":1,"delay_ms":250}"#)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    p.signal("TERM");
    for call in calls {
        let answer = call.join().unwrap();
        assert_eq!(text_of(&answer), "done", "{answer}\n{}", p.log());
    }
    assert!(p.terminate().success());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
});

both_drivers!(a_lowered_session_ttl_applies_to_open_sessions, |d| {
    let p = Proxy::start_with(&stdio_route("", ""), d, &[("TTL", "30m".into())], &[]);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    assert_eq!(children(p.pid()).len(), 1);
    // The reload lowers the TTL to 1 s: the session opened under 30 m ends too.
    let lowered = p.render(&stdio_route("", "")).replace("{TTL}", "1s");
    std::fs::write(&p.config_path, lowered).unwrap();
    assert!(p.wait_log("config reloaded", 10), "{}", p.log());
    wait_until(15, "the session to expire", || children(p.pid()).is_empty());
    assert_eq!(c.call("tools/list", "{}").0.status, 404);
});

both_drivers!(
    an_upstream_answer_that_is_not_the_response_is_an_error,
    |d| {
        // A streamable-HTTP server that answers tools/list with text and ping with another id.
        let up = Upstream::start(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while let Ok(Some(req)) = read_request(&mut r) {
                let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let body = match (msg["method"].as_str().unwrap_or(""), msg.get("id")) {
                (_, None) => {
                    let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                    continue;
                }
                ("initialize", Some(id)) => serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"odd","version":"1"}}}).to_string(),
                ("tools/list", _) => "this is not JSON".to_owned(),
                _ => r#"{"jsonrpc":"2.0","id":999999,"result":{}}"#.to_owned(),
            };
                let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: s1\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
            }
        });
        let p = Proxy::start(&http_target_route(up.port), d);
        let mut c = Mcp::new(p.addr());
        assert_eq!(c.initialize().status, 200);
        for method in ["tools/list", "ping"] {
            let (r, msgs) = c.call(method, "{}");
            let m = msgs.last().cloned().unwrap_or_default();
            assert!(
                m["error"].is_object(),
                "{method}: {} {}",
                r.status,
                r.text()
            );
            assert_eq!(
                m["id"], c.next_id,
                "{method}: the error answers the client's id"
            );
            assert!(
                !r.text().contains("this is not JSON") && !r.text().contains("999999"),
                "{}",
                r.text()
            );
        }
    }
);

fn ids_server_route(policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n{policies}      backends:\n      - mcp:\n          targets:\n          - name: ids\n            stdio:\n              cmd: python3\n              args: ['{}']\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mcp_ids_server.py")
    )
}

/// A tools/call with the client's id `id`, as raw JSON-RPC.
fn call_with_id(id: u64, tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

both_drivers!(client_ids_may_repeat_and_be_abandoned, |d| {
    let p = Proxy::start(&ids_server_route(""), d);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    let sid = c.session.clone().unwrap();
    // Call id 7 that answers in 1.5 s; its client gives up after 0.5 s.
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n{}",
        p.port,
        call_with_id(7, "sleep", r#"{"ms":1500}"#).len(),
        call_with_id(7, "sleep", r#"{"ms":1500}"#)
    );
    let mut s = connect(p.addr());
    s.write_all(raw.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(s);
    // The same id again, twice at once on two connections (one slow, one quick): each gets its
    // own answer, and the abandoned call's late answer reaches nobody.
    let addr = p.addr();
    let slow = {
        std::thread::spawn(move || {
            let mut m = Mcp::new(addr);
            m.session = Some(sid);
            let r = m.raw("POST", &call_with_id(7, "sleep", r#"{"ms":2500}"#), "");
            messages(&r)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let quick = c.raw("POST", &call_with_id(7, "echo", r#"{"message":"hi"}"#), "");
    let quick = messages(&quick);
    assert_eq!(quick.len(), 1, "{quick:?}");
    assert_eq!(quick[0]["id"], 7);
    assert_eq!(text_of(&quick[0]), "echo hi", "{quick:?}\n{}", p.log());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let slow = slow.join().unwrap();
    assert_eq!(slow.last().unwrap()["id"], 7);
    assert_eq!(
        text_of(slow.last().unwrap()),
        "slept",
        "{slow:?}\n{}",
        p.log()
    );
    // The server never saw the client's id, and was told the abandoned call was cancelled.
    assert!(
        !p.log_contains("id 7\n") && !p.log_contains(" id 7 "),
        "{}",
        p.log()
    );
    assert!(
        p.wait_log("cancelled {\"requestId\"", 5),
        "the abandoned call is cancelled upstream:\n{}",
        p.log()
    );
});

both_drivers!(a_call_that_never_answers_times_out, |d| {
    let p = Proxy::start(
        &ids_server_route("      policies:\n        timeout: {requestTimeout: 1s}\n"),
        d,
    );
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    let t0 = Instant::now();
    let (r, msgs) = c.call("tools/call", r#"{"name":"hang","arguments":{}}"#);
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(msgs[0]["error"]["code"], -32001, "{msgs:?}");
    assert_eq!(msgs[0]["id"], c.next_id, "{msgs:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        p.wait_log("cancelled {\"requestId\"", 5) && p.log_contains("timed out"),
        "the server is told:\n{}",
        p.log()
    );
    // The session is still healthy.
    let answer = c.tool("echo", r#"{"message":"after"}"#);
    assert_eq!(text_of(&answer), "echo after");
});

both_drivers!(a_client_cancel_reaches_the_server_by_its_id, |d| {
    let p = Proxy::start(&ids_server_route(""), d);
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    let sid = c.session.clone().unwrap();
    let addr = p.addr();
    let hanging = std::thread::spawn(move || {
        let mut m = Mcp::new(addr);
        m.session = Some(sid);
        let r = m.raw("POST", &call_with_id(42, "hang", "{}"), "");
        messages(&r)
    });
    std::thread::sleep(Duration::from_millis(300));
    let n = c.raw(
        "POST",
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42,"reason":"user stop"}}"#,
        "",
    );
    assert_eq!(n.status, 202);
    assert!(
        p.wait_log("\"reason\": \"user stop\"", 5),
        "forwarded:\n{}",
        p.log()
    );
    // Forwarded with the id the server knows, not the client's.
    assert!(!p.log_contains("{\"requestId\": 42,"), "{}", p.log());
    // The cancelled call's HTTP request ends (the server will never answer it).
    let msgs = hanging.join().unwrap();
    assert!(msgs[0]["error"].is_object(), "{msgs:?}");
});

both_drivers!(buffered_bodies_are_capped_per_worker, |d| {
    // 64 KiB of buffered bodies per worker; six 40 000-byte bodies that never finish arriving,
    // spread over two workers: some worker gets two, and the second is refused at once.
    let cfg = stdio_route("", "").replace(
        "  mcp:\n    sessionTtl: {TTL}\n",
        "  mcp:\n    sessionTtl: 30m\n    maxBufferedBytes: 65536\n",
    );
    let p = Proxy::start(&cfg, d);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let mut s = connect(p.addr());
        write!(
            s,
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: 40000\r\n\r\n{{\"jsonrpc\":",
            p.port
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        match read_response(&mut r, false) {
            Ok(resp) => {
                assert_eq!(resp.status, 503, "{}", resp.text());
                assert_eq!(resp.header("retry-after"), Some("1"));
                assert!(resp.text().contains("maxBufferedBytes"), "{}", resp.text());
                refused += 1;
            }
            Err(_) => held.push(s),
        }
    }
    assert!(refused >= 1, "no body was refused");
    assert!(!held.is_empty(), "a worker holds one");
    assert_eq!(
        p.metric("portcullis_refused_total{reason=\"buffered_bodies\"}"),
        refused
    );
    drop(held);
    // Given back: a whole message goes through again.
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
});
