//! MCP 2026-07-28 clients served by 2025-era servers (the relay's compatibility mode), as pure
//! translations between the two eras' messages:
//!
//! - a 2026-07-28 request loses the reserved `_meta` keys of its envelope
//!   (`io.modelcontextprotocol/protocolVersion`, `clientInfo`, `clientCapabilities`, `logLevel`)
//!   before it goes into a 2025 session: a dual-era server routes a request that carries them as
//!   2026-07-28, and a 2025 server has no use for them. Everything else (`progressToken`, the
//!   arguments, other `_meta` keys) is kept byte for byte;
//! - a 2025 result gains what 2026-07-28 requires of every result (`resultType`) and, for the
//!   cacheable methods, the cache hints (`ttlMs: 0`, `cacheScope: "private"`: a 2025 server says
//!   nothing about caching, so nothing may be cached, and never across callers);
//! - `server/discover` is answered from the upstream session's `initialize` result (its
//!   capabilities, instructions and server info) with the versions Portcullis serves.
//!
//! Sans-IO. Not here: the upstream sessions these messages travel through (`relay::compat`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::mcp::jsonrpc::span_of;
use crate::mcp::merge::find_member;
use crate::mcp::{jsonrpc, merge, modern, protocol};

/// The reserved `_meta` keys of a 2026-07-28 request envelope.
const ENVELOPE_KEYS: [&str; 4] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/logLevel",
];

/// Methods whose 2026-07-28 results carry `ttlMs` and `cacheScope`.
const CACHEABLE: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// The `_meta` key of a result that names the server software.
const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A 2026-07-28 request made fit for a 2025 session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Legacy {
    /// The request without its envelope's reserved `_meta` keys.
    pub(crate) body: Vec<u8>,
    /// Whether the client asked for log messages (`io.modelcontextprotocol/logLevel`): a 2025
    /// server sends them to its session whatever was asked, so the others are dropped.
    pub(crate) wants_logs: bool,
}

/// Strips the envelope of a 2026-07-28 request (see the module docs): only `params._meta` is
/// rewritten, every other byte is kept. `None`: not a JSON object.
pub(crate) fn to_legacy(body: &[u8]) -> Option<Legacy> {
    let unchanged = || {
        Some(Legacy {
            body: body.to_vec(),
            wants_logs: false,
        })
    };
    let Some(params) = find_member(body, "params").ok()? else {
        return unchanged();
    };
    if !params.get().starts_with('{') {
        return unchanged();
    }
    let Some(meta) = find_member(params.get().as_bytes(), "_meta").ok()? else {
        return unchanged();
    };
    let Ok(mut keys) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(meta.get()) else {
        return unchanged();
    };
    let wants_logs = keys.contains_key(ENVELOPE_KEYS[3]);
    for k in ENVELOPE_KEYS {
        keys.remove(k);
    }
    let at = span_of(body, meta);
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..at.start]);
    serde_json::to_writer(&mut out, &keys).ok()?;
    out.extend_from_slice(&body[at.end..]);
    Some(Legacy {
        body: out,
        wants_logs,
    })
}

/// A 2025 server's answer to a `method` request, as a 2026-07-28 server answers: the result
/// with `resultType` and, for cacheable methods, `ttlMs: 0` and `cacheScope: "private"` (keys
/// the server set are kept; the members are added at the start of the result, every other byte
/// is kept). Errors and anything that is not a response pass unchanged.
pub(crate) fn to_modern_answer(method: &str, msg: Vec<u8>) -> Vec<u8> {
    let Ok(Some(result)) = find_member(&msg, "result") else {
        return msg;
    };
    let Ok(keys) = serde_json::from_str::<BTreeMap<Cow<'_, str>, IgnoredAny>>(result.get()) else {
        return msg;
    };
    let mut add = Vec::with_capacity(64);
    let mut member = |k: &str, v: &str| {
        if !keys.contains_key(k) {
            add.extend_from_slice(format!("\"{k}\":{v},").as_bytes());
        }
    };
    member("resultType", "\"complete\"");
    if CACHEABLE.contains(&method) {
        member("ttlMs", "0");
        member("cacheScope", "\"private\"");
    }
    if add.is_empty() {
        return msg;
    }
    if keys.is_empty() {
        add.pop(); // no member follows
    }
    // After the result's `{` (a JSON object starts with it; no whitespace inside RawValue's start).
    let at = span_of(&msg, result).start + 1;
    let mut out = Vec::with_capacity(msg.len() + add.len());
    out.extend_from_slice(&msg[..at]);
    out.extend_from_slice(&add);
    out.extend_from_slice(&msg[at..]);
    out
}

