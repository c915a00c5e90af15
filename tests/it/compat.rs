//! The compatibility mode: MCP 2026-07-28 clients (the Python SDK's `mcp` 2.3.0 in
//! `mode="auto"`, the TypeScript SDK's `@modelcontextprotocol/client` 2.4.0 with
//! `versionNegotiation: {mode: 'auto'}`, and raw 2026-07-28 requests) reach servers that speak only the 2025 revisions
//! — a FastMCP 1.x stdio server, the TypeScript SDK 1.x over streamable HTTP, a route mixing a
//! modern and a 2025 server — without falling back; upstream sessions are held per principal;
//! the mode can be turned off per route; a server's requests to its client are refused; a
//! server that ends its session gets the refused call again in a new one.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use crate::both_drivers;
use crate::clients::{client_runtimes, fixtures, run_client};
use crate::harness::*;
use crate::idp::stdio_server;
use crate::mcp::wait_until;
use crate::modern::{modern_post, modern_post_to, ModernServer};
use crate::tokens::*;

/// The 2026-07-28 envelope every request carries.
const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"it","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}"#;

fn discover() -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{META}}}}}"#)
}

fn list() -> String {
    format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{{META}}}}}"#)
}

fn call(tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{args},{META}}}}}"#
    )
}

/// The JSON-RPC messages of an answer, JSON or SSE.
fn messages(r: &Response) -> Vec<serde_json::Value> {
    let text = r.text();
    if r.header("content-type") == Some("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    }
}

fn result(r: &Response) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = messages(r);
    let last = msgs.last().cloned().unwrap_or_default();
    assert!(last.get("result").is_some(), "{}", r.text());
    last["result"].clone()
}

/// The TypeScript SDK 1.x fixture (2025 revisions only) over streamable HTTP on `port`.
pub(crate) struct TsServer {
    child: Child,
}

