//! MCP 2026-07-28 requests over streamable HTTP: which era a request belongs to, and the checks
//! of its mirrored headers against its body (the revision's "Request Metadata" and "Server
//! Validation"): `MCP-Protocol-Version` equal to `_meta["io.modelcontextprotocol/protocolVersion"]`,
//! `Mcp-Method` equal to `method` on every request, `Mcp-Name` equal to `params.name`
//! (`tools/call`, `prompts/get`) or `params.uri` (`resources/read`), a `=?base64?…?=` value
//! decoded first; and every request's `_meta` naming the revision and the client's capabilities.
//! A request that fails is refused with 400 and `HeaderMismatch` (-32020), or -32602 for a
//! missing `_meta` field, before anything reaches a server: an edge that routes or authorizes on
//! the headers must never let a server act on a body that says something else.
//!
//! `Mcp-Param-*` headers are forwarded untouched: which argument each mirrors is declared in the
//! tool's `inputSchema` (`x-mcp-header`), which the server behind Portcullis checks.
//!
//! The body is read by [`scan`] (one validating pass, nothing built); [`reference`] is the same
//! check on a serde parse, which the scanner is tested and fuzzed against.
//!
//! Sans-IO. Not here: forwarding (`relay::modern`), the HTTP rules shared with the 2025
//! revisions (`mcp::protocol`).

use std::borrow::Cow;

use crate::mcp::jsonrpc;
use crate::policy::mcp_auth::b64;

mod scan;

/// The revision this module speaks.
pub(crate) const VERSION: &str = "2026-07-28";

/// `HeaderMismatch`: mirrored headers missing, malformed or different from the body.
pub(crate) const HEADER_MISMATCH: i64 = -32020;

/// The `_meta` key that carries the protocol version in every 2026-07-28 request.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Whether a request's `MCP-Protocol-Version` names the 2026-07-28 revision.
pub(crate) fn is_modern(version_header: Option<&[u8]>) -> bool {
    version_header.is_some_and(|v| v.trim_ascii() == VERSION.as_bytes())
}

/// The mirrored headers of one request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirrored<'a> {
    pub version: &'a [u8],
    pub method: Option<&'a [u8]>,
    pub name: Option<&'a [u8]>,
}

/// What a checked request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The raw JSON id; `None` for a notification.
    pub id: Option<String>,
}

/// Why a 2026-07-28 request is refused before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not one JSON-RPC request or notification (a response, a batch, not JSON-RPC).
    NotARequest,
    /// A mirrored header is missing, malformed or disagrees with the body; the id to answer.
    HeaderMismatch { why: String, id: Option<String> },
    /// A request's `_meta` lacks what the revision requires of every request
    /// (`protocolVersion`, `clientCapabilities`): -32602.
    InvalidMeta {
        why: &'static str,
        id: Option<String>,
    },
}

impl Refused {
    /// The JSON-RPC error body of the refusal (its status is 400 either way).
    pub(crate) fn body(&self) -> Vec<u8> {
        match self {
            Refused::NotARequest => jsonrpc::error_object(
                None,
                jsonrpc::INVALID_REQUEST,
                "a 2026-07-28 POST carries one JSON-RPC request or notification",
                None,
            ),
            Refused::HeaderMismatch { why, id } => {
                jsonrpc::error_object(id.as_deref(), HEADER_MISMATCH, why, None)
            }
            Refused::InvalidMeta { why, id } => {
                jsonrpc::error_object(id.as_deref(), jsonrpc::INVALID_PARAMS, why, None)
            }
        }
    }
}

/// Checks a 2026-07-28 request body against its mirrored headers.
pub fn check(h: Mirrored<'_>, body: &[u8]) -> Result<Checked, Refused> {
    let fields = scan::fields(body).map_err(|_| Refused::NotARequest)?;
    judge(h, fields)
}