fn complete(result: &mut Map<String, Value>, cacheable: bool) {
    result
        .entry("resultType")
        .or_insert_with(|| Value::from("complete"));
    if cacheable {
        result.entry("ttlMs").or_insert_with(|| Value::from(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| Value::from("private"));
    }
}

/// A result whose `cacheScope` is `"public"` made `"private"` (every other byte kept): the
/// answer was filtered for one caller (`mcpAuthorization`), so no cache may share it.
pub(crate) fn private_cache(msg: Vec<u8>) -> Vec<u8> {
    let Ok(Some(result)) = find_member(&msg, "result") else {
        return msg;
    };
    let Ok(Some(scope)) = find_member(result.get().as_bytes(), "cacheScope") else {
        return msg;
    };
    if scope.get() != "\"public\"" {
        return msg;
    }
    let at = span_of(&msg, scope);
    let mut out = Vec::with_capacity(msg.len() + 1);
    out.extend_from_slice(&msg[..at.start]);
    out.extend_from_slice(b"\"private\"");
    out.extend_from_slice(&msg[at.end..]);
    out
}

/// The requests a 2026-07-28 client sends; any other method is answered 404 with -32601 (the
/// revision removed `initialize`, `ping`, `logging/setLevel`, `resources/subscribe` …).
pub(crate) const METHODS: [&str; 10] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "subscriptions/listen",
];

/// `MissingRequiredClientCapabilityError`.
const MISSING_CAPABILITY: i64 = -32021;

/// The HTTP status a 2026-07-28 server answers a JSON-RPC error with, where the revision names
/// one: 400 for a missing client capability, 404 for an unknown method. `None`: 200.
pub(crate) fn error_status(answer: &[u8]) -> Option<u16> {
    let error = find_member(answer, "error").ok()??;
    let code = find_member(error.get().as_bytes(), "code").ok()??;
    match code.get().parse::<i64>().ok()? {
        MISSING_CAPABILITY => Some(400),
        jsonrpc::METHOD_NOT_FOUND => Some(404),
        _ => None,
    }
}

/// A tool's arguments mirrored into `Mcp-Param-*` headers (`x-mcp-header` in its input
/// schema): (header suffix in lowercase, argument name).
pub(crate) type HeaderParams = Vec<(String, String)>;

