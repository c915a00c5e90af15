//! Process lifecycle: hot reload (good and bad), graceful drain on SIGTERM, metrics, readiness.
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

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
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.get("/").text() != "v2" {
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.get("/").text() != "v4" {
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
