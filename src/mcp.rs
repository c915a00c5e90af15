//! MCP, the sans-IO core: JSON-RPC envelopes (`jsonrpc`), SSE framing (`sse`), the
//! streamable-HTTP transport rules (`protocol`), the 2026-07-28 request checks (`modern`), the
//! translations that let 2026-07-28 clients use 2025 servers (`compat`) and multi-target
//! merging (`merge`).
//!
//! Everything here is pure functions over bytes, fuzzed through [`fuzz_jsonrpc`] and
//! [`fuzz_sse`] and benchmarked in `benches/jsonrpc.rs`.
//!
//! Not here: sessions, upstream connections, child processes, HTTP status mapping (the relay).

pub(crate) mod compat;
pub(crate) mod jsonrpc;
pub(crate) mod merge;
pub(crate) mod modern;
pub(crate) mod protocol;
pub(crate) mod sse;

/// Fuzz entry point (`fuzz/fuzz_targets/jsonrpc.rs`): peek, batch split and id rewrite never
/// panic, and what they produce is consistent.
#[doc(hidden)]
pub(crate) fn fuzz_jsonrpc(data: &[u8]) {
    if jsonrpc::is_batch(data) {
        if let Ok(items) = jsonrpc::split_batch(data) {
            assert!(!items.is_empty());
            for item in items {
                check_message(item);
            }
        }
    } else {
        check_message(data);
    }
    // The header check reads the body as serde would, or refuses it as malformed (it is
    // stricter: UTF-8 as a whole, objects where fields are read, no repeated field it reads).
    for (method, name) in [
        (&b"tools/call"[..], Some(&b"=?base64?ZWNobw==?="[..])),
        (b"tools/list", None),
        (b"resources/read", Some(b"file:///a")),
    ] {
        let mirrored = modern::Mirrored {
            version: b"2026-07-28",
            method: Some(method),
            name,
        };
        let (scanned, reference) = (
            modern::check(mirrored, data),
            modern::reference::check(mirrored, data),
        );
        if scanned != Err(modern::Refused::NotARequest) {
            assert_eq!(scanned, reference);
        }
    }
    let _ = merge::rename_param_name(data, "t_x");
    let _ = merge::merge_list("tools", &[("a", data), ("b", data)], true);
    let _ = merge::merge_initialize(&[("a", data)], "2025-06-18", "p");
    // The compatibility mode's translations keep what they do not rewrite.
    if let Some(l) = compat::to_legacy(data) {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&l.body).is_ok());
    }
    let answer = compat::to_modern_answer("tools/list", data.to_vec());
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&answer).is_ok());
    }
    let _ = compat::discover_result(data);
    if let Some(decls) = compat::header_params(data) {
        for d in decls.values() {
            let _ = compat::check_header_params(d, data, &[("region".into(), data.to_vec())]);
        }
    }
    let _ = compat::legacy_initialize(data);
    let _ = compat::merge_discover(&[("a", data), ("b", data)]);
    let _ = compat::is_change_notification(data);
    // Listen streams: what a client asks, what a server sends; every output is JSON.
    if let Some(asked) = compat::Listen::asked(data) {
        let honored = asked.honored_by(data);
        let ack = honored.acknowledgement("\"l\"");
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&ack).is_ok());
    }
    let all = compat::Listen {
        tools: true,
        prompts: true,
        resources: true,
        uris: vec!["test://a".into()],
    };
    if let Some(ev) = all.event(data, "7") {
        let v: serde_json::Value = serde_json::from_slice(&ev).expect("an event is JSON");
        assert!(v["method"]
            .as_str()
            .is_some_and(|m| m.starts_with("notifications/")));
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            7
        );
    }
    // A name encoded for a mirrored header decodes back to itself.
    if let Ok(text) = std::str::from_utf8(data) {
        let v = modern::encode_value(text);
        assert!(v.iter().all(|b| (0x20..0x7f).contains(b)));
        assert_eq!(modern::decode_value(&v).as_deref(), Some(text.as_bytes()));
    }
}

fn check_message(msg: &[u8]) {
    let Ok(env) = jsonrpc::peek(msg) else {
        assert!(jsonrpc::replace_id(msg, "1").is_err());
        return;
    };
    assert_eq!(env.method.is_none(), env.kind == jsonrpc::Kind::Response);
    if let Some(id) = env.id {
        assert!(serde_json::from_str::<serde_json::Value>(id).is_ok());
        let out = jsonrpc::replace_id(msg, "\"p-7\"").expect("a peeked id can be replaced");
        let again = jsonrpc::peek(&out).expect("rewritten message peeks");
        assert_eq!(again.id, Some("\"p-7\""));
        assert_eq!(
            (again.kind, again.method, &again.name),
            (env.kind, env.method, &env.name)
        );
        let back = jsonrpc::replace_id(&out, id).expect("and back");
        assert_eq!(back, msg);
    }
    let err = jsonrpc::error_object(env.id, jsonrpc::INTERNAL_ERROR, "m\"\n", None);
    assert!(jsonrpc::peek(&err).is_ok_and(|e| e.kind == jsonrpc::Kind::Response));
}

/// Fuzz entry point (`fuzz/fuzz_targets/sse_event.rs`): the parser never panics, yields the
/// same events whatever the split, and parses back what the writer writes.
#[doc(hidden)]
pub(crate) fn fuzz_sse(data: &[u8]) {
    let whole = sse_events(&[data]);
    let at = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    assert_eq!(whole, sse_events(&[&data[..at], &data[at..]]));
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(whole, sse_events(&bytewise));

    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    sse::write_event(&mut out, Some("i\r\nd"), Some("message"), text.as_bytes());
    let mut p = sse::SseParser::new(usize::MAX);
    p.feed(&out).expect("no limit");
    let ev = p.next_event().expect("one event");
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(ev.data, normalized);
    assert_eq!(ev.id.as_deref(), Some("id"));
    assert!(p.next_event().is_none());
}

fn sse_events(chunks: &[&[u8]]) -> (Vec<sse::OwnedEvent>, usize) {
    let mut p = sse::SseParser::new(64);
    let mut errors = 0;
    let mut events = Vec::new();
    for c in chunks {
        errors += usize::from(p.feed(c).is_err());
        events.extend(std::iter::from_fn(|| p.next_event()));
    }
    (events, errors.min(1))
}
