//! `mcpAuthorization` and `authorization`: the official Python and TypeScript SDK clients, with
//! two tokens of different claims, see exactly the tools agentgateway's example rules allow
//! them, and a denied call never reaches the server (its stdin is logged); multiplexed targets'
//! names as the rules see them; the 403 `insufficient_scope` challenge; HTTP `authorization`;
//! 2026-07-28 requests decided from `Mcp-Name` and their lists filtered.
use std::path::Path;

use crate::both_drivers;
use crate::clients::{client_runtimes, fixtures};
use crate::harness::*;
use crate::mcp::{messages, mini_server, Mcp};
use crate::modern::{modern_post, ModernServer};
use crate::tokens::*;

const ISS: &str = "agentgateway.dev";
const AUD: &str = "test.agentgateway.dev";

/// agentgateway's `examples/authorization` rules, with the seed server's `slow_echo` in place
/// of `printEnv`.
const EXAMPLE_RULES: &str = "        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n          - 'jwt.sub == \"test-user\" && mcp.tool.name == \"add\"'\n          - 'mcp.tool.name == \"slow_echo\" && jwt.nested.key == \"value\"'\n";

fn jwt_auth(key: &TestKey) -> String {
    format!(
        "        jwtAuth:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n",
        jwks(&[key])
    )
}

/// agentgateway's two example tokens: `example1` carries `nested.key`, `example2` does not (and
/// here names another subject).
fn example_tokens(key: &TestKey) -> (String, String) {
    let n = now();
    let one = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"test-user","exp":{},"field1":"value1","nested":{{"key":"value"}},"list":["apple","banana"]}}"#,
        n + 3600
    ));
    let two = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"other-user","exp":{}}}"#,
        n + 3600
    ));
    (one, two)
}

