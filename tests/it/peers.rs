//! MCP sessions across replicas on one machine: two instances of one config on 127.0.0.1 and
//! 127.0.0.2 (same ports), sharing a peer key. A session opened on one is used through the
//! other (POST, GET stream, DELETE), ids that are not ours get 404 without a peer connection,
//! the peer listener refuses unsigned requests, and a gone owner means 404.
//! (`cluster.rs` runs three replicas in network namespaces behind HAProxy with the SDKs.)
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::both_drivers;
use crate::harness::*;
use crate::mcp::{mini_server, Mcp};

const KEY_A: &str = "a shared secret for the peer tests, 0123456789";
const KEY_OTHER: &str = "some other cluster's secret, 9876543210abcdef";

fn route() -> String {
    route_with("")
}

/// The route with more policy lines (`        key: value\n`).
fn route_with(policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        cors: {{allowOrigins: ['*'], allowHeaders: ['*']}}\n{policies}      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        mini_server()
    )
}

/// A replica at `ip` with peer port `peer`, on the listener ports of `like` (or new ones).
fn replica(driver: Driver, like: Option<&Proxy>, ip: &str, peer: u16, key: &str) -> Proxy {
    let addr = format!("{ip}:{peer}");
    let envs = [
        ("PORTCULLIS_BIND_ADDR", ip),
        ("PORTCULLIS_PEER_ADDR", addr.as_str()),
        ("PORTCULLIS_PEER_KEY", key),
    ];
    match like {
        None => Proxy::start_env(&route(), driver, &[], &[], &envs),
        Some(p) => Proxy::start_on(
            &route(),
            driver,
            (p.port, p.port2, free_port(), free_port()),
            &envs,
        ),
    }
}

