//! Three replicas on three hosts (issue 14 §3). The test makes its own hosts: a network namespace
//! per replica, each with its address on a veth into a bridge of the test's own (the bridge's
//! address, in this namespace, is where the real IdP listens). Each replica runs the real binary
//! with `mcpAuthentication` against oidc-provider and the demo stdio server (sessions carry server
//! state), with `PORTCULLIS_PEER_ADDR` and one shared key file. HAProxy (Debian's 2.6) on
//! loopback balances over them, with health checks on readiness, and the official Python and
//! TypeScript SDK clients run whole 2025-revision sessions through it (client_credentials token,
//! initialize, their GET stream, tools/call × N, DELETE):
//!
//! 1. round-robin, no affinity: every call succeeds; the replicas forward to the owners;
//! 2. stickiness on `Mcp-Session-Id`: every call succeeds and nothing is forwarded;
//! 3. a replica SIGKILLed mid-run: its sessions answer 404 (-32001) through the others and the
//!    clients start new sessions; the other replicas' sessions go on and no survivor fails a
//!    request; every call is made in the end;
//! 4. a rolling restart of all three (SIGTERM, start again, wait until HAProxy sees it up): no
//!    replica fails a request, and no call is lost for clients that start a new session on 404;
//! 5. a forged id, a tampered one and one another cluster sealed: 404, and no replica forwards,
//!    receives or misses a peer request.
//!
//! It prints a table: calls, new sessions, the 404s and other failures HAProxy logged (per
//! replica), GET streams, and the peer counters per replica. Where network namespaces cannot be
//! made (an unprivileged container) it says SKIP on stderr and returns. Both drivers' runs take
//! turns (two CPUs).
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::both_drivers;
use crate::clients::{client_runtimes, fixtures};
use crate::harness::*;
use crate::idp::Idp;
use crate::mcp::{mini_server, wait_until, Mcp};

const REPLICAS: usize = 3;
/// Each replica's ports, on its own host: the MCP listener, the peer listener, stats, readiness.
const PORT: u16 = 3000;
const PEER: u16 = 15030;
const STATS: u16 = 15020;
const READY: u16 = 15021;
/// The key file's secrets: the first seals, both open (a rotation in progress).
const KEY: &str = "the cluster test's current peer secret, 0123456789";
const RETIRED_KEY: &str = "the cluster test's previous peer secret, 9876543210";
const STRANGER_KEY: &str = "another cluster's peer secret, never shared here";

/// One cluster at a time in this process: both drivers' tests would otherwise run seven
/// proxies, two IdPs and a dozen SDK clients at once on a two-CPU machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `ip ARGS`; its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The test's hosts: a bridge `pccb…` here with `10.a.b.1`, and namespaces `pc-<pid>-<n>-r1…`
/// with `10.a.b.11…` (`a.b` from the pid and a counter, on a /24 nothing here uses). Dropping it
/// stops what still runs in the namespaces and removes them, their links and the bridge.
struct Hosts {
    net: [u8; 2],
    bridge: String,
    spaces: Vec<String>,
    links: Vec<String>,
}

