//! Test harness: starts the real `portcullis` binary on ephemeral loopback ports, talks to it with
//! plain blocking sockets, and provides small upstream servers on threads.
//! Every process a test starts is stopped when its handle drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which monoio driver the proxy should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring where the kernel allows it (monoio falls back to epoll otherwise).
    Uring,
    /// The epoll driver, forced.
    Epoll,
}

/// Generates one test per driver from a body that takes the driver.
#[macro_export]
macro_rules! both_drivers {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn uring() {
                ($body)($crate::harness::Driver::Uring)
            }
            #[test]
            fn epoll() {
                ($body)($crate::harness::Driver::Epoll)
            }
        }
    };
}

/// A port nothing listens on, never the same one twice in this test process: tests run in
/// parallel, and a port handed out but not bound yet would otherwise be handed out again.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

pub fn temp_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("portcullis-it-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A running proxy. Config templates may use `{PORT}`, `{PORT2}`, `{STATS}` and `{READY}`.
pub struct Proxy {
    child: Option<Child>,
    pub port: u16,
    pub port2: u16,
    pub stats: u16,
    pub ready: u16,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    pub fn start(template: &str, driver: Driver) -> Proxy {
        Self::start_with(template, driver, &[], &[])
    }

    pub fn start_with(
        template: &str,
        driver: Driver,
        vars: &[(&str, String)],
        args: &[&str],
    ) -> Proxy {
        Self::start_env(template, driver, vars, args, &[])
    }

    pub fn start_env(
        template: &str,
        driver: Driver,
        vars: &[(&str, String)],
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Proxy {
        Self::start_full(template, driver, vars, args, envs, None)
    }

    /// Everything configurable: `cwd` is the proxy's working directory (stdio servers inherit it).
    pub fn start_full(
        template: &str,
        driver: Driver,
        vars: &[(&str, String)],
        args: &[&str],
        envs: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
    ) -> Proxy {
        // A port handed out here can still be taken by another process (another test binary)
        // before the proxy binds it: the proxy then exits naming the port, and we retry.
        for _ in 0..4 {
            let ports = (free_port(), free_port(), free_port(), free_port());
            match Self::start_ports(template, driver, vars, args, envs, cwd, ports) {
                Ok(p) => return p,
                Err(log) if log.contains("already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("portcullis could not get free ports in 4 attempts");
    }

    /// A second instance on the same ports as `other` (for `--reuse-port`).
    pub fn start_sharing(other: &Proxy, template: &str, driver: Driver, args: &[&str]) -> Proxy {
        let ports = (other.port, other.port2, other.stats, other.ready);
        Self::start_ports(template, driver, &[], args, &[], None, ports)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// An instance on given ports (listener, second listener, stats, readiness): another
    /// replica of a config, on the same listener ports at another loopback address
    /// (`PORTCULLIS_BIND_ADDR` in `envs`).
    pub fn start_on(
        template: &str,
        driver: Driver,
        ports: (u16, u16, u16, u16),
        envs: &[(&str, &str)],
    ) -> Proxy {
        Self::start_ports(template, driver, &[], &[], envs, None, ports)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn start_ports(
        template: &str,
        driver: Driver,
        vars: &[(&str, String)],
        args: &[&str],
        envs: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
        (port, port2, stats, ready): (u16, u16, u16, u16),
    ) -> Result<Proxy, String> {
        let dir = temp_dir();
        let config_path = dir.join("config.yaml");
        let mut p = Proxy {
            child: None,
            port,
            port2,
            stats,
            ready,
            dir,
            config_path,
            log: Arc::new(Mutex::new(String::new())),
        };
        let mut text = p.render(template);
        for (k, v) in vars {
            text = text.replace(&format!("{{{k}}}"), v);
        }
        std::fs::write(&p.config_path, text).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("-f").arg(&p.config_path);
        // Two workers unless the test says how many.
        if !args.contains(&"--workers") {
            cmd.args(["--workers", "2"]);
        }
        cmd.args(args);
        cmd.env("RUST_LOG", "info")
            .env("PORTCULLIS_BIND_ADDR", "127.0.0.1")
            // Every instance its own admin port (agentgateway's default, localhost:15000, can be
            // bound by one process only); a test of that default removes it.
            .env("ADMIN_ADDR", format!("127.0.0.1:{}", free_port()));
        if driver == Driver::Epoll {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn portcullis");
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = p.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                }
            });
        }
        p.child = Some(child);
        p.wait_ready()?;
        if driver == Driver::Epoll {
            // The log line may reach our reader thread just after readiness answers.
            let seen = p.wait_log("driver=\"epoll\"", 5) || p.log_contains("\"driver\":\"epoll\"");
            assert!(seen, "expected the epoll driver:\n{}", p.log());
        }
        Ok(p)
    }

    pub fn render(&self, template: &str) -> String {
        template
            .replace("{PORT}", &self.port.to_string())
            .replace("{PORT2}", &self.port2.to_string())
            .replace("{STATS}", &self.stats.to_string())
            .replace("{READY}", &self.ready.to_string())
    }

    /// Waits until readiness answers 200, or 503 only because a key set has not loaded (tests
    /// of unreachable identity providers); `Err` with the log if the proxy exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                self.child = None;
                return Err(format!(
                    "portcullis exited early ({status}):\n{}",
                    self.log()
                ));
            }
            if let Ok(r) = try_request(
                SocketAddr::from(([127, 0, 0, 1], self.ready)),
                b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n",
            ) {
                // Key sets usually load within milliseconds; a test of an unreachable identity
                // provider proceeds once that is all readiness waits for.
                let keys_only = r.status == 503
                    && r.text()
                        .lines()
                        .skip(1)
                        .all(|l| l.starts_with("no key set loaded yet"));
                if r.status == 200 || (keys_only && started.elapsed() > Duration::from_secs(3)) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("portcullis did not become ready:\n{}", self.log());
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Forgets the log so far (to wait for a line a second time).
    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    pub fn log_contains(&self, s: &str) -> bool {
        self.log.lock().unwrap().contains(s)
    }

    /// Waits up to `secs` for the log to contain `s`.
    pub fn wait_log(&self, s: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log_contains(s) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// One request on a fresh connection.
    pub fn req(&self, raw: &str) -> Response {
        request(self.addr(), raw.as_bytes())
    }

    pub fn get(&self, path: &str) -> Response {
        self.req(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The stats endpoint's `/metrics` text.
    pub fn metrics(&self) -> String {
        request(
            SocketAddr::from(([127, 0, 0, 1], self.stats)),
            b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .text()
    }

    /// The value of one series on `/metrics` (0 when absent).
    pub fn metric(&self, series: &str) -> u64 {
        self.metrics()
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

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Waits (at most 20 s) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("portcullis did not stop:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    try_request(addr, raw).unwrap_or_else(|e| panic!("request to {addr} failed: {e}"))
}

pub fn try_request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let mut r = BufReader::new(s);
    read_response(&mut r, raw.starts_with(b"HEAD "))
}

/// Reads one response from a buffered stream (keep-alive aware).
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| std::io::Error::other(format!("bad header {l:?}")))?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let n: usize = len.parse().map_err(std::io::Error::other)?;
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(std::io::Error::other)?;
            if size == 0 {
                loop {
                    line.clear();
                    r.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// A scripted upstream on a thread: each accepted connection is handed to `handler` until the
/// server is dropped.
pub struct Upstream {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Connections accepted.
    pub hits: Arc<AtomicUsize>,
    /// Requests answered (for handlers that count them).
    pub requests: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start<F>(handler: F) -> Upstream
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        Upstream::start_at("127.0.0.1:0", handler)
    }

    /// [`Upstream::start`] on a given address (another loopback address, a given port).
    pub fn start_at<F>(addr: &str, handler: F) -> Upstream
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let l = TcpListener::bind(addr).unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (stop2, hits2) = (stop.clone(), hits.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        hits2.fetch_add(1, Ordering::Relaxed);
                        let h = handler.clone();
                        std::thread::spawn(move || h(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream {
            port,
            stop,
            thread: Some(thread),
            hits,
            requests: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Answers every request with `name` as the body (keep-alive), on `addr`.
    pub fn named(addr: &str, name: &'static str) -> Upstream {
        Upstream::start_at(addr, move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while let Ok(Some(_)) = read_request(&mut r) {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                    name.len()
                );
                if w.write_all(head.as_bytes()).is_err() || w.write_all(name.as_bytes()).is_err() {
                    break;
                }
            }
        })
    }

    /// Answers every request with a body describing it: `METHOD PATH\n` then the headers as
    /// `name: value` lines, a blank line and the request body. Keep-alive.
    pub fn echo() -> Upstream {
        Upstream::echo_closing_idle(None)
    }

    /// [`Upstream::echo`] that closes a connection once it has been idle for `idle`, as servers
    /// do with keep-alive connections (uvicorn and Node after 5 s).
    pub fn echo_closing_idle(idle: Option<Duration>) -> Upstream {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let mut up = Upstream::start(move |s| {
            s.set_read_timeout(idle).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while let Ok(Some(req)) = read_request(&mut r) {
                counter.fetch_add(1, Ordering::Relaxed);
                let mut body = format!("{} {}\n", req.method, req.target);
                for (n, v) in &req.headers {
                    body.push_str(&format!("{n}: {v}\n"));
                }
                body.push('\n');
                let mut bytes = body.into_bytes();
                bytes.extend_from_slice(&req.body);
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-upstream: echo\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n", bytes.len());
                if w.write_all(head.as_bytes()).is_err() || w.write_all(&bytes).is_err() {
                    break;
                }
            }
        });
        up.requests = requests;
        up
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one request (Content-Length or chunked body) from a client stream.
pub fn read_request<R: BufRead>(r: &mut R) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = find("content-length") {
        let n: usize = len.parse().unwrap_or(0);
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                line.clear();
                r.read_line(&mut line)?;
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

/// The admin/ports block every test config starts with.
pub const CONFIG_HEAD: &str = "config:\n  statsAddr: 127.0.0.1:{STATS}\n  readinessAddr: 127.0.0.1:{READY}\n  connectionTerminationDeadline: 5s\n";
