//! `host` backends: the request reaches the upstream rewritten as a proxy should, bodies stream
//! both ways, pipelined requests are answered in order, SSE events arrive as they are written.
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

fn config(extra_policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: up\n      policies:\n        requestHeaderModifier:\n          set: {{x-set: s}}\n          add: {{x-added: a}}\n          remove: [x-secret]\n        responseHeaderModifier:\n          set: {{x-resp: r}}\n{extra_policies}      backends:\n      - host: 127.0.0.1:{{UP}}\n"
    )
}

both_drivers!(forwards_with_proxy_headers, |d| {
    let up = Upstream::echo();
    let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
    let r = p.req("GET /a/b?x=1 HTTP/1.1\r\nHost: front.example\r\nX-Secret: s3\r\nX-Set: old\r\nConnection: close, x-private\r\nX-Private: p\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(body.starts_with("GET /a/b?x=1\n"), "{body}");
    assert!(body.contains("host: front.example\n"), "{body}");
    assert!(
        body.contains("x-set: s\n") && !body.contains("x-set: old"),
        "{body}"
    );
    assert!(body.contains("x-added: a\n"), "{body}");
    assert!(!body.contains("x-secret"), "{body}");
    assert!(
        !body.contains("x-private"),
        "headers named in Connection are hop-by-hop: {body}"
    );
    assert!(
        !body.to_ascii_lowercase().contains("keep-alive: 5"),
        "{body}"
    );
    assert!(
        body.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1\n"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(body.contains("x-forwarded-host: front.example\n"), "{body}");
    assert_eq!(r.header("x-resp"), Some("r"));
    assert_eq!(r.header("x-upstream"), Some("echo"));
    assert_eq!(
        r.header("keep-alive"),
        None,
        "upstream hop-by-hop headers are dropped"
    );
});

both_drivers!(bodies_stream_both_ways, |d| {
    let up = Upstream::echo();
    let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
    // Content-Length body, in two writes.
    let mut s = connect(p.addr());
    s.write_all(b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b" world").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r, false).unwrap();
    assert!(resp.text().ends_with("\n\nhello world"), "{}", resp.text());
    assert!(resp.text().contains("content-length: 11"));
    // Chunked body on the same connection, re-framed to the upstream.
    s.write_all(b"POST /ch HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"4;ext=1\r\ndefg\r\n0\r\nTrailer-X: 1\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert!(resp.text().ends_with("\n\nabcdefg"), "{}", resp.text());
    assert!(
        resp.text().contains("transfer-encoding: chunked"),
        "{}",
        resp.text()
    );
    // Expect: 100-continue gets its interim answer before the body is sent.
    s.write_all(
        b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let interim = read_response(&mut r, false).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"ok").unwrap();
    let fin = read_response(&mut r, false).unwrap();
    assert_eq!(fin.status, 200);
    assert!(fin.text().ends_with("\n\nok"));
    assert!(
        !fin.text().contains("expect:"),
        "Expect is handled by the proxy"
    );
});

both_drivers!(pipelined_requests_answer_in_order, |d| {
    let up = Upstream::echo();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: d\n      matches:\n      - path: {{pathPrefix: /d}}\n      policies:\n        directResponse: {{body: direct, status: 200}}\n    - name: up\n      backends:\n      - host: 127.0.0.1:{{UP}}\n"
    );
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let mut s = connect(p.addr());
    let mut batch = Vec::new();
    for i in 0..10 {
        if i % 3 == 0 {
            batch.extend_from_slice(format!("GET /u{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        } else {
            batch.extend_from_slice(format!("GET /d/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        }
    }
    batch.extend_from_slice(b"HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n");
    s.write_all(&batch).unwrap();
    let mut r = BufReader::new(s);
    for i in 0..10 {
        let resp = read_response(&mut r, false).unwrap();
        if i % 3 == 0 {
            assert!(
                resp.text().starts_with(&format!("GET /u{i}\n")),
                "{i}: {}",
                resp.text()
            );
        } else {
            assert_eq!(resp.text(), "direct", "{i}");
        }
    }
    let head = read_response(&mut r, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("6"));
    assert_eq!(
        up.hits.load(Ordering::Relaxed),
        1,
        "one pooled upstream connection serves the pipelined requests"
    );
});

both_drivers!(sse_events_arrive_when_written, |d| {
    let up = Upstream::start(|s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        if read_request(&mut r).ok().flatten().is_none() {
            return;
        }
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
        for i in 0..3 {
            let ev = format!("id: {i}\ndata: event {i}\n\n");
            let _ = w.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
            std::thread::sleep(Duration::from_millis(400));
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
    let mut s = connect(p.addr());
    s.write_all(b"GET /events HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let t0 = Instant::now();
    let mut line = String::new();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(ev) = line.trim().strip_prefix("data: ") {
            seen.push((ev.to_owned(), t0.elapsed()));
        }
    }
    assert_eq!(
        seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["event 0", "event 1", "event 2"]
    );
    assert!(
        seen[0].1 < Duration::from_millis(350),
        "first event must not wait for the stream to end: {:?}",
        seen[0].1
    );
    assert!(seen[1].1 >= Duration::from_millis(350), "{:?}", seen[1].1);
});

both_drivers!(upstream_failures_are_502_504, |d| {
    let dead = free_port();
    let silent = Upstream::start(|s| {
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let garbage = Upstream::start(|mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"SSH-2.0-nope\r\n\r\n");
    });
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: dead\n      matches: [{{path: {{pathPrefix: /dead}}}}]\n      backends: [{{host: '127.0.0.1:{dead}'}}]\n    - name: slow\n      matches: [{{path: {{pathPrefix: /slow}}}}]\n      policies:\n        timeout: {{requestTimeout: 300ms}}\n      backends: [{{host: '127.0.0.1:{}'}}]\n    - name: garbage\n      matches: [{{path: {{pathPrefix: /garbage}}}}]\n      backends: [{{host: '127.0.0.1:{}'}}]\n",
        silent.port, garbage.port
    );
    let p = Proxy::start(&cfg, d);
    let r = p.get("/dead");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("upstream connect error"), "{}", r.text());
    let t0 = Instant::now();
    let r = p.get("/slow");
    assert_eq!(r.status, 504);
    assert!(t0.elapsed() < Duration::from_secs(2));
    let r = p.get("/garbage");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("invalid HTTP/1.1 response"),
        "{}",
        r.text()
    );
    assert_eq!(p.get("/dead").status, 502, "the proxy keeps serving");
});

both_drivers!(weighted_backends_share_traffic, |d| {
    let a = Upstream::echo();
    let b = Upstream::echo();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:{}\n        weight: 3\n      - host: 127.0.0.1:{}\n        weight: 1\n",
        a.port, b.port
    );
    let p = Proxy::start(&cfg, d);
    for _ in 0..80 {
        assert_eq!(p.get("/").status, 200);
    }
    // Upstream connections are pooled, so count requests, not connections.
    let (ha, hb) = (
        a.requests.load(Ordering::Relaxed),
        b.requests.load(Ordering::Relaxed),
    );
    assert!(ha > hb && hb > 0, "a={ha} b={hb}");
});

both_drivers!(url_rewrite_and_direct_prefix, |d| {
    let up = Upstream::echo();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{pathPrefix: /old}}}}]\n      policies:\n        urlRewrite:\n          path: {{prefix: /new}}\n          authority: {{full: upstream.internal}}\n      backends: [{{host: '127.0.0.1:{}'}}]\n",
        up.port
    );
    let p = Proxy::start(&cfg, d);
    let body = p.get("/old/x?q=1").text();
    assert!(body.starts_with("GET /new/x?q=1\n"), "{body}");
    assert!(body.contains("host: upstream.internal\n"), "{body}");
});