fn run_authz_client(
    cmd: &str,
    script: &str,
    url: &str,
    token: &str,
    tools: &[&str],
) -> serde_json::Value {
    let out = std::process::Command::new(cmd)
        .arg(fixtures().join("clients").join(script))
        .arg(url)
        .arg(token)
        .args(tools)
        .output()
        .expect("run the authz client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    assert!(
        out.status.success() && v["ok"] == true,
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// Tool calls in the server's stdin log, by tool name.
fn calls_logged(log: &Path, tool: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["method"] == "tools/call" && m["params"]["name"] == tool)
        .count()
}

both_drivers!(sdk_clients_see_and_call_what_their_rules_allow, |d| {
    let (node, python) = client_runtimes().clone();
    let (server_dir, path) = crate::idp::stdio_server();
    let key = TestKey::es256("k1");
    let (one, two) = example_tokens(&key);
    let log = temp_dir().join("stdin.log");
    // The seed's FastMCP server, its stdin copied to a log first: what reaches it is on record.
    let server = format!(
        "stdio: {{cmd: sh, args: ['-c', 'tee -a {} | uv run src/main.py']}}",
        log.display()
    );
    let config = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n{}{EXAMPLE_RULES}      backends:\n      - mcp:\n          targets:\n          - name: hello\n            {server}\n",
        jwt_auth(&key)
    );
    let p = Proxy::start_full(
        &config,
        d,
        &[],
        &[],
        &[("PATH", path.as_str()), ("UV_PYTHON_DOWNLOADS", "never")],
        Some(&server_dir),
    );
    let url = format!("http://127.0.0.1:{}/mcp", p.port);
    let all = ["echo", "add", "slow_echo", "crash"];
    for (cmd, script) in [(&python, "authz_client.py"), (&node, "authz_client.mjs")] {
        let v = run_authz_client(cmd, script, &url, &one, &all);
        assert_eq!(
            v["tools"],
            serde_json::json!(["add", "echo", "slow_echo"]),
            "{script}: {v}"
        );
        assert_eq!(v["calls"]["echo"]["text"], "echo: authz", "{script}: {v}");
        assert_eq!(v["calls"]["add"]["text"], "5", "{script}: {v}");
        assert_eq!(
            v["calls"]["slow_echo"]["text"], "slow echo: authz",
            "{script}: {v}"
        );
        assert_eq!(v["calls"]["crash"]["ok"], false, "{script}: {v}");
        assert_eq!(v["calls"]["crash"]["status"], 400, "{script}: {v}");
        assert!(
            v["calls"]["crash"]["error"]
                .as_str()
                .unwrap_or("")
                .contains("Unknown tool: crash"),
            "{script}: {v}"
        );

        let v = run_authz_client(cmd, script, &url, &two, &all);
        assert_eq!(v["tools"], serde_json::json!(["echo"]), "{script}: {v}");
        assert_eq!(v["calls"]["echo"]["text"], "echo: authz", "{script}: {v}");
        for denied in ["add", "slow_echo", "crash"] {
            assert_eq!(v["calls"][denied]["ok"], false, "{script} {denied}: {v}");
            assert_eq!(v["calls"][denied]["status"], 400, "{script} {denied}: {v}");
        }
    }
    // What reached the server: only the allowed calls (two clients × the first token for add
    // and slow_echo; both tokens for echo), never `crash`.
    assert_eq!(
        calls_logged(&log, "echo"),
        4,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(calls_logged(&log, "add"), 2);
    assert_eq!(calls_logged(&log, "slow_echo"), 2);
    assert_eq!(calls_logged(&log, "crash"), 0);
    assert!(p.wait_log("authz=\"deny\"", 5), "{}", p.log());
    assert!(!p.log().contains("eyJ"), "no token material in the log");
    let m = p.metrics();
    assert!(
        m.contains("portcullis_authorization_denied_total{route=\"mcp\",reason=\"call\"} 8"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_authorization_denied_total{route=\"mcp\",reason=\"list_item\"}"),
        "{m}"
    );
});

fn two_targets(policies: &str) -> String {
    let server = |name: &str| {
        format!(
            "          - name: {name}\n            stdio: {{cmd: python3, args: ['{}']}}\n",
            mini_server()
        )
    };
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mux\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n{policies}      backends:\n      - mcp:\n          targets:\n{}{}",
        server("a"),
        server("b")
    )
}

fn error_of(v: &serde_json::Value) -> (i64, String) {
    (
        v["error"]["code"].as_i64().unwrap_or(0),
        v["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

both_drivers!(
    multiplexed_names_are_seen_unprefixed_with_their_target,
    |d| {
        let rules = "        mcpAuthorization:\n          rules:\n          - 'mcp.tool.target == \"a\" && mcp.tool.name == \"echo\"'\n          - 'mcp.tool.name == \"whoami\"'\n          - deny: 'mcp.tool.target == \"b\" && mcp.tool.name == \"whoami\"'\n";
        let p = Proxy::start(&two_targets(rules), d);
        let mut c = Mcp::new(p.addr());
        assert_eq!(c.initialize().status, 200);
        let (r, msgs) = c.call("tools/list", "{}");
        assert_eq!(r.status, 200, "{}", r.text());
        let mut names: Vec<&str> = msgs[0]["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a_echo", "a_whoami"], "{}", r.text());
        // Allowed: relayed to target a.
        let v = c.tool("a_echo", r#"{"message":"hi"}"#);
        assert!(v["result"].is_object(), "{v}");
        // Denied by no rule, and by a deny rule: answered as an unknown tool, never forwarded.
        for denied in ["b_echo", "b_whoami", "nosuch_echo"] {
            let (r, msgs) = c.call(
                "tools/call",
                &format!(r#"{{"name":"{denied}","arguments":{{}}}}"#),
            );
            assert_eq!(r.status, 400, "{denied}: {}", r.text());
            assert_eq!(
                error_of(&msgs[0]),
                (-32602, format!("Unknown tool: {denied}")),
                "{}",
                r.text()
            );
        }
    }
);

both_drivers!(a_missing_scope_is_challenged_with_every_scope_needed, |d| {
    let key = TestKey::es256("k1");
    let rules = "        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"whoami\"'\n          - 'mcp.tool.name == \"echo\" && \"mcp:write\" in jwt.scope.split(\" \") && \"mcp:audit\" in jwt.scope.split(\" \")'\n";
    let auth = format!(
        "        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://127.0.0.1:{{PORT}}/mcp\n            scopesSupported: [mcp:read, mcp:write, mcp:audit]\n",
        jwks(&[&key])
    );
    let config = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n{auth}{rules}      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        mini_server()
    );
    let p = Proxy::start(&config, d);
    let token = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"u","scope":"mcp:read","exp":{}}}"#,
        now() + 3600
    ));
    let mut c = Mcp::new(p.addr());
    c.token = Some(token);
    assert_eq!(c.initialize().status, 200);
    let (r, _) = c.call("tools/call", r#"{"name":"echo","arguments":{}}"#);
    assert_eq!(r.status, 403, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read mcp:write mcp:audit\", error=\"insufficient_scope\"",
            p.port
        )),
        "{challenge}"
    );
    // A tool no scope would open is an unknown tool, not a challenge.
    let (r, _) = c.call("tools/call", r#"{"name":"crash","arguments":{}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(c.tool("whoami", "{}")["result"].is_object());
    assert!(p.metrics().contains(
        "portcullis_authorization_denied_total{route=\"mcp\",reason=\"insufficient_scope\"} 1"
    ));
});