/// The `x-mcp-header` declarations of every tool in a `tools/list` answer, by tool name.
pub(crate) fn header_params(answer: &[u8]) -> Option<HashMap<String, HeaderParams>> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let tools = v.pointer("/result/tools")?.as_array()?;
    let mut out = HashMap::new();
    for t in tools {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(props) = t
            .pointer("/inputSchema/properties")
            .and_then(Value::as_object)
        else {
            continue;
        };
        let decls: HeaderParams = props
            .iter()
            .filter_map(|(arg, schema)| {
                let h = schema.get("x-mcp-header")?.as_str()?;
                Some((h.to_ascii_lowercase(), arg.clone()))
            })
            .collect();
        if !decls.is_empty() {
            out.insert(name.to_owned(), decls);
        }
    }
    Some(out)
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers (`sent`: lowercase suffix, raw value) against
/// its arguments, as a 2026-07-28 server must: a declared argument that is set (and not null)
/// has its header, whose value — as is, or the UTF-8 inside `=?base64?…?=` (strict base64) —
/// equals the argument (a string, or the JSON text of a number or boolean); a header without
/// its argument is a mismatch too. `Err`: why (answered 400 with -32020).
pub(crate) fn check_header_params(
    decls: &HeaderParams,
    body: &[u8],
    sent: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let args = v.pointer("/params/arguments").and_then(Value::as_object);
    for (header, arg) in decls {
        let value = args.and_then(|a| a.get(arg)).filter(|v| !v.is_null());
        let got = sent.iter().find(|(h, _)| h == header).map(|(_, v)| v);
        let want = match value {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(_) => continue, // only primitive values are mirrored
            None if got.is_some() => {
                return Err(format!(
                    "Mcp-Param-{header} is set but argument {arg} is not"
                ))
            }
            None => continue,
        };
        let Some(got) = got else {
            return Err(format!(
                "the Mcp-Param-{header} header is missing ({arg} is set)"
            ));
        };
        match decode_param(got) {
            Some(d) if d == want.as_bytes() => {}
            Some(_) => return Err(format!("Mcp-Param-{header} does not match argument {arg}")),
            None => return Err(format!("Mcp-Param-{header} is not validly encoded")),
        }
    }
    Ok(())
}

/// A mirrored parameter value: as is (whitespace around it dropped), or the bytes inside
/// `=?base64?…?=`, which must be padded base64. `None`: the sentinel holds no valid base64.
fn decode_param(v: &[u8]) -> Option<Vec<u8>> {
    let v = v.trim_ascii();
    match v
        .strip_prefix(b"=?base64?")
        .and_then(|r| r.strip_suffix(b"?="))
    {
        Some(inner) if inner.len() % 4 == 0 => {
            crate::policy::mcp_auth::b64::decode_std(std::str::from_utf8(inner).ok()?)
        }
        Some(_) => None,
        None => Some(v.to_vec()),
    }
}

/// The versions Portcullis serves on a route that has the compatibility mode, newest first.
pub(crate) fn supported_versions() -> impl Iterator<Item = &'static str> {
    std::iter::once(modern::VERSION).chain(protocol::SUPPORTED.iter().copied())
}

/// The `server/discover` result for a route whose upstream session answered `initialize` with
/// `init` (an `InitializeResult`, merged across targets where there are several).
pub(crate) fn discover_result(init: &[u8]) -> Result<Vec<u8>, String> {
    discover_with(init, supported_versions())
}

/// What the `server/discover` answers of a route's servers come to ([`merge_discover`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Discovered {
    /// The route's `server/discover` result.
    Result(Vec<u8>),
    /// The servers have no version in common that Portcullis serves natively with 2026-07-28
    /// among them: the versions they do share (for a -32022 refusal; may be empty).
    NoModern(Vec<&'static str>),
}

/// One `server/discover` result for a route whose servers each answered theirs (`results`:
/// target name, result): `supportedVersions` is what every server lists (in Portcullis's order;
/// a version Portcullis does not serve is left out); capabilities and instructions are merged as
/// `initialize` results are ([`merge::merge_initialize`]), with Portcullis as the server.
pub(crate) fn merge_discover(results: &[(&str, &[u8])]) -> Result<Discovered, String> {
    #[derive(serde::Deserialize)]
    struct Res<'a> {
        #[serde(rename = "supportedVersions", borrow)]
        versions: Vec<Cow<'a, str>>,
    }
    let mut common: Vec<&'static str> = supported_versions().collect();
    for &(target, body) in results {
        let r: Res<'_> = serde_json::from_slice(body)
            .map_err(|e| format!("target {target}: server/discover result: {e}"))?;
        common.retain(|v| r.versions.iter().any(|x| x == v));
    }
    if !common.contains(&modern::VERSION) {
        return Ok(Discovered::NoModern(common));
    }
    let init = merge::merge_initialize(results, modern::VERSION, "portcullis")?;
    discover_with(&init, common.into_iter()).map(Discovered::Result)
}

