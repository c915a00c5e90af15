//! The key manager: one control-plane thread that keeps every JWKS and discovery document of the
//! current config fresh and publishes them to all workers.
//!
//! - JWKS URLs are fetched at start; a failed fetch is retried with backoff (1 s doubling to
//!   60 s) and is never fatal. Refreshes follow `Cache-Control: max-age`/`Expires`, clamped to
//!   [1 min, 1 h] (5 min when the server says nothing). A failed or garbage refresh keeps the
//!   last good key set.
//! - A worker that meets an unknown `kid` asks for a refetch; at most one per 10 s per source
//!   is made (single-flight: this thread is the only fetcher).
//! - JWKS files are re-read when their modification time or size changes.
//! - A key set is published only when its content changed; every worker receives the same
//!   `Arc<KeySet>` and drops its verified-token cache.
//!
//! Not here: token checks (`policy::mcp_auth`, `auth::request`) or the HTTP client (`auth::fetch`).

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_channel::mpsc::UnboundedSender;

use crate::auth::policy::{AsRewrite, Source, SourceKind};
use crate::http::response::Prebuilt;
use crate::metrics::ControlStats;
use crate::policy::mcp_auth::parse_jwks;
use crate::policy::mcp_auth_meta as meta;

/// What the key manager publishes to every worker's key-update inbox (applied by
/// [`AuthState::apply`](crate::auth::request::AuthState::apply)).
pub(crate) enum KeyUpdate {
    /// A new key set for a JWKS source.
    Keys {
        source: Arc<str>,
        keys: Arc<crate::policy::mcp_auth::KeySet>,
    },
    /// A fetch of this key source finished (requests waiting on an unknown `kid` retry now).
    Checked { source: Arc<str> },
    /// A discovery document (AS metadata) for a source.
    Document {
        source: Arc<str>,
        doc: Arc<Prebuilt>,
    },
}

/// What the control loop and the workers ask of the key manager.
pub(crate) enum KeysMsg {
    /// The sources of a newly loaded config (replaces the previous list).
    Sources(Vec<Source>),
    /// A worker saw a `kid` the published set does not have.
    UnknownKid(Arc<str>),
}

const MIN_REFRESH: Duration = Duration::from_secs(60);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
const KID_MISS_INTERVAL: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const FILE_POLL: Duration = Duration::from_secs(1);

struct State {
    source: Source,
    next: Instant,
    backoff: Duration,
    last_fetch: Option<Instant>,
    /// When an unknown `kid` last caused a refetch (at most one per 10 s).
    last_kid_refetch: Option<Instant>,
    /// Hash of the last published content, to publish only changes.
    published: Option<u64>,
    /// Keys in the published set.
    keys: u64,
    file_stamp: Option<(SystemTime, u64)>,
}

/// Starts the key manager thread; the returned sender is how the control loop and the workers
/// reach it.
/// It reports to `ready` which key sets have never loaded (readiness is 503 until they have).
/// Fetch counts, failures and key counts go to `stats` (the stats endpoint reads them).
pub(crate) fn spawn(
    workers: Arc<Vec<UnboundedSender<KeyUpdate>>>,
    rx: mpsc::Receiver<KeysMsg>,
    ready: Arc<crate::readiness::Readiness>,
    stats: Arc<ControlStats>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("portcullis-keys".into())
        .spawn(move || run(workers, rx, ready, &stats))
        .map(|_| ())
}

