//! OAuth discovery served for protected MCP routes: the protected-resource metadata (RFC 9728),
//! the authorization-server metadata kept fresh by the key manager (Keycloak and Auth0
//! adapters), and the CORS-enabled dynamic-client-registration proxy (Keycloak).
//!
//! Documents are bytes rendered at load or at fetch; only when `resourceMetadata.resource` is
//! not configured is the origin filled in per request from the scheme and `Host`.
//! Not here: the design rationale (see `policy::mcp_auth_meta`), token checks (`auth::request`).

use crate::auth::challenge;
use crate::auth::policy::{AuthPolicy, McpAuthMeta, WellKnown, ORIGIN_PLACEHOLDER};
use crate::auth::request::{AuthState, RejectKind};
use crate::http::h1::{self, BodyKind, RequestHead};
use crate::http::response::{itoa_buf, LocalError, Prebuilt, DISCOVERY_CORS};
use crate::net::io::ConnInfo;
use crate::policy::mcp_auth_meta as meta;
use crate::server::decision::{local_error, Decision, ProxyPlan};
use crate::snapshot::Timeouts;

const PRM_PREFIX: &str = "/.well-known/oauth-protected-resource";
const AS_PREFIX: &str = "/.well-known/oauth-authorization-server";
const REGISTRATION_SUFFIX: &str = "/client-registration";

/// The CORS lines of the registration proxy (Keycloak's own endpoint sends none).
const REGISTRATION_CORS: &[u8] = b"access-control-allow-origin: *\r\naccess-control-allow-methods: POST, OPTIONS\r\naccess-control-allow-headers: content-type, authorization\r\naccess-control-max-age: 600\r\n";

fn origin(conn: ConnInfo, host: &[u8]) -> String {
    format!(
        "{}://{}",
        if conn.https { "https" } else { "http" },
        String::from_utf8_lossy(host)
    )
}

fn done<'s>(status: u16, close: bool) -> Decision<'s> {
    Decision::Local {
        status,
        route: None,
        close,
    }
}

fn discovery_preflight<'s>(date: &[u8], close: bool, out: &mut Vec<u8>) -> Decision<'s> {
    let status = Prebuilt::no_content(&DISCOVERY_CORS).write(out, date, b"", close, false);
    done(status, close)
}

fn method_not_allowed<'s>(
    allow: &str,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let status = Prebuilt::method_not_allowed(allow).write(out, date, b"", close, false);
    done(status, close)
}

/// GET and HEAD serve a discovery document (`Ok(head_only)`); OPTIONS and other methods are
/// answered here. (The `Err` is the caller's own return value, so its size does not matter.)
#[allow(clippy::result_large_err)]
fn document_method<'s>(
    method: &str,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Result<bool, Decision<'s>> {
    match method {
        "GET" => Ok(false),
        "HEAD" => Ok(true),
        "OPTIONS" => Err(discovery_preflight(date, close, out)),
        _ => Err(method_not_allowed("GET, HEAD, OPTIONS", date, close, out)),
    }
}

/// Serves a well-known path of a protected route.
pub(crate) fn serve<'s>(
    wk: &'s WellKnown,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    auth: &AuthState,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    match wk {
        WellKnown::Prm(m) => prm(m, conn, head, date, close, out),
        WellKnown::AsMetadata(m) => as_metadata(m, conn, head, auth, date, close, out),
        WellKnown::Registration(m) => registration(m, head, date, close, out),
    }
}

fn prm<'s>(
    m: &McpAuthMeta,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let head_only = match document_method(head.method, date, close, out) {
        Ok(h) => h,
        Err(answered) => return answered,
    };
    let status = match &m.prm {
        Some(pre) => pre.write(out, date, b"", close, head_only),
        None => {
            let resource = format!(
                "{}{}",
                origin(conn, head.authority.unwrap_or(b"")),
                m.route_path
            );
            let body = meta::render_prm(&resource, &m.authorization_servers, &m.resource_metadata);
            Prebuilt::json(&DISCOVERY_CORS, body).write(out, date, b"", close, head_only)
        }
    };
    done(status, close)
}

