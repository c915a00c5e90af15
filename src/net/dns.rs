//! Name resolution for upstreams named by host name, off the workers: a lookup is handed to a
//! resolver thread (the system resolver, `getaddrinfo`, blocks) and the worker awaits the answer.
//!
//! Every address of a name is kept (the caller tries them in order, see `net::client`), in the
//! order `config.dns.lookupFamily` asks for. Answers are kept per worker and looked up again in
//! the background every refresh interval (`PORTCULLIS_DNS_REFRESH`, default 30 s, read with the
//! config; the system resolver gives no TTL): a request that finds an answer due for refresh
//! uses it and starts the refresh, so it never waits. Only a name never resolved, or one whose
//! answer is more than a second interval old, waits for a lookup. A name whose every address
//! just failed is looked up again at once, in the background (one lookup at a time per name and
//! worker). A failed refresh keeps the last answer. A failed first lookup is remembered for
//! [`NEGATIVE_TTL`].
//!
//! `PORTCULLIS_HOSTS_FILE` names a file in `/etc/hosts` format consulted before the system
//! resolver (re-read when it changes): names pinned for this proxy alone, and how the tests
//! change what a name resolves to while the proxy runs.
//!
//! Not here: addresses given as IP literals (`net::addr`), never looked up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use futures_channel::oneshot;

/// How long a failed first lookup is remembered.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The longest a request waits for a lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Names a worker keeps answers for (names come from the config; a reload may replace them).
const MAX_NAMES: usize = 4096;

/// `config.dns.lookupFamily`: which addresses of a name are used, in which order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LookupFamily {
    /// The system resolver's order (RFC 6724), both families.
    #[default]
    Auto,
    /// Both families, IPv4 first.
    V4Preferred,
    V4Only,
    V6Only,
}

impl LookupFamily {
    /// agentgateway's names (`All`, `Auto`, `V4Preferred`, `V4Only`, `V6Only`).
    pub(crate) fn parse(s: &str) -> Option<LookupFamily> {
        match s {
            "All" | "Auto" => Some(LookupFamily::Auto),
            "V4Preferred" => Some(LookupFamily::V4Preferred),
            "V4Only" => Some(LookupFamily::V4Only),
            "V6Only" => Some(LookupFamily::V6Only),
            _ => None,
        }
    }

    /// `ips` filtered and ordered for this family.
    pub(crate) fn order(self, ips: &[IpAddr]) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = match self {
            LookupFamily::Auto | LookupFamily::V4Preferred => ips.to_vec(),
            LookupFamily::V4Only => ips.iter().copied().filter(IpAddr::is_ipv4).collect(),
            LookupFamily::V6Only => ips.iter().copied().filter(IpAddr::is_ipv6).collect(),
        };
        if self == LookupFamily::V4Preferred {
            out.sort_by_key(|ip| ip.is_ipv6());
        }
        let mut seen = Vec::with_capacity(out.len());
        out.retain(|ip| {
            let new = !seen.contains(ip);
            seen.push(*ip);
            new
        });
        out
    }
}

type Lookup = (String, oneshot::Sender<Vec<IpAddr>>);

/// The resolver thread's inbox, started on first use.
fn resolver() -> &'static mpsc::SyncSender<Lookup> {
    static TX: OnceLock<mpsc::SyncSender<Lookup>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Lookup>(1024);
        let spawned = std::thread::Builder::new()
            .name("portcullis-dns".into())
            .spawn(move || {
                let mut hosts = HostsFile::from_env();
                for (host, reply) in rx {
                    let _ = reply.send(lookup(&mut hosts, &host));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the resolver thread: host names will not resolve");
        }
        tx
    })
}

/// `PORTCULLIS_HOSTS_FILE`, re-read when its modification time or size changes.
struct HostsFile {
    path: Option<std::path::PathBuf>,
    stamp: Option<(SystemTime, u64)>,
    names: HashMap<String, Vec<IpAddr>>,
}

impl HostsFile {
    fn from_env() -> HostsFile {
        HostsFile {
            path: std::env::var_os("PORTCULLIS_HOSTS_FILE").map(Into::into),
            stamp: None,
            names: HashMap::new(),
        }
    }

    fn get(&mut self, host: &str) -> Option<Vec<IpAddr>> {
        let path = self.path.as_ref()?;
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp != self.stamp {
            self.stamp = stamp;
            self.names = std::fs::read_to_string(path)
                .map(|t| parse_hosts(&t))
                .unwrap_or_default();
        }
        self.names.get(&host.to_ascii_lowercase()).cloned()
    }
}

/// `/etc/hosts` lines: an address, then names; `#` starts a comment. A name on several lines
/// gets every address, in file order.
fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in words {
            names.entry(name.to_ascii_lowercase()).or_default().push(ip);
        }
    }
    names
}

/// The hosts file, then the system resolver; runs only on the resolver thread.
#[allow(clippy::disallowed_methods)] // the one place a worker's lookups block: its own thread
fn lookup(hosts: &mut HostsFile, host: &str) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    if let Some(ips) = hosts.get(host) {
        return ips;
    }
    (host, 0)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// One name's answer on a worker.
struct Answer {
    /// Empty: the name did not resolve.
    ips: Rc<[IpAddr]>,
    /// When the answer was obtained.
    at: Instant,
    /// A background refresh is under way.
    refreshing: bool,
    /// Every address just failed: look again now (in the background, once).
    due: bool,
}

thread_local! {
    /// This worker's answers, keyed by the host alone (the address does not depend on the
    /// port), so that a hit is looked up by `&str`, allocating nothing.
    static CACHE: RefCell<HashMap<String, Answer>> = RefCell::new(HashMap::new());
}

