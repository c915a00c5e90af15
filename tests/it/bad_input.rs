//! Bad input gets a clear status, the connection closes where its stream can no longer be
//! trusted, and another connection keeps being served.
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

fn config() -> String {
    "config:\n  statsAddr: 127.0.0.1:{STATS}\n  readinessAddr: 127.0.0.1:{READY}\n  listener:\n    maxBufferSize: 4096\n    http1IdleTimeout: 1s\nbinds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: ok\n      policies:\n        directResponse: {body: ok, status: 200}\n".to_string()
}

/// Sends `raw` on a fresh connection, expects `status`, and (when `closes`) that the proxy
/// closes the connection; meanwhile a connection opened earlier keeps working.
fn check(p: &Proxy, raw: &[u8], status: u16, closes: bool) {
    let mut other = connect(p.addr());
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut other_r = BufReader::new(other.try_clone().unwrap());
    assert_eq!(read_response(&mut other_r, false).unwrap().status, 200);

    let mut s = connect(p.addr());
    let _ = s.write_all(raw);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r, false).unwrap_or_else(|e| {
        panic!(
            "no response to {:?}: {e}",
            String::from_utf8_lossy(&raw[..raw.len().min(120)])
        )
    });
    assert_eq!(
        resp.status,
        status,
        "{:?} -> {}",
        String::from_utf8_lossy(&raw[..raw.len().min(120)]),
        resp.text()
    );
    assert!(!resp.body.is_empty(), "error responses explain themselves");
    if closes {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "connection should be closed, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut other_r, false).unwrap().status,
        200,
        "the other connection keeps being served"
    );
}

both_drivers!(malformed_heads, |d| {
    let p = Proxy::start(&config(), d);
    check(&p, b"GET\r\n\r\n", 400, true);
    check(
        &p,
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        400,
        true,
    );
    check(
        &p,
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        400,
        true,
    );
    check(
        &p,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
        400,
        true,
    );
    check(&p, b"GET / HTTP/1.1\nHost: a\n\n", 400, true);
    check(&p, b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, true); // no Host
    check(
        &p,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        true,
    );
    check(&p, b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, true);
});

both_drivers!(oversized_heads, |d| {
    let p = Proxy::start(&config(), d);
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    check(&p, &big, 431, true);
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..101 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    check(&p, &many, 431, true);
});

both_drivers!(body_limits, |d| {
    let p = Proxy::start(&config(), d);
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
        413,
        true,
    );
    let mut chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend(std::iter::repeat_n(b'z', 0x400));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    check(&p, &chunked, 413, true);
    // Within the limit, the body is consumed and the connection stays usable.
    let mut s = connect(p.addr());
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
});

both_drivers!(smuggling_attempts, |d| {
    let p = Proxy::start(&config(), d);
    check(&p, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true);
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
        true,
    );
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
        true,
    );
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
        true,
    );
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
        true,
    );
    check(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        400,
        true,
    );
    let te =
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"[..];
    let mut s = connect(p.addr());
    s.write_all(te).unwrap();
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert!(resp.status == 400 || resp.status == 501, "{}", resp.status);
});

both_drivers!(http2_preface_refused, |d| {
    let p = Proxy::start(&config(), d);
    let mut s = connect(p.addr());
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    assert!(resp.status == 505 || resp.status == 400, "{}", resp.status);
    assert!(resp.text().contains("HTTP/2"), "{}", resp.text());
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(p.get("/").status, 200);
});

both_drivers!(slowloris_gets_408, |d| {
    let p = Proxy::start_env(
        &config(),
        d,
        &[],
        &[],
        &[("PORTCULLIS_HEADER_TIMEOUT", "2s")],
    );
    let mut s = connect(p.addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let t0 = Instant::now();
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 408);
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "header timeout is configured to 2s"
    );
    assert_eq!(p.get("/").status, 200);
});

