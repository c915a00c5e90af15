//! Every answer that refuses a request for authentication reasons, as bytes: the 401s with their
//! `WWW-Authenticate` challenges (RFC 6750 §3, MCP authorization: the protected-resource
//! metadata URL and the scopes), and the 503s while keys or metadata are not loaded yet.
//! Rendered once at load where the resource URL is configured, else the challenge line is
//! written per request.
//!
//! Not here: the header values' grammar (`policy::mcp_auth_meta::challenge`), when to refuse
//! (`auth::request`).

use std::sync::LazyLock;

use crate::auth::request::RejectKind;
use crate::http::h1;
use crate::http::response::Prebuilt;
use crate::policy::mcp_auth_meta as meta;

/// The generic description sent with `invalid_token`; never derived from the token.
pub(crate) const INVALID_DESCRIPTION: &str =
    "the access token is invalid, expired, or not meant for this resource";

/// The answers of one route's policy: no token, an invalid token, keys not loaded yet.
pub(crate) struct Answers {
    pub missing: Prebuilt,
    pub invalid: Prebuilt,
    pub unavailable: Prebuilt,
}

fn json(status: u16, challenge: Option<&str>, body: Vec<u8>) -> Prebuilt {
    let hs: Vec<(&str, &str)> = challenge
        .map(|c| ("www-authenticate", c))
        .into_iter()
        .collect();
    Prebuilt::new(status, Some("application/json"), &hs, body)
}

fn keys_unavailable() -> Prebuilt {
    Prebuilt::new(
        503,
        Some("application/json"),
        &[("retry-after", "2")],
        br#"{"error":"temporarily_unavailable","error_description":"the signing keys of the authorization server are not loaded yet"}"#.to_vec(),
    )
}

/// `mcpAuthentication`: challenges that name the protected-resource metadata URL and the scopes,
/// or (`challenge_url` unknown until the request's origin is) none, added per request by
/// [`write_for_resource`].
pub(crate) fn mcp_answers(challenge_url: Option<&str>, scopes: &[String]) -> Answers {
    let missing = challenge_url.map(|url| meta::challenge_missing(url, scopes));
    let invalid =
        challenge_url.map(|url| meta::challenge_invalid(url, scopes, INVALID_DESCRIPTION));
    Answers {
        missing: json(401, missing.as_deref(), meta::BODY_MISSING.to_vec()),
        invalid: json(
            401,
            invalid.as_deref(),
            meta::body_invalid(INVALID_DESCRIPTION),
        ),
        unavailable: keys_unavailable(),
    }
}

/// `jwtAuth`: plain RFC 6750 challenges.
pub(crate) fn jwt_answers() -> Answers {
    let invalid =
        format!("Bearer error=\"invalid_token\", error_description=\"{INVALID_DESCRIPTION}\"");
    Answers {
        missing: json(401, Some("Bearer"), meta::BODY_MISSING.to_vec()),
        invalid: json(401, Some(&invalid), meta::body_invalid(INVALID_DESCRIPTION)),
        unavailable: keys_unavailable(),
    }
}

/// Appends the `WWW-Authenticate` line for the MCP resource at `resource` (known only per
/// request): nothing when its metadata URL cannot be formed.
pub(crate) fn write_for_resource(
    resource: &str,
    scopes: &[String],
    kind: RejectKind,
    out: &mut Vec<u8>,
) {
    let Ok(url) = meta::prm_url(resource) else {
        return;
    };
    let value = match kind {
        RejectKind::Invalid(_) => meta::challenge_invalid(&url, scopes, INVALID_DESCRIPTION),
        _ => meta::challenge_missing(&url, scopes),
    };
    h1::write_header(out, "www-authenticate", value.as_bytes());
}

/// The authorization-server metadata the gateway serves is not fetched yet.
pub(crate) static METADATA_UNAVAILABLE: LazyLock<Prebuilt> = LazyLock::new(|| {
    Prebuilt::new(
        503,
        Some("application/json"),
        &[("retry-after", "2"), ("access-control-allow-origin", "*")],
        br#"{"error":"temporarily_unavailable","error_description":"the authorization server metadata is not loaded yet"}"#.to_vec(),
    )
});

/// The 403 for a caller the authorization rules would allow with more scopes (MCP
/// "Runtime Insufficient Scope Errors"): the `WWW-Authenticate` value, naming every scope the
/// operation needs in one challenge, and the JSON body.
pub(crate) fn insufficient_scope(
    resource_metadata_url: Option<&str>,
    scopes: &str,
) -> (String, Vec<u8>) {
    let needed: Vec<String> = scopes.split(' ').map(str::to_owned).collect();
    const WHY: &str = "the access token lacks scopes this operation needs";
    (
        meta::challenge_insufficient_scope(resource_metadata_url, &needed, WHY),
        meta::body_insufficient_scope(WHY),
    )
}