fn at(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn whoami(m: &mut Mcp) -> String {
    let v = m.tool("whoami", "{}");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

both_drivers!(
    sessions_are_served_by_their_owner_through_any_replica,
    |d| {
        let peer = free_port();
        let a = replica(d, None, "127.0.0.1", peer, KEY_A);
        let b = replica(d, Some(&a), "127.0.0.2", peer, KEY_A);
        let mut m = Mcp::new(at([127, 0, 0, 1], a.port));
        let r = m.initialize();
        assert_eq!(r.status, 200, "{}", r.text());
        let id = m.session.clone().unwrap();
        // Sealed: opaque, visible ASCII, no address in sight.
        assert_eq!(id.len(), 86, "{id}");
        assert!(!id.contains("127"), "{id}");
        let here = whoami(&mut m);
        // Through B: the same stdio server answers (A owns it), as many times as asked.
        m.addr = at([127, 0, 0, 2], a.port);
        for _ in 0..3 {
            assert_eq!(whoami(&mut m), here);
        }
        assert_eq!(b.metric("portcullis_peer_forwarded_total"), 3);
        assert_eq!(a.metric("portcullis_peer_received_total"), 3);
        assert_eq!(a.metric("portcullis_peer_forwarded_total"), 0);
        // The answer carries the owner's CORS lines once, not twice.
        let r = m.raw(
            "POST",
            r#"{"jsonrpc":"2.0","id":90,"method":"tools/list","params":{}}"#,
            "Origin: http://example.test\r\n",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let cors = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-origin"))
            .count();
        assert_eq!(cors, 1, "{:?}", r.headers);

        // A GET stream through B: the owner's SSE stream, relayed as it comes.
        let mut s = connect(at([127, 0, 0, 2], a.port));
        write!(
        s,
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n",
        a.port
    )
    .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rd = BufReader::new(s.try_clone().unwrap());
        let mut status = String::new();
        rd.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut line = String::new();
        let mut ctype = false;
        while rd.read_line(&mut line).unwrap() > 2 {
            ctype |= line
                .to_ascii_lowercase()
                .starts_with("content-type: text/event-stream");
            line.clear();
        }
        assert!(ctype, "the GET stream is SSE");
        drop(rd);
        drop(s);

        // DELETE through B ends the session on A.
        let r = m.raw("DELETE", "", "");
        assert_eq!(r.status, 200, "{}", r.text());
        let (r, _) = m.call("tools/list", "{}");
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(r.text().contains("-32001"), "{}", r.text());

        // A 2026-07-28 request carries no session: B serves it itself (through the
        // compatibility mode, with an upstream session of its own), with no hop.
        let forwarded = b.metric("portcullis_peer_forwarded_total");
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let raw = format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost:{}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: whoami\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            a.port,
            body.len()
        );
        let r = request(at([127, 0, 0, 2], a.port), raw.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("\"result\""), "{}", r.text());
        assert_eq!(b.metric("portcullis_peer_forwarded_total"), forwarded);
    }
);

both_drivers!(
    ids_that_are_not_ours_get_404_without_a_peer_connection,
    |d| {
        let peer = free_port();
        let a = replica(d, None, "127.0.0.1", peer, KEY_A);
        let b = replica(d, Some(&a), "127.0.0.2", peer, KEY_A);
        // A replica of another cluster (another key) mints an id naming itself.
        let stranger = replica(d, Some(&a), "127.0.0.3", peer, KEY_OTHER);
        let mut m = Mcp::new(at([127, 0, 0, 3], a.port));
        assert_eq!(m.initialize().status, 200);
        let foreign = m.session.clone().unwrap();
        let mut ours = Mcp::new(at([127, 0, 0, 1], a.port));
        assert_eq!(ours.initialize().status, 200);
        let sealed = ours.session.clone().unwrap();
        let mut tampered = sealed.into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for id in [
            foreign.as_str(),
            tampered.as_str(),
            "00000000000000000000000000000000ff",
            "not-a-session",
        ] {
            let mut c = Mcp::new(at([127, 0, 0, 2], a.port));
            c.session = Some(id.to_owned());
            let (r, _) = c.call("tools/list", "{}");
            assert_eq!(r.status, 404, "{id}: {}", r.text());
        }
        assert_eq!(b.metric("portcullis_peer_forwarded_total"), 0);
        assert_eq!(a.metric("portcullis_peer_received_total"), 0);
        assert_eq!(stranger.metric("portcullis_peer_received_total"), 0);

        // The peer listener serves only signed requests.
        let init = crate::mcp::INIT;
        for extra in ["", "portcullis-peer: 1.80.0.127.0.0.1.AAAA\r\n"] {
            let raw = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\r\n{init}",
            init.len()
        );
            let r = request(at([127, 0, 0, 1], peer), raw.as_bytes());
            assert_eq!(r.status, 403, "{}", r.text());
        }
        // A signed request replayed with another session id fails its signature too: the
        // signature covers method, target and session (unit tests in src/cluster.rs).
        assert!(
            a.wait_log("no valid portcullis-peer signature", 5),
            "{}",
            a.log()
        );
    }
);

both_drivers!(a_gone_owner_means_404_and_the_others_sessions_go_on, |d| {
    let peer = free_port();
    let mut a = replica(d, None, "127.0.0.1", peer, KEY_A);
    let b = replica(d, Some(&a), "127.0.0.2", peer, KEY_A);
    let mut on_a = Mcp::new(at([127, 0, 0, 1], a.port));
    assert_eq!(on_a.initialize().status, 200);
    let mut on_b = Mcp::new(at([127, 0, 0, 2], a.port));
    assert_eq!(on_b.initialize().status, 200);
    on_a.addr = at([127, 0, 0, 2], a.port);
    whoami(&mut on_a);
    assert!(a.terminate().success());
    let (r, _) = on_a.call("tools/list", "{}");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("-32001"), "{}", r.text());
    assert_eq!(b.metric("portcullis_peer_owner_gone_total"), 1);
    // B's own session is untouched; a new session on B works.
    whoami(&mut on_b);
    let mut again = Mcp::new(at([127, 0, 0, 2], a.port));
    assert_eq!(again.initialize().status, 200);
    whoami(&mut again);
});