both_drivers!(idle_keepalive_closed, |d| {
    let p = Proxy::start(&config(), d);
    let mut s = connect(p.addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let n = r.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
});

both_drivers!(silent_and_non_http_connections_are_answered_early, |d| {
    // Idle keep-alive connections may wait a minute; a connection that never sends its first
    // head gets the header timeout (counted from the connection's start), not the idle one.
    let cfg = config().replace("http1IdleTimeout: 1s", "http1IdleTimeout: 60s");
    let p = Proxy::start_env(&cfg, d, &[], &[], &[("PORTCULLIS_HEADER_TIMEOUT", "1s")]);
    let s = connect(p.addr());
    let t0 = Instant::now();
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 408);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A TLS ClientHello on the plain port, and an HTTP/0.9 request line: 400 at once.
    let hello = [
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    for raw in [&hello[..], b"GET /\r\n"] {
        let mut s = connect(p.addr());
        s.write_all(raw).unwrap();
        let t0 = Instant::now();
        let resp = read_response(&mut BufReader::new(s), false).unwrap();
        assert_eq!(resp.status, 400, "{raw:?}: {}", resp.text());
        assert!(
            t0.elapsed() < Duration::from_millis(900),
            "{raw:?}: {:?}",
            t0.elapsed()
        );
        if raw[0] == 0x16 {
            assert!(
                resp.text().contains("TLS handshake on a plain-HTTP port"),
                "{}",
                resp.text()
            );
        }
    }
    assert_eq!(p.get("/").status, 200);
});

both_drivers!(out_of_descriptors_is_logged_once_a_second, |d| {
    // A proxy with few descriptors, and more connections than it can accept: it keeps serving
    // what it holds and says so about once a second per worker, not on every retry.
    let dir = temp_dir();
    let (port, stats, ready) = (free_port(), free_port(), free_port());
    let cfg = config()
        .replace("{PORT}", &port.to_string())
        .replace("{STATS}", &stats.to_string())
        .replace("{READY}", &ready.to_string())
        .replace("http1IdleTimeout: 1s", "http1IdleTimeout: 60s");
    let path = dir.join("config.yaml");
    std::fs::write(&path, cfg).unwrap();
    let log = dir.join("out.log");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} -f {} --workers 2 > {} 2>&1",
            bin(),
            path.display(),
            log.display()
        ))
        .env("PORTCULLIS_BIND_ADDR", "127.0.0.1")
        .env("RUST_LOG", "info");
    if d == Driver::Epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ready_addr = std::net::SocketAddr::from(([127, 0, 0, 1], ready));
    let t0 = Instant::now();
    while try_request(
        ready_addr,
        b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .is_err()
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let held: Vec<_> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    let text = std::fs::read_to_string(&log).unwrap();
    let warned = text.matches("accept failed").count();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(warned >= 1, "the shortage is reported:\n{text}");
    assert!(warned <= 10, "{warned} warnings in 3 s:\n{text}");
});

both_drivers!(an_empty_line_between_requests_is_ignored, |d| {
    // RFC 9112 §2.2: some clients send a CRLF after a body; the next request still works,
    // even when the CRLF arrives on its own.
    let p = Proxy::start(&config(), d);
    let mut s = connect(p.addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    s.write_all(b"\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
});

/// Downstream connections open in the proxy (the per-worker gauges summed).
fn open_connections(p: &Proxy) -> u64 {
    let stats = std::net::SocketAddr::from(([127, 0, 0, 1], p.stats));
    let m = request(stats, b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n").text();
    m.lines()
        .filter(|l| l.starts_with("portcullis_open_connections{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

both_drivers!(a_client_that_stops_reading_is_closed, |d| {
    // 64 KiB answers, pipelined requests, and a client that never reads: once the socket
    // buffers are full, the proxy's write makes no progress and the idle timeout (2 s) ends it.
    let big = "x".repeat(64 * 1024);
    let cfg = config()
        .replace("http1IdleTimeout: 1s", "http1IdleTimeout: 2s")
        .replace(
            "directResponse: {body: ok, status: 200}",
            &format!("directResponse: {{body: {big}, status: 200}}"),
        );
    let p = Proxy::start(&cfg, d);
    let s = connect(p.addr());
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    std::thread::spawn(move || {
        for _ in 0..2000 {
            if w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(open_connections(&p), 1, "the client is connected");
    while open_connections(&p) > 0 {
        assert!(
            Instant::now() < deadline,
            "a client that never reads is still connected after 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(s);
    assert_eq!(p.get("/").status, 200);
});

both_drivers!(a_trickling_body_gets_408, |d| {
    let p = Proxy::start_env(
        &config(),
        d,
        &[],
        &[],
        &[("PORTCULLIS_HEADER_TIMEOUT", "1s")],
    );
    // One byte every 300 ms: far below the minimum rate (1 KiB/s after a 1 s grace).
    let mut s = connect(p.addr());
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickle = std::thread::spawn(move || {
        for _ in 0..100 {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) || w.write_all(b"x").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let t0 = Instant::now();
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    trickle.join().unwrap();
    assert_eq!(
        p.metric("portcullis_refused_total{reason=\"body_too_slow\"}"),
        1
    );
    // A body that is slow but above the rate passes: 3 KiB in 1 KiB pieces every 400 ms.
    let mut s = connect(p.addr());
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3072\r\n\r\n")
        .unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        s.write_all(&[b'y'; 1024]).unwrap();
    }
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 200);
});

both_drivers!(
    a_long_idle_keepalive_connection_still_serves_and_times_out,
    |d| {
        // Idle past the 1 s buffer release: the connection waits on in its small state, serves
        // the next request, and still closes at the idle timeout (3 s) counted from its last answer.
        let cfg = config().replace("http1IdleTimeout: 1s", "http1IdleTimeout: 3s");
        let p = Proxy::start(&cfg, d);
        let mut s = connect(p.addr());
        let mut r = BufReader::new(s.try_clone().unwrap());
        for _ in 0..2 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut r, false).unwrap().text(), "ok");
            std::thread::sleep(Duration::from_millis(1600));
        }
        // Two requests in one write after the release: both answered.
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut r, false).unwrap().status, 200);
        assert_eq!(read_response(&mut r, false).unwrap().status, 200);
        let t0 = Instant::now();
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(2500) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }
);
