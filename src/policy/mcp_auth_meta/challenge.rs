//! `WWW-Authenticate: Bearer …` values and JSON bodies for the MCP 401/403 responses
//! (RFC 6750 §3, RFC 9728 §5.1, MCP "Scope Challenge Handling"), rendered at config load.
//!
//! Parameter order is fixed: `resource_metadata`, `scope`, `error`, `error_description`, so
//! that clients which regex-search the header (TS and Python SDKs) meet the real
//! `resource_metadata` and `scope` before any free text.
//! Does not: choose the status code, add the header name, or validate scope syntax
//! (use [`is_scope_token`] when lowering config).

/// agentgateway's 401 body for a missing token, byte for byte.
pub(crate) const BODY_MISSING: &[u8] =
    br#"{"error":"unauthorized","error_description":"JWT token required"}"#;

/// Never put in a challenge (MCP 2026-07-28 "Refresh Tokens": the RS SHOULD NOT ask for it).
const OFFLINE_ACCESS: &str = "offline_access";

/// `Bearer resource_metadata="…"[, scope="a b"]`; no `error` (RFC 6750 §3: none when the
/// request carried no credentials).
pub(crate) fn challenge_missing(resource_metadata_url: &str, scopes: &[String]) -> String {
    challenge(Some(resource_metadata_url), scopes, None, "")
}

/// Adds `error="invalid_token"` and, when `description` is non-empty, `error_description`.
pub(crate) fn challenge_invalid(
    resource_metadata_url: &str,
    scopes: &[String],
    description: &str,
) -> String {
    challenge(
        Some(resource_metadata_url),
        scopes,
        Some("invalid_token"),
        description,
    )
}

/// For a 403: `scope` lists every scope the operation needs (all at once, not incrementally).
/// Without a metadata URL (a `jwtAuth` route) the parameter is left out.
pub(crate) fn challenge_insufficient_scope(
    resource_metadata_url: Option<&str>,
    needed: &[String],
    description: &str,
) -> String {
    challenge(
        resource_metadata_url,
        needed,
        Some("insufficient_scope"),
        description,
    )
}

/// `{"error":"invalid_token","error_description":"…"}`.
pub(crate) fn body_invalid(description: &str) -> Vec<u8> {
    error_body("invalid_token", description)
}

/// `{"error":"insufficient_scope","error_description":"…"}` (addition to the brief).
pub(crate) fn body_insufficient_scope(description: &str) -> Vec<u8> {
    error_body("insufficient_scope", description)
}

/// RFC 6749 §3.3 `scope-token`: 1*( %x21 / %x23-5B / %x5D-7E ).
#[cfg_attr(not(test), allow(dead_code))] // the 403 of mcpAuthorization (issue 12)
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

fn challenge(
    url: Option<&str>,
    scopes: &[String],
    error: Option<&str>,
    description: &str,
) -> String {
    let mut out = String::with_capacity(64 + url.map_or(0, str::len) + description.len());
    out.push_str("Bearer ");
    let mut sep = "";
    if let Some(url) = url {
        push_param(&mut out, "resource_metadata", url);
        sep = ", ";
    }
    let scope = scope_value(scopes);
    if !scope.is_empty() {
        out.push_str(sep);
        push_param(&mut out, "scope", &scope);
        sep = ", ";
    }
    if let Some(error) = error {
        out.push_str(sep);
        push_param(&mut out, "error", error);
        if !description.is_empty() {
            out.push_str(", ");
            push_param(&mut out, "error_description", description);
        }
    }
    out
}

/// Space-joined scopes, without `offline_access`, empties and duplicates; order kept.
fn scope_value(scopes: &[String]) -> String {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::with_capacity(scopes.len());
    for s in scopes.iter().map(|s| s.trim()) {
        if s.is_empty() || s == OFFLINE_ACCESS || seen.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
        seen.push(s);
    }
    out
}

/// `name="value"` with RFC 7230 quoted-pair escaping of `"` and `\`. Bytes that may not
/// appear in a header value at all are replaced so a header can never be split: controls
/// (CR, LF, …) become a space, non-ASCII becomes `?` (RFC 6750 values are ASCII).
fn push_param(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_ascii() => out.push(' '),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

fn error_body(error: &str, description: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + description.len());
    out.extend_from_slice(br#"{"error":"#);
    serde_json::to_writer(&mut out, error).expect("string serialises");
    out.extend_from_slice(br#","error_description":"#);
    serde_json::to_writer(&mut out, description).expect("string serialises");
    out.push(b'}');
    out
}
