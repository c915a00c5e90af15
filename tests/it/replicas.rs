//! Three replicas on three hosts behind HAProxy (issue 14): network namespaces made by the test
//! (one per replica, each with its own address on a veth into a bridge of the test's own), the
//! real IdP (oidc-provider) on the bridge, HAProxy 2.6 (Debian's) on loopback in front —
//! round-robin with no affinity, and once with stickiness on `Mcp-Session-Id` — and the Python
//! SDK client doing whole 2025 sessions (client_credentials token, initialize, GET stream,
//! tools/call × N, DELETE). Every call must succeed although consecutive requests land on
//! different replicas; a replica killed mid-run costs its sessions a 404 and a new session,
//! nothing else; a rolling restart of all three loses no call.
//!
//! Where network namespaces cannot be made (an unprivileged container), the test says SKIP on
//! stderr and returns; on our machines (root) it runs.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::clients::{client_runtimes, fixtures};
use crate::harness::*;
use crate::idp::Idp;
use crate::mcp::{mini_server, wait_until};

const PORT: u16 = 3000;
const PEER: u16 = 15030;
const STATS: u16 = 15020;
const READY: u16 = 15021;
const KEY: &str = "the replicas' shared secret for the test, 0123456789";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test's hosts: a bridge in this namespace (`<net>.1`) and a namespace per replica
/// (`<net>.11`, `.12`, …); all removed when dropped.
struct Hosts {
    bridge: String,
    names: Vec<String>,
    net: String,
}

impl Hosts {
    fn create(n: usize) -> Option<Hosts> {
        // Unique per process and per call (both drivers' runs go on at once).
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let tag = (pid % 10_000) * 10 + call % 10;
        let net = format!("10.{}.{}", 200 + (pid / 256) % 50, (pid + call * 97) % 256);
        let hosts = Hosts {
            bridge: format!("pcb{tag}"),
            names: (1..=n).map(|i| format!("pc{tag}r{i}")).collect(),
            net,
        };
        let br = hosts.bridge.as_str();
        let gw = format!("{}.1/24", hosts.net);
        if !(ip(&["link", "add", br, "type", "bridge"])
            && ip(&["addr", "add", &gw, "dev", br])
            && ip(&["link", "set", br, "up"]))
        {
            return None;
        }
        for (i, ns) in hosts.names.iter().enumerate() {
            let (outer, inner) = (format!("pcv{tag}a{i}"), format!("pcv{tag}b{i}"));
            let addr = format!("{}.{}/24", hosts.net, 11 + i);
            let ok = ip(&["netns", "add", ns])
                && ip(&[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                ])
                && ip(&["link", "set", &inner, "netns", ns])
                && ip(&["-n", ns, "addr", "add", &addr, "dev", &inner])
                && ip(&["-n", ns, "link", "set", &inner, "up"])
                && ip(&["-n", ns, "link", "set", "lo", "up"])
                && ip(&["link", "set", &outer, "master", br])
                && ip(&["link", "set", &outer, "up"]);
            if !ok {
                return None; // dropped: what was made is removed
            }
        }
        Some(hosts)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.net, 11 + i)
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.net)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            ip(&["netns", "del", ns]);
        }
        ip(&["link", "del", &self.bridge]);
    }
}