fn discover_with(
    init: &[u8],
    versions: impl Iterator<Item = &'static str>,
) -> Result<Vec<u8>, String> {
    let v: Map<String, Value> =
        serde_json::from_slice(init).map_err(|e| format!("initialize result: {e}"))?;
    let mut out = Map::new();
    out.insert(
        "supportedVersions".into(),
        versions.map(Value::from).collect(),
    );
    out.insert(
        "capabilities".into(),
        v.get("capabilities")
            .filter(|c| c.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    if let Some(i) = v.get("instructions").filter(|i| i.is_string()) {
        out.insert("instructions".into(), i.clone());
    }
    if let Some(info) = v.get("serverInfo").filter(|i| i.is_object()) {
        let mut meta = Map::new();
        meta.insert(SERVER_INFO.into(), info.clone());
        out.insert("_meta".into(), meta.into());
    }
    complete(&mut out, true);
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

/// The `initialize` request a compatibility session opens with (id `"portcullis-compat"`): the
/// newest 2025 revision, no client capabilities (a 2026-07-28 client cannot answer a server's
/// requests through it), and the client's `clientInfo` when its request named one.
pub(crate) fn legacy_initialize(request: &[u8]) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Msg<'a> {
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Meta<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
        info: Option<&'a RawValue>,
    }
    let info = serde_json::from_slice::<Msg<'_>>(request)
        .ok()
        .and_then(|m| m.params?.meta?.info)
        .filter(|i| i.get().starts_with('{'))
        .map_or(r#"{"name":"portcullis","version":"1"}"#, |i| i.get());
    let params = format!(
        r#"{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{info}}}"#,
        protocol::SUPPORTED[0]
    );
    jsonrpc::request(
        "\"portcullis-compat\"",
        "initialize",
        Some(params.as_bytes()),
    )
}

/// Whether a `server/discover` answer (a JSON-RPC response) says the server speaks 2026-07-28.
pub(crate) fn speaks_modern(answer: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Msg<'a> {
        #[serde(borrow, default)]
        result: Option<Res<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Res<'a> {
        #[serde(rename = "supportedVersions", borrow, default)]
        versions: Vec<Cow<'a, str>>,
    }
    serde_json::from_slice::<Msg<'_>>(answer)
        .ok()
        .and_then(|m| m.result)
        .is_some_and(|r| r.versions.iter().any(|v| v == modern::VERSION))
}

/// Whether a message is a JSON-RPC request (a server's request to its client, in a 2025 session).
pub(crate) fn is_request(msg: &[u8]) -> bool {
    jsonrpc::peek(msg).is_ok_and(|e| e.kind == jsonrpc::Kind::Request)
}

/// What a `subscriptions/listen` stream carries (`params.notifications` of the request, or
/// the part of it a server can honor).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// `resourceSubscriptions`: the URIs whose `notifications/resources/updated` it carries.
    pub uris: Vec<String>,
}

/// The `_meta` key that stamps every message of a listen stream with the request's id.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// At most this many resource subscriptions on one listen stream (each is a request upstream).
const MAX_LISTEN_URIS: usize = 64;

impl Listen {
    /// What a `subscriptions/listen` request asks for (`None`: no `params.notifications`).
    pub(crate) fn asked(request: &[u8]) -> Option<Listen> {
        let v: Value = serde_json::from_slice(request).ok()?;
        let n = v.get("params")?.get("notifications")?.as_object()?;
        let on = |k: &str| n.get(k).and_then(Value::as_bool) == Some(true);
        let mut uris: Vec<String> = n
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        uris.retain(|u| seen.insert(u.clone()));
        Some(Listen {
            tools: on("toolsListChanged"),
            prompts: on("promptsListChanged"),
            resources: on("resourcesListChanged"),
            uris,
        })
    }

