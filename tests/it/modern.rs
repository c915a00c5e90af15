//! MCP 2026-07-28 through Portcullis: the official Python SDK client (mcp 2.3.0, `mode="auto"`)
//! and TypeScript SDK client (`@modelcontextprotocol/client` 2.4.0, auto) reach a 2026-07-28
//! server (the Python SDK's `MCPServer`) without falling back, a 2025 client still negotiates
//! 2025 on the same route, mirrored headers are checked before anything reaches the server and
//! sent on when they match, and authentication is the same for both eras.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::both_drivers;
use crate::clients::{client_runtimes, fixtures, run_client, run_client_with};
use crate::compat::TsServer;
use crate::harness::*;
use crate::mcp::wait_until;
use crate::tokens::*;

/// `tests/fixtures/clients/modern_server.py` on a free port; stopped when dropped.
pub(crate) struct ModernServer {
    pub(crate) port: u16,
    child: Child,
}

impl ModernServer {
    pub(crate) fn start() -> ModernServer {
        ModernServer::start_logged(None)
    }

    /// With `log`: the server appends `<method> [<Mcp-Name>]` of each POST it receives there.
    pub(crate) fn start_logged(log: Option<&std::path::Path>) -> ModernServer {
        let python = &client_runtimes().1;
        for _ in 0..4 {
            let port = free_port();
            let mut cmd = Command::new(python);
            if let Some(log) = log {
                cmd.env("MODERN_SERVER_LOG", log);
            }
            let mut child = cmd
                .arg(fixtures().join("clients/modern_server.py"))
                .arg(port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start modern_server.py");
            let mut line = String::new();
            let mut r = BufReader::new(child.stdout.take().unwrap());
            // Bounded: the script gives up announcing after ~10 s and the line read ends at EOF.
            let _ = r.read_line(&mut line);
            if line.trim() == format!("READY {port}") {
                return ModernServer { port, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("modern_server.py did not start in 4 attempts");
    }
}

impl Drop for ModernServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ISS: &str = "http://idp.test/realms/mcp";
const AUD: &str = "mcp_proxy";

fn route(up_port: u16, policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n{policies}      backends:\n      - mcp:\n          targets:\n          - name: modern\n            mcp: {{host: 127.0.0.1, port: {up_port}, path: /mcp}}\n"
    )
}

/// [`route`] to a stand-in server that answers as told, relayed as a 2026-07-28 server (the
/// compatibility mode off: no `server/discover` is sent to learn what it speaks).
fn native_route(up_port: u16) -> String {
    route(up_port, "") + "          modernCompat: false\n"
}

both_drivers!(modern_and_2025_clients_on_one_route, |d| {
    let python = client_runtimes().1.clone();
    let server = ModernServer::start();
    let p = Proxy::start(&route(server.port, ""), d);
    let url = format!("http://127.0.0.1:{}/mcp", p.port);
    // Modern client, modern server: server/discover is relayed, no initialize anywhere.
    let v = run_client(&python, "py_client.py", &url, "none-auto");
    assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
    assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
    assert_eq!(v["server"]["name"], "modern-echo", "{v}");
    assert_eq!(v["call"]["text"], "echo: hello from py_client", "{v}");
    // The TypeScript SDK 2.x client in auto mode, too.
    let node = client_runtimes().0.clone();
    let v = run_client(&node, "ts2_client.mjs", &url, "none-auto");
    assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
    assert_eq!(v["initialize"], 0, "{v}");
    assert_eq!(v["server"]["name"], "modern-echo", "{v}");
    // Natively: the server's own discover answer was relayed, no session was opened upstream.
    assert!(!p.log_contains("compatibility session"), "{}", p.log());
    // A 2025 client on the same route still gets a 2025 session.
    let v = run_client(&python, "py_client.py", &url, "none");
    assert_eq!(v["protocolVersion"], "2025-11-25", "{v}");
});

both_drivers!(a_modern_stdio_server_gets_the_revision_natively, |d| {
    let (node, python) = client_runtimes().clone();
    let dir = temp_dir();
    let server = fixtures().join("clients/modern_server.py");
    let log = |name: &str| dir.join(format!("{name}.methods"));
    let stdio = |name: &str| {
        format!(
            "stdio: {{cmd: '{python}', args: ['{}', stdio], env: {{MODERN_SERVER_LOG: '{}'}}}}",
            server.display(),
            log(name).display()
        )
    };
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: modern\n      matches: [{{path: {{exact: /modern/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: m\n            {}\n    - name: stateless\n      matches: [{{path: {{exact: /stateless/mcp}}}}]\n      backends:\n      - mcp:\n          statefulMode: stateless\n          targets:\n          - name: m\n            {}\n    - name: legacy\n      matches: [{{path: {{exact: /legacy/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: m\n            {}\n",
        stdio("modern"),
        stdio("stateless"),
        stdio("legacy")
    );
    let p = Proxy::start(&cfg, d);
    for route in ["modern", "stateless"] {
        let url = format!("http://127.0.0.1:{}/{route}/mcp", p.port);
        let v = run_client(&python, "py_client.py", &url, "none-auto");
        assert_eq!(v["protocolVersion"], "2026-07-28", "{route}: {v}");
        assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
        assert_eq!(v["server"]["name"], "modern-echo", "{v}");
        assert_eq!(v["call"]["text"], "echo: hello from py_client", "{v}");
        let v = run_client(&node, "ts2_client.mjs", &url, "none-auto");
        assert_eq!(v["protocolVersion"], "2026-07-28", "{route}: {v}");
        assert_eq!(v["initialize"], 0, "{v}");
        // What reached the server: the requests themselves, never an `initialize`.
        let seen = std::fs::read_to_string(log(route)).unwrap_or_default();
        assert!(seen.lines().any(|m| m == "tools/call"), "{route}: {seen}");
        assert!(!seen.lines().any(|m| m == "initialize"), "{route}: {seen}");
    }
    assert!(p.log_contains("speaks_2026=Some(true)"), "{}", p.log());
    assert!(!p.log_contains("compatibility session"), "{}", p.log());
    // A 2025 client of the same server gets a 2025 session (the server's `initialize`).
    let url = format!("http://127.0.0.1:{}/legacy/mcp", p.port);
    let v = run_client(&python, "py_client.py", &url, "none");
    assert_eq!(v["protocolVersion"], "2025-11-25", "{v}");
    let seen = std::fs::read_to_string(log("legacy")).unwrap_or_default();
    assert!(seen.lines().any(|m| m == "initialize"), "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
});

/// A 2026-07-28 POST with the mirrored headers as a conforming client sends them.
pub(crate) fn modern_post(
    p: &Proxy,
    method: &str,
    name: Option<&str>,
    extra: &str,
    body: &str,
) -> Response {
    modern_post_to(p, "/mcp", method, name, extra, body)
}

fn call_body(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"region":"us-west1"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

both_drivers!(
    mirrored_headers_are_checked_before_the_server_sees_anything,
    |d| {
        // A server that records what reaches it and answers every request with a result.
        let seen = Arc::new(Mutex::new(Vec::<Request>::new()));
        let seen2 = seen.clone();
        let up = Upstream::start(move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while let Ok(Some(req)) = read_request(&mut r) {
                let id = serde_json::from_slice::<serde_json::Value>(&req.body)
                    .map(|v| v["id"].to_string())
                    .unwrap_or_default();
                seen2.lock().unwrap().push(req);
                let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[]}}}}"#);
                let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
                if w.write_all(head.as_bytes()).is_err() || w.write_all(body.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let p = Proxy::start(&native_route(up.port), d);
        let error_code = |r: &Response| -> i64 {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            v["error"]["code"].as_i64().unwrap_or(0)
        };
        // Mcp-Name says one tool, the body another: the confused-deputy case.
        let r = modern_post(&p, "tools/call", Some("echo"), "", &call_body("rm_rf"));
        assert_eq!((r.status, error_code(&r)), (400, -32020), "{}", r.text());
        // Mcp-Name missing, Mcp-Method different, the _meta version different.
        let r = modern_post(&p, "tools/call", None, "", &call_body("echo"));
        assert_eq!((r.status, error_code(&r)), (400, -32020), "{}", r.text());
        let r = modern_post(&p, "tools/list", Some("echo"), "", &call_body("echo"));
        assert_eq!((r.status, error_code(&r)), (400, -32020), "{}", r.text());
        let old_meta = call_body("echo").replace("\"2026-07-28\"", "\"2025-11-25\"");
        let r = modern_post(&p, "tools/call", Some("echo"), "", &old_meta);
        assert_eq!((r.status, error_code(&r)), (400, -32020), "{}", r.text());
        // A response is not something a 2026-07-28 client may send.
        let r = modern_post(
            &p,
            "tools/call",
            None,
            "",
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        );
        assert_eq!((r.status, error_code(&r)), (400, -32600), "{}", r.text());
        assert!(
            seen.lock().unwrap().is_empty(),
            "nothing reached the server"
        );
        // Matching headers (a base64 name too): relayed with the headers the server needs.
        let r = modern_post(
            &p,
            "tools/call",
            Some("=?base64?ZWNobw==?="),
            "Mcp-Param-Region: us-west1\r\n",
            &call_body("echo"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains(r#""id":5"#), "{}", r.text());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let h = |n: &str| {
            seen[0]
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("mcp-protocol-version").as_deref(), Some("2026-07-28"));
        assert_eq!(h("mcp-method").as_deref(), Some("tools/call"));
        assert_eq!(h("mcp-name").as_deref(), Some("=?base64?ZWNobw==?="));
        assert_eq!(h("mcp-param-region").as_deref(), Some("us-west1"));
        assert_eq!(h("mcp-session-id"), None);
        assert_eq!(
            seen[0].body,
            call_body("echo").as_bytes(),
            "the body goes on untouched"
        );
    }
);

both_drivers!(authentication_is_the_same_for_both_eras, |d| {
    let server = ModernServer::start();
    let key = TestKey::es256("k1");
    let policies = format!(
        "      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/mcp\n            scopesSupported: [mcp]\n",
        jwks(&[&key])
    );
    let p = Proxy::start(&route(server.port, &policies), d);
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"it","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    // No token: the same challenge as a 2025 request, pointing at the metadata.
    let r = modern_post(&p, "tools/list", None, "", list);
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let bad = modern_post(
        &p,
        "tools/list",
        None,
        "Authorization: Bearer not.a.token\r\n",
        list,
    );
    assert_eq!(bad.status, 401);
    assert!(bad
        .header("www-authenticate")
        .is_some_and(|c| c.contains("invalid_token")));
    // A valid token: relayed to the modern server, which answers at 2026-07-28 (no session).
    let token = key.sign(&claims(ISS, AUD, "ann"));
    let auth = format!("Authorization: Bearer {token}\r\n");
    let r = modern_post(&p, "tools/list", None, &auth, list);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(r#""name":"echo""#), "{}", r.text());
    assert_eq!(r.header("mcp-session-id"), None);
});

both_drivers!(
    sse_answers_stream_and_a_closed_stream_cancels_upstream,
    |d| {
        // "fast": a progress event, then the response, and the stream left open (Portcullis ends the
        // client's stream at the response). "hold": a progress event, then nothing until the client
        // gives up; the server records when its connection closes.
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed2 = closed.clone();
        let up = Upstream::start(move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let Ok(Some(req)) = read_request(&mut r) else {
                return;
            };
            let hold = String::from_utf8_lossy(&req.body).contains("hold");
            let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
            let answer = r#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#;
            let mut events = format!("event: message\ndata: {progress}\n\n");
            if !hold {
                events.push_str(&format!("event: message\ndata: {answer}\n\n"));
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = format!("{:x}\r\n{events}\r\n", events.len());
            if w.write_all(head.as_bytes()).is_err() || w.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            // Keep the stream open; a read returns when the proxy closes its side.
            let _ = w.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            s_wait_closed(&mut r);
            if hold {
                closed2.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let p = Proxy::start(&native_route(up.port), d);
        let t0 = std::time::Instant::now();
        let r = modern_post(&p, "tools/call", Some("fast"), "", &call_body("fast"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let text = r.text();
        let (progress, answer) = (text.find("notifications/progress"), text.find(r#""id":5"#));
        assert!(progress.is_some() && answer > progress, "{text}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "ended at the response"
        );
        // The client reads the first event, then closes its stream: the server's connection closes.
        let body = call_body("hold");
        let mut c = connect(p.addr());
        write!(
        c,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: hold\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
        let mut reader = BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        while !line.contains("notifications/progress") {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "stream ended early"
            );
        }
        drop(reader);
        drop(c);
        wait_until(5, "the upstream stream to be closed", || {
            closed.load(std::sync::atomic::Ordering::SeqCst)
        });
    }
);

/// Blocks until the peer closes the connection (or 10 s pass).
fn s_wait_closed<R: BufRead>(r: &mut R) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = String::new();
    while std::time::Instant::now() < deadline {
        match r.read_line(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => buf.clear(),
        }
    }
}

both_drivers!(slow_json_calls_are_watched_timed_out_and_cancelled, |d| {
    // "slow": answered after 600 ms (past the point where the client starts to be watched).
    // "stall": never answered; the server records when the proxy closes the connection.
    let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let closed2 = closed.clone();
    let up = Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            let text = String::from_utf8_lossy(&req.body).into_owned();
            if text.contains("stall") {
                let _ = w.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                s_wait_closed(&mut r);
                closed2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            if text.contains("slow") {
                std::thread::sleep(std::time::Duration::from_millis(600));
            }
            let tool = if text.contains("slow") {
                "slow"
            } else {
                "fast"
            };
            let answer = format!(
                r#"{{"jsonrpc":"2.0","id":5,"result":{{"content":[{{"type":"text","text":"{tool}"}}]}}}}"#
            );
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let request = |tool: &str| {
        let body = call_body(tool);
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let p = Proxy::start(&native_route(up.port), d);
    // A request pipelined behind a slow one is kept while the client is watched, and answered
    // after it, in order.
    let mut c = connect(p.addr());
    c.write_all((request("slow") + &request("fast")).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    for tool in ["slow", "fast"] {
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text().contains(&format!(r#""text":"{tool}""#)),
            "{}",
            r.text()
        );
    }
    // A client that goes away while its call is watched cancels it upstream.
    let mut c = connect(p.addr());
    c.write_all(request("stall").as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(reader);
    drop(c);
    wait_until(5, "the stalled call's upstream connection to close", || {
        closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    // A call the server never answers ends at the route's call timeout with a JSON-RPC error.
    let cfg = route(
        up.port,
        "      policies:\n        timeout: {requestTimeout: 1s}\n",
    ) + "          modernCompat: false\n";
    let p = Proxy::start(&cfg, d);
    let t0 = std::time::Instant::now();
    let r = modern_post(&p, "tools/call", Some("stall"), "", &call_body("stall"));
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains(r#""id":5"#), "{}", r.text());
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    wait_until(
        5,
        "the timed-out call's upstream connection to close",
        || closed.load(std::sync::atomic::Ordering::SeqCst) == 2,
    );
});

both_drivers!(a_listen_stream_outlives_the_call_timeout, |d| {
    // The server acknowledges at once, sends a notification 2 s later (past the route's 1 s
    // call timeout), then ends the subscription with its result.
    let up = Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let Ok(Some(_req)) = read_request(&mut r) else {
            return;
        };
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let event = |data: &str| {
            let e = format!("event: message\ndata: {data}\n\n");
            format!("{:x}\r\n{e}\r\n", e.len())
        };
        let ack =
            r#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#;
        let changed =
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{}}"#;
        let done = r#"{"jsonrpc":"2.0","id":5,"result":{"resultType":"complete","_meta":{"io.modelcontextprotocol/subscriptionId":5}}}"#;
        if w.write_all(head.as_bytes()).is_err() || w.write_all(event(ack).as_bytes()).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let _ = w.write_all(event(changed).as_bytes());
        let _ = w.write_all(event(done).as_bytes());
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let cfg = route(
        up.port,
        "      policies:\n        timeout: {requestTimeout: 1s}\n",
    ) + "          modernCompat: false\n";
    let p = Proxy::start(&cfg, d);
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let r = modern_post(&p, "subscriptions/listen", None, "", body);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (ack, changed, done) = (
        text.find("subscriptions/acknowledged"),
        text.find("tools/list_changed"),
        text.find(r#""id":5"#),
    );
    assert!(ack.is_some() && changed > ack && done > changed, "{text}");
});

both_drivers!(several_modern_servers_on_one_route_are_fanned_out, |d| {
    let (node, python) = client_runtimes().clone();
    let dir = temp_dir();
    let log = |name: &str| dir.join(format!("{name}.methods"));
    let (a, b) = (
        ModernServer::start_logged(Some(&log("a"))),
        ModernServer::start_logged(Some(&log("b"))),
    );
    let ts_port = free_port();
    let _ts = TsServer::start(ts_port);
    let key = TestKey::es256("k1");
    let auth = format!(
        "      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/auth/mcp\n",
        jwks(&[&key])
    );
    let route = |name: &str, policies: &str, extra: &str, second: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{exact: /{name}/mcp}}}}]\n{policies}      backends:\n      - mcp:\n{extra}          targets:\n          - name: a\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n          - name: {second}\n",
            a.port
        )
    };
    let b_target = format!(
        "            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n",
        b.port
    );
    let ts_target = format!("            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n");
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n{}{}{}{}{}",
        route("both", "", "", "b") + &b_target,
        route("auth", &auth, "", "b") + &b_target,
        route("mixed", "", "", "old") + &ts_target,
        route("strict", "", "          modernCompat: false\n", "old") + &ts_target,
        route("fresh", "", "          statefulMode: stateless\n", "b") + &b_target,
    );
    let p = Proxy::start(&cfg, d);
    let url = |r: &str| format!("http://127.0.0.1:{}/{r}/mcp", p.port);
    let read = |name: &str| std::fs::read_to_string(log(name)).unwrap_or_default();
    // Two servers that speak the revision: both SDK clients negotiate 2026-07-28 with the route
    // (Portcullis's merged discover), list both servers' tools prefixed and call each; neither
    // server sees an initialize, and each sees its own tool's name.
    for r in ["both", "fresh"] {
        for (tool, server) in [("a_echo", "a"), ("b_echo", "b")] {
            let v = run_client_with(
                &python,
                "py_client.py",
                &url(r),
                "none-auto",
                &["--tool", tool],
                &[],
            );
            assert_eq!(v["protocolVersion"], "2026-07-28", "{r}: {v}");
            assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
            assert_eq!(v["server"]["name"], "portcullis", "{v}");
            assert!(
                v["tools"].to_string().contains("a_add")
                    && v["tools"].to_string().contains("b_echo"),
                "{v}"
            );
            let v = run_client_with(
                &node,
                "ts2_client.mjs",
                &url(r),
                "none-auto",
                &["--tool", tool],
                &[],
            );
            assert_eq!(v["protocolVersion"], "2026-07-28", "{r}: {v}");
            assert_eq!(v["initialize"], 0, "{v}");
            assert!(
                read(server).contains("tools/call echo"),
                "{server}: {}",
                read(server)
            );
        }
    }
    for server in ["a", "b"] {
        let seen = read(server);
        assert!(
            seen.contains("server/discover") && seen.contains("tools/list"),
            "{seen}"
        );
        assert!(
            !seen.contains("initialize"),
            "{server} saw an initialize: {seen}"
        );
    }
    assert!(!p.log_contains("compatibility session"), "{}", p.log());
    echo_counted_for(&p, &["a", "b"]);
    // The same with authentication: 401 without a token, the route served with one.
    auth_route_serves(&p, &key, "b_echo");
    // A 2025 client on the fanned-out route: a 2025 session (the servers speak both).
    let v = run_client_with(
        &python,
        "py_client.py",
        &url("both"),
        "none",
        &["--tool", "a_echo"],
        &[],
    );
    assert_eq!(v["protocolVersion"], "2025-11-25", "{v}");
    // A name that names no server is refused here, saying how names are formed.
    let r = modern_post_to(
        &p,
        "/both/mcp",
        "tools/call",
        Some("nope"),
        "",
        &call_body("nope"),
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("unknown tool: nope") && msg.contains("a, b"),
        "{v}"
    );
    // A header that disagrees with the body reaches no server.
    let before = (read("a").lines().count(), read("b").lines().count());
    let bad = modern_post_to(
        &p,
        "/both/mcp",
        "tools/call",
        Some("b_add"),
        "",
        &call_body("b_echo"),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(
        (read("a").lines().count(), read("b").lines().count()),
        before
    );
    // One server that speaks only 2025: with the compatibility mode (the default), modern
    // clients are still served at 2026-07-28 without falling back; with it off, the route
    // refuses server/discover as that server does and the client falls back to 2025.
    let v = run_client_with(
        &python,
        "py_client.py",
        &url("mixed"),
        "none-auto",
        &["--tool", "a_echo"],
        &[],
    );
    assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
    assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
    assert!(p.wait_log("mcp compatibility session started", 5));
    let v = run_client_with(
        &python,
        "py_client.py",
        &url("strict"),
        "none-auto",
        &["--tool", "a_echo"],
        &[],
    );
    assert_eq!(v["protocolVersion"], "2025-11-25", "{v}");
    assert_eq!(v["fallback"]["fell_back"], true, "{v}");
});

both_drivers!(stdio_servers_among_several_are_fanned_out_natively, |d| {
    let (node, python) = client_runtimes().clone();
    let dir = temp_dir();
    let log = |name: &str| dir.join(format!("{name}.methods"));
    let read = |name: &str| std::fs::read_to_string(log(name)).unwrap_or_default();
    let http = ModernServer::start_logged(Some(&log("web")));
    let script = fixtures().join("clients/modern_server.py");
    // Stdio servers that speak only 2026-07-28: an `initialize` is refused, so a route that
    // went through the compatibility mode (2025 sessions) could not reach them.
    let stdio = |name: &str| {
        format!(
            "          - name: {name}\n            stdio: {{cmd: '{python}', args: ['{}', stdio], env: {{MODERN_ONLY: '1', MODERN_SERVER_LOG: '{}'}}}}\n",
            script.display(),
            log(name).display()
        )
    };
    let web = format!(
        "          - name: web\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n",
        http.port
    );
    let key = TestKey::es256("k1");
    let auth = format!(
        "      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/auth/mcp\n",
        jwks(&[&key])
    );
    let route = |name: &str, policies: &str, extra: &str, targets: String| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{exact: /{name}/mcp}}}}]\n{policies}      backends:\n      - mcp:\n{extra}          targets:\n{targets}"
        )
    };
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n{}{}{}",
        route("pair", "", "", stdio("a") + &web),
        route(
            "fresh",
            "",
            "          statefulMode: stateless\n",
            stdio("c") + &stdio("d")
        ),
        route("auth", &auth, "", stdio("e") + &web),
    ) + &route(
        "down",
        "",
        "",
        stdio("f")
            + &format!(
                "          - name: gone\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n",
                free_port()
            ),
    );
    let p = Proxy::start(&cfg, d);
    let url = |r: &str| format!("http://127.0.0.1:{}/{r}/mcp", p.port);
    for (r, tools) in [("pair", ["a", "web"]), ("fresh", ["c", "d"])] {
        for server in tools {
            let tool = format!("{server}_echo");
            let v = run_client_with(
                &python,
                "py_client.py",
                &url(r),
                "none-auto",
                &["--tool", &tool],
                &[],
            );
            assert_eq!(v["protocolVersion"], "2026-07-28", "{r}: {v}");
            assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
            assert_eq!(v["server"]["name"], "portcullis", "{v}");
            let listed = v["tools"].to_string();
            assert!(
                tools.iter().all(|t| listed.contains(&format!("{t}_add"))),
                "{r}: {v}"
            );
            assert_eq!(v["call"]["text"], "echo: hello from py_client", "{v}");
            let v = run_client_with(
                &node,
                "ts2_client.mjs",
                &url(r),
                "none-auto",
                &["--tool", &tool],
                &[],
            );
            assert_eq!(v["protocolVersion"], "2026-07-28", "{r}: {v}");
            assert_eq!(v["initialize"], 0, "{v}");
        }
    }
    // Each server saw the requests themselves (the discover question, lists, its own call),
    // never an `initialize`.
    for server in ["a", "c", "d", "web"] {
        let seen = read(server);
        assert!(
            seen.contains("server/discover")
                && seen.contains("tools/list")
                && seen.contains("tools/call"),
            "{server}: {seen}"
        );
        assert!(!seen.contains("initialize"), "{server}: {seen}");
    }
    assert!(p.log_contains("speaks_2026=Some(true)"), "{}", p.log());
    assert!(!p.log_contains("compatibility session"), "{}", p.log());
    echo_counted_for(&p, &["a", "web", "c", "d"]);
    // With authentication: 401 without a token; with one, served natively.
    auth_route_serves(&p, &key, "e_echo");
    assert!(read("e").contains("tools/call"), "{}", read("e"));
    // A server that cannot be reached teaches nothing: the route is still served natively, the
    // stdio server's tool answers (a 2025 session could not reach that server at all).
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"f_echo","arguments":{"message":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let r = modern_post_to(&p, "/down/mcp", "tools/call", Some("f_echo"), "", body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("echo: hi"), "{}", r.text());
    assert!(!read("f").contains("initialize"), "{}", read("f"));
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
});

/// Each of `servers` has a `tools/call` of its `echo` counted for it, with the name it has there.
fn echo_counted_for(p: &Proxy, servers: &[&str]) {
    let m = p.metrics();
    for server in servers {
        let series = format!(
            "agentgateway_mcp_requests_total{{method=\"tools/call\",resource_type=\"tool\",server=\"{server}\",resource=\"echo\","
        );
        assert!(m.lines().any(|l| l.starts_with(&series)), "{series}\n{m}");
    }
}

/// The `/auth/mcp` route (mcpAuthentication with `key`): a 2026-07-28 request without a token
/// is 401; the TS SDK 2.x client (auto) with one negotiates 2026-07-28 and calls `tool`.
fn auth_route_serves(p: &Proxy, key: &TestKey, tool: &str) {
    let r = modern_post_to(p, "/auth/mcp", "tools/list", None, "", LIST);
    assert_eq!(r.status, 401, "{}", r.text());
    let token = key.sign(&claims(ISS, AUD, "ann"));
    let v = run_client_with(
        &client_runtimes().0,
        "ts2_client.mjs",
        &format!("http://127.0.0.1:{}/auth/mcp", p.port),
        "token-auto",
        &["--tool", tool],
        &[("TOKEN", &token)],
    );
    assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
    assert_eq!(v["initialize"], 0, "{v}");
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"it","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// [`modern_post`] to `path`.
pub(crate) fn modern_post_to(
    p: &Proxy,
    path: &str,
    method: &str,
    name: Option<&str>,
    extra: &str,
    body: &str,
) -> Response {
    let name = name
        .map(|n| format!("Mcp-Name: {n}\r\n"))
        .unwrap_or_default();
    p.req(&format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\n{name}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        p.port,
        body.len()
    ))
}
