//! Several targets behind one route, with agentgateway's semantics (anchor §3.3): names are
//! exposed as `<target>_<name>` and split at the first `_` whose left part is a known target;
//! list results are concatenated; initialize results are merged into one.
//!
//! Rewrites are byte splices: a renamed tool keeps every other byte of its definition. Only
//! `name` of tools and prompts is prefixed; resources and resource templates keep their `uri`
//! (routing them is the relay's business). `nextCursor` is dropped: the merged list is whole.
//!
//! Lists can be filtered on the way ([`merge_list_filtered`], [`filter_response`]): which
//! entries to keep is the caller's decision (`mcpAuthorization`).
//!
//! Not here: fan-out, pagination, authorization decisions, `completion/complete` routing.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::jsonrpc::{span_of, str_of, write_json_str};

/// The delimiter between target and name.
pub(crate) const DELIMITER: char = '_';

pub(crate) fn prefix(target: &str, name: &str) -> String {
    let mut s = String::with_capacity(target.len() + 1 + name.len());
    s.push_str(target);
    s.push(DELIMITER);
    s.push_str(name);
    s
}

/// `(target, name)` for the first `_` whose left part is one of `targets`.
pub(crate) fn split<'a>(prefixed: &'a str, targets: &[&str]) -> Option<(&'a str, &'a str)> {
    prefixed
        .match_indices(DELIMITER)
        .map(|(at, _)| (&prefixed[..at], &prefixed[at + 1..]))
        .find(|(t, _)| targets.contains(t))
}

/// Concatenates the `list_key` arrays of each target's result into `{"<list_key>":[...]}`,
/// prefixing `name` of tools and prompts when `prefix_names`. A malformed result fails the
/// merge naming its target (callers drop that target and note it, see [`prefix_failure_note`]).
pub(crate) fn merge_list(
    list_key: &str,
    results: &[(&str, &[u8])],
    prefix_names: bool,
) -> Result<Vec<u8>, String> {
    merge_list_filtered(list_key, results, prefix_names, None).map(|(m, _)| m)
}

/// The member that names an entry of a list: `name` for tools and prompts, `uri` for
/// resources, `uriTemplate` for resource templates.
pub(crate) fn entry_key(list_key: &str) -> &'static str {
    match list_key {
        "resources" => "uri",
        "resourceTemplates" => "uriTemplate",
        _ => "name",
    }
}

/// Whether to keep a list entry, by target and name.
pub(crate) type KeepEntry<'a> = dyn FnMut(&str, &str) -> bool + 'a;

