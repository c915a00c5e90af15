//! `config.tracing`: spans exported over OTLP/HTTP to a receiver that decodes them with the
//! official protobuf definitions (`opentelemetry-proto`), with the client's trace as parent;
//! W3C `traceparent` sent upstream naming this proxy's span; head sampling (an unsampled
//! request exports nothing and passes the client's context on unchanged).
// The receiver's lock is the test's.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::both_drivers;
use crate::harness::*;
use crate::mcp::Mcp;
use crate::tokens::*;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver: every span of every export, decoded.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Export requests with their headers (lowercased names).
    headers: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let (s2, h2) = (spans.clone(), headers.clone());
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(stream) = stream else { return };
                let (s3, h3) = (s2.clone(), h2.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(stream.try_clone().unwrap());
                    let mut w = stream;
                    loop {
                        let mut head = String::new();
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            head.push_str(&lower);
                        }
                        let mut body = vec![0u8; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        h3.lock().unwrap().push(head.clone());
                        let ok = head.starts_with("post /v1/traces ")
                            && head.contains("content-type: application/x-protobuf");
                        if let (true, Ok(req)) = (ok, ExportTraceServiceRequest::decode(&body[..]))
                        {
                            for rs in req.resource_spans {
                                for ss in rs.scope_spans {
                                    s3.lock().unwrap().extend(ss.spans);
                                }
                            }
                        }
                        let status = if ok { "200 OK" } else { "400 Bad Request" };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                        );
                        if w.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver {
            port,
            spans,
            headers,
        }
    }

    /// The spans of trace `trace` (hex), once at least `n` have arrived (at most 10 s).
    fn wait(&self, trace: &str, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex(&s.trace_id) == trace)
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} spans: {found:?}",
                found.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(v) => Some(v.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

fn config(receiver: u16, upstream: u16, key: &TestKey, sampling: &str) -> String {
    format!(
        "{CONFIG_HEAD}  tracing:\n    otlpEndpoint: http://127.0.0.1:{receiver}\n    otlpProtocol: http\n    headers: {{x-tenant: portcullis-tests}}\n{sampling}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: api\n      matches: [{{path: {{pathPrefix: /api}}}}]\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n      backends: [{{host: '127.0.0.1:{upstream}'}}]\n",
        jwks(&[key])
    )
}

/// The `traceparent` line the echo upstream saw, if any.
fn upstream_traceparent(body: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .map(str::to_owned)
}

both_drivers!(spans_for_a_traced_request_and_none_for_the_rest, |d| {
    let rx = Receiver::start();
    let up = Upstream::echo();
    let key = TestKey::es256("k1");
    let token = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{}}}"#,
        now() + 600
    ));
    let p = Proxy::start(&config(rx.port, up.port, &key, ""), d);
    let get = |extra: &str| {
        p.req(&format!(
            "GET /api/x?secret=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
        ))
    };

    // A client trace: followed (agentgateway's default clientSampling), this proxy's spans are
    // its children, and the upstream's parent is this proxy's upstream span.
    let r = get(&format!(
        "traceparent: 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01\r\n"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = upstream_traceparent(&r.text()).expect("a traceparent upstream");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", CLIENT_TRACE, "01"),
        "{sent}"
    );
    assert_ne!(parts[2], CLIENT_SPAN);
    assert_eq!(r.text().matches("traceparent").count(), 1, "{}", r.text());
    let spans = rx.wait(CLIENT_TRACE, 3);
    let server = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(server.name, "GET api");
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(server, "url.path").as_deref(),
        Some("/api/x"),
        "never the query"
    );
    assert_eq!(attr(server, "http.route").as_deref(), Some("api"));
    let upstream = spans.iter().find(|s| s.kind == 3).expect("a client span");
    assert_eq!(hex(&upstream.span_id), parts[2], "the upstream's parent");
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(
        attr(upstream, "server.address"),
        Some(format!("127.0.0.1:{}", up.port))
    );
    let auth = spans
        .iter()
        .find(|s| s.name == "auth")
        .expect("an auth span");
    assert_eq!(auth.parent_span_id, server.span_id);
    assert_eq!(
        attr(auth, "portcullis.auth.result").as_deref(),
        Some("accepted")
    );
    for s in &spans {
        assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
        assert!(!format!("{s:?}").contains(&token), "never the token");
    }
    assert!(rx
        .headers
        .lock()
        .unwrap()
        .iter()
        .all(|h| h.contains("x-tenant: portcullis-tests")));
    // Counted when the export's answer comes back, which may be just after the receiver holds
    // the spans.
    crate::mcp::wait_until(5, "the exported spans to be counted", || {
        p.metric("portcullis_trace_spans_total{outcome=\"exported\"}") >= 3
    });

    // No client trace and randomSampling 0 (the default): nothing exported, nothing added.
    let before = rx.count();
    let r = get("");
    assert_eq!(r.status, 200);
    assert_eq!(upstream_traceparent(&r.text()), None);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(rx.count(), before, "an unsampled request exported spans");
    drop(p);

    // clientSampling 0, randomSampling 1: a client's trace is passed on unchanged and not
    // exported; a request without one starts a trace of its own.
    let p = Proxy::start(
        &config(
            rx.port,
            up.port,
            &key,
            "    clientSampling: 0\n    randomSampling: 1.0\n",
        ),
        d,
    );
    let get = |extra: &str| {
        p.req(&format!(
            "GET /api/y HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
        ))
    };
    let theirs = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = get(&format!("traceparent: {theirs}\r\n"));
    assert_eq!(upstream_traceparent(&r.text()), Some(theirs));
    let r = get("");
    let sent = upstream_traceparent(&r.text()).expect("a new trace");
    let trace = sent.split('-').nth(1).unwrap().to_owned();
    assert_ne!(trace, CLIENT_TRACE);
    let spans = rx.wait(&trace, 3);
    let server = spans.iter().find(|s| s.kind == 2).unwrap();
    assert!(server.parent_span_id.is_empty(), "a root span");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        rx.wait(CLIENT_TRACE, 3).len(),
        3,
        "the client-traced request of this proxy was not exported"
    );
});