    /// The part a 2025 server can honor, by the capabilities its `initialize` declared
    /// (`discover`: the route's `server/discover` result made from it): the `listChanged` kinds
    /// it announces, and resource subscriptions if it takes `resources/subscribe`.
    pub(crate) fn honored_by(&self, discover: &[u8]) -> Listen {
        let caps: Value = serde_json::from_slice::<Value>(discover)
            .ok()
            .and_then(|d| d.get("capabilities").cloned())
            .unwrap_or_default();
        let flag =
            |kind: &str, f: &str| caps.get(kind).and_then(|c| c.get(f)) == Some(&true.into());
        Listen {
            tools: self.tools && flag("tools", "listChanged"),
            prompts: self.prompts && flag("prompts", "listChanged"),
            resources: self.resources && flag("resources", "listChanged"),
            // A bounded number: each is a request upstream (the acknowledgement says which).
            uris: if flag("resources", "subscribe") {
                self.uris.iter().take(MAX_LISTEN_URIS).cloned().collect()
            } else {
                Vec::new()
            },
        }
    }

    fn filter(&self) -> Value {
        let mut f = Map::new();
        for (on, key) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                f.insert(key.into(), true.into());
            }
        }
        if !self.uris.is_empty() {
            f.insert("resourceSubscriptions".into(), self.uris.clone().into());
        }
        f.into()
    }

    /// The stream's first message: `notifications/subscriptions/acknowledged` with what is
    /// honored, stamped with the request's id (`id`: raw JSON).
    pub(crate) fn acknowledgement(&self, id: &str) -> Vec<u8> {
        let msg = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": { "notifications": self.filter(), "_meta": stamp(id) },
        });
        msg.to_string().into_bytes()
    }

    /// A server's message as the listen stream carries it: a change notification this stream
    /// honors, stamped with the request's id; `None` for anything else.
    pub(crate) fn event(&self, msg: &[u8], id: &str) -> Option<Vec<u8>> {
        let mut v: Value = serde_json::from_slice(msg).ok()?;
        let method = v.get("method")?.as_str()?;
        if v.get("id").is_some() {
            return None;
        }
        let wanted = match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => {
                let uri = v
                    .get("params")
                    .and_then(|p| p.get("uri"))
                    .and_then(Value::as_str);
                uri.is_some_and(|u| self.uris.iter().any(|w| w == u))
            }
            _ => false,
        };
        if !wanted {
            return None;
        }
        let obj = v.as_object_mut()?;
        let params = obj
            .entry("params")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        meta.insert(SUBSCRIPTION_ID.into(), serde_json::from_str(id).ok()?);
        Some(v.to_string().into_bytes())
    }
}

/// The `_meta` that stamps a listen stream's messages.
fn stamp(id: &str) -> Value {
    let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    serde_json::json!({ SUBSCRIPTION_ID: id })
}

/// The result that ends a listen stream gracefully (the server's side ended it).
pub(crate) fn listen_ended(id: &str) -> Vec<u8> {
    let result = serde_json::json!({ "_meta": stamp(id), "resultType": "complete" });
    jsonrpc::result_object(id, result.to_string().as_bytes())
}

/// Whether a message is a change notification (a list changed, a resource updated): what
/// 2026-07-28 carries only on `subscriptions/listen` streams.
pub(crate) fn is_change_notification(msg: &[u8]) -> bool {
    jsonrpc::peek(msg).is_ok_and(|e| {
        e.kind == jsonrpc::Kind::Notification
            && matches!(
                e.method,
                Some(
                    "notifications/tools/list_changed"
                        | "notifications/prompts/list_changed"
                        | "notifications/resources/list_changed"
                        | "notifications/resources/updated"
                )
            )
    })
}

/// Whether a message is a log message notification.
pub(crate) fn is_log_message(msg: &[u8]) -> bool {
    jsonrpc::peek(msg).is_ok_and(|e| e.method == Some("notifications/message"))
}