both_drivers!(http_authorization_refuses_as_agentgateway_does, |d| {
    let up = Upstream::echo();
    let config = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: api\n      policies:\n        authorization:\n          rules:\n          - 'request.headers[\"x-team\"] == \"blue\" && request.method == \"GET\"'\n          - deny: 'request.path.startsWith(\"/admin\")'\n      backends:\n      - host: 127.0.0.1:{}\n",
        up.port
    );
    let p = Proxy::start(&config, d);
    let get = |path: &str, extra: &str| {
        p.req(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
        ))
    };
    let r = get("/data", "");
    assert_eq!((r.status, r.text().as_str()), (403, "authorization failed"));
    assert_eq!(get("/data", "X-Team: blue\r\n").status, 200);
    assert_eq!(get("/admin/x", "X-Team: blue\r\n").status, 403);
    // The access log names the verdict.
    assert!(p.wait_log("authz=\"deny\"", 5), "{}", p.log());
    assert!(p.wait_log("authz=\"allow\"", 5), "{}", p.log());
    assert!(p
        .metrics()
        .contains("portcullis_authorization_denied_total{route=\"api\",reason=\"http\"} 2"));
});

both_drivers!(modern_requests_are_decided_from_their_headers, |d| {
    let server = ModernServer::start();
    let key = TestKey::es256("k1");
    let (one, two) = example_tokens(&key);
    let config = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n{}{EXAMPLE_RULES}      backends:\n      - mcp:\n          targets:\n          - name: modern\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n",
        jwt_auth(&key),
        server.port
    );
    let p = Proxy::start(&config, d);
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"it","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}"#;
    let list = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{{{meta}}}}}"#);
    let add = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{{"name":"add","arguments":{{"a":2,"b":3}},{meta}}}}}"#
    );
    let tools = |token: &str| {
        let r = modern_post(
            &p,
            "tools/list",
            None,
            &format!("Authorization: Bearer {token}\r\n"),
            &list,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let msgs = messages(&r);
        let mut names: Vec<String> = msgs.last().unwrap()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(tools(&one), ["add", "echo"]);
    assert_eq!(tools(&two), ["echo"]);
    let call = |token: &str| {
        modern_post(
            &p,
            "tools/call",
            Some("add"),
            &format!("Authorization: Bearer {token}\r\n"),
            &add,
        )
    };
    let r = call(&one);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("5"), "{}", r.text());
    let r = call(&two);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        error_of(&messages(&r)[0]),
        (-32602, "Unknown tool: add".to_owned())
    );
    // The name base64-encoded in the header: decided on the name the server runs.
    let r = modern_post(
        &p,
        "tools/call",
        Some("=?base64?YWRk?="),
        &format!("Authorization: Bearer {two}\r\n"),
        &add,
    );
    assert_eq!(r.status, 400, "{}", r.text());
});