/// One replica, in its namespace.
struct Replica {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Replica {
    fn start(hosts: &Hosts, i: usize, cfg: &std::path::Path, driver: Driver) -> Replica {
        let peer = format!("{}:{PEER}", hosts.addr(i));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &hosts.names[i], bin(), "-f"])
            .arg(cfg)
            .args(["--workers", "2"])
            .env("RUST_LOG", "info")
            .env("ADMIN_ADDR", "127.0.0.1:15000")
            .env("PORTCULLIS_PEER_ADDR", &peer)
            .env("PORTCULLIS_PEER_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if driver == Driver::Epoll {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        let mut child = cmd.spawn().expect("start a replica");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let r = Replica {
            child: Some(child),
            log,
        };
        let ready: SocketAddr = format!("{}:{READY}", hosts.addr(i)).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = try_request(ready, b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                .is_ok_and(|r| r.status == 200);
            if ok {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} not ready:\n{}",
                r.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&mut self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status();
        }
    }

    /// SIGTERM, and the exit (within 20 s).
    fn stop(&mut self) {
        self.signal("TERM");
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn metric(hosts: &Hosts, i: usize, series: &str) -> u64 {
    let at: SocketAddr = format!("{}:{STATS}", hosts.addr(i)).parse().unwrap();
    let Ok(r) = try_request(at, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") else {
        return 0;
    };
    r.text()
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// HAProxy on loopback in front of the replicas, checking their readiness.
struct Balancer {
    child: Child,
    port: u16,
}

impl Balancer {
    /// On `port`: the one the resource URL names, as clients see it.
    fn start(hosts: &Hosts, n: usize, sticky: bool, port: u16) -> Balancer {
        let mut servers = String::new();
        for i in 0..n {
            servers.push_str(&format!(
                "  server r{i} {}:{PORT} check port {READY} inter 200ms fall 1 rise 2\n",
                hosts.addr(i)
            ));
        }
        let stick = if sticky {
            "  stick-table type string len 128 size 10k expire 30m\n  stick store-response res.hdr(mcp-session-id)\n  stick match req.hdr(mcp-session-id)\n"
        } else {
            ""
        };
        let cfg = format!(
            "global\n  log stderr format raw local0 emerg\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 3\n  option redispatch 1\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  balance roundrobin\n  option httpchk GET /healthz/ready\n{stick}{servers}"
        );
        let path = temp_dir().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let b = Balancer { child, port };
        wait_until(10, "haproxy listening", || {
            try_request(
                SocketAddr::from(([127, 0, 0, 1], port)),
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .is_ok()
        });
        b
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy from Debian's packages, installed on first use (CI installs it too).
fn haproxy_available() -> bool {
    let has = || Command::new("haproxy").arg("-v").output().is_ok();
    if !has() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "haproxy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    has()
}

/// `py` Python and `ts` TypeScript SDK clients at once, each `calls` calls `delay` ms apart;
/// their JSON lines.
fn run_clients(
    url: &str,
    (py, ts): (usize, usize),
    calls: u32,
    delay: u32,
) -> Vec<serde_json::Value> {
    let (node, python) = client_runtimes();
    let dir = fixtures().join("clients");
    let (calls, delay) = (calls.to_string(), delay.to_string());
    let spawn = |mut cmd: Command| {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an SDK client")
    };
    let mut children = Vec::new();
    for i in 0..py {
        let mut cmd = Command::new(python);
        cmd.arg(dir.join("session_client.py")).arg(url);
        cmd.args([
            "--calls",
            &calls,
            "--delay-ms",
            &delay,
            "--name",
            &format!("py{i}"),
        ]);
        children.push(spawn(cmd));
    }
    for i in 0..ts {
        let mut cmd = Command::new(node);
        cmd.arg(dir.join("ts_client.mjs")).arg(url).arg("cc-loop");
        cmd.args([
            "--calls",
            &calls,
            "--delay-ms",
            &delay,
            "--message",
            &format!("ts{i}"),
        ]);
        children.push(spawn(cmd));
    }
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("client output");
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .unwrap_or("{}");
            serde_json::from_str(line).unwrap_or_default()
        })
        .collect()
}

fn sum(results: &[serde_json::Value], key: &str) -> u64 {
    results.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum()
}

/// Requests of a kind and status across the clients' records.
fn answered(results: &[serde_json::Value], what: &str, status: &str) -> u64 {
    results
        .iter()
        .map(|r| r["status"][what][status].as_u64().unwrap_or(0))
        .sum()
}

struct Cluster {
    hosts: Hosts,
    replicas: Vec<Replica>,
    cfg: std::path::PathBuf,
    driver: Driver,
    idp: Idp,
}

impl Cluster {
    fn forwards(&self) -> Vec<u64> {
        (0..self.replicas.len())
            .map(|i| metric(&self.hosts, i, "portcullis_peer_forwarded_total"))
            .collect()
    }

    /// Forwards per replica since `prev` (updated).
    fn forwards_since(&self, prev: &mut Vec<u64>) -> Vec<u64> {
        let now = self.forwards();
        let delta = now
            .iter()
            .zip(prev.iter())
            .map(|(n, p)| if n >= p { n - p } else { *n })
            .collect();
        *prev = now;
        delta
    }
}

/// The hosts, the IdP on the bridge and three replicas; `None` (SKIP printed) where the
/// machine cannot make network namespaces or has no HAProxy.
fn cluster(driver: Driver, balancer_port: u16) -> Option<Cluster> {
    let Some(hosts) = Hosts::create(3) else {
        eprintln!(
            "SKIP replicas: cannot create network namespaces here (`ip netns add` needs root): \
             the three-replica test did not run"
        );
        return None;
    };
    if !haproxy_available() {
        eprintln!("SKIP replicas: HAProxy is not installed and could not be: the test did not run");
        return None;
    }
    let idp = Idp::start(&[("IDP_HOST", hosts.gateway().as_str())]);
    let resource = format!("http://127.0.0.1:{balancer_port}/mcp");
    let cfg = format!(
        "config:\n  statsAddr: 0.0.0.0:{STATS}\n  readinessAddr: 0.0.0.0:{READY}\n  connectionTerminationDeadline: 5s\nbinds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {iss}\n          audiences: ['{resource}']\n          jwks: {{url: '{iss}/protocol/openid-connect/certs'}}\n          resourceMetadata: {{resource: '{resource}'}}\n      backends:\n      - mcp:\n          targets:\n          - name: demo\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        mini_server(),
        iss = idp.issuer,
    );
    let path = temp_dir().join("replica.yaml");
    std::fs::write(&path, cfg).unwrap();
    let replicas = (0..3)
        .map(|i| Replica::start(&hosts, i, &path, driver))
        .collect();
    Some(Cluster {
        hosts,
        replicas,
        cfg: path,
        driver,
        idp,
    })
}

/// One row of the run's table; `forwards`: each replica's count since the previous row (a
/// restarted replica counts from 0).
fn table(what: &str, results: &[serde_json::Value], forwards: &[u64]) {
    eprintln!(
        "| {what} | {} | {} | {:?} | {} | {} | {} |",
        sum(results, "calls"),
        sum(results, "ok_calls"),
        forwards,
        answered(results, "POST tools/call", "404"),
        sum(results, "reinit"),
        sum(results, "failed"),
    );
}

both_drivers!(three_replicas_behind_haproxy, |d| {
    let balancer_port = free_port();
    let Some(mut c) = cluster(d, balancer_port) else {
        return;
    };
    let mut prev = vec![0; 3];
    let lb = Balancer::start(&c.hosts, 3, false, balancer_port);
    let url = format!("http://127.0.0.1:{}/mcp", lb.port);
    eprintln!("| run | calls | ok | forwarded per replica | 404s | new sessions | failed |");
    eprintln!("|---|---|---|---|---|---|---|");

    // 1. Round-robin, no affinity: every call succeeds; the replicas forward to the owners.
    let results = run_clients(&url, (3, 2), 12, 0);
    let fw = c.forwards_since(&mut prev);
    table("round-robin", &results, &fw);
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["sessions"], 1, "{r}");
    }
    // The Python clients' records: each opened its GET stream and ended with DELETE.
    assert!(answered(&results, "GET", "200") >= 3, "{results:?}");
    assert!(answered(&results, "DELETE", "200") >= 3, "{results:?}");
    assert!(fw.iter().sum::<u64>() > 0, "{fw:?}");
    drop(lb);

    // 2. Sticky on the session header: (almost) nothing to forward.
    let lb = Balancer::start(&c.hosts, 3, true, balancer_port);
    let url = format!("http://127.0.0.1:{}/mcp", lb.port);
    let results = run_clients(&url, (3, 2), 12, 0);
    let fw = c.forwards_since(&mut prev);
    table("sticky", &results, &fw);
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let sticky_forwards = fw.iter().sum::<u64>();
    assert!(sticky_forwards <= 2, "sticky forwards: {sticky_forwards}");
    drop(lb);

    // 3. A replica killed mid-run: its sessions are 404 and start again; the others' go on.
    let lb = Balancer::start(&c.hosts, 3, false, balancer_port);
    let url = format!("http://127.0.0.1:{}/mcp", lb.port);
    let runner = {
        let url = url.clone();
        std::thread::spawn(move || run_clients(&url, (4, 2), 40, 50))
    };
    // Once every client has its session, kill the replica holding the most, and one of ours.
    let held = || -> Vec<u64> {
        (0..3)
            .map(|i| metric(&c.hosts, i, "portcullis_mcp_sessions"))
            .collect()
    };
    wait_until(20, "six client sessions", || {
        held().iter().sum::<u64>() >= 6
    });
    let counts = held();
    let victim = (0..3).max_by_key(|&i| counts[i]).unwrap();
    let token = c
        .idp
        .token(&format!("http://127.0.0.1:{balancer_port}/mcp"));
    let lb_addr = SocketAddr::from(([127, 0, 0, 1], balancer_port));
    let post = |to: SocketAddr, session: Option<&str>, body: &str| {
        let sid = session
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{balancer_port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nAuthorization: Bearer {token}\r\n{sid}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        request(to, raw.as_bytes())
    };
    // A session of our own on the victim (opened there directly).
    let at_victim: SocketAddr = format!("{}:{PORT}", c.hosts.addr(victim)).parse().unwrap();
    let r = post(at_victim, None, crate::mcp::INIT);
    assert_eq!(r.status, 200, "{}", r.text());
    let ours = r.header("mcp-session-id").unwrap().to_owned();
    c.replicas[victim].kill();
    // Its sessions are gone: 404 from whichever replica the balancer picks, once the balancer
    // has seen the replica go (before that, a request it sends on a connection it held to the
    // victim is its own 502).
    std::thread::sleep(Duration::from_millis(800));
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    for _ in 0..3 {
        let r = post(lb_addr, Some(&ours), list);
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(r.text().contains("-32001"), "{}", r.text());
    }
    let gone: u64 = (0..3)
        .filter(|&i| i != victim)
        .map(|i| metric(&c.hosts, i, "portcullis_peer_owner_gone_total"))
        .sum();
    assert!(gone >= 3, "owner gone: {gone}");
    let results = runner.join().unwrap();
    let fw = c.forwards_since(&mut prev);
    table(&format!("kill r{victim}"), &results, &fw);
    for r in results.iter().filter(|r| r["reinit"] != 0) {
        eprintln!("  a client started again after: {}", r["errors"]);
    }
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    assert!(sum(&results, "reinit") >= 1, "{results:?}");
    // The clients whose sessions were elsewhere did not notice.
    assert!(results.iter().any(|r| r["reinit"] == 0), "{results:?}");
    c.replicas[victim] = Replica::start(&c.hosts, victim, &c.cfg, c.driver);

    // 4. A rolling restart of all three (SIGTERM, then start again) under load: the clients
    // re-initialize on 404 and lose no call.
    let runner = std::thread::spawn(move || run_clients(&url, (3, 2), 120, 50));
    std::thread::sleep(Duration::from_millis(800));
    for i in 0..3 {
        c.replicas[i].stop();
        c.replicas[i] = Replica::start(&c.hosts, i, &c.cfg, c.driver);
        std::thread::sleep(Duration::from_millis(600));
    }
    let results = runner.join().unwrap();
    let fw = c.forwards_since(&mut prev);
    table("rolling restart", &results, &fw);
    for r in results.iter().filter(|r| r["reinit"] != 0) {
        eprintln!("  a client started again after: {}", r["errors"]);
    }
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    // Every replica restarted while the clients ran: sessions were lost, and opened again.
    assert!(sum(&results, "reinit") >= 1, "{results:?}");
    assert_eq!(sum(&results, "failed"), 0, "{results:?}");

    // 5. Forged and foreign ids: 404 from whichever replica, no peer connection.
    let before = c.forwards();
    let received: Vec<u64> = (0..3)
        .map(|i| metric(&c.hosts, i, "portcullis_peer_received_total"))
        .collect();
    let token = c
        .idp
        .token(&format!("http://127.0.0.1:{balancer_port}/mcp"));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    for id in ["forged-session-id", &"A".repeat(86)] {
        for _ in 0..3 {
            let raw = format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nAuthorization: Bearer {token}\r\nMcp-Session-Id: {id}\r\nContent-Length: {}\r\n\r\n{body}",
                lb.port,
                body.len()
            );
            let r = request(SocketAddr::from(([127, 0, 0, 1], lb.port)), raw.as_bytes());
            assert_eq!(r.status, 404, "{}", r.text());
        }
    }
    assert_eq!(c.forwards(), before);
    let after: Vec<u64> = (0..3)
        .map(|i| metric(&c.hosts, i, "portcullis_peer_received_total"))
        .collect();
    assert_eq!(after, received);
});