impl Hosts {
    /// `Err` (the reason) where this machine does not let the test make a namespace; any later
    /// failure panics (what was made is removed).
    fn create() -> Result<Hosts, String> {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        // A /24 that no address or route of this machine is in (another test process's bridge
        // included).
        let mut used = String::new();
        for what in [["-4", "-o", "addr"], ["-4", "route", "show"]] {
            if let Ok(out) = Command::new("ip").args(what).output() {
                used += &String::from_utf8_lossy(&out.stdout);
            }
        }
        let a = 100 + (pid / 256 % 100) as u8;
        let b = (0..=255u32)
            .map(|k| ((pid + 128 * n + k) % 256) as u8)
            .find(|b| !used.contains(&format!("10.{a}.{b}.")))
            .expect("a free 10.x.y.0/24 on this machine");
        let net = [a, b];
        let tag = format!("{}{}", pid % 100_000, n % 10);
        let mut hosts = Hosts {
            net,
            bridge: format!("pccb{tag}"),
            spaces: Vec::new(),
            links: Vec::new(),
        };
        let first = format!("pc-{pid}-{n}-r1");
        ip(&["netns", "add", &first])?;
        hosts.spaces.push(first);
        let must = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("{e}"));
        let (br, gw) = (hosts.bridge.clone(), format!("{}/24", hosts.gateway()));
        must(ip(&["link", "add", &br, "type", "bridge"]));
        must(ip(&["addr", "add", &gw, "dev", &br]));
        must(ip(&["link", "set", &br, "up"]));
        for i in 0..REPLICAS {
            if i > 0 {
                let ns = format!("pc-{pid}-{n}-r{}", i + 1);
                must(ip(&["netns", "add", &ns]));
                hosts.spaces.push(ns);
            }
            let ns = hosts.spaces[i].clone();
            let (outer, inner) = (format!("pcc{tag}r{i}h"), format!("pcc{tag}r{i}n"));
            hosts.links.push(outer.clone());
            let addr = format!("{}/24", hosts.addr(i));
            must(ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]));
            must(ip(&["link", "set", &inner, "netns", &ns]));
            must(ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner]));
            must(ip(&["-n", &ns, "link", "set", &inner, "up"]));
            must(ip(&["-n", &ns, "link", "set", "lo", "up"]));
            must(ip(&["link", "set", &outer, "master", &br]));
            must(ip(&["link", "set", &outer, "up"]));
        }
        Ok(hosts)
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net[0], self.net[1], 1)
    }

    /// Replica `i`'s address.
    fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net[0], self.net[1], 11 + i as u8)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.spaces {
            // What runs in our namespaces we started: the replicas and their stdio servers.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = ip(&["netns", "del", ns]);
        }
        for link in &self.links {
            let _ = ip(&["link", "del", link]); // usually gone with its namespace
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// The peer counters of one replica: forwarded, received, owner gone.
type Counts = [u64; 3];
const SERIES: [&str; 3] = [
    "portcullis_peer_forwarded_total",
    "portcullis_peer_received_total",
    "portcullis_peer_owner_gone_total",
];

/// The sum of the samples of `name` (with any labels) in a Prometheus text.
fn sample_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `dir/stem-N.ext` for the first N that names no file yet (each run's output kept apart).
fn fresh(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("{stem}-{n}.{ext}")))
        .find(|p| !p.exists())
        .unwrap()
}