/// A replica on listener `port` whose secrets are the lines of a key file.
fn replica_with_file(driver: Driver, port: u16, ip: &str, peer: u16, lines: &[&str]) -> Proxy {
    let file = temp_dir().join(format!("peer-key-{ip}"));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let addr = format!("{ip}:{peer}");
    let file = file.to_str().unwrap().to_owned();
    let envs = [
        ("PORTCULLIS_BIND_ADDR", ip),
        ("PORTCULLIS_PEER_ADDR", addr.as_str()),
        ("PORTCULLIS_PEER_KEY_FILE", file.as_str()),
    ];
    let ports = (port, free_port(), free_port(), free_port());
    Proxy::start_on(&route(), driver, ports, &envs)
}

both_drivers!(a_rotated_key_is_accepted_until_it_is_dropped, |d| {
    let (a_port, peer) = (free_port(), free_port());
    // The middle of a rotation: A still seals with the old key, B already with the new one;
    // both accept both. C has dropped the old key.
    let a = replica_with_file(d, a_port, "127.0.0.1", peer, &[KEY_A, KEY_OTHER]);
    let b = replica_with_file(
        d,
        a_port,
        "127.0.0.2",
        peer,
        &["# new first", KEY_OTHER, KEY_A],
    );
    let c = replica_with_file(d, a_port, "127.0.0.3", peer, &[KEY_OTHER]);
    let mut on_a = Mcp::new(at([127, 0, 0, 1], a_port));
    assert_eq!(on_a.initialize().status, 200);
    let mut on_b = Mcp::new(at([127, 0, 0, 2], a_port));
    assert_eq!(on_b.initialize().status, 200);
    let (pid_a, pid_b) = (whoami(&mut on_a), whoami(&mut on_b));
    // Each replica's sessions through the other: ids open and requests verify with either key.
    on_a.addr = at([127, 0, 0, 2], a_port);
    on_b.addr = at([127, 0, 0, 1], a_port);
    assert_eq!(whoami(&mut on_a), pid_a);
    assert_eq!(whoami(&mut on_b), pid_b);
    // C knows only the new key: B's sessions reach B through it, A's are not ours (404, no
    // connection).
    on_b.addr = at([127, 0, 0, 3], a_port);
    assert_eq!(whoami(&mut on_b), pid_b);
    on_a.addr = at([127, 0, 0, 3], a_port);
    let (r, _) = on_a.call("tools/list", "{}");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(c.metric("portcullis_peer_forwarded_total"), 1);
    assert_eq!(a.metric("portcullis_peer_received_total"), 1);
    assert_eq!(b.metric("portcullis_peer_received_total"), 2);
});

both_drivers!(an_owner_that_never_answers_is_given_up, |d| {
    // The route's call timeout is 1 s: a replica waits that, plus 5 s for the hop, for the
    // owner's answer to begin.
    let cfg = route_with("        timeout: {requestTimeout: 1s}\n");
    let peer = free_port();
    let envs = |ip: &'static str, addr: &str| {
        vec![
            ("PORTCULLIS_BIND_ADDR", ip.to_owned()),
            ("PORTCULLIS_PEER_ADDR", addr.to_owned()),
            ("PORTCULLIS_PEER_KEY", KEY_A.to_owned()),
        ]
    };
    let a_env = envs("127.0.0.1", &format!("127.0.0.1:{peer}"));
    let a_env: Vec<(&str, &str)> = a_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut a = Proxy::start_env(&cfg, d, &[], &[], &a_env);
    let b_env = envs("127.0.0.2", &format!("127.0.0.2:{peer}"));
    let b_env: Vec<(&str, &str)> = b_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ports = (a.port, a.port2, free_port(), free_port());
    let _b = Proxy::start_on(&cfg, d, ports, &b_env);
    let mut m = Mcp::new(at([127, 0, 0, 1], a.port));
    assert_eq!(m.initialize().status, 200);
    assert!(a.terminate().success());
    // In A's place, something that takes connections and never answers.
    let silent = std::net::TcpListener::bind(at([127, 0, 0, 1], peer)).unwrap();
    m.addr = at([127, 0, 0, 2], a.port);
    let t0 = std::time::Instant::now();
    let (r, _) = m.call("tools/list", "{}");
    let waited = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(waited >= Duration::from_secs(5), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    drop(silent);
});