async fn ask(host: &str) -> Option<Vec<IpAddr>> {
    let (tx, rx) = oneshot::channel();
    // The resolver swamped or gone: no answer, nothing waited for.
    resolver().try_send((host.to_owned(), tx)).ok()?;
    match monoio::time::timeout(LOOKUP_TIMEOUT, rx).await {
        Ok(Ok(ips)) => Some(ips),
        _ => None,
    }
}

fn store(host: &str, ips: Rc<[IpAddr]>, interval: Duration) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_NAMES && !c.contains_key(host) {
            let horizon = interval * 2;
            c.retain(|_, a| a.at.elapsed() < horizon);
        }
        c.insert(
            host.to_owned(),
            Answer {
                ips,
                at: Instant::now(),
                refreshing: false,
                due: false,
            },
        );
    });
}

/// The addresses of `host`, ordered for `family`, from this worker's answers or the resolver
/// thread (see the module docs for when a request waits). Empty: it does not resolve.
pub(crate) async fn resolve(host: &str, family: LookupFamily, interval: Duration) -> Rc<[IpAddr]> {
    enum Found {
        Fresh(Rc<[IpAddr]>),
        Refresh(Rc<[IpAddr]>),
        Wait,
    }
    let found = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(a) = c.get_mut(host) else {
            return Found::Wait;
        };
        let age = a.at.elapsed();
        let ttl = if a.ips.is_empty() {
            NEGATIVE_TTL
        } else {
            interval
        };
        if a.due && !a.ips.is_empty() && !a.refreshing {
            a.refreshing = true;
            Found::Refresh(a.ips.clone())
        } else if age < ttl {
            Found::Fresh(a.ips.clone())
        } else if !a.ips.is_empty() && age < ttl * 2 {
            if a.refreshing {
                Found::Fresh(a.ips.clone())
            } else {
                a.refreshing = true;
                Found::Refresh(a.ips.clone())
            }
        } else {
            Found::Wait
        }
    });
    match found {
        Found::Fresh(ips) => filter(&ips, family),
        Found::Refresh(ips) => {
            let name = host.to_owned();
            monoio::spawn(async move {
                match ask(&name).await {
                    Some(fresh) if !fresh.is_empty() => store(&name, fresh.into(), interval),
                    // A failed refresh keeps the last answer, for another interval.
                    _ => CACHE.with(|c| {
                        if let Some(a) = c.borrow_mut().get_mut(&name) {
                            a.refreshing = false;
                            a.due = false;
                            a.at = Instant::now();
                        }
                    }),
                }
            });
            filter(&ips, family)
        }
        Found::Wait => {
            let ips: Rc<[IpAddr]> = ask(host).await.unwrap_or_default().into();
            store(host, ips.clone(), interval);
            filter(&ips, family)
        }
    }
}

fn filter(ips: &Rc<[IpAddr]>, family: LookupFamily) -> Rc<[IpAddr]> {
    match family {
        LookupFamily::Auto => ips.clone(),
        f => f.order(ips).into(),
    }
}

/// Every address of `host` failed: the next request starts a lookup (one at a time per name and
/// worker, in the background: a backend that is down does not turn every request into a DNS
/// query).
pub(crate) fn forget(host: &str) {
    CACHE.with(|c| {
        if let Some(a) = c.borrow_mut().get_mut(host) {
            a.due = true;
        }
    });
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
            let every = Duration::from_secs(30);
            let ips = resolve("localhost", LookupFamily::Auto, every).await;
            assert!(!ips.is_empty());
            assert!(CACHE.with(|c| c.borrow().contains_key("localhost")));
            let v4 = resolve("localhost", LookupFamily::V4Only, every).await;
            assert!(v4.iter().all(IpAddr::is_ipv4));
            assert!(resolve("no-such-host.invalid", LookupFamily::Auto, every)
                .await
                .is_empty());
            forget("localhost");
            assert!(CACHE.with(|c| c.borrow()["localhost"].due));
            // The next request uses the answer and starts one refresh.
            assert!(!resolve("localhost", LookupFamily::Auto, every)
                .await
                .is_empty());
            assert!(CACHE.with(|c| c.borrow()["localhost"].refreshing));
        });
    }

    #[test]
    fn families_order_and_filter() {
        let ips: Vec<IpAddr> = ["::1", "10.0.0.1", "fe80::2", "10.0.0.2", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let s = |v: Vec<IpAddr>| {
            v.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            s(LookupFamily::V4Preferred.order(&ips)),
            "10.0.0.1 10.0.0.2 ::1 fe80::2"
        );
        assert_eq!(s(LookupFamily::V4Only.order(&ips)), "10.0.0.1 10.0.0.2");
        assert_eq!(s(LookupFamily::V6Only.order(&ips)), "::1 fe80::2");
        assert_eq!(
            s(LookupFamily::Auto.order(&ips)),
            "::1 10.0.0.1 fe80::2 10.0.0.2"
        );
        assert_eq!(LookupFamily::parse("All"), Some(LookupFamily::Auto));
        assert_eq!(LookupFamily::parse("v4only"), None);
    }

    #[test]
    fn hosts_lines() {
        let h = parse_hosts(
            "# comment\n127.0.0.2 App.test other # trailing\n::1 app.test\nnonsense line\n10.1.1.1\n",
        );
        let app: Vec<String> = h["app.test"].iter().map(|i| i.to_string()).collect();
        assert_eq!(app, ["127.0.0.2", "::1"]);
        assert_eq!(h["other"].len(), 1);
        assert_eq!(h.len(), 2);
    }
}