/// [`merge_list`] keeping only the entries `keep(target, name)` accepts (`name` as the target
/// has it, unprefixed; a resource's URI); also returns how many were left out.
pub(crate) fn merge_list_filtered(
    list_key: &str,
    results: &[(&str, &[u8])],
    prefix_names: bool,
    mut keep: Option<&mut KeepEntry<'_>>,
) -> Result<(Vec<u8>, usize), String> {
    let rename = prefix_names && matches!(list_key, "tools" | "prompts");
    let key = entry_key(list_key);
    let mut out = Vec::with_capacity(results.iter().map(|(_, r)| r.len()).sum::<usize>() + 16);
    out.push(b'{');
    write_json_str(&mut out, list_key);
    out.extend_from_slice(b":[");
    let mut first = true;
    let mut dropped = 0;
    for &(target, body) in results {
        let fail = |e: &str| format!("target {target}: {e}");
        let list = find_member(body, list_key)
            .map_err(|e: String| fail(&e))?
            .ok_or_else(|| fail(&format!("result has no \"{list_key}\"")))?;
        let items: Vec<&RawValue> = serde_json::from_str(list.get())
            .map_err(|_| fail(&format!("\"{list_key}\" is not an array")))?;
        for item in items {
            let item = item.get().as_bytes();
            if !rename && keep.is_none() {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(item);
                continue;
            }
            let name = find_member(item, key)
                .map_err(|e: String| fail(&e))?
                .and_then(|raw| str_of(raw).map(|n| (span_of(item, raw), n)));
            let Some((span, name)) = name else {
                return Err(fail(&format!(
                    "an entry of \"{list_key}\" has no string {key}"
                )));
            };
            if keep.as_mut().is_some_and(|k| !k(target, &name)) {
                dropped += 1;
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            if !rename {
                out.extend_from_slice(item);
                continue;
            }
            out.extend_from_slice(&item[..span.start]);
            write_json_str(&mut out, &prefix(target, &name));
            out.extend_from_slice(&item[span.end..]);
        }
    }
    out.extend_from_slice(b"]}");
    Ok((out, dropped))
}

/// A JSON-RPC response to a list method with only the entries of `result.<list_key>` that
/// `keep(name)` accepts; every other byte as it was. A message without that list (an error)
/// is returned unchanged. Also returns how many entries were left out.
pub fn filter_response(
    msg: &[u8],
    list_key: &str,
    keep: &mut dyn FnMut(&str) -> bool,
) -> Result<(Vec<u8>, usize), String> {
    // One pass down `result.<list_key>` collecting the entries (a `tools/list` of 500 is
    // ~100 KB: each extra pass over it costs ~70 µs).
    let mut de = serde_json::Deserializer::from_slice(msg);
    let items = MemberPath(&["result", list_key])
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    let items = match items {
        Some(items) if !items.is_empty() => items,
        // An error answer, or an empty list: nothing to leave out.
        _ => return Ok((msg.to_vec(), 0)),
    };
    let key = entry_key(list_key);
    let (first_at, last_end) = (
        span_of(msg, items[0]).start,
        span_of(msg, items[items.len() - 1]).end,
    );
    let mut out = Vec::with_capacity(msg.len());
    out.extend_from_slice(&msg[..first_at]);
    let (mut first, mut dropped) = (true, 0);
    for item in items {
        let item = item.get();
        let name = find_member(item.as_bytes(), key)?.and_then(str_of);
        // An entry without a name cannot be allowed by name: left out.
        if !name.is_some_and(|n| keep(&n)) {
            dropped += 1;
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(item.as_bytes());
    }
    out.extend_from_slice(&msg[last_end..]);
    Ok((out, dropped))
}

/// The entries of the array at a path of object members (`None` when a member is missing;
/// an error for a duplicate member, a non-object on the way or a non-array at the end).
struct MemberPath<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for MemberPath<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MemberPath<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((want, rest)) = self.0.split_first() else {
            return Ok(None);
        };
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(want))? {
            if !hit {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = if rest.is_empty() {
                Some(map.next_value::<Vec<&'de RawValue>>()?)
            } else {
                map.next_value_seed(MemberPath(rest))?
            };
            if found.replace(value).is_some() {
                return Err(de::Error::custom(format_args!("duplicate \"{want}\"")));
            }
        }
        Ok(found.flatten())
    }
}

#[derive(Default)]
struct Caps {
    tools: Option<bool>,
    prompts: Option<bool>,
    /// (subscribe, listChanged)
    resources: Option<(bool, bool)>,
    logging: bool,
}

fn flag(cap: &Value, key: &str) -> bool {
    cap.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// One `InitializeResult` for several targets: `protocol_version` as given, the union of the
/// tools / prompts / resources / logging capabilities (`listChanged`, `subscribe` ORed),
/// `serverInfo {server_name, crate version}`, and instructions in `[target]` sections.
pub(crate) fn merge_initialize(
    results: &[(&str, &[u8])],
    protocol_version: &str,
    server_name: &str,
) -> Result<Vec<u8>, String> {
    let mut caps = Caps::default();
    let mut instructions = String::new();
    for &(target, body) in results {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("target {target}: initialize result: {e}"))?;
        let Some(obj) = v.as_object() else {
            return Err(format!(
                "target {target}: initialize result is not an object"
            ));
        };
        if let Some(c) = obj.get("capabilities").filter(|c| c.is_object()) {
            if let Some(t) = c.get("tools") {
                caps.tools = Some(caps.tools.unwrap_or(false) | flag(t, "listChanged"));
            }
            if let Some(p) = c.get("prompts") {
                caps.prompts = Some(caps.prompts.unwrap_or(false) | flag(p, "listChanged"));
            }
            if let Some(r) = c.get("resources") {
                let (s, l) = caps.resources.unwrap_or_default();
                caps.resources = Some((s | flag(r, "subscribe"), l | flag(r, "listChanged")));
            }
            caps.logging |= c.get("logging").is_some();
        }
        if let Some(text) = obj.get("instructions").and_then(Value::as_str) {
            if !text.is_empty() {
                if !instructions.is_empty() {
                    instructions.push_str("\n\n");
                }
                instructions.push_str(&format!("[{target}]\n{text}"));
            }
        }
    }
    let list_changed = |on: bool| {
        if on {
            serde_json::json!({ "listChanged": true })
        } else {
            serde_json::json!({})
        }
    };
    let mut c = serde_json::Map::new();
    if let Some(l) = caps.tools {
        c.insert("tools".into(), list_changed(l));
    }
    if let Some(l) = caps.prompts {
        c.insert("prompts".into(), list_changed(l));
    }
    if let Some((s, l)) = caps.resources {
        let mut r = serde_json::Map::new();
        if s {
            r.insert("subscribe".into(), true.into());
        }
        if l {
            r.insert("listChanged".into(), true.into());
        }
        c.insert("resources".into(), r.into());
    }
    if caps.logging {
        c.insert("logging".into(), serde_json::json!({}));
    }
    let mut out = serde_json::json!({
        "protocolVersion": protocol_version,
        "capabilities": c,
        "serverInfo": { "name": server_name, "version": env!("CARGO_PKG_VERSION") },
    });
    if !instructions.is_empty() {
        out["instructions"] = instructions.into();
    }
    Ok(out.to_string().into_bytes())
}

/// Rewrites `params.name` of a `tools/call` or `prompts/get` request to `new_name`; every
/// other byte is kept.
pub(crate) fn rename_param_name(msg: &[u8], new_name: &str) -> Result<Vec<u8>, String> {
    let params = find_member(msg, "params")?.ok_or("request has no params")?;
    let name = find_member(params.get().as_bytes(), "name")?.ok_or("params has no name")?;
    if str_of(name).is_none() {
        return Err("params.name is not a string".into());
    }
    let span = span_of(msg, name);
    let mut out = Vec::with_capacity(msg.len() + new_name.len());
    out.extend_from_slice(&msg[..span.start]);
    write_json_str(&mut out, new_name);
    out.extend_from_slice(&msg[span.end..]);
    Ok(out)
}

/// The raw value of top-level member `key` of the JSON object `obj` (which is validated
/// whole); a duplicated `key` is an error.
pub(crate) fn find_member<'a>(obj: &'a [u8], key: &str) -> Result<Option<&'a RawValue>, String> {
    let mut de = serde_json::Deserializer::from_slice(obj);
    let found = FindMember(key)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(found)
}

struct FindMember<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for FindMember<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindMember<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(self.0))? {
            if !hit {
                map.next_value::<IgnoredAny>()?;
            } else if found.replace(map.next_value::<&'de RawValue>()?).is_some() {
                return Err(de::Error::custom(format_args!("duplicate \"{}\"", self.0)));
            }
        }
        Ok(found)
    }
}

/// Compares a (decoded) object key with the wanted one without allocating.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests;