/// A streamable-HTTP MCP server (2025 sessions) that records each POST's JSON-RPC method and
/// the `traceparent` it came with.
/// (JSON-RPC method, `traceparent`) of each POST an MCP server received.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn recording_mcp_server(seen: Seen) -> Upstream {
    Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            let h = |n: &str| {
                req.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let method = msg["method"].as_str().unwrap_or("").to_owned();
            seen.lock()
                .unwrap()
                .push((method.clone(), h("traceparent")));
            let Some(id) = msg.get("id").cloned() else {
                let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                continue;
            };
            let result = if method == "initialize" {
                serde_json::json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"rec","version":"1"}})
            } else {
                serde_json::json!({"content":[{"type":"text","text":"ok"}]})
            };
            let resp = serde_json::json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
            let _ = w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: up-1\r\ncontent-length: {}\r\n\r\n{resp}", resp.len()).as_bytes());
        }
    })
}

both_drivers!(mcp_session_messages_carry_the_request_trace, |d| {
    let rx = Receiver::start();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let up = recording_mcp_server(seen.clone());
    let p = Proxy::start(
        &format!(
            "{CONFIG_HEAD}  tracing: {{otlpEndpoint: 'http://127.0.0.1:{}', otlpProtocol: http}}\nbinds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: tools\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: rec\n            mcp: {{host: 127.0.0.1, port: {}, path: /mcp}}\n",
            rx.port, up.port
        ),
        d,
    );
    let mut c = Mcp::new(p.addr());
    assert_eq!(c.initialize().status, 200);
    // A traced tools/call: the upstream POST carries this proxy's span as its parent.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let body =
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{}}}"#;
    let r = c.raw(
        "POST",
        body,
        &format!("traceparent: 00-{trace}-b7ad6b7169203331-01\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = rx.wait(trace, 2);
    let relay = spans
        .iter()
        .find(|s| s.kind == 3)
        .expect("the relay's client span");
    assert_eq!(relay.name, "mcp");
    let sent = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| m == "tools/call")
        .and_then(|(_, t)| t.clone())
        .expect("tools/call upstream with a traceparent");
    assert_eq!(sent, format!("00-{trace}-{}-01", hex(&relay.span_id)));
    // Untraced messages of the session carry none.
    let init = seen.lock().unwrap()[0].clone();
    assert_eq!(init, ("initialize".to_owned(), None));
});
