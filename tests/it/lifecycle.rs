//! Process lifecycle: hot reload (good and bad), graceful drain on SIGTERM, metrics, readiness.
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

/// Waits up to 10 s for `/` to answer `body` (a reload applied).
fn wait_for_body(p: &Proxy, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.get("/").text() != body {
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn direct_cfg(body: &str) -> String {
    format!("{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: main\n      policies:\n        directResponse: {{body: {body}, status: 200}}\n")
}

both_drivers!(hot_reload_good_and_bad, |d| {
    let p = Proxy::start(&direct_cfg("v1"), d);
    // A keep-alive connection opened before the reload survives it.
    let mut s = connect(p.addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r, false).unwrap().text(), "v1");

    std::fs::write(&p.config_path, p.render(&direct_cfg("v2"))).unwrap();
    wait_for_body(&p, "v2");
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut r, false).unwrap().text(),
        "v2",
        "existing connections see the new config"
    );

    // An invalid config is rejected with its error and v2 keeps serving.
    let bad = p
        .render(&direct_cfg("v3"))
        .replace("directResponse", "directResponze");
    std::fs::write(&p.config_path, bad).unwrap();
    assert!(
        p.wait_log("directResponze", 10),
        "the error names the bad key:\n{}",
        p.log()
    );
    assert!(p.log_contains("reload rejected"));
    assert_eq!(p.get("/").text(), "v2");

    // A later good config is applied again, including a new bind.
    let two = format!("{}- port: {{PORT2}}\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {{body: second, status: 200}}\n", direct_cfg("v4"));
    std::fs::write(&p.config_path, p.render(&two)).unwrap();
    wait_for_body(&p, "v4");
    let r2 = request(
        SocketAddr::from(([127, 0, 0, 1], p.port2)),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r2.text(), "second");
});

both_drivers!(sigterm_drains_in_flight_requests, |d| {
    let slow = Upstream::start(|s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(_)) = read_request(&mut r) {
            std::thread::sleep(Duration::from_millis(800));
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone");
        }
    });
    let cfg = format!("{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - backends: [{{host: '127.0.0.1:{}'}}]\n", slow.port);
    let mut p = Proxy::start(&cfg, d);
    let addr = p.addr();
    let inflight: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || request(addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")))
        .collect();
    // SIGTERM only once every request is in flight at the upstream (a loaded machine may be slow
    // to accept them).
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.hits.load(std::sync::atomic::Ordering::Relaxed) < 4 {
        assert!(
            Instant::now() < deadline,
            "requests never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let status = p.terminate();
    assert!(status.success(), "{status}");
    for t in inflight {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "done");
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        try_request(addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").is_err(),
        "no longer accepting"
    );
});

both_drivers!(sigterm_ends_idle_keepalive_connections_at_once, |d| {
    // Two idle keep-alive connections: one just answered (still holding its buffers), one idle
    // past the 1 s release (waiting for readability, with no operation a cancel could end).
    // A drain ends both at once: not at the idle timeout, not at the termination deadline.
    let cfg = direct_cfg("x").replace(
        "connectionTerminationDeadline: 5s",
        "connectionTerminationDeadline: 30s\n  listener:\n    http1IdleTimeout: 60s",
    );
    let mut p = Proxy::start(&cfg, d);
    let open = |p: &Proxy| {
        let mut s = connect(p.addr());
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(read_response(&mut r, false).unwrap().text(), "x");
        r
    };
    let mut long_idle = open(&p);
    std::thread::sleep(Duration::from_millis(1600));
    let mut just_answered = open(&p);
    let t0 = Instant::now();
    let status = p.terminate();
    assert!(status.success(), "{status}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    for r in [&mut long_idle, &mut just_answered] {
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap_or(0), 0);
    }
});

