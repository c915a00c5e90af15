//! The RFC 9728 Protected Resource Metadata document, rendered once per config load with
//! agentgateway's layout: computed fields first, then the configured `resourceMetadata`
//! keys in snake_case, user keys overriding computed ones in place.
//!
//! Does not: decide the `resource` or `authorization_servers` values (the caller passes the
//! route's public URL and `[issuer]`), filter user keys, or serve anything.

use std::collections::BTreeMap;

use serde_json::Value;

/// MCP revision advertised in `mcp_protocol_version` (agentgateway emits this constant).
pub(crate) const PRM_MCP_PROTOCOL_VERSION: &str = "2025-06-18";
/// Value of `resource_type` (agentgateway extension field).
pub(crate) const PRM_RESOURCE_TYPE: &str = "mcp-server";

/// Compact JSON bytes, key order: `resource`, `authorization_servers`,
/// `mcp_protocol_version`, `resource_type`, then the configured keys in the map's (sorted,
/// original-spelling) order. A configured key that converts to a computed field's name
/// replaces that value at the computed position. When two configured keys convert to the
/// same name (`scopesSupported` and `scopes_supported`), the later one in map order wins.
/// Nested objects are serialised by serde_json (sorted keys without `preserve_order`).
pub(crate) fn render_prm(
    resource: &str,
    authorization_servers: &[String],
    resource_metadata: &BTreeMap<String, Value>,
) -> Vec<u8> {
    let servers = authorization_servers
        .iter()
        .map(|s| Value::String(s.clone()))
        .collect();
    let mut fields: Vec<(String, Value)> = vec![
        ("resource".into(), Value::String(resource.into())),
        ("authorization_servers".into(), Value::Array(servers)),
        (
            "mcp_protocol_version".into(),
            PRM_MCP_PROTOCOL_VERSION.into(),
        ),
        ("resource_type".into(), PRM_RESOURCE_TYPE.into()),
    ];
    for (key, value) in resource_metadata {
        let key = camel_to_snake(key);
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => fields.push((key, value.clone())),
        }
    }
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serialising a String key or a Value into a Vec cannot fail (no I/O, string keys).
        serde_json::to_writer(&mut out, key).expect("string serialises");
        out.push(b':');
        serde_json::to_writer(&mut out, value).expect("Value serialises");
    }
    out.push(b'}');
    out
}

/// heck's `to_snake_case` (what agentgateway uses): words split at non-alphanumerics, at
/// lower→upper transitions and before the last capital of an acronym (`JWKSUri` → `jwks_uri`);
/// digits stick to the preceding word; words lowercased and joined by `_`. Already-snake
/// keys come out unchanged.
pub(crate) fn camel_to_snake(s: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Boundary,
        Lower,
        Upper,
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut push_word = |w: &str| {
        if w.is_empty() {
            return;
        }
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    };
    for word in s.split(|c: char| !c.is_alphanumeric()) {
        let mut chars = word.char_indices().peekable();
        let mut start = 0;
        let mut mode = Mode::Boundary;
        while let Some((i, c)) = chars.next() {
            let Some(&(next_i, next)) = chars.peek() else {
                push_word(&word[start..]);
                break;
            };
            let next_mode = if c.is_lowercase() {
                Mode::Lower
            } else if c.is_uppercase() {
                Mode::Upper
            } else {
                mode
            };
            if next_mode == Mode::Lower && next.is_uppercase() {
                push_word(&word[start..next_i]);
                start = next_i;
                mode = Mode::Boundary;
            } else if mode == Mode::Upper && c.is_uppercase() && next.is_lowercase() {
                push_word(&word[start..i]);
                start = i;
                mode = Mode::Boundary;
            } else {
                mode = next_mode;
            }
        }
    }
    out
}
