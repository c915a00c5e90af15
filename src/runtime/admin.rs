//! Operations endpoints on their own thread: Prometheus metrics (`config.statsAddr`, default
//! `:15020/metrics`), readiness (`config.readinessAddr`, default `:15021/healthz/ready`), and
//! agentgateway's admin endpoints (`config.adminAddr`, default `localhost:15000`):
//! `/config_dump`, `/logging`, `/quitquitquit`.
//!
//! A scrape asks every worker for a copy of its counters over its control channel and sums them
//! here, so workers never share a counter. Not here: the counters themselves (`metrics`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc::UnboundedSender;
use futures_channel::oneshot;
use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::metrics::ControlStats;
use crate::readiness::Readiness;
use crate::runtime::worker::WorkerMsg;
use crate::snapshot::{Settings, Snapshot};

/// What one admin listener serves (a listener may serve several when their addresses are equal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    pub stats: bool,
    pub readiness: bool,
    pub admin: bool,
}

/// The admin listeners, bound before anything is served so that a taken port is an error at
/// start, next to the proxy ports' errors.
pub(crate) struct Bound(Vec<(std::net::TcpListener, Roles)>);

/// Binds `config.statsAddr`, `config.readinessAddr` and `config.adminAddr` (one listener per
/// distinct address). With `--reuse-port` the first two are bound with SO_REUSEPORT, so that
/// two instances both started with it can share them during an upgrade; without it they are
/// exclusive (a plain bind), so nothing can join them, not even this instance's own proxy
/// ports. The admin address is never shared (its `/quitquitquit` must reach this instance): when
/// it is taken and was not configured (agentgateway's default `localhost:15000`), or during a
/// `--reuse-port` upgrade, the admin endpoints are not served and a warning says so. Returns
/// every error.
/// `admin: false` leaves the admin endpoints out.
pub(crate) fn bind(
    settings: &Settings,
    admin: bool,
    reuse_port: bool,
) -> Result<Bound, Vec<String>> {
    let mut addrs: Vec<(std::net::SocketAddr, Roles)> = Vec::new();
    let mut add = |addr, set: fn(&mut Roles)| match addrs.iter_mut().find(|(a, _)| *a == addr) {
        Some((_, r)) => set(r),
        None => {
            let mut r = Roles::default();
            set(&mut r);
            addrs.push((addr, r));
        }
    };
    add(settings.stats_addr, |r| r.stats = true);
    add(settings.readiness_addr, |r| r.readiness = true);
    if admin {
        add(settings.admin_addr, |r| r.admin = true);
    }
    let mut bound = Vec::new();
    let mut errors = Vec::new();
    for (addr, roles) in addrs {
        let admin_only = roles
            == Roles {
                admin: true,
                ..Roles::default()
            };
        match listen(addr, reuse_port && !admin_only) {
            Ok(l) => bound.push((l, roles)),
            Err(e) if admin_only && (!settings.admin_explicit || reuse_port) => {
                tracing::warn!(
                    %addr,
                    error = %e,
                    "admin endpoints (/config_dump, /logging, /quitquitquit) not served: \
                     set config.adminAddr to a free address"
                );
            }
            Err(e) => {
                let what = if roles.stats {
                    "statsAddr"
                } else if roles.readiness {
                    "readinessAddr"
                } else {
                    "adminAddr"
                };
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse && !reuse_port {
                    " (another Portcullis or another program listens on it: stop it, or give \
                     this instance another address)"
                } else {
                    ""
                };
                errors.push(format!("config.{what}: cannot listen on {addr}: {e}{hint}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(Bound(bound))
    } else {
        Err(errors)
    }
}

fn listen(addr: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What the admin thread reaches: the workers, readiness, the control plane's figures, and the
/// way to ask the control loop for a graceful stop.
pub(crate) struct Shared {
    pub workers: Arc<Vec<UnboundedSender<WorkerMsg>>>,
    pub ready: Arc<Readiness>,
    pub control: Arc<ControlStats>,
    pub stop: Box<dyn Fn() + Send + Sync>,
}

/// Serves the bound admin listeners on a thread of their own.
pub(crate) fn start(bound: Bound, shared: Shared) -> Result<(), String> {
    let std_listeners = bound.0;
    std::thread::Builder::new()
        .name("portcullis-admin".into())
        .spawn(move || {
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            let Ok(mut rt) = rt else {
                tracing::error!("cannot build the admin runtime");
                return;
            };
            rt.block_on(async move {
                let state = Rc::new(shared);
                let mut tasks = Vec::new();
                for (l, roles) in std_listeners {
                    let Ok(listener) = TcpListener::from_std(l) else {
                        continue;
                    };
                    if let Ok(addr) = listener.local_addr() {
                        tracing::info!(
                            %addr,
                            stats = roles.stats,
                            readiness = roles.readiness,
                            admin = roles.admin,
                            "admin endpoint listening"
                        );
                    }
                    tasks.push(monoio::spawn(serve(listener, roles, state.clone())));
                }
                for t in tasks {
                    t.await;
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

type State = Rc<Shared>;

async fn serve(listener: TcpListener, roles: Roles, state: State) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            monoio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        monoio::spawn(handle(stream, roles, state.clone()));
    }
}

/// The parts of an admin request the endpoints read.
struct AdminRequest {
    method: String,
    path: String,
    query: String,
    /// Sent by browsers on cross-origin requests: refused on the admin endpoints.
    origin: bool,
}

async fn read_request(stream: &mut TcpStream) -> Option<AdminRequest> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (len, cap) = (buf.len(), buf.capacity());
        if len == cap {
            return None;
        }
        let (res, slice) = monoio::time::timeout(
            Duration::from_secs(5),
            stream.read(SliceMut::new(buf, len, cap)),
        )
        .await
        .ok()?;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                return Some(AdminRequest {
                    method: req.method.unwrap_or("GET").to_owned(),
                    path: path.to_owned(),
                    query: query.to_owned(),
                    origin: req
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("origin")),
                });
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return None,
        }
    }
}

const ADMIN_INDEX: &str = "Portcullis admin endpoints:\n\
GET  /config_dump                the config in effect, as JSON (secrets redacted)\n\
POST /logging                    the log filter in effect\n\
POST /logging?level=<filter>     set it (RUST_LOG syntax: debug, or info,portcullis=debug)\n\
POST /logging?reset              back to the filter the process started with\n\
POST /quitquitquit               drain and stop, as SIGTERM\n";

async fn handle(mut stream: TcpStream, roles: Roles, state: State) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    let (status, ctype, body) = route(&req, roles, &state).await;
    let mut out = Vec::with_capacity(body.len() + 128);
    crate::http::h1::write_status_line(&mut out, status);
    crate::http::h1::write_header(&mut out, "content-type", ctype.as_bytes());
    crate::http::h1::write_header(
        &mut out,
        "content-length",
        body.len().to_string().as_bytes(),
    );
    crate::http::h1::write_header(&mut out, "connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    let _ = stream.write_all(out).await;
}

async fn route(req: &AdminRequest, roles: Roles, state: &Shared) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain";
    let text = |status, body: &str| (status, TEXT, body.to_owned());
    match req.path.as_str() {
        "/metrics" if roles.stats => (
            200,
            "text/plain; version=0.0.4",
            scrape(&state.workers, &state.control).await,
        ),
        "/healthz/ready" if roles.readiness => match state.ready.not_ready() {
            None => text(200, "ready\n"),
            Some(why) => (503, TEXT, format!("not ready\n{why}\n")),
        },
        "/" | "/config_dump" | "/logging" | "/quitquitquit" if roles.admin => {
            // A page in a browser can send simple requests to loopback: anything a browser
            // marks as cross-origin is refused, so only tools (curl, kubectl) reach these.
            if req.origin {
                return text(
                    403,
                    "admin endpoints refuse browser cross-origin requests\n",
                );
            }
            admin(req, state).await
        }
        _ => text(404, "not found\n"),
    }
}

async fn admin(req: &AdminRequest, state: &Shared) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain";
    let post = req.method == "POST";
    match (req.path.as_str(), post) {
        ("/", false) => (200, TEXT, ADMIN_INDEX.to_owned()),
        ("/config_dump", false) => match current(&state.workers).await {
            Some(s) => (200, "application/json", config_dump(&s)),
            None => (503, TEXT, "no worker answered\n".to_owned()),
        },
        ("/logging", true) => logging(&req.query),
        ("/quitquitquit", true) => {
            tracing::info!("stop requested on the admin endpoint: draining");
            (state.stop)();
            (200, TEXT, "shutdown now\n".to_owned())
        }
        _ => (405, TEXT, format!("method not allowed\n\n{ADMIN_INDEX}")),
    }
}

/// `/logging`: Envoy's and agentgateway's shape (`?level=<filter>`, `?reset`).
fn logging(query: &str) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain";
    let mut level = None;
    let mut reset = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "level" => level = Some(percent_decode(v)),
            "reset" => reset = true,
            _ => {
                return (
                    400,
                    TEXT,
                    format!("unknown parameter {k:?}\n\n{ADMIN_INDEX}"),
                )
            }
        }
    }
    let wanted = match (level, reset) {
        (Some(l), _) if !l.is_empty() => Some(l),
        (_, true) => Some(crate::telemetry::initial_filter()),
        _ => None,
    };
    if let Some(spec) = wanted {
        if let Err(e) = crate::telemetry::set_filter(&spec) {
            return (400, TEXT, format!("{e}\n\n{ADMIN_INDEX}"));
        }
    }
    match crate::telemetry::current_filter() {
        Some(f) => (200, TEXT, format!("current log filter is {f}\n")),
        None => (500, TEXT, "logging is not set up\n".to_owned()),
    }
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The config in effect, from the first worker (they all serve the same generation).
async fn current(workers: &[UnboundedSender<WorkerMsg>]) -> Option<Arc<Snapshot>> {
    let (tx, rx) = oneshot::channel();
    workers
        .first()?
        .unbounded_send(WorkerMsg::Current(tx))
        .ok()?;
    monoio::time::timeout(Duration::from_secs(2), rx)
        .await
        .ok()?
        .ok()
}

fn config_dump(s: &Snapshot) -> String {
    format!(
        "{{\n\"version\": \"{}\",\n\"generation\": {},\n\"config\": {}\n}}\n",
        env!("CARGO_PKG_VERSION"),
        s.generation,
        s.dump
    )
}

async fn scrape(workers: &[UnboundedSender<WorkerMsg>], control: &ControlStats) -> String {
    let mut waiting = Vec::with_capacity(workers.len());
    for w in workers {
        let (tx, rx) = oneshot::channel();
        if w.unbounded_send(WorkerMsg::Scrape(tx)).is_ok() {
            waiting.push(rx);
        }
    }
    let mut all = Vec::with_capacity(waiting.len());
    for rx in waiting {
        if let Ok(Ok(m)) = monoio::time::timeout(Duration::from_secs(2), rx).await {
            all.push(m);
        }
    }
    let extra = crate::metrics::Extra {
        control,
        stdio_processes: crate::relay::session::stdio_processes(),
    };
    crate::metrics::render(&all, &extra)
}