/// A log file that every start of a process adds to.
fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// One replica: the binary in its namespace (`ip netns exec` execs it: the pid is the proxy's).
struct Replica {
    child: Option<Child>,
    ip: Ipv4Addr,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let ready = SocketAddr::from((self.ip, READY));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("replica {} exited ({status}):\n{}", self.ip, self.log());
            }
            let get = b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n";
            if try_request(ready, get).is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not ready in 30 s:\n{}",
                self.ip,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its `/metrics` (a replica that does not answer fails the test: its counters would be
    /// lost).
    fn metrics(&self) -> String {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        let r = request(SocketAddr::from((self.ip, STATS)), get);
        assert_eq!(r.status, 200, "{}: {}", self.ip, r.text());
        r.text()
    }

    fn counts(&self) -> Counts {
        let text = self.metrics();
        SERIES.map(|s| sample_sum(&text, s))
    }

    fn sessions(&self) -> u64 {
        sample_sum(&self.metrics(), "portcullis_mcp_sessions")
    }

    /// SIGTERM, and a clean exit (the drain) within 20 s (else the namespace's end stops it).
    fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running replica");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut status = None;
        wait_until(20, &format!("replica {} to stop", self.ip), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.unwrap();
        assert!(status.success(), "{}: {status}\n{}", self.ip, self.log());
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

/// The hosts, the IdP on the bridge, and the three replicas; the peer counters summed over each
/// replica's lives.
struct Cluster {
    replicas: Vec<Replica>,
    idp: Idp,
    driver: Driver,
    dir: PathBuf,
    config: PathBuf,
    keys: PathBuf,
    /// The balancer's port, fixed: the resource URL (the tokens' audience) names it.
    lb_port: u16,
    /// Counters read from each replica's current process so far, and the sums not yet reported.
    seen: Vec<Counts>,
    total: Vec<Counts>,
    // Last: dropped after the replicas.
    hosts: Hosts,
}

impl Cluster {
    /// `None` (SKIP said) where network namespaces or HAProxy are not to be had.
    fn start(driver: Driver) -> Option<Cluster> {
        // Written past the test harness's capture: a skip is visible in every run.
        let skip = |why: String| {
            let test = "cluster::three_replicas_on_three_hosts";
            let _ = writeln!(std::io::stderr(), "SKIP {test} ({driver:?}): {why}");
        };
        let hosts = match Hosts::create() {
            Ok(h) => h,
            Err(e) => {
                skip(format!(
                    "cannot create network namespaces here ({e}); the test needs root"
                ));
                return None;
            }
        };
        if !haproxy_installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "HAProxy is missing (.ci/run installs it)"
            );
            skip("HAProxy is not installed and apt-get could not install it".into());
            return None;
        }
        let idp = Idp::start(&[("IDP_HOST", &hosts.gateway().to_string())]);
        let dir = temp_dir();
        let lb_port = free_port();
        let resource = format!("http://127.0.0.1:{lb_port}/mcp");
        let config = dir.join("replica.yaml");
        std::fs::write(
            &config,
            format!(
                "config:\n  statsAddr: 0.0.0.0:{STATS}\n  readinessAddr: 0.0.0.0:{READY}\n  connectionTerminationDeadline: 2s\nbinds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {iss}\n          jwksUrl: {iss}/protocol/openid-connect/certs\n          audience: {resource}\n          resourceMetadata:\n            resource: {resource}\n      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
                mini_server(),
                iss = idp.issuer
            ),
        )
        .unwrap();
        let keys = dir.join("peer-keys");
        std::fs::write(
            &keys,
            format!("# the first secret seals; every one opens\n{KEY}\n{RETIRED_KEY}\n"),
        )
        .unwrap();
        let mut c = Cluster {
            replicas: Vec::new(),
            idp,
            driver,
            dir,
            config,
            keys,
            lb_port,
            seen: vec![[0; 3]; REPLICAS],
            total: vec![[0; 3]; REPLICAS],
            hosts,
        };
        for i in 0..REPLICAS {
            let r = c.spawn(i);
            c.replicas.push(r);
        }
        if driver == Driver::Epoll {
            let r = &c.replicas[0];
            wait_until(5, "the epoll driver in the log", || {
                let log = r.log();
                log.contains("driver=\"epoll\"") || log.contains("\"driver\":\"epoll\"")
            });
        }
        Some(c)
    }

    fn spawn(&self, i: usize) -> Replica {
        let ip = self.hosts.addr(i);
        let log = self.dir.join(format!("r{}.log", i + 1));
        let file = append(&log);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts.spaces[i], bin(), "-f"])
            .arg(&self.config)
            .args(["--workers", "2"])
            .env("RUST_LOG", "info")
            .env("PORTCULLIS_BIND_ADDR", ip.to_string())
            .env("PORTCULLIS_PEER_ADDR", format!("{ip}:{PEER}"))
            .env("PORTCULLIS_PEER_KEY_FILE", &self.keys)
            .env_remove("PORTCULLIS_PEER_KEY")
            // Every replica is alone in its namespace: the default ports do not clash.
            .env("ADMIN_ADDR", "127.0.0.1:15000")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if self.driver == Driver::Epoll {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        let child = cmd.spawn().expect("ip netns exec portcullis");
        let mut r = Replica {
            child: Some(child),
            ip,
            log,
        };
        r.wait_ready();
        r
    }

    fn resource(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.lb_port)
    }

    /// Adds replica `i`'s counters since the last look to the sums.
    fn observe(&mut self, i: usize) {
        let now = self.replicas[i].counts();
        for (k, v) in now.iter().enumerate() {
            self.total[i][k] += v.saturating_sub(self.seen[i][k]);
        }
        self.seen[i] = now;
    }

    /// The counters per replica since the previous call (over restarts).
    fn take_counts(&mut self) -> Vec<Counts> {
        for i in 0..REPLICAS {
            self.observe(i);
        }
        std::mem::replace(&mut self.total, vec![[0; 3]; REPLICAS])
    }

    /// Every replica's current counters, as they are (no restart in between).
    fn snapshot(&self) -> Vec<Counts> {
        self.replicas.iter().map(Replica::counts).collect()
    }

    fn sessions(&self) -> Vec<u64> {
        self.replicas.iter().map(Replica::sessions).collect()
    }

    /// Waits (at most 90 s) until every client holds a session (besides `ours`), all of them
    /// still running when `what` comes.
    fn wait_sessions(&self, clients: &mut [Client], ours: usize, what: &str) {
        let want = (ours + clients.len()) as u64;
        wait_until(90, "every client's session", || {
            !clients.iter_mut().all(Client::running) || self.sessions().iter().sum::<u64>() >= want
        });
        assert!(
            clients.iter_mut().all(Client::running),
            "a client finished before {what}: make its run longer"
        );
    }

    /// SIGKILL (`hard`) or SIGTERM and a clean exit; the counters read first.
    fn stop(&mut self, i: usize, hard: bool) {
        self.observe(i);
        if hard {
            self.replicas[i].kill();
        } else {
            self.replicas[i].terminate();
        }
    }

    /// Replica `i` started again (its counters from 0), and up in the balancer.
    fn restart(&mut self, i: usize, lb: &Balancer) {
        self.replicas[i] = self.spawn(i);
        self.seen[i] = [0; 3];
        lb.wait_server(i, true);
    }

    /// A session of our own opened at replica `i` directly (not through the balancer).
    fn session_at(&self, i: usize, token: &str) -> Mcp {
        let mut m = Mcp::new(SocketAddr::from((self.hosts.addr(i), PORT)));
        m.token = Some(token.to_owned());
        let r = m.initialize();
        assert_eq!(r.status, 200, "{}", r.text());
        m
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster: the logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// HAProxy from Debian's packages, installed on first use where it is missing.
fn haproxy_installed() -> bool {
    let has = || {
        Command::new("haproxy")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has() {
        eprintln!("cluster: installing haproxy (apt-get)");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "haproxy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    has()
}

/// HAProxy on 127.0.0.1 in front of the replicas: round-robin, health checks on readiness, and
/// with `sticky` the session header pinned to the replica that answered the initialize.
struct Balancer {
    child: Child,
    port: u16,
    socket: PathBuf,
    log: PathBuf,
}

impl Balancer {
    fn start(c: &Cluster, sticky: bool) -> Balancer {
        let socket = c.dir.join("haproxy.sock");
        let _ = std::fs::remove_file(&socket);
        let mut servers = String::new();
        for i in 0..REPLICAS {
            servers += &format!("  server r{} {}:{PORT}\n", i + 1, c.hosts.addr(i));
        }
        let stick = if sticky {
            "  stick-table type string len 200 size 100k expire 30m\n  stick store-response res.hdr(mcp-session-id)\n  stick match req.hdr(mcp-session-id)\n"
        } else {
            ""
        };
        let cfg = format!(
            "global\n  log stderr format raw local0 info\n  stats socket {sock} level user\ndefaults\n  mode http\n  log global\n  option httplog\n  timeout connect 2s\n  timeout client 5m\n  timeout server 5m\n  retries 3\n  option redispatch\nfrontend mcp\n  bind 127.0.0.1:{port}\n  http-request capture req.hdr(mcp-session-id) len 12\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n  option httpchk GET /healthz/ready\n  default-server check port {READY} inter 200ms fall 2 rise 2\n{stick}{servers}",
            sock = socket.display(),
            port = c.lb_port
        );
        let path = c.dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        // A log per instance: HAProxy writes its `log stderr` lines from the file's start.
        let log_path = fresh(&c.dir, "haproxy", "log");
        let log = File::create(&log_path).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let lb = Balancer {
            child,
            port: c.lb_port,
            socket,
            log: log_path,
        };
        for i in 0..REPLICAS {
            lb.wait_server(i, true);
        }
        lb
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Where its log is now: [`Balancer::seen_since`] reads what comes after.
    fn mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The MCP answers it logged since `mark`; HAProxy logs a request when it ends, so this first
    /// waits (at most 5 s) until `done` says the log is complete.
    fn seen_since(&self, mark: u64, done: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = seen_in(&self.log, mark);
            if done(&seen) || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each server's status as HAProxy's `show stat` says (`UP`, `DOWN`, `UP 1/2`, …).
    fn states(&self) -> Vec<String> {
        let mut text = String::new();
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"show stat\n");
            let _ = s.read_to_string(&mut text);
        }
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let Some(col) = header.iter().position(|h| *h == "status") else {
            return Vec::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[0] == "replicas" && f[1].starts_with('r'))
            .map(|f| f.get(col).unwrap_or(&"").to_string())
            .collect()
    }

    /// Waits (at most 20 s) until HAProxy's checks say replica `i` is up (or down).
    fn wait_server(&self, i: usize, up: bool) {
        let want = if up { "UP" } else { "DOWN" };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let states = self.states();
            if states.get(i).is_some_and(|s| s == want) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail = &log[log.len().saturating_sub(3000)..];
                panic!("haproxy does not see r{} {want}: {states:?}\n{tail}", i + 1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One SDK client process; its one JSON line and its error output go to files.
struct Client {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Client {
    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

/// `py` Python SDK clients (session_client.py) and `ts` TypeScript SDK ones (ts_client.mjs
/// cc-loop), each making `calls` echo calls `delay_ms` apart through `url`, a new session
/// whenever one is lost.
fn start_clients(
    dir: &Path,
    url: &str,
    (py, ts): (usize, usize),
    calls: u32,
    delay_ms: u32,
) -> Vec<Client> {
    let (node, python) = client_runtimes();
    let scripts = fixtures().join("clients");
    let (calls, delay) = (calls.to_string(), delay_ms.to_string());
    let mut clients = Vec::new();
    for (i, is_py) in (0..py)
        .map(|_| true)
        .chain((0..ts).map(|_| false))
        .enumerate()
    {
        let name = format!("{}{}", if is_py { "py" } else { "ts" }, i + 1);
        let mut cmd = if is_py {
            let mut c = Command::new(python);
            c.arg(scripts.join("session_client.py"))
                .arg(url)
                .args(["--name", &name]);
            c
        } else {
            let mut c = Command::new(node);
            c.arg(scripts.join("ts_client.mjs"))
                .args([url, "cc-loop", "--message", &name]);
            c
        };
        cmd.args(["--calls", &calls, "--delay-ms", &delay]);
        let (out, err) = (fresh(dir, &name, "out"), fresh(dir, &name, "err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("start an SDK client");
        clients.push(Client {
            name,
            child,
            out,
            err,
        });
    }
    clients
}

/// Waits (at most `secs` for all) for the clients; their JSON lines, each with its `name`.
fn finish(clients: Vec<Client>, secs: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut results = Vec::new();
    for mut c in clients {
        while c.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if c.running() {
            let _ = c.child.kill();
        }
        let _ = c.child.wait();
        let text = std::fs::read_to_string(&c.out).unwrap_or_default();
        let mut v: Value = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                let err = std::fs::read_to_string(&c.err).unwrap_or_default();
                let tail = &err[err.len().saturating_sub(2000)..];
                serde_json::json!({"ok": false, "error": format!("no result line: {tail}")})
            });
        v["name"] = c.name.into();
        results.push(v);
    }
    results
}

/// The answers to the MCP endpoint that went through the balancer, from its log.
#[derive(Debug, Default)]
struct Seen {
    not_found: u64,
    /// Failures: no answer or 400 and above (but 401, each client's first request before it has
    /// its token, and 404), or an answer other than a GET stream cut short by the replica.
    errors: u64,
    /// The same per replica the balancer sent the request to.
    errors_at: [u64; REPLICAS],
    streams: u64,
    deletes: u64,
}

/// What HAProxy logged (`option httplog`) from byte `from` of its log on.
fn seen_in(log: &Path, from: u64) -> Seen {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
    let mut seen = Seen::default();
    for line in text.lines() {
        // client [date] frontend backend/server timers status bytes - - termination … "REQUEST"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(request) = line.rsplit('"').nth(1).filter(|_| fields.len() > 9) else {
            continue;
        };
        // -1: no answer (the replica died under the request).
        let Ok(status) = fields[5].parse::<i32>() else {
            continue;
        };
        let mut parts = request.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if path != "/mcp" {
            continue;
        }
        // The termination state: `S…` is the replica's side ending the exchange early (an SSE
        // GET stream ends so when the session's owner is gone: not a failure).
        let cut = fields[9].starts_with('S') && method != "GET";
        let failed = cut || !matches!(status, 100..=399 | 401 | 404);
        if failed {
            seen.errors += 1;
            let replica = fields[3]
                .strip_prefix("replicas/r")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(i) = replica.filter(|i| (1..=REPLICAS).contains(i)) {
                seen.errors_at[i - 1] += 1;
            }
        }
        match (method, status) {
            (_, 404) => seen.not_found += 1,
            ("GET", 200) => seen.streams += 1,
            ("DELETE", 200) => seen.deletes += 1,
            _ => {}
        }
    }
    seen
}

fn total(results: &[Value], key: &str) -> u64 {
    results.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum()
}

/// Every client made every call, whatever happened to its sessions.
fn assert_all_calls_made(what: &str, results: &[Value]) {
    for r in results {
        assert!(
            r["ok"] == true && r["failed"] == 0 && r["ok_calls"] == r["calls"],
            "{what}: {r}"
        );
    }
}

/// The table the test prints: one row per run.
struct Table(Vec<String>);

impl Table {
    const HEAD: &'static str = "| run | clients | calls ok/made | new sessions | 404s | other errors r1/r2/r3 | GET streams | forwarded r1/r2/r3 | received r1/r2/r3 | owner gone | failed calls |\n|---|---|---|---|---|---|---|---|---|---|---|";

    fn row(&mut self, run: &str, results: &[Value], seen: &Seen, counts: &[Counts]) {
        let per = |k: usize| {
            counts
                .iter()
                .map(|c| c[k].to_string())
                .collect::<Vec<_>>()
                .join("/")
        };
        let row = format!(
            "| {run} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            results.len(),
            total(results, "ok_calls"),
            total(results, "calls"),
            total(results, "reinit"),
            seen.not_found,
            seen.errors_at.map(|n| n.to_string()).join("/"),
            seen.streams,
            per(0),
            per(1),
            counts.iter().map(|c| c[2]).sum::<u64>(),
            total(results, "failed"),
        );
        eprintln!("{row}");
        self.0.push(row);
    }
}

/// Runs 1 and 2: two Python and two TypeScript SDK clients, ten calls each, through a new
/// balancer (`sticky` or round-robin); nothing may go wrong. The peer counters per replica.
fn clean_run(c: &mut Cluster, table: &mut Table, sticky: bool) -> Vec<Counts> {
    let run = if sticky { "sticky" } else { "round-robin" };
    let lb = Balancer::start(c, sticky);
    let mark = lb.mark();
    let results = finish(start_clients(&c.dir, &lb.url(), (2, 2), 10, 0), 180);
    let n = results.len() as u64;
    let seen = lb.seen_since(mark, |s| s.streams >= n && s.deletes >= n);
    let counts = c.take_counts();
    table.row(run, &results, &seen, &counts);
    assert_all_calls_made(run, &results);
    assert_eq!(total(&results, "reinit"), 0, "{run}: {results:?}");
    assert!(
        seen.streams >= n && seen.deletes >= n,
        "{run}: every client's GET stream and DELETE: {seen:?}"
    );
    assert_eq!((seen.not_found, seen.errors), (0, 0), "{run}: {seen:?}");
    counts
}

both_drivers!(three_replicas_on_three_hosts, |d| {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = Cluster::start(d) else {
        return;
    };
    let mut table = Table(Vec::new());
    eprintln!(
        "cluster ({d:?}): three replicas at {}, {}, {}; IdP at {}",
        c.hosts.addr(0),
        c.hosts.addr(1),
        c.hosts.addr(2),
        c.idp.issuer
    );
    eprintln!("{}", Table::HEAD);
    let dir = c.dir.clone();

    // 1. Round-robin without affinity: a session's requests land on every replica; the ones that
    // do not own it forward to the one that does, and every call succeeds.
    let counts = clean_run(&mut c, &mut table, false);
    // Every replica took part, as the edge that forwards or as an owner; every forward reached
    // its owner. (Who owns what is the balancer's draw: one replica may own all four sessions,
    // and then has nothing to forward.)
    for (i, [forwarded, received, gone]) in counts.iter().enumerate() {
        assert!(forwarded + received > 0, "r{}: {counts:?}", i + 1);
        assert_eq!(*gone, 0, "r{}: {counts:?}", i + 1);
    }
    let edges = counts.iter().filter(|c| c[0] > 0).count();
    assert!(edges >= 2, "forwarding replicas: {counts:?}");
    let sum = |k: usize| counts.iter().map(|c| c[k]).sum::<u64>();
    assert_eq!(sum(0), sum(1), "forwarded and received: {counts:?}");

    // 2. Sticky on the session header: each session stays where it was opened; no hop.
    let counts = clean_run(&mut c, &mut table, true);
    let forwarded: u64 = counts.iter().map(|c| c[0]).sum();
    assert_eq!(forwarded, 0, "sticky: {counts:?}");

    // 3. A replica SIGKILLed mid-run, round-robin again. Our own session on each replica (opened
    // there directly) says whose sessions go on; the victim is the one holding the most.
    let lb = Balancer::start(&c, false);
    let mark = lb.mark();
    let token = c.idp.token(&c.resource());
    let mut ours: Vec<Mcp> = (0..REPLICAS).map(|i| c.session_at(i, &token)).collect();
    let mut clients = start_clients(&dir, &lb.url(), (3, 3), 100, 50);
    c.wait_sessions(&mut clients, REPLICAS, "the kill");
    let held = c.sessions();
    let victim = (0..REPLICAS).max_by_key(|&i| held[i]).unwrap();
    let theirs = held[victim] - 1; // the clients' sessions on the victim
    c.stop(victim, true);
    lb.wait_server(victim, false);
    let echo = r#"{"name":"echo","arguments":{"message":"ours"}}"#;
    for (i, m) in ours.iter_mut().enumerate() {
        m.addr = lb.addr();
        for _ in 0..REPLICAS {
            let (r, msgs) = m.call("tools/call", echo);
            if i == victim {
                assert_eq!(r.status, 404, "{}", r.text());
                assert!(r.text().contains("-32001"), "{}", r.text());
            } else {
                assert_eq!(r.status, 200, "r{}'s session: {}", i + 1, r.text());
                assert!(
                    msgs.iter().any(|v| v.to_string().contains("echo: ours")),
                    "{}",
                    r.text()
                );
            }
        }
    }
    let results = finish(clients, 240);
    c.restart(victim, &lb);
    let counts = c.take_counts();
    let n = results.len() as u64;
    let seen = lb.seen_since(mark, |s| s.deletes >= n);
    table.row(&format!("r{} killed", victim + 1), &results, &seen, &counts);
    for r in results.iter().filter(|r| r["reinit"] != 0) {
        eprintln!("  {} started again after: {}", r["name"], r["errors"]);
    }
    assert_all_calls_made("kill", &results);
    // A 404 means a session on the victim: no more clients than it held saw one. (Others may
    // have started again too: a request HAProxy had sent to the victim as it died gets no
    // answer, and the client a closed connection.)
    let lost = |r: &&Value| r["errors"].to_string().contains("session not found");
    let told = results.iter().filter(lost).count() as u64;
    assert!(
        told <= theirs,
        "{theirs} sessions on the victim: {results:?}"
    );
    // No survivor failed a request.
    for (i, n) in seen.errors_at.iter().enumerate() {
        assert!(i == victim || *n == 0, "r{}: {seen:?}", i + 1);
    }
    let gone: u64 = counts.iter().map(|c| c[2]).sum();
    assert!(
        gone >= REPLICAS as u64,
        "our session on the victim: 404 from the others: {counts:?}"
    );
    for (i, m) in ours.iter().enumerate().filter(|(i, _)| *i != victim) {
        assert_eq!(m.raw("DELETE", "", "").status, 200, "r{}", i + 1);
    }

    // 4. A rolling restart of all three under load: SIGTERM, start again, wait until HAProxy
    // sends to it again, next. Clients that start a new session on 404 lose no call.
    let mark = lb.mark();
    let mut clients = start_clients(&dir, &lb.url(), (3, 3), 400, 50);
    c.wait_sessions(&mut clients, 0, "the restarts");
    for i in 0..REPLICAS {
        c.stop(i, false);
        // Out of rotation before it starts again, as a rolling restart takes a replica out: the
        // new process listens at once but answers 503 until its key set is loaded, and the
        // balancer's readiness checks (every 200 ms, two to fall) may not yet have seen the old
        // one drain (a CI run caught a request routed in that window).
        lb.wait_server(i, false);
        c.restart(i, &lb);
    }
    let running = clients
        .iter_mut()
        .map(Client::running)
        .filter(|r| *r)
        .count();
    let results = finish(clients, 300);
    let counts = c.take_counts();
    let n = results.len() as u64;
    let seen = lb.seen_since(mark, |s| s.deletes >= n);
    table.row("rolling restart", &results, &seen, &counts);
    eprintln!(
        "  clients still running when the last replica was back: {running}/{}",
        results.len()
    );
    for r in results.iter().filter(|r| r["reinit"] != 0) {
        eprintln!("  {} started again after: {}", r["name"], r["errors"]);
    }
    assert_all_calls_made("rolling restart", &results);
    // Drained, not killed: no replica failed a request.
    assert_eq!(seen.errors, 0, "{seen:?}");
    assert!(
        total(&results, "reinit") >= 1,
        "every replica restarted: {results:?}"
    );

    // 5. Ids that are not the cluster's: forged, tampered, and sealed by another cluster's key
    // (a replica of its own on loopback). 404 from every replica, and no peer request made.
    let token = c.idp.token(&c.resource());
    let mut m = Mcp::new(lb.addr());
    m.token = Some(token.clone());
    assert_eq!(m.initialize().status, 200);
    let real = m.session.clone().unwrap();
    let mut tampered = real.clone().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let forged: String = "Zm9yZ2VkLXNlc3Npb24taWQ"
        .chars()
        .cycle()
        .take(real.len())
        .collect();
    let stranger_peer = format!("127.0.0.1:{}", free_port());
    let stranger = Proxy::start_env(
        &format!(
            "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
            mini_server()
        ),
        d,
        &[],
        &[],
        &[("PORTCULLIS_PEER_ADDR", &stranger_peer), ("PORTCULLIS_PEER_KEY", STRANGER_KEY)],
    );
    let mut elsewhere = Mcp::new(stranger.addr());
    assert_eq!(elsewhere.initialize().status, 200);
    let foreign = elsewhere.session.clone().unwrap();
    let before = c.snapshot();
    for id in [&forged, &tampered, &foreign] {
        let mut x = Mcp::new(lb.addr());
        x.token = Some(token.clone());
        x.session = Some(id.clone());
        for _ in 0..REPLICAS {
            let (r, _) = x.call("tools/list", "{}");
            assert_eq!(r.status, 404, "{id}: {}", r.text());
        }
    }
    let after = c.snapshot();
    eprintln!(
        "  forged, tampered, foreign ids: 404 ×{}; peer counters before {before:?}, after {after:?}",
        3 * REPLICAS
    );
    assert_eq!(after, before, "no peer request for ids that do not open");
    assert_eq!(stranger.metric("portcullis_peer_received_total"), 0);
    // The real id still works through every replica, and ends.
    for _ in 0..REPLICAS {
        assert_eq!(m.call("tools/list", "{}").0.status, 200);
    }
    assert_eq!(m.raw("DELETE", "", "").status, 200);
    drop(lb);

    eprintln!(
        "\ncluster ({d:?}), the runs:\n{}\n{}",
        Table::HEAD,
        table.0.join("\n")
    );
});