fn as_metadata<'s>(
    m: &McpAuthMeta,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    auth: &AuthState,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let head_only = match document_method(head.method, date, close, out) {
        Ok(h) => h,
        Err(answered) => return answered,
    };
    let Some(doc) = m.as_metadata.as_deref().and_then(|id| auth.document(id)) else {
        let status = challenge::METADATA_UNAVAILABLE.write(out, date, b"", close, head_only);
        return done(status, close);
    };
    let status = if memchr::memmem::find(doc.body(), ORIGIN_PLACEHOLDER.as_bytes()).is_some() {
        let body = String::from_utf8_lossy(doc.body()).replace(
            ORIGIN_PLACEHOLDER,
            &origin(conn, head.authority.unwrap_or(b"")),
        );
        Prebuilt::json(&DISCOVERY_CORS, body.into_bytes()).write(out, date, b"", close, head_only)
    } else {
        doc.write(out, date, b"", close, head_only)
    };
    done(status, close)
}

fn registration<'s>(
    m: &'s McpAuthMeta,
    head: &RequestHead<'_>,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    match head.method {
        "OPTIONS" => {
            let status =
                Prebuilt::no_content(&[]).write(out, date, REGISTRATION_CORS, close, false);
            done(status, close)
        }
        "POST" => match &m.registration_upstream {
            Some(crate::auth::policy::Registration {
                target,
                path,
                https,
            }) => {
                let mut up = Vec::with_capacity(256);
                up.extend_from_slice(b"POST ");
                up.extend_from_slice(path.as_bytes());
                up.extend_from_slice(b" HTTP/1.1\r\n");
                h1::write_header(&mut up, "host", target.authority.as_bytes());
                h1::write_header(&mut up, "content-type", b"application/json");
                h1::write_header(&mut up, "accept", b"application/json");
                match head.body {
                    BodyKind::Length(n) => {
                        h1::write_header(&mut up, "content-length", itoa_buf(n).as_bytes())
                    }
                    BodyKind::Chunked => h1::write_header(&mut up, "transfer-encoding", b"chunked"),
                    BodyKind::None => h1::write_header(&mut up, "content-length", b"0"),
                }
                up.extend_from_slice(b"\r\n");
                Decision::Proxy(ProxyPlan {
                    labels: &crate::metrics::REGISTRATION,
                    target: std::borrow::Cow::Borrowed(target),
                    tls: crate::net::client::Tls::to(&target.authority, *https, None),
                    timeouts: Timeouts::default(),
                    response_headers: None,
                    head: up,
                    added_headers: REGISTRATION_CORS.to_vec(),
                    head_request: false,
                    // A POST: sent again only after an idle close (see `proxy::forward`).
                    idempotent: false,
                    expect_continue: head.expect_continue,
                    client_http10: head.version_minor == 0,
                    peer: false,
                })
            }
            None => local_error(
                LocalError::NoBackend,
                None,
                Some(REGISTRATION_CORS),
                date,
                close,
                false,
                out,
            ),
        },
        _ => method_not_allowed("POST, OPTIONS", date, close, out),
    }
}

/// Discovery paths that an explicit route match sent to a protected route (agentgateway users
/// add such matches): served by this route's documents.
pub(crate) fn route_level<'s>(
    a: &'s AuthPolicy,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    auth: &AuthState,
    date: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Option<Decision<'s>> {
    let m = a.mcp.as_ref()?;
    let path = head.path;
    if path.starts_with(PRM_PREFIX) {
        return Some(prm(m, conn, head, date, close, out));
    }
    if path.starts_with(AS_PREFIX) {
        if path.ends_with(REGISTRATION_SUFFIX) {
            return Some(registration(m, head, date, close, out));
        }
        return Some(as_metadata(m, conn, head, auth, date, close, out));
    }
    None
}

/// Adds the `WWW-Authenticate` line for a route whose resource URL is derived per request.
/// The protected-resource metadata URL a challenge names for this request (`None` when it
/// cannot be formed).
pub(crate) fn prm_url_for(m: &McpAuthMeta, conn: ConnInfo, host: &[u8]) -> Option<String> {
    let resource = match &m.resource {
        Some(r) => r.clone(),
        None => format!("{}{}", origin(conn, host), m.route_path),
    };
    crate::policy::mcp_auth_meta::prm_url(&resource).ok()
}

pub(crate) fn dynamic_challenge(
    m: &McpAuthMeta,
    conn: ConnInfo,
    host: &[u8],
    kind: RejectKind,
    added_headers: &mut Vec<u8>,
) {
    let resource = format!("{}{}", origin(conn, host), m.route_path);
    challenge::write_for_resource(&resource, &m.scopes, kind, added_headers);
}
