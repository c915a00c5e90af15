//! Operations endpoints on their own thread: Prometheus metrics (`config.statsAddr`, default
//! `:15020/metrics`) and readiness (`config.readinessAddr`, default `:15021/healthz/ready`).
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

use crate::readiness::Readiness;
use crate::runtime::worker::WorkerMsg;
use crate::snapshot::Settings;

/// The admin listeners, bound before anything is served so that a taken port is an error at
/// start, next to the proxy ports' errors.
pub(crate) struct Bound(Vec<(std::net::TcpListener, bool, bool)>);

/// Binds `config.statsAddr` and `config.readinessAddr` (one listener when they are equal).
/// With `--reuse-port` they are bound with SO_REUSEPORT, so that two instances both started
/// with it can share them during an upgrade; without it they are exclusive (a plain bind), so
/// nothing can join them, not even this instance's own proxy ports. Returns every error.
pub(crate) fn bind(settings: &Settings, reuse_port: bool) -> Result<Bound, Vec<String>> {
    let mut addrs = vec![(settings.stats_addr, true, false)];
    if settings.readiness_addr == settings.stats_addr {
        addrs[0].2 = true;
    } else {
        addrs.push((settings.readiness_addr, false, true));
    }
    let mut bound = Vec::new();
    let mut errors = Vec::new();
    for (addr, stats, readiness) in addrs {
        match listen(addr, reuse_port) {
            Ok(l) => bound.push((l, stats, readiness)),
            Err(e) => {
                let what = if stats { "statsAddr" } else { "readinessAddr" };
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

/// Serves the bound admin listeners on a thread of their own.
pub(crate) fn start(
    bound: Bound,
    workers: Arc<Vec<UnboundedSender<WorkerMsg>>>,
    ready: Arc<Readiness>,
) -> Result<(), String> {
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
                let state = Rc::new((workers, ready));
                let mut tasks = Vec::new();
                for (l, stats, readiness) in std_listeners {
                    let Ok(listener) = TcpListener::from_std(l) else {
                        continue;
                    };
                    if let Ok(addr) = listener.local_addr() {
                        tracing::info!(%addr, stats, readiness, "admin endpoint listening");
                    }
                    tasks.push(monoio::spawn(serve(
                        listener,
                        stats,
                        readiness,
                        state.clone(),
                    )));
                }
                for t in tasks {
                    t.await;
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

type State = Rc<(Arc<Vec<UnboundedSender<WorkerMsg>>>, Arc<Readiness>)>;

async fn serve(listener: TcpListener, stats: bool, readiness: bool, state: State) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            monoio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        monoio::spawn(handle(stream, stats, readiness, state.clone()));
    }
}

async fn handle(mut stream: TcpStream, stats: bool, readiness: bool, state: State) {
    let mut buf = Vec::with_capacity(4096);
    let path = loop {
        let (len, cap) = (buf.len(), buf.capacity());
        if len == cap {
            return;
        }
        let (res, slice) = match monoio::time::timeout(
            Duration::from_secs(5),
            stream.read(SliceMut::new(buf, len, cap)),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => return,
        };
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break req
                    .path
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_owned()
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return,
        }
    };
    let (status, ctype, body) = match path.as_str() {
        "/metrics" if stats => (200, "text/plain; version=0.0.4", scrape(&state.0).await),
        "/healthz/ready" if readiness => match state.1.not_ready() {
            None => (200, "text/plain", "ready\n".to_owned()),
            Some(why) => (503, "text/plain", format!("not ready\n{why}\n")),
        },
        _ => (404, "text/plain", "not found\n".to_owned()),
    };
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

async fn scrape(workers: &[UnboundedSender<WorkerMsg>]) -> String {
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
    crate::metrics::render(&all)
}