fn run(
    workers: Arc<Vec<UnboundedSender<KeyUpdate>>>,
    rx: mpsc::Receiver<KeysMsg>,
    ready: Arc<crate::readiness::Readiness>,
    stats: &ControlStats,
) {
    let mut states: HashMap<Arc<str>, State> = HashMap::new();
    // Readiness was told the first config's key sets by the control loop; it is updated from
    // here once that list has arrived.
    let mut configured = false;
    loop {
        if configured {
            report_missing(&states, &ready);
        }
        let now = Instant::now();
        let wait = states
            .values()
            .map(|s| s.next.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(KeysMsg::Sources(list)) => {
                configured = true;
                states.retain(|id, _| list.iter().any(|s| &s.id == id));
                let ids: Vec<&str> = list.iter().map(|s| &*s.id).collect();
                stats.retain(&ids);
                for s in list {
                    states.entry(s.id.clone()).or_insert_with(|| State {
                        source: s,
                        next: Instant::now(),
                        backoff: Duration::from_secs(1),
                        last_fetch: None,
                        last_kid_refetch: None,
                        published: None,
                        keys: 0,
                        file_stamp: None,
                    });
                }
            }
            Ok(KeysMsg::UnknownKid(id)) => {
                if let Some(st) = states.get_mut(&id) {
                    let recent = st
                        .last_kid_refetch
                        .is_some_and(|t| t.elapsed() < KID_MISS_INTERVAL);
                    if matches!(st.source.kind, SourceKind::JwksUrl(_)) && !recent {
                        tracing::info!(source = %id, "unknown kid: refetching the key set");
                        st.last_kid_refetch = Some(Instant::now());
                        st.next = Instant::now();
                    } else {
                        // Nothing will be fetched now: the waiting requests go on at once.
                        for w in workers.iter() {
                            let _ = w.unbounded_send(KeyUpdate::Checked { source: id.clone() });
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if configured {
            report_missing(&states, &ready);
        }
        let now = Instant::now();
        for st in states.values_mut() {
            if st.next <= now {
                refresh(st, &workers, stats);
            }
        }
    }
}

/// Tells readiness which key sets have never loaded.
fn report_missing(states: &HashMap<Arc<str>, State>, ready: &crate::readiness::Readiness) {
    let mut missing: Vec<String> = states
        .values()
        .filter(|s| !matches!(s.source.kind, SourceKind::AsMetadata { .. }))
        .filter(|s| s.published.is_none())
        .map(|s| s.source.id.to_string())
        .collect();
    missing.sort();
    ready.set_keys_missing(missing);
}

fn hash(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Publishes the key set in `body` if it changed; the number of keys it holds.
fn publish_keys(
    st: &mut State,
    body: &[u8],
    workers: &[UnboundedSender<KeyUpdate>],
) -> Result<u64, String> {
    let h = hash(body);
    if st.published == Some(h) {
        return Ok(st.keys);
    }
    let (keys, warnings) = parse_jwks(body)?;
    for w in warnings {
        tracing::warn!(source = %st.source.id, "skipped a JWKS key: {w}");
    }
    if keys.is_empty() {
        return Err("the JWKS has no usable key".into());
    }
    let keys = Arc::new(keys);
    for w in workers {
        let _ = w.unbounded_send(KeyUpdate::Keys {
            source: st.source.id.clone(),
            keys: keys.clone(),
        });
    }
    tracing::info!(source = %st.source.id, keys = keys.len(), "key set published");
    st.published = Some(h);
    st.keys = keys.len() as u64;
    Ok(st.keys)
}

fn clamp(age: Option<Duration>) -> Duration {
    age.unwrap_or(DEFAULT_REFRESH)
        .clamp(MIN_REFRESH, MAX_REFRESH)
}

fn refresh(st: &mut State, workers: &[UnboundedSender<KeyUpdate>], stats: &ControlStats) {
    let id = st.source.id.clone();
    let count = |r: &Result<u64, String>| stats.fetched(&id, "jwks", r.clone().map_err(|_| ()));
    match st.source.kind.clone() {
        SourceKind::JwksInline(bytes) => {
            let r = publish_keys(st, &bytes, workers);
            count(&r);
            if let Err(e) = r {
                tracing::error!(source = %id, error = %e, "inline JWKS rejected");
            }
            st.next = Instant::now() + MAX_REFRESH * 24;
        }
        SourceKind::JwksFile(path) => {
            st.next = Instant::now() + FILE_POLL;
            let Ok(md) = std::fs::metadata(&path) else {
                if st.file_stamp.take().is_some() || st.published.is_none() {
                    count(&Err(String::new()));
                }
                tracing::warn!(source = %id, "JWKS file is not readable; keeping the last key set");
                return;
            };
            let stamp = (md.modified().unwrap_or(SystemTime::UNIX_EPOCH), md.len());
            if st.file_stamp == Some(stamp) {
                return;
            }
            st.file_stamp = Some(stamp);
            let r = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| publish_keys(st, &b, workers));
            count(&r);
            match r {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(source = %id, error = %e, "JWKS file rejected; keeping the last key set")
                }
            }
        }
        SourceKind::JwksUrl(url) => {
            st.last_fetch = Some(Instant::now());
            let r = match crate::auth::fetch::get(&url, FETCH_TIMEOUT) {
                Ok(f) if f.status == 200 => publish_keys(st, &f.body, workers)
                    .map(|n| (n, f.max_age))
                    .map_err(|e| format!("invalid JWKS: {e}")),
                Ok(f) => Err(format!("HTTP status {}", f.status)),
                Err(e) => Err(e),
            };
            count(&r.as_ref().map(|(n, _)| *n).map_err(String::clone));
            match r {
                Ok((_, max_age)) => {
                    st.backoff = Duration::from_secs(1);
                    st.next = Instant::now() + clamp(max_age);
                }
                Err(e) => retry(st, &e),
            }
            // Requests waiting on an unknown kid stop waiting now, whatever the outcome.
            for w in workers {
                let _ = w.unbounded_send(KeyUpdate::Checked { source: id.clone() });
            }
        }
        SourceKind::AsMetadata {
            url,
            rewrite,
            issuer,
        } => {
            st.last_fetch = Some(Instant::now());
            let fetched = crate::auth::fetch::get(&url, FETCH_TIMEOUT);
            if let Ok(f) = &fetched {
                warn_issuer_mismatch(&id, &issuer, &f.body);
            }
            let doc = match fetched {
                Ok(f) if f.status == 200 => {
                    let next = clamp(f.max_age);
                    let out = match &rewrite {
                        AsRewrite::Generic => meta::generic_as_metadata(&f.body),
                        AsRewrite::Keycloak { registration_url } => {
                            meta::keycloak_as_metadata(&f.body, registration_url)
                        }
                        AsRewrite::Auth0 { audience } => meta::auth0_as_metadata(&f.body, audience),
                    };
                    out.map(|d| (d, next))
                }
                Ok(f) => Err(format!("HTTP status {}", f.status)),
                Err(e) => Err(e),
            };
            stats.fetched(&id, "metadata", doc.as_ref().map(|_| 0).map_err(|_| ()));
            match doc {
                Ok((doc, next)) => {
                    let h = hash(&doc);
                    if st.published != Some(h) {
                        let pre = Arc::new(as_metadata_response(doc));
                        for w in workers {
                            let _ = w.unbounded_send(KeyUpdate::Document {
                                source: id.clone(),
                                doc: pre.clone(),
                            });
                        }
                        st.published = Some(h);
                        tracing::info!(source = %id, "authorization server metadata published");
                    }
                    st.backoff = Duration::from_secs(1);
                    st.next = Instant::now() + next;
                }
                Err(e) => retry(st, &e),
            }
        }
    }
}

fn as_metadata_response(doc: Vec<u8>) -> Prebuilt {
    Prebuilt::json(&crate::http::response::DISCOVERY_CORS, doc)
}

/// Strict MCP clients compare the issuer byte for byte (RFC 8414 §3.3): say so at once when the
/// configured one differs from what the IdP publishes (a trailing slash is the classic).
fn warn_issuer_mismatch(id: &str, configured: &str, doc: &[u8]) {
    let fetched = serde_json::from_slice::<serde_json::Value>(doc)
        .ok()
        .and_then(|v| v.get("issuer").and_then(|i| i.as_str()).map(str::to_owned));
    if let Some(f) = fetched.filter(|f| f != configured) {
        for w in meta::sanity_warnings(None, None, configured, Some(&f), &[]) {
            tracing::warn!(source = %id, "{w}");
        }
    }
}

fn retry(st: &mut State, why: &str) {
    let have = st.published.is_some();
    tracing::warn!(
        source = %st.source.id,
        error = %why,
        retry_in_ms = st.backoff.as_millis() as u64,
        keeping_last_good = have,
        "fetch failed"
    );
    st.next = Instant::now() + st.backoff;
    st.backoff = (st.backoff * 2).min(Duration::from_secs(60));
}