/// The checks, on what was read of the body.
fn judge(h: Mirrored<'_>, f: scan::Fields<'_>) -> Result<Checked, Refused> {
    let Some(method) = f.method else {
        return Err(Refused::NotARequest);
    };
    let id = f.id.map(str::to_owned);
    let mismatch = |why: String| Refused::HeaderMismatch {
        why,
        id: id.clone(),
    };
    // Every request names the revision and the client's capabilities in its `_meta`; a
    // request without them is malformed (-32602), one whose version differs from the header
    // is a mismatch (-32020).
    let invalid = |why| Refused::InvalidMeta {
        why,
        id: id.clone(),
    };
    if !f.meta {
        return Err(invalid("a 2026-07-28 request carries _meta"));
    }
    let Some(body_version) = f.version.as_deref() else {
        return Err(invalid(
            "_meta[\"io.modelcontextprotocol/protocolVersion\"] is missing",
        ));
    };
    if id.is_some() && !f.capabilities {
        return Err(invalid(
            "_meta[\"io.modelcontextprotocol/clientCapabilities\"] is missing",
        ));
    }
    if body_version != h.version.trim_ascii() {
        return Err(mismatch(format!(
            "MCP-Protocol-Version does not match _meta[\"{META_VERSION}\"]"
        )));
    }
    match h.method {
        None => return Err(mismatch("the Mcp-Method header is missing".into())),
        Some(m) if m.trim_ascii() != &*method => {
            return Err(mismatch(
                "Mcp-Method does not match the body's method".into(),
            ))
        }
        Some(_) => {}
    }
    let named = match &*method {
        b"tools/call" | b"prompts/get" => Some(("params.name", f.name.as_deref())),
        b"resources/read" => Some(("params.uri", f.uri.as_deref())),
        _ => None,
    };
    if let Some((field, value)) = named {
        match (value, h.name) {
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "the Mcp-Name header is missing ({field} is set)"
                )))
            }
            (Some(v), Some(header)) => match decode_value(header) {
                Some(decoded) if *decoded == *v => {}
                Some(_) => {
                    return Err(mismatch(format!("Mcp-Name does not match {field}")));
                }
                None => return Err(mismatch("Mcp-Name is not validly encoded".into())),
            },
            (None, Some(_)) => {
                return Err(mismatch(format!("Mcp-Name is set but {field} is not")));
            }
            (None, None) => {}
        }
    }
    Ok(Checked { id })
}

/// The check on a generic parse (serde), kept as the reference the scanner ([`scan`]) is
/// tested and fuzzed against, and measured beside it (`benches/jsonrpc.rs`).
#[doc(hidden)]
pub mod reference {
    use std::borrow::Cow;

    use serde::Deserialize;

    use super::{judge, scan, Checked, Mirrored, Refused};