#[test]
fn a_taken_peer_port_is_an_error_at_start() {
    // Something else listens on the peer port: the replica refuses to start (it would otherwise
    // share the port with it through SO_REUSEPORT).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir();
    let cfg = dir.join("config.yaml");
    let text = format!(
        "config: {{statsAddr: 127.0.0.1:{}, readinessAddr: 127.0.0.1:{}}}\nbinds:\n- port: {}\n  listeners:\n  - routes:\n    - policies: {{directResponse: {{body: hi, status: 200}}}}\n",
        free_port(),
        free_port(),
        free_port()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(bin())
        .arg("-f")
        .arg(&cfg)
        .env("PORTCULLIS_BIND_ADDR", "127.0.0.1")
        .env("ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("PORTCULLIS_PEER_ADDR", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_PEER_KEY", KEY_A)
        .env_remove("PORTCULLIS_PEER_KEY_FILE")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("PORTCULLIS_PEER_ADDR"), "{text}");
    assert!(
        text.contains(&format!("port {port} is already in use")),
        "{text}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peer_settings_are_checked_at_start() {
    let cfg = temp_dir().join("peers.yaml");
    std::fs::write(
        &cfg,
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies: {directResponse: {body: hi, status: 200}}\n",
    )
    .unwrap();
    let key_file = temp_dir().join("peer-key");
    std::fs::write(&key_file, format!("{KEY_OTHER}\n{KEY_A}\n")).unwrap();
    let key_file = key_file.to_str().unwrap().to_owned();
    let run = |envs: &[(&str, &str)]| {
        let mut c = std::process::Command::new(bin());
        c.arg("-f").arg(&cfg).arg("--validate-only");
        for var in [
            "PORTCULLIS_PEER_ADDR",
            "PORTCULLIS_PEER_KEY",
            "PORTCULLIS_PEER_KEY_FILE",
        ] {
            c.env_remove(var);
        }
        c.envs(envs.iter().copied());
        let out = c.output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let ok = run(&[
        ("PORTCULLIS_PEER_ADDR", "10.0.0.5:15030"),
        ("PORTCULLIS_PEER_KEY_FILE", &key_file),
    ]);
    assert_eq!(ok.0, Some(0), "{}", ok.1);
    for (envs, says) in [
        (
            vec![("PORTCULLIS_PEER_ADDR", "10.0.0.5:15030")],
            "env PORTCULLIS_PEER_ADDR",
        ),
        (vec![("PORTCULLIS_PEER_KEY", KEY_A)], "PORTCULLIS_PEER_ADDR"),
        (
            vec![
                ("PORTCULLIS_PEER_ADDR", "10.0.0.5:15030"),
                ("PORTCULLIS_PEER_KEY", "short"),
            ],
            "shorter than 16 bytes",
        ),
        (
            vec![
                ("PORTCULLIS_PEER_ADDR", "0.0.0.0:15030"),
                ("PORTCULLIS_PEER_KEY", KEY_A),
            ],
            "not an address the other replicas can reach",
        ),
        (
            vec![
                ("PORTCULLIS_PEER_ADDR", "10.0.0.5:3000"),
                ("PORTCULLIS_PEER_KEY", KEY_A),
            ],
            "a port of its own",
        ),
        (
            vec![
                ("PORTCULLIS_PEER_ADDR", "10.0.0.5:15030"),
                ("PORTCULLIS_PEER_KEY_FILE", "/nonexistent/peer-key"),
            ],
            "cannot read /nonexistent/peer-key",
        ),
    ] {
        let (code, text) = run(&envs);
        assert_eq!(code, Some(64), "{envs:?}: {text}");
        assert!(text.contains(says), "{envs:?} should say {says:?}: {text}");
    }
}