both_drivers!(metrics_and_readiness, |d| {
    let p = Proxy::start(&direct_cfg("m"), d);
    for _ in 0..5 {
        assert_eq!(p.get("/").status, 200);
    }
    let stats = SocketAddr::from(([127, 0, 0, 1], p.stats));
    let m = request(stats, b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("portcullis_requests_total{route=\"main\",status=\"200\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_request_duration_seconds_count 5"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_open_connections{worker=\"1\"}"),
        "per-worker gauges: {text}"
    );
    let ready = request(
        SocketAddr::from(([127, 0, 0, 1], p.ready)),
        b"GET /healthz/ready HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(ready.status, 200);
    assert!(
        p.wait_log(" request ", 5) || p.log_contains("\"request\""),
        "access log line:\n{}",
        p.log()
    );
});

both_drivers!(access_log_never_contains_tokens, |d| {
    let p = Proxy::start(&direct_cfg("t"), d);
    let r = p.req("GET /x?access_token=SECRETQUERY HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer SECRETHEADER\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(p.wait_log("/x", 5), "{}", p.log());
    let log = p.log();
    assert!(
        !log.contains("SECRETQUERY") && !log.contains("SECRETHEADER"),
        "{log}"
    );
});

/// A config whose `/api` route needs a token, with `marker` as the open route's body. The
/// directResponse comes before jwtAuth, so a file cut before `jwtAuth:` is still valid YAML that
/// serves `/api` without authentication.
fn protected_cfg(marker: &str, jwks: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: secret\n      matches: [{{path: {{pathPrefix: /api}}}}]\n      policies:\n        directResponse: {{body: secret, status: 200}}\n        jwtAuth:\n          mode: strict\n          issuer: http://idp.test\n          audiences: [a]\n          jwks: '{jwks}'\n    - name: open\n      policies:\n        directResponse: {{body: {marker}, status: 200}}\n"
    )
}

both_drivers!(reload_never_publishes_a_half_written_file, |d| {
    let key = crate::tokens::TestKey::es256("k1");
    let jwks = crate::tokens::jwks(&[&key]);
    let p = Proxy::start(&protected_cfg("v1", &jwks), d);
    assert_eq!(p.get("/api/secret").status, 401);
    let full = p.render(&protected_cfg("v2", &jwks));
    let cut = full.find("        jwtAuth:").unwrap();
    // The half alone is a valid config that leaves /api open.
    assert!(
        portcullis::load_bytes(&full.as_bytes()[..cut], None).is_ok(),
        "the half must be a valid config for this test to mean anything"
    );
    // A writer that truncates the file, writes the first half, pauses well beyond the settle
    // time with the file open, then writes the rest.
    let mut f = std::fs::File::create(&p.config_path).unwrap();
    f.write_all(&full.as_bytes()[..cut]).unwrap();
    f.flush().unwrap();
    let pause = Instant::now();
    let mut checked = 0;
    while pause.elapsed() < Duration::from_millis(2000) {
        let r = p.get("/api/secret");
        assert_eq!(
            r.status, 401,
            "the protected route answered without a token"
        );
        checked += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    f.write_all(&full.as_bytes()[cut..]).unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.get("/").text() != "v2" {
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            p.log()
        );
        assert_eq!(p.get("/api/secret").status, 401);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.get("/api/secret").status, 401);
    assert!(checked > 20);
});

both_drivers!(reload_refuses_configs_that_serve_nothing, |d| {
    let mut p = Proxy::start(&direct_cfg("v1"), d);
    let ready = SocketAddr::from(([127, 0, 0, 1], p.ready));
    let mut ka = connect(p.addr());
    let mut r = BufReader::new(ka.try_clone().unwrap());
    for (i, text) in ["", "# only a comment\n", "binds: []\n"].iter().enumerate() {
        std::fs::write(&p.config_path, text).unwrap();
        assert!(
            p.wait_log("defines no listener", 10),
            "case {i}: the reload is rejected:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(p.get("/").text(), "v1", "case {i}: still serving");
        ka.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r, false).unwrap().text(), "v1");
        let rd = request(ready, b"GET /healthz/ready HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(rd.status, 200, "case {i}: {}", rd.text());
        p.clear_log();
    }
    // `--validate-only` says the same.
    let empty = p.dir.join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let out = std::process::Command::new(bin())
        .arg("-f")
        .arg(&empty)
        .arg("--validate-only")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("defines no listener"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = p.terminate();
});

both_drivers!(reload_to_a_taken_port_keeps_the_old_listener, |d| {
    let p = Proxy::start(&direct_cfg("v1"), d);
    // Something else holds the port the new config moves to.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let moved = p
        .render(&direct_cfg("v2"))
        .replace(&format!("port: {}", p.port), &format!("port: {taken}"));
    std::fs::write(&p.config_path, moved).unwrap();
    assert!(
        p.wait_log("reload rejected", 10),
        "the move is rejected:\n{}",
        p.log()
    );
    assert_eq!(p.get("/").text(), "v1", "the old listener still serves");
    let rd = request(
        SocketAddr::from(([127, 0, 0, 1], p.ready)),
        b"GET /healthz/ready HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(rd.status, 200);
    // A move to a free port opens the new listener, then closes the old one.
    drop(squatter);
    let free = free_port();
    let moved = p
        .render(&direct_cfg("v3"))
        .replace(&format!("port: {}", p.port), &format!("port: {free}"));
    std::fs::write(&p.config_path, moved).unwrap();
    let new_addr = SocketAddr::from(([127, 0, 0, 1], free));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = try_request(
            new_addr,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        ) {
            if r.text() == "v3" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "not moved:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while try_request(
        p.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .is_ok()
    {
        assert!(Instant::now() < deadline, "the old port still accepts");
        std::thread::sleep(Duration::from_millis(50));
    }
});

both_drivers!(readiness_waits_for_the_first_key_set, |d| {
    // A JWKS URL nothing answers: every authenticated request would get 503, so not ready.
    let dead = free_port();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - policies:\n        jwtAuth:\n          issuer: http://idp.test\n          audiences: [a]\n          jwks: {{url: 'http://127.0.0.1:{dead}/jwks'}}\n        directResponse: {{body: ok, status: 200}}\n"
    );
    let p = Proxy::start(&cfg, d);
    let ready = SocketAddr::from(([127, 0, 0, 1], p.ready));
    let rd = request(ready, b"GET /healthz/ready HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(rd.status, 503, "{}", rd.text());
    assert!(rd.text().contains("no key set loaded yet"), "{}", rd.text());
    // Once the IdP answers, ready.
    let key = crate::tokens::TestKey::es256("k1");
    let body = crate::tokens::jwks(&[&key]);
    let jwks = std::net::TcpListener::bind(("127.0.0.1", dead)).unwrap();
    std::thread::spawn(move || {
        for s in jwks.incoming().take(50) {
            let Ok(mut s) = s else { break };
            let mut r = BufReader::new(s.try_clone().unwrap());
            if let Ok(Some(_)) = read_request(&mut r) {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rd = request(ready, b"GET /healthz/ready HTTP/1.1\r\nHost: h\r\n\r\n");
        if rd.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {}\n{}",
            rd.text(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
});