/// The error a compatibility session answers a server's request with: its client speaks
/// 2026-07-28, where a server asks for input in a result, and cannot answer.
pub(crate) fn refuse_server_request(msg: &[u8]) -> Option<Vec<u8>> {
    let env = jsonrpc::peek(msg).ok()?;
    let id = env.id?;
    Some(jsonrpc::error_object(
        Some(id),
        jsonrpc::METHOD_NOT_FOUND,
        "the client reached this server through Portcullis's 2026-07-28 compatibility mode, \
         which cannot carry requests from the server to the client",
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn the_envelope_is_stripped_and_the_rest_kept() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/clientCapabilities":{},"progressToken":3}}}"#;
        let l = to_legacy(body).unwrap();
        assert!(!l.wants_logs);
        assert_eq!(
            json(&l.body),
            json(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"},"_meta":{"progressToken":3}}}"#)
        );
        let bare = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/logLevel":"info"}}}"#;
        let l = to_legacy(bare).unwrap();
        assert!(l.wants_logs);
        assert_eq!(
            json(&l.body),
            json(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}}}"#)
        );
        // Only `_meta` is rewritten: the arguments keep their bytes (numbers beyond f64, too).
        let big = br#"{"id":1,"method":"tools/call","params":{"arguments":{"n":1e400, "s":"\u00e9"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(
            to_legacy(big).unwrap().body,
            br#"{"id":1,"method":"tools/call","params":{"arguments":{"n":1e400, "s":"\u00e9"},"_meta":{}}}"#
        );
        let plain = br#"{"id":1,"method":"ping"}"#;
        assert_eq!(to_legacy(plain).unwrap().body, plain);
        assert!(to_legacy(b"[1]").is_none());
    }

    #[test]
    fn results_gain_what_the_revision_requires() {
        let list = to_modern_answer(
            "tools/list",
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#.to_vec(),
        );
        assert_eq!(
            json(&list)["result"],
            json(br#"{"tools":[],"resultType":"complete","ttlMs":0,"cacheScope":"private"}"#)
        );
        let call = to_modern_answer(
            "tools/call",
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"resultType":"complete"}}"#.to_vec(),
        );
        assert_eq!(
            json(&call)["result"],
            json(br#"{"content":[],"resultType":"complete"}"#)
        );
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#.to_vec();
        assert_eq!(to_modern_answer("tools/call", err.clone()), err);
        assert_eq!(to_modern_answer("tools/call", b"nope".to_vec()), b"nope");
        let empty = to_modern_answer("ping", br#"{"id":1,"result":{}}"#.to_vec());
        assert_eq!(empty, br#"{"id":1,"result":{"resultType":"complete"}}"#);
        let kept = to_modern_answer("tools/call", br#"{"id":1,"result":{"v":1e400}}"#.to_vec());
        assert_eq!(
            kept,
            br#"{"id":1,"result":{"resultType":"complete","v":1e400}}"#
        );
    }

    #[test]
    fn a_filtered_answer_is_never_public() {
        let public = br#"{"id":1,"result":{"tools":[],"cacheScope":"public","ttlMs":9}}"#;
        assert_eq!(
            private_cache(public.to_vec()),
            br#"{"id":1,"result":{"tools":[],"cacheScope":"private","ttlMs":9}}"#
        );
        let private = br#"{"id":1,"result":{"cacheScope":"private"}}"#.to_vec();
        assert_eq!(private_cache(private.clone()), private);
        let nested = br#"{"id":1,"result":{"tools":[{"cacheScope":"public"}]}}"#.to_vec();
        assert_eq!(private_cache(nested.clone()), nested);
    }

    #[test]
    fn errors_get_the_revision_s_statuses() {
        let e = |code: i64| format!(r#"{{"id":1,"error":{{"code":{code},"message":"m"}}}}"#);
        assert_eq!(error_status(e(-32021).as_bytes()), Some(400));
        assert_eq!(error_status(e(-32601).as_bytes()), Some(404));
        assert_eq!(error_status(e(-32603).as_bytes()), None);
        assert_eq!(error_status(br#"{"id":1,"result":{}}"#), None);
    }

    #[test]
    fn mirrored_parameters_are_checked_against_the_arguments() {
        let list = br#"{"id":1,"result":{"tools":[{"name":"weather","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"days":{"type":"integer","x-mcp-header":"Days"},"q":{"type":"string"}}}},{"name":"plain","inputSchema":{"type":"object"}}]}}"#;
        let decls = header_params(list).unwrap();
        assert_eq!(decls.len(), 1);
        let d = &decls["weather"];
        let body = br#"{"id":2,"method":"tools/call","params":{"name":"weather","arguments":{"region":"Hello","days":3}}}"#;
        let sent = |r: &str, days: Option<&str>| {
            let mut v = vec![("region".to_owned(), r.as_bytes().to_vec())];
            if let Some(d) = days {
                v.push(("days".to_owned(), d.as_bytes().to_vec()));
            }
            v
        };
        assert!(check_header_params(d, body, &sent(" Hello ", Some("3"))).is_ok());
        assert!(check_header_params(d, body, &sent("=?base64?SGVsbG8=?=", Some("3"))).is_ok());
        // Unpadded or non-alphabet base64, a different value, a missing header.
        for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?=", "Bye"] {
            assert!(
                check_header_params(d, body, &sent(bad, Some("3"))).is_err(),
                "{bad}"
            );
        }
        assert!(check_header_params(d, body, &sent("Hello", None))
            .unwrap_err()
            .contains("missing"));
        // Without the sentinel's two ends, a value is literal.
        let lit = br#"{"id":2,"method":"tools/call","params":{"name":"weather","arguments":{"region":"=?base64?SGVsbG8="}}}"#;
        assert!(check_header_params(d, lit, &sent("=?base64?SGVsbG8=", None)).is_ok());
        // A header whose argument is absent.
        let none = br#"{"id":2,"method":"tools/call","params":{"name":"weather","arguments":{}}}"#;
        assert!(check_header_params(d, none, &sent("x", None)).is_err());
        assert!(check_header_params(d, none, &[]).is_ok());
    }

    #[test]
    fn discover_comes_from_the_initialize_result() {
        let init = br#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"s","version":"2"},"instructions":"be nice"}"#;
        let d = json(&discover_result(init).unwrap());
        assert_eq!(
            d["supportedVersions"],
            json(br#"["2026-07-28","2025-11-25","2025-06-18","2025-03-26"]"#)
        );
        assert_eq!(
            d["capabilities"],
            json(br#"{"tools":{"listChanged":true}}"#)
        );
        assert_eq!(d["instructions"], "be nice");
        assert_eq!(d["_meta"][SERVER_INFO]["name"], "s");
        assert_eq!(d["resultType"], "complete");
        assert_eq!(d["cacheScope"], "private");
        assert!(discover_result(b"[").is_err());
    }

    #[test]
    fn discover_answers_of_several_servers_are_merged() {
        let a = br#"{"supportedVersions":["2026-07-28","2025-11-25"],"capabilities":{"tools":{"listChanged":true}},"instructions":"a first","resultType":"complete"}"#;
        let b = br#"{"supportedVersions":["2025-11-25","2026-07-28","2027-01-01"],"capabilities":{"prompts":{}}}"#;
        let Discovered::Result(d) = merge_discover(&[("a", a), ("b", b)]).unwrap() else {
            panic!("no common revision")
        };
        let d = json(&d);
        // Both list them; Portcullis's order; a version it does not serve is left out.
        assert_eq!(
            d["supportedVersions"],
            json(br#"["2026-07-28","2025-11-25"]"#)
        );
        assert_eq!(
            d["capabilities"],
            json(br#"{"tools":{"listChanged":true},"prompts":{}}"#)
        );
        assert_eq!(d["instructions"], "[a]\na first");
        assert_eq!(d["_meta"][SERVER_INFO]["name"], "portcullis");
        assert_eq!(d["resultType"], "complete");
        // A server without 2026-07-28: what they share, for the refusal.
        let old = br#"{"supportedVersions":["2025-11-25","2025-06-18"]}"#;
        assert_eq!(
            merge_discover(&[("a", a), ("old", old)]).unwrap(),
            Discovered::NoModern(vec!["2025-11-25"])
        );
        let err = merge_discover(&[("a", a), ("bad", b"{}")]).unwrap_err();
        assert!(err.contains("target bad"), "{err}");
    }

    #[test]
    fn listen_streams_carry_what_was_asked_and_can_be_honored() {
        let req = br#"{"jsonrpc":"2.0","id":"l1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourceSubscriptions":["test://a","test://a","test://b"]},"_meta":{}}}"#;
        let asked = Listen::asked(req).unwrap();
        assert!(asked.tools && asked.prompts && !asked.resources);
        assert_eq!(asked.uris, ["test://a", "test://b"]);
        let discover = br#"{"capabilities":{"tools":{"listChanged":true},"prompts":{},"resources":{"subscribe":true}}}"#;
        let honored = asked.honored_by(discover);
        assert!(honored.tools && !honored.prompts);
        assert_eq!(honored.uris.len(), 2);
        assert!(asked.honored_by(b"{}").uris.is_empty());
        let ack = json(&honored.acknowledgement("\"l1\""));
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(
            ack["params"]["notifications"],
            json(br#"{"toolsListChanged":true,"resourceSubscriptions":["test://a","test://b"]}"#)
        );
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "l1");
        let ev = |m: &[u8]| honored.event(m, "\"l1\"").map(|e| json(&e));
        let changed =
            ev(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#).unwrap();
        assert_eq!(changed["params"]["_meta"][SUBSCRIPTION_ID], "l1");
        let updated = ev(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://b","_meta":{"k":1}}}"#).unwrap();
        assert_eq!(updated["params"]["uri"], "test://b");
        assert_eq!(updated["params"]["_meta"]["k"], 1);
        // Not asked, not honored, not a notification: not on the stream.
        for m in [
            &br#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://c"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"notifications/tools/list_changed"}"#,
            b"junk",
        ] {
            assert!(ev(m).is_none(), "{}", String::from_utf8_lossy(m));
        }
        assert!(
            Listen::asked(br#"{"id":1,"method":"subscriptions/listen","params":{}}"#).is_none()
        );
        let end = json(&listen_ended("7"));
        assert_eq!(
            (
                end["id"].clone(),
                end["result"]["_meta"][SUBSCRIPTION_ID].clone()
            ),
            (7.into(), 7.into())
        );
    }

    #[test]
    fn the_compat_initialize_names_the_client() {
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"app","version":"3"}}}}"#;
        let init = json(&legacy_initialize(req));
        assert_eq!(init["method"], "initialize");
        assert_eq!(init["params"]["clientInfo"]["name"], "app");
        assert_eq!(init["params"]["protocolVersion"], "2025-11-25");
        let init = json(&legacy_initialize(b"{}"));
        assert_eq!(init["params"]["clientInfo"]["name"], "portcullis");
    }

    #[test]
    fn modern_servers_are_told_by_their_discover_answer() {
        assert!(speaks_modern(
            br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"]}}"#
        ));
        assert!(!speaks_modern(
            br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-11-25"]}}"#
        ));
        assert!(!speaks_modern(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x"}}"#
        ));
    }

    #[test]
    fn server_requests_are_refused_by_id() {
        let r = refuse_server_request(
            br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#,
        )
        .unwrap();
        assert_eq!(json(&r)["id"], "s1");
        assert_eq!(json(&r)["error"]["code"], jsonrpc::METHOD_NOT_FOUND);
        assert!(is_request(
            br#"{"jsonrpc":"2.0","id":1,"method":"roots/list"}"#
        ));
        assert!(is_log_message(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#
        ));
    }
}
