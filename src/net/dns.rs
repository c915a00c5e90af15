//! Name resolution for upstreams named by host name, off the workers: a lookup is handed to a
//! resolver thread (the system resolver, `getaddrinfo`, blocks) and the worker awaits the answer;
//! answers are kept per worker for [`TTL`] (a failure for [`NEGATIVE_TTL`]), so a worker asks
//! again at most that often per name.
//!
//! Not here: names resolved once at load (`net::addr::HostAddr::parse`: a name that resolves
//! then is kept as an address).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

/// How long a resolved address is used before the name is looked up again.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// How long a failed lookup is remembered.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The longest a request waits for a lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

type Lookup = (String, u16, oneshot::Sender<Option<SocketAddr>>);

/// The resolver thread's inbox, started on first use.
fn resolver() -> &'static mpsc::SyncSender<Lookup> {
    static TX: OnceLock<mpsc::SyncSender<Lookup>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Lookup>(1024);
        let spawned = std::thread::Builder::new()
            .name("portcullis-dns".into())
            .spawn(move || {
                for (host, port, reply) in rx {
                    let _ = reply.send(lookup(&host, port));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the resolver thread: host names will not resolve");
        }
        tx
    })
}

/// The system resolver; runs only on the resolver thread.
#[allow(clippy::disallowed_methods)] // the one place a worker's lookups block: its own thread
fn lookup(host: &str, port: u16) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().ok()?.next()
}

/// This worker's answers: host → (address, when it expires). Keyed by the host alone (the
/// address does not depend on the port), so that a hit is looked up by `&str`, allocating
/// nothing.
type Answers = HashMap<String, (Option<IpAddr>, Instant)>;

thread_local! {
    static CACHE: RefCell<Answers> = RefCell::new(HashMap::new());
}

/// The first address of `host:port`, from this worker's cache or the resolver thread.
pub(crate) async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    let now = Instant::now();
    let cached = CACHE.with(|c| c.borrow().get(host).copied());
    if let Some((ip, until)) = cached {
        if until > now {
            return ip.map(|ip| SocketAddr::new(ip, port));
        }
    }
    let (tx, rx) = oneshot::channel();
    let answer = match resolver().try_send((host.to_owned(), port, tx)) {
        Ok(()) => match monoio::time::timeout(LOOKUP_TIMEOUT, rx).await {
            Ok(Ok(addr)) => addr,
            _ => None,
        },
        // The resolver is swamped or gone: fail this request, do not wait.
        Err(_) => return None,
    };
    let ttl = if answer.is_some() { TTL } else { NEGATIVE_TTL };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Bounded: names come from the config, but a reload may replace them all.
        if c.len() >= 4096 {
            c.retain(|_, (_, until)| *until > now);
        }
        c.insert(
            host.to_owned(),
            (answer.map(|a| a.ip()), Instant::now() + ttl),
        );
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_off_the_worker_and_are_cached() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                resolve("localhost", 8080).await.map(|a| a.port()),
                Some(8080)
            );
            let cached = CACHE.with(|c| c.borrow().get("localhost").copied());
            assert!(cached.is_some_and(|(a, _)| a.is_some()));
            // The cached address serves any port of the name.
            assert_eq!(resolve("localhost", 81).await.map(|a| a.port()), Some(81));
            assert_eq!(resolve("no-such-host.invalid", 80).await, None);
        });
    }
}