both_drivers!(absolute_form_and_head_through_the_proxy, |d| {
    let up = Upstream::echo();
    let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
    let r = p.req("GET http://front.example:8080/abs/path?y=2 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(
        body.starts_with("GET /abs/path?y=2\n"),
        "origin-form upstream: {body}"
    );
    assert!(
        body.contains("host: front.example:8080\n"),
        "absolute-form authority wins over Host: {body}"
    );
    let head = p.req("HEAD /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("content-length").is_some(),
        "{:?}",
        head.headers
    );
});

both_drivers!(upstream_closing_idle_connections_loses_no_request, |d| {
    let up = Upstream::echo_closing_idle(Some(Duration::from_millis(300)));
    let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
    // One client connection, so that every request lands on the worker holding the pooled
    // upstream connection.
    let mut s = connect(p.addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    let requests = [
        "GET /first HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET /third HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for (i, req) in requests.iter().enumerate() {
        if i > 0 {
            // Longer than the upstream keeps an idle connection: the pooled one is closed.
            std::thread::sleep(Duration::from_millis(1500));
        }
        s.write_all(req.as_bytes()).unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        let path = req.split(' ').nth(1).unwrap();
        assert!(resp.text().contains(path), "{}", resp.text());
        if i == 1 {
            assert!(
                resp.text().ends_with("\n\nhello"),
                "the body was replayed whole: {}",
                resp.text()
            );
        }
    }
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        3,
        "each request reached the upstream once"
    );
    assert_eq!(
        up.hits.load(Ordering::Relaxed),
        3,
        "a fresh upstream connection per idle gap"
    );
});

both_drivers!(unsolicited_upgrades_and_transfer_codings_are_502, |d| {
    // Answers that the proxy cannot pass on faithfully: a 101 nobody asked for (Upgrade is
    // never forwarded), and bodies in transfer codings it does not decode.
    let answer = |raw: &'static [u8]| {
        Upstream::start(move |mut s| {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(raw);
        })
    };
    let ups = [
        answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nraw bytes"),
        answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nabc"),
    ];
    for up in &ups {
        let p = Proxy::start_with(&config(""), d, &[("UP", up.port.to_string())], &[]);
        let r = p.get("/x");
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(
            !r.text().contains("raw bytes") && !r.text().contains("abc"),
            "{}",
            r.text()
        );
    }
});