impl TsServer {
    pub(crate) fn start(port: u16) -> TsServer {
        let install = Command::new("bash")
            .arg(fixtures().join("conformance/install.sh"))
            .output()
            .expect("conformance install");
        assert!(install.status.success());
        let node = String::from_utf8_lossy(&install.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned();
        let mut child = Command::new(node)
            .arg(fixtures().join("conformance/fixture_server.mjs"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fixture_server.mjs");
        let mut line = String::new();
        // Bounded: the read ends at EOF if the server dies.
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert!(line.starts_with("FIXTURE_READY"), "fixture: {line}");
        TsServer { child }
    }
}

impl Drop for TsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_drivers!(
    modern_clients_reach_2025_servers_without_falling_back,
    |d| {
        let (node, python) = client_runtimes().clone();
        let (server_dir, path) = stdio_server();
        let modern = ModernServer::start();
        let ts_port = free_port();
        let _ts = TsServer::start(ts_port);
        let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: stdio\n      matches: [{{path: {{exact: /stdio/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: hello\n            stdio: {{cmd: uv, args: [run, src/main.py]}}\n    - name: stateless\n      matches: [{{path: {{exact: /stateless/mcp}}}}]\n      backends:\n      - mcp:\n          statefulMode: stateless\n          targets:\n          - name: hello\n            stdio: {{cmd: uv, args: [run, src/main.py]}}\n    - name: http\n      matches: [{{path: {{exact: /http/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n    - name: multi\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: modern\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n          - name: hello\n            stdio: {{cmd: uv, args: [run, src/main.py]}}\n",
        modern.port
    );
        let p = Proxy::start_full(
            &cfg,
            d,
            &[],
            &[],
            &[("PATH", path.as_str()), ("UV_PYTHON_DOWNLOADS", "never")],
            Some(&server_dir),
        );
        // The SDK client in auto mode: server/discover, then tools/list and tools/call at
        // 2026-07-28, no initialize from the client, against a 2025-only stdio and HTTP server.
        for route in ["stdio", "stateless", "http"] {
            let url = format!("http://127.0.0.1:{}/{route}/mcp", p.port);
            let v = run_client(&python, "py_client.py", &url, "none-auto");
            assert_eq!(v["protocolVersion"], "2026-07-28", "{route}: {v}");
            assert_eq!(v["fallback"]["initialize"], serde_json::json!([]), "{v}");
            assert_eq!(v["call"]["text"], "echo: hello from py_client", "{v}");
            // A 2025 client on the same route still gets a 2025 session.
            let v = run_client(&python, "py_client.py", &url, "none");
            assert_eq!(v["protocolVersion"], "2025-11-25", "{route}: {v}");
            // The TypeScript SDK 2.x client: in auto mode 2026-07-28 without initialize, in
            // its default (legacy) mode a 2025 session.
            let v = run_client(&node, "ts2_client.mjs", &url, "none-auto");
            assert_eq!(v["protocolVersion"], "2026-07-28", "{route}: {v}");
            assert_eq!(v["initialize"], 0, "{v}");
            let v = run_client(&node, "ts2_client.mjs", &url, "none-legacy");
            assert_eq!(v["protocolVersion"], "2025-11-25", "{route}: {v}");
        }
        assert!(p.wait_log("mcp compatibility session started", 5));
        // Through the same mode, the SDK server's info and capabilities reach the client.
        let url = format!("http://127.0.0.1:{}/stdio/mcp", p.port);
        let v = run_client(&python, "py_client.py", &url, "none-auto");
        assert_eq!(v["server"]["name"], "hello-world", "{v}");
        // A route mixing a 2026-07-28 server and a 2025 one: discover answers for the route, the
        // lists are merged with their prefixes, and each prefixed tool reaches its server.
        let d = result(&modern_post(&p, "server/discover", None, "", &discover()));
        assert_eq!(d["supportedVersions"][0], "2026-07-28", "{d}");
        assert_eq!(d["resultType"], "complete", "{d}");
        assert!(d["capabilities"]["tools"].is_object(), "{d}");
        let l = result(&modern_post(&p, "tools/list", None, "", &list()));
        let names: Vec<&str> = l["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&"modern_echo") && names.contains(&"hello_echo"),
            "{names:?}"
        );
        assert_eq!(
            (l["resultType"].as_str(), l["cacheScope"].as_str()),
            (Some("complete"), Some("private"))
        );
        for (tool, want) in [("modern_echo", "echo: hi"), ("hello_echo", "echo: hi")] {
            let body = call(tool, r#"{"message":"hi"}"#);
            let r = result(&modern_post(&p, "tools/call", Some(tool), "", &body));
            assert_eq!(r["content"][0]["text"], want, "{tool}: {r}");
            assert_eq!(r["resultType"], "complete");
        }
        // A 2025 client on the mixed route: a 2025 session, prefixed tools.
        let url = format!("http://127.0.0.1:{}/mcp", p.port);
        let out = Command::new(&python)
            .arg(fixtures().join("clients/py_client.py"))
            .args([&url, "none"])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
        assert_eq!(v["protocolVersion"], "2025-11-25", "{line}");
        assert!(v["tools"].to_string().contains("hello_echo"), "{line}");
    }
);

/// The ids server (tests/fixtures/mcp_ids_server.py, a 2025 stdio server) behind JWT auth.
fn ids_route(key: &TestKey, extra: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/mcp\n      backends:\n      - mcp:\n{extra}          targets:\n          - name: ids\n            stdio:\n              cmd: python3\n              args: ['{}']\n",
        jwks(&[key]),
        fixtures().join("mcp_ids_server.py").display()
    )
}

const ISS: &str = "http://idp.test/realms/mcp";
const AUD: &str = "mcp_proxy";

both_drivers!(compat_sessions_belong_to_one_principal, |d| {
    let key = TestKey::es256("k1");
    let p = Proxy::start_with(&ids_route(&key, ""), d, &[], &["--workers", "1"]);
    // Authentication is the same as for every request: 401 with the metadata's address.
    let r = modern_post(&p, "tools/list", None, "", &list());
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|c| c.contains("resource_metadata=")));
    let bearer = |sub: &str| {
        format!(
            "Authorization: Bearer {}\r\n",
            key.sign(&claims(ISS, AUD, sub))
        )
    };
    let (ann, bob) = (bearer("ann"), bearer("bob"));
    for _ in 0..3 {
        let body = call("echo", r#"{"message":"a"}"#);
        let r = result(&modern_post(&p, "tools/call", Some("echo"), &ann, &body));
        assert_eq!(r["content"][0]["text"], "echo a", "{r}");
    }
    let body = call("echo", r#"{"message":"b"}"#);
    let r = result(&modern_post(&p, "tools/call", Some("echo"), &bob, &body));
    assert_eq!(r["content"][0]["text"], "echo b", "{r}");
    // One session (one process) per principal, however many calls: two in all (the log is
    // written off the workers: waited for). The process asked which revision the server
    // speaks has stopped.
    let started = || p.log().matches("mcp compatibility session started").count();
    wait_until(5, "two compatibility sessions logged", || started() >= 2);
    assert_eq!(started(), 2, "{}", p.log());
    assert_eq!(p.metric("portcullis_stdio_processes"), 2);
    // Each call counted once, with its server (by the session that ran it).
    let calls = p
        .metrics()
        .lines()
        .filter(|l| {
            l.starts_with(r#"agentgateway_mcp_requests_total{method="tools/call",resource_type="tool",server="ids",resource="echo","#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert_eq!(calls, 4, "{}", p.metrics());
    // The server never saw the 2026-07-28 envelope (it prints each reserved _meta key it gets
    // on stderr, which Portcullis logs; a dual-era server would route such a request as modern).
    assert!(p.wait_log("mcp_stderr: id 4", 5), "{}", p.log());
    // (A `server/discover` asks a process started for the purpose which revision the server
    // speaks: that one carries the envelope by design.)
    let leaked = p
        .log()
        .lines()
        .any(|l| l.contains("envelope ") && !l.contains("envelope server/discover "));
    assert!(!leaked, "{}", p.log());
    assert!(p.log_contains("speaks_2026=Some(false)"), "{}", p.log());
    // A server's request to its client is answered with an error (the client speaks
    // 2026-07-28 and could not answer it); the call completes.
    let body = call("ask", "{}");
    let r = result(&modern_post(&p, "tools/call", Some("ask"), &ann, &body));
    assert_eq!(r["content"][0]["text"], "asked: error -32601", "{r}");
    // Methods the revision removed are unknown (404, -32601), and a server's missing-capability
    // error gets the revision's 400.
    for method in ["ping", "initialize", "logging/setLevel"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":9,"method":"{method}","params":{{{META}}}}}"#);
        let r = modern_post(&p, method, None, &ann, &body);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!(
            (r.status, &v["error"]["code"]),
            (404, &(-32601).into()),
            "{method}: {v}"
        );
        assert_eq!(v["id"], 9, "{v}");
    }
    let body = call("needs_sampling", "{}");
    let r = modern_post(&p, "tools/call", Some("needs_sampling"), &ann, &body);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(
        (r.status, &v["error"]["code"]),
        (400, &(-32021).into()),
        "{v}"
    );
    // A request without the revision's envelope is refused before any server sees it.
    let bare = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{}}"#;
    let r = modern_post(&p, "tools/list", None, &ann, bare);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(
        (r.status, &v["error"]["code"]),
        (400, &(-32602).into()),
        "{v}"
    );
    // A session id the mode holds is never given out, and no client can use one.
    let r = modern_post(&p, "tools/list", None, &ann, &list());
    assert_eq!(r.header("mcp-session-id"), None);
});

both_drivers!(compat_off_leaves_the_fallback_to_the_client, |d| {
    let key = TestKey::es256("k1");
    let p = Proxy::start(&ids_route(&key, "          modernCompat: false\n"), d);
    let ann = format!(
        "Authorization: Bearer {}\r\n",
        key.sign(&claims(ISS, AUD, "ann"))
    );
    let r = modern_post(&p, "server/discover", None, &ann, &discover());
    assert_eq!(r.status, 400, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], -32022, "{v}");
    let supported = v["error"]["data"]["supported"].as_array().cloned();
    assert!(
        supported.is_some_and(|s| s.iter().any(|v| v == "2025-11-25")),
        "{v}"
    );
    assert!(!p.log_contains("compatibility session"));
});

both_drivers!(a_session_the_server_ended_is_opened_again, |d| {
    let ts_port = free_port();
    let ts = TsServer::start(ts_port);
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: http\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n"
    );
    let p = Proxy::start_with(&cfg, d, &[], &["--workers", "1"]);
    let body = call("echo", r#"{"message":"one"}"#);
    let r = result(&modern_post(&p, "tools/call", Some("echo"), "", &body));
    assert_eq!(r["content"][0]["text"], "echo: one", "{r}");
    // The server restarts: it knows no session any more and answers 404 to ours. (After a
    // second: the pooled connection to the old server is then known to have closed while idle
    // and the POST may go on a fresh one — `net::client::may_resend`.)
    drop(ts);
    let _ts = TsServer::start(ts_port);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let body = call("echo", r#"{"message":"two"}"#);
    let r = result(&modern_post(&p, "tools/call", Some("echo"), "", &body));
    assert_eq!(r["content"][0]["text"], "echo: two", "{r}");
    assert!(p.wait_log("the call goes again in a new one", 5));
    let started = || p.log().matches("mcp compatibility session started").count();
    wait_until(5, "two compatibility sessions logged", || started() >= 2);
    assert_eq!(started(), 2, "{}", p.log());
});

both_drivers!(mirrored_parameters_are_checked_for_a_2025_server, |d| {
    let ts_port = free_port();
    let _ts = TsServer::start(ts_port);
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: http\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n    - name: stateless\n      matches: [{{path: {{exact: /stateless/mcp}}}}]\n      backends:\n      - mcp:\n          statefulMode: stateless\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n"
    );
    let p = Proxy::start(&cfg, d);
    // The fixture's `test_header_param` declares `region` as `x-mcp-header: Region`; the 2025
    // server cannot check the header, so Portcullis does, as a 2026-07-28 server must — through
    // the session it holds, and on a stateless route (fresh servers for every request) too.
    let body = call("test_header_param", r#"{"region":"us"}"#);
    for path in ["/mcp", "/stateless/mcp"] {
        let post = |extra: &str| {
            modern_post_to(
                &p,
                path,
                "tools/call",
                Some("test_header_param"),
                extra,
                &body,
            )
        };
        for ok in [
            "Mcp-Param-Region: us\r\n",
            "mcp-param-region: =?base64?dXM=?=\r\n",
        ] {
            let r = result(&post(ok));
            assert_eq!(r["content"][0]["text"], "region: us", "{path} {ok}: {r}");
        }
        for bad in [
            "Mcp-Param-Region: eu\r\n",
            "",
            "Mcp-Param-Region: =?base64?dXM?=\r\n",
        ] {
            let r = post(bad);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            assert_eq!(
                (r.status, &v["error"]["code"]),
                (400, &(-32020).into()),
                "{path} {bad:?}: {v}"
            );
            assert_eq!(v["id"], 3, "{v}");
        }
    }
});

/// A `subscriptions/listen` request (raw JSON id `id`) for `notifications`.
fn listen_body(id: &str, notifications: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"subscriptions/listen","params":{{"notifications":{notifications},{META}}}}}"#
    )
}

/// Opens a listen stream on `path`; returns the reader, positioned after the response head.
fn open_listen(p: &Proxy, path: &str, extra: &str, body: &str) -> BufReader<std::net::TcpStream> {
    let mut c = connect(p.addr());
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: localhost:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: subscriptions/listen\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        p.port,
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    while line.trim() != "" {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "head ended early");
    }
    r
}

/// The stream's `data:` lines until one holds `until` (every line read is returned).
fn read_until(r: &mut BufReader<std::net::TcpStream>, until: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap_or(0);
        assert!(
            n > 0,
            "the stream ended (or went quiet) before {until}: {seen:?}"
        );
        if let Some(data) = line.trim().strip_prefix("data:") {
            seen.push(data.trim().to_owned());
            if data.contains(until) {
                return seen;
            }
        }
    }
}

both_drivers!(listen_streams_reach_2025_servers, |d| {
    // A stdio server (the ids server: tools.listChanged, resource subscriptions) behind
    // authentication; one worker, so the listen stream and the calls share the principal's
    // session.
    let key = TestKey::es256("k1");
    let p = Proxy::start_with(&ids_route(&key, ""), d, &[], &["--workers", "1"]);
    let ann = format!(
        "Authorization: Bearer {}\r\n",
        key.sign(&claims(ISS, AUD, "ann"))
    );
    let body = listen_body(
        r#""l1""#,
        r#"{"toolsListChanged":true,"promptsListChanged":true,"resourceSubscriptions":["test://a"]}"#,
    );
    let mut stream = open_listen(&p, "/mcp", &ann, &body);
    // The acknowledgement comes first: prompts are not honored (the server does not announce
    // them), the resource is (subscribed upstream).
    let ack = read_until(&mut stream, "subscriptions/acknowledged");
    let ack: serde_json::Value = serde_json::from_str(ack.last().unwrap()).unwrap();
    assert_eq!(
        ack["params"]["notifications"],
        serde_json::json!({"toolsListChanged": true, "resourceSubscriptions": ["test://a"]}),
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "l1"
    );
    assert!(
        p.wait_log("mcp_stderr: subscribe test://a", 5),
        "{}",
        p.log()
    );
    // A call that makes the server announce changes: the stream carries those asked for.
    let body = call("touch", "{}");
    let r = result(&modern_post(&p, "tools/call", Some("touch"), &ann, &body));
    assert_eq!(r["content"][0]["text"], "touched", "{r}");
    let mut seen = read_until(&mut stream, "tools/list_changed");
    seen.extend(read_until(&mut stream, "resources/updated"));
    let updated: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(updated["params"]["uri"], "test://a");
    assert_eq!(
        updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "l1"
    );
    assert!(
        !seen.iter().any(|l| l.contains("prompts/list_changed")),
        "{seen:?}"
    );
    // A second stream of the same principal on the same resource: when the first closes, the
    // subscription stays (the second still gets updates); after the last, it ends upstream.
    let body = listen_body(r#""l2""#, r#"{"resourceSubscriptions":["test://a"]}"#);
    let mut second = open_listen(&p, "/mcp", &ann, &body);
    read_until(&mut second, "subscriptions/acknowledged");
    drop(stream);
    let body = call("touch", "{}");
    let r = result(&modern_post(&p, "tools/call", Some("touch"), &ann, &body));
    assert_eq!(r["content"][0]["text"], "touched", "{r}");
    let seen = read_until(&mut second, "resources/updated");
    assert!(seen.last().unwrap().contains(r#""l2""#), "{seen:?}");
    assert!(!p.log_contains("mcp_stderr: unsubscribe"), "{}", p.log());
    drop(second);
    assert!(
        p.wait_log("mcp_stderr: unsubscribe test://a", 10),
        "{}",
        p.log()
    );

    // A streamable-HTTP server (the TS SDK 1.x fixture): its notifications come on the GET
    // stream Portcullis opens for as long as the listen stream lasts.
    let ts_port = free_port();
    let _ts = TsServer::start(ts_port);
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: http\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n    - name: stateless\n      matches: [{{path: {{exact: /stateless/mcp}}}}]\n      backends:\n      - mcp:\n          statefulMode: stateless\n          targets:\n          - name: ts\n            mcp: {{host: 127.0.0.1, port: {ts_port}, path: /mcp}}\n"
    );
    let p = Proxy::start_with(&cfg, d, &[], &["--workers", "1"]);
    let watched = "test://watched-resource";
    let body = listen_body(
        "7",
        &format!(r#"{{"toolsListChanged":true,"resourceSubscriptions":["{watched}"]}}"#),
    );
    let mut stream = open_listen(&p, "/mcp", "", &body);
    let ack = read_until(&mut stream, "subscriptions/acknowledged");
    let ack: serde_json::Value = serde_json::from_str(ack.last().unwrap()).unwrap();
    assert_eq!(
        ack["params"]["notifications"],
        serde_json::json!({"resourceSubscriptions": [watched]}),
        "{ack}"
    );
    let body = call("test_touch_resources", "{}");
    let r = result(&modern_post(
        &p,
        "tools/call",
        Some("test_touch_resources"),
        "",
        &body,
    ));
    assert_eq!(
        r["content"][0]["text"],
        format!("touched: {watched}"),
        "{r}"
    );
    let seen = read_until(&mut stream, "resources/updated");
    let updated: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(updated["params"]["uri"], watched);
    assert_eq!(
        updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    drop(stream);
    // On a stateless route there is no session to listen to: refused, and said why.
    let body = listen_body("8", r#"{"toolsListChanged":true}"#);
    let r = modern_post_to(
        &p,
        "/stateless/mcp",
        "subscriptions/listen",
        None,
        "",
        &body,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(v["error"]["code"], -32601, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("stateless"),
        "{v}"
    );
});
