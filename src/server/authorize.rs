//! Authorization on the worker that received the request: the route's HTTP `authorization`
//! rule sets (403 as agentgateway answers it), and what an MCP request on a route with
//! `mcpAuthorization` carries to the relay (`relay::authorize`).
//!
//! Not here: the rules and their cache (`policy::authz`), MCP enforcement (`relay::authorize`).

use std::sync::{Arc, LazyLock};

use httparse::Header;

use crate::http::h1::RequestHead;
use crate::http::response::Prebuilt;
use crate::metrics::Denied;
use crate::net::io::ConnInfo;
use crate::policy::authz::{Caller, Decider, RequestAttrs, Verdict};
use crate::policy::mcp_auth::Principal;
use crate::relay::authorize::Asker;
use crate::server::decision::Decision;
use crate::snapshot::{McpRoute, Route};

/// agentgateway's answer to a request its `authorization` policy denies, byte for byte.
static DENIED: LazyLock<Prebuilt> = LazyLock::new(|| {
    Prebuilt::new(
        403,
        Some("text/plain"),
        &[],
        b"authorization failed".to_vec(),
    )
});

/// The request attributes rules read (`request.*`, `source.*`). The `Authorization` header is
/// left out: rules read a verified token as `jwt`, never the credential itself.
fn request_attrs(conn: ConnInfo, head: &RequestHead<'_>, headers: &[Header<'_>]) -> RequestAttrs {
    let mut hs: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        if name == "authorization" {
            continue;
        }
        let value = String::from_utf8_lossy(h.value).into_owned();
        match hs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => hs.push((name, value)),
        }
    }
    let uri = if head.query.is_empty() {
        head.path.to_owned()
    } else {
        format!("{}?{}", head.path, head.query)
    };
    RequestAttrs {
        method: head.method.to_owned(),
        uri,
        path: head.path.to_owned(),
        host: String::from_utf8_lossy(head.authority.unwrap_or_default()).into_owned(),
        scheme: if conn.https { "https" } else { "http" },
        headers: hs,
        source: Some(conn.peer),
    }
}

/// Who asks; the request's attributes are copied only when some rule reads them.
fn caller(
    per_request: bool,
    principal: Option<&Principal>,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
) -> Caller {
    let request = per_request.then(|| Arc::new(request_attrs(conn, head, headers)));
    Caller {
        id: principal.map_or(0, |p| p.id),
        claims: principal.map(|p| p.claims.clone()),
        request,
    }
}

/// What answering a request needs from its worker.
pub(super) struct Facts<'a> {
    pub date: &'a [u8],
    pub close_after: bool,
    pub metrics: &'a std::cell::RefCell<crate::metrics::WorkerMetrics>,
    pub decisions: &'a std::cell::RefCell<crate::policy::authz::Decisions>,
    /// Where the verdict is left for the access log.
    pub decided: &'a std::cell::Cell<Option<&'static str>>,
}

/// The route's `authorization` rule sets, each of which must allow the request: `Some` (the
/// 403, written) when one does not.
#[allow(clippy::too_many_arguments)]
pub(super) fn http<'s>(
    route: &'s Route,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    principal: Option<&Principal>,
    challenge_url: impl FnOnce() -> Option<String>,
    env: &Facts<'_>,
    added_headers: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Option<Decision<'s>> {
    let sets = &route.policies.authorization;
    let per_request = sets.iter().any(|s| s.per_request());
    let c = caller(per_request, principal, conn, head, headers);
    let verdict = {
        let mut cache = env.decisions.borrow_mut();
        sets.iter()
            .map(|s| Decider::new(s, &c, &mut cache).decide(None))
            .find(|v| !v.allowed())
    };
    env.decided
        .set(Some(verdict.as_ref().map_or("allow", Verdict::as_str)));
    let verdict = verdict?;
    let head_only = head.method == "HEAD";
    let status = match verdict {
        Verdict::NeedsScopes(scopes) => {
            env.metrics
                .borrow_mut()
                .denied(&route.name, Denied::InsufficientScope, 1);
            let url = challenge_url();
            let (challenge, body) =
                crate::auth::challenge::insufficient_scope(url.as_deref(), &scopes);
            crate::http::h1::write_header(added_headers, "www-authenticate", challenge.as_bytes());
            let pre = Prebuilt::new(403, Some("application/json"), &[], body);
            pre.write(out, env.date, added_headers, env.close_after, head_only)
        }
        _ => {
            env.metrics
                .borrow_mut()
                .denied(&route.name, Denied::Http, 1);
            DENIED.write(out, env.date, added_headers, env.close_after, head_only)
        }
    };
    tracing::debug!(route = %route.name, "request refused by authorization");
    Some(Decision::Local {
        status,
        route: Some(route),
        close: env.close_after,
    })
}

/// What an MCP request on a route with `mcpAuthorization` carries to the relay.
pub(super) fn mcp(
    mcp: &McpRoute,
    principal: Option<&Principal>,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    challenge_url: impl FnOnce() -> Option<String>,
) -> Option<Asker> {
    let set = mcp.authorization.as_deref()?;
    Some(Asker {
        caller: caller(set.per_request(), principal, conn, head, headers),
        challenge_url: set
            .names_scopes()
            .then(challenge_url)
            .flatten()
            .map(Arc::from),
    })
}