both_drivers!(a_session_answers_only_on_the_route_that_opened_it, |d| {
    // /admin denies `crash`; /open has no rules. A session opened on /admin must not run
    // calls that came through /open, whose policies did not check them.
    let route = |name: &str, policies: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{exact: /{name}}}}}]\n{policies}      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
            mini_server()
        )
    };
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n{}{}",
        route(
            "admin",
            "      policies:\n        mcpAuthorization:\n          rules: ['mcp.tool.name == \"whoami\"']\n"
        ),
        route("open", "")
    );
    let p = Proxy::start(&cfg, d);
    let mut admin = Mcp::new(p.addr());
    admin.path = "/admin".into();
    assert_eq!(admin.initialize().status, 200);
    let (r, _) = admin.call("tools/call", r#"{"name":"crash","arguments":{}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let mut open = Mcp::new(p.addr());
    open.path = "/open".into();
    open.session = admin.session.clone();
    let (r, _) = open.call("tools/call", r#"{"name":"crash","arguments":{}}"#);
    assert_eq!(r.status, 404, "{}", r.text());
    // A call without an id (a notification) is checked too.
    let r = admin.raw(
        "POST",
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"crash","arguments":{}}}"#,
        "",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(admin.tool("whoami", "{}")["result"].is_object());
});

both_drivers!(sdk_clients_step_up_on_the_scope_challenge, |d| {
    let (node, python) = client_runtimes().clone();
    let idp = crate::idp::Idp::start(&[("AT_ALG", "RS256"), ("OPEN_CLIENT_SCOPES", "1")]);
    let (server_dir, path) = crate::idp::stdio_server();
    // echo needs mcp:write; the 401 challenge (from scopesSupported) asks for mcp:read only.
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: hello\n      matches: [{{path: {{exact: /hello/mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: hello-world\n            stdio: {{cmd: uv, args: [run, src/main.py]}}\n      policies:\n        mcpAuthentication:\n          issuer: {iss}\n          jwksUrl: {iss}/protocol/openid-connect/certs\n          audience: http://127.0.0.1:{{PORT}}/hello/mcp\n          provider: {{keycloak: {{}}}}\n          resourceMetadata:\n            resource: http://127.0.0.1:{{PORT}}/hello/mcp\n            scopesSupported: [mcp:read]\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"add\"'\n          - 'mcp.tool.name == \"echo\" && \"mcp:write\" in jwt.scope.split(\" \")'\n",
        iss = idp.issuer
    );
    let p = Proxy::start_full(
        &cfg,
        d,
        &[],
        &[],
        &[("PATH", path.as_str()), ("UV_PYTHON_DOWNLOADS", "never")],
        Some(&server_dir),
    );
    let url = format!("http://127.0.0.1:{}/hello/mcp", p.port);
    // The TS client registers without refresh_token: SDK 1.32.2 would refresh first, which
    // cannot widen the grant (see ts_client.mjs --no-refresh).
    for (cmd, script, mode, extra) in [
        (&python, "py_client.py", "oauth-legacy", None),
        (&node, "ts_client.mjs", "oauth", Some("--no-refresh")),
    ] {
        let out = std::process::Command::new(cmd)
            .arg(fixtures().join("clients").join(script))
            .args([url.as_str(), mode, "--scope", "mcp:read"])
            .args(extra)
            .output()
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(
            stdout
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .unwrap_or(""),
        )
        .unwrap_or_default();
        assert!(
            out.status.success() && v["ok"] == true,
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The list showed what the first token allowed; the call was challenged, then made with
        // the token of the wider grant.
        assert_eq!(v["tools"], serde_json::json!(["add"]), "{script}: {v}");
        let client = &script[..2];
        assert_eq!(
            v["call"]["text"],
            format!("echo: hello from {client}_client"),
            "{v}"
        );
        let scope = v["auth"]["token"]["scope"].as_str().unwrap_or("");
        assert!(scope.split(' ').any(|s| s == "mcp:write"), "{v}");
        assert!(scope.split(' ').any(|s| s == "mcp:read"), "{v}");
        if script == "py_client.py" {
            let statuses: Vec<i64> = v["http"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|h| h.as_array()?.last()?.as_i64())
                .collect();
            assert!(statuses.contains(&403), "{v}");
        } else {
            assert_eq!(v["auth"]["step_up"], true, "{v}");
        }
    }
    assert_eq!(
        p.metric(
            "portcullis_authorization_denied_total{route=\"hello\",reason=\"insufficient_scope\"}"
        ),
        2
    );
});