    // Only the fields the checks read are kept; strings are borrowed from the body unless they hold
    // escapes, and everything else (arguments, client info) is skipped without allocating.
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        id: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        method: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }

    #[derive(Deserialize, Default)]
    struct Params<'a> {
        #[serde(borrow, default)]
        name: Option<Text<'a>>,
        #[serde(borrow, default)]
        uri: Option<Text<'a>>,
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Meta<'a>>,
    }

    #[derive(Deserialize, Default)]
    struct Meta<'a> {
        #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
        version: Option<Text<'a>>,
        #[serde(rename = "io.modelcontextprotocol/clientCapabilities", default)]
        capabilities: Option<serde::de::IgnoredAny>,
    }

    /// A JSON value where a string is expected: the string, or `None` for anything else.
    struct Text<'a>(Option<Cow<'a, str>>);

    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            // One pass, no buffering (an untagged enum would copy the value into serde's
            // `Content` first): a string is kept, anything else is skipped.
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                    Ok(Text(Some(Cow::Borrowed(v))))
                }
                fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                    Ok(Text(Some(Cow::Owned(v.to_owned()))))
                }
                fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                    Ok(Text(Some(Cow::Owned(v))))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                    Ok(Text(None))
                }
                fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                    Ok(Text(None))
                }
                fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                    Ok(Text(None))
                }
                fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                    Ok(Text(None))
                }
                fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                    Ok(Text(None))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Text<'de>, A::Error> {
                    while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    Ok(Text(None))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Text<'de>, A::Error> {
                    while a
                        .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                        .is_some()
                    {}
                    Ok(Text(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn bytes(t: Cow<'_, str>) -> Cow<'_, [u8]> {
        match t {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }

    /// [`super::check`] with the body read by serde.
    pub fn check(h: Mirrored<'_>, body: &[u8]) -> Result<Checked, Refused> {
        let msg: Message<'_> = serde_json::from_slice(body).map_err(|_| Refused::NotARequest)?;
        let params = msg.params.unwrap_or_default();
        let meta = params.meta;
        let fields = scan::Fields {
            id: msg.id.map(|r| r.get()),
            method: msg.method.map(bytes),
            name: params.name.and_then(|t| t.0).map(bytes),
            uri: params.uri.and_then(|t| t.0).map(bytes),
            meta: meta.is_some(),
            capabilities: meta.as_ref().is_some_and(|m| m.capabilities.is_some()),
            version: meta.and_then(|m| m.version).and_then(|t| t.0).map(bytes),
        };
        judge(h, fields)
    }
}

/// A name as a mirrored header value: as it is when it is visible ASCII (spaces inside allowed),
/// else `=?base64?…?=` (non-ASCII, control characters, spaces at either end, or a value that
/// would read as the sentinel).
pub(crate) fn encode_value(v: &str) -> Vec<u8> {
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && v.trim_ascii() == v
        && !v.starts_with("=?");
    if plain {
        return v.as_bytes().to_vec();
    }
    format!("=?base64?{}?=", b64::encode_std(v.as_bytes())).into_bytes()
}

/// A mirrored header value: as is, or the UTF-8 inside `=?base64?…?=`. `None`: the sentinel
/// holds no valid base64.
pub(crate) fn decode_value(v: &[u8]) -> Option<Cow<'_, [u8]>> {
    let v = v.trim_ascii();
    match v
        .strip_prefix(b"=?base64?")
        .and_then(|r| r.strip_suffix(b"?="))
    {
        Some(inner) => b64::decode_std(std::str::from_utf8(inner).ok()?).map(Cow::Owned),
        None => Some(Cow::Borrowed(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(method: &str, params: &str) -> Vec<u8> {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{{{params}"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        )
        .into_bytes()
    }

    fn h<'a>(method: Option<&'a str>, name: Option<&'a str>) -> Mirrored<'a> {
        Mirrored {
            version: b"2026-07-28",
            method: method.map(str::as_bytes),
            name: name.map(str::as_bytes),
        }
    }

    fn why(r: Result<Checked, Refused>) -> String {
        match r {
            Err(Refused::HeaderMismatch { why, id }) => {
                assert_eq!(id.as_deref(), Some("7"));
                why
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn matching_headers_pass() {
        let b = body("tools/call", r#""name":"echo","arguments":{},"#);
        let c = check(h(Some("tools/call"), Some("echo")), &b).unwrap();
        assert_eq!(c.id.as_deref(), Some("7"));
        let b = body("tools/list", "");
        assert!(check(h(Some("tools/list"), None), &b).is_ok());
        let b = body("resources/read", r#""uri":"file:///a b","#);
        assert!(check(h(Some("resources/read"), Some("file:///a b")), &b).is_ok());
    }

    #[test]
    fn base64_names_are_decoded_before_comparing() {
        // "Hello, 世界" and a value that looks like the sentinel itself.
        let b = body("prompts/get", r#""name":"Hello, 世界","#);
        assert!(check(
            h(Some("prompts/get"), Some("=?base64?SGVsbG8sIOS4lueVjA==?=")),
            &b
        )
        .is_ok());
        let b = body("tools/call", r#""name":"=?base64?literal?=","#);
        assert!(check(
            h(
                Some("tools/call"),
                Some("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=")
            ),
            &b
        )
        .is_ok());
        assert!(why(check(h(Some("tools/call"), Some("=?base64?!!?=")), &b)).contains("encoded"));
    }

    #[test]
    fn names_are_encoded_only_when_they_must_be() {
        assert_eq!(encode_value("get weather"), b"get weather");
        for name in ["Hello, 世界", " padded", "tab\there", "=?base64?x?=", ""] {
            let v = encode_value(name);
            assert!(v.starts_with(b"=?base64?"), "{name}");
            assert_eq!(decode_value(&v).unwrap(), name.as_bytes(), "{name}");
        }
    }

    #[test]
    fn every_disagreement_is_a_header_mismatch() {
        let b = body("tools/call", r#""name":"echo","#);
        assert!(why(check(h(None, Some("echo")), &b)).contains("Mcp-Method header is missing"));
        assert!(why(check(h(Some("tools/list"), Some("echo")), &b)).contains("Mcp-Method"));
        assert!(why(check(h(Some("tools/call"), None), &b)).contains("Mcp-Name header is missing"));
        assert!(why(check(h(Some("tools/call"), Some("rm")), &b)).contains("does not match"));
        // A name header on a call whose body names nothing.
        let b = body("tools/call", "");
        assert!(why(check(h(Some("tools/call"), Some("echo")), &b)).contains("is not"));
        // The version in `_meta` must equal the header.
        let mut other = h(Some("tools/list"), None);
        other.version = b"2025-11-25";
        assert!(why(check(other, &body("tools/list", ""))).contains("MCP-Protocol-Version"));
    }

    #[test]
    fn a_request_without_the_envelope_is_invalid_params() {
        let invalid = |b: &[u8]| match check(h(Some("tools/list"), None), b) {
            Err(Refused::InvalidMeta { id, .. }) => id,
            other => panic!("{other:?}"),
        };
        let bare = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#;
        assert_eq!(invalid(bare).as_deref(), Some("7"));
        let no_version = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        assert_eq!(invalid(no_version).as_deref(), Some("7"));
        let no_caps = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(invalid(no_caps).as_deref(), Some("7"));
        let body = String::from_utf8(
            Refused::InvalidMeta {
                why: "x",
                id: Some("7".into()),
            }
            .body(),
        )
        .unwrap();
        assert!(
            body.contains("-32602") && body.contains(r#""id":7"#),
            "{body}"
        );
        // A notification names no capabilities.
        let note = br#"{"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert!(check(h(Some("notifications/x"), None), note).is_ok());
    }

    #[test]
    fn responses_and_batches_are_not_requests() {
        let resp = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(check(h(None, None), resp), Err(Refused::NotARequest));
        assert_eq!(check(h(None, None), b"[]"), Err(Refused::NotARequest));
        assert_eq!(check(h(None, None), b"{"), Err(Refused::NotARequest));
        let body = String::from_utf8(Refused::NotARequest.body()).unwrap();
        assert!(body.contains("-32600"), "{body}");
    }

    #[test]
    fn the_scanner_reads_bodies_as_serde_does() {
        let bodies = [
            body("tools/call", r#""name":"echo","arguments":{"a":[1,2,{"b":null}]},"#),
            body("tools/call", r#""name":"ec\u0068o","#),
            body("tools/call", r#""name":7,"#),
            body("resources/read", r#""uri":"file:///a","#),
            body("tools/list", ""),
            body("tools/list", r#""cursor":"x","#),
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":"s","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":1,"io.modelcontextprotocol/clientCapabilities":null}}}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":null}}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(),
            br#"{"method":"m","method":"n"}"#.to_vec(),
            b" { } ".to_vec(),
        ];
        for b in &bodies {
            for (m, n) in [
                ("tools/call", Some("echo")),
                ("tools/list", None),
                ("resources/read", Some("file:///a")),
            ] {
                assert_eq!(
                    check(h(Some(m), n), b),
                    reference::check(h(Some(m), n), b),
                    "{}",
                    String::from_utf8_lossy(b)
                );
            }
        }
    }

    #[test]
    fn era_from_the_version_header() {
        assert!(is_modern(Some(b"2026-07-28")));
        assert!(is_modern(Some(b" 2026-07-28 ")));
        assert!(!is_modern(Some(b"2025-11-25")));
        assert!(!is_modern(None));
    }
}
