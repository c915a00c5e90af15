use std::borrow::Cow;

use super::*;

fn inv(msg: &str) -> PeekError {
    peek(msg.as_bytes()).unwrap_err()
}

#[test]
fn request_with_number_and_string_ids() {
    let m = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"}}}"#;
    let e = peek(m).unwrap();
    assert_eq!(e.kind, Kind::Request);
    assert_eq!(e.id, Some("7"));
    assert_eq!(e.method, Some("tools/call"));
    assert_eq!(e.name.as_deref(), Some("echo"));
    assert!(matches!(e.name, Some(Cow::Borrowed(_))));

    let m = br#" { "params" : {"name":"p1"}, "method":"prompts/get", "id" : "abc-1", "jsonrpc":"2.0" } "#;
    let e = peek(m).unwrap();
    assert_eq!(
        (e.kind, e.id, e.name.as_deref()),
        (Kind::Request, Some("\"abc-1\""), Some("p1"))
    );
    assert_eq!(
        peek(br#"{"jsonrpc":"2.0","id":-3,"method":"ping"}"#)
            .unwrap()
            .id,
        Some("-3")
    );
}

#[test]
fn resources_read_uri_and_initialize_version() {
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a?x=1\u0026y=2"}}"#;
    let e = peek(m).unwrap();
    assert_eq!(e.name.as_deref(), Some("file:///a?x=1&y=2"));
    assert!(matches!(e.name, Some(Cow::Owned(_))));

    let m = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
    let e = peek(m).unwrap();
    assert_eq!(e.protocol_version, Some("2025-06-18"));
    assert_eq!(e.name, None, "clientInfo.name is not params.name");
    // name is only read for the methods that route on it
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}}"#;
    assert_eq!(peek(m).unwrap().name, None);
}

#[test]
fn notifications_and_responses() {
    let e = peek(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!((e.kind, e.id), (Kind::Notification, None));
    let e = peek(br#"{"jsonrpc":"2.0","id":"x","result":{}}"#).unwrap();
    assert_eq!(
        (e.kind, e.id, e.method),
        (Kind::Response, Some("\"x\""), None)
    );
    let e = peek(br#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"m"}}"#).unwrap();
    assert_eq!((e.kind, e.id), (Kind::Response, Some("5")));
    let e = peek(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}"#).unwrap();
    assert_eq!((e.kind, e.id), (Kind::Response, None));
    assert_eq!(
        peek(br#"{"jsonrpc":"2.0","id":1,"result":null}"#)
            .unwrap()
            .kind,
        Kind::Response
    );
}

#[test]
fn escaped_strings() {
    let e = peek(br#"{"jsonrpc":"2\u002e0","id":"a\"b","method":"tools\/call","params":{"name":"we\u00efrd"}}"#)
        .unwrap();
    assert_eq!(e.id, Some(r#""a\"b""#), "raw id text, escapes kept");
    assert_eq!(e.method, Some("tools/call"));
    assert_eq!(e.name.as_deref(), Some("weïrd"));
    assert_eq!(
        inv(r#"{"jsonrpc":"2.0","id":1,"method":"x\/y"}"#),
        PeekError::InvalidRequest("escaped method name not recognised")
    );
    // escaped keys are keys
    let e = peek(br#"{"json\u0072pc":"2.0","\u0069d":1,"method":"ping"}"#).unwrap();
    assert_eq!(e.id, Some("1"));
    let e = peek(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025\u002d06-18"}}"#).unwrap();
    assert_eq!(e.protocol_version, Some("2025-06-18"));
}

#[test]
fn invalid_json_is_parse_error() {
    for m in [
        "",
        "{",
        "{\"jsonrpc\":\"2.0\",}",
        "nul",
        "{\"a\":1} x",
        "\u{feff}{}",
        "{\"a\":\"\\x\"}",
    ] {
        assert_eq!(inv(m), PeekError::Parse, "{m:?}");
        assert_eq!(inv(m).code(), PARSE_ERROR);
    }
    // bad UTF-8 inside a string
    assert_eq!(
        peek(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}").unwrap_err(),
        PeekError::Parse
    );
    // a duplicate followed by broken JSON is still a parse error
    assert_eq!(inv(r#"{"id":1,"id":2,"#), PeekError::Parse);
}

#[test]
fn invalid_requests() {
    let cases = [
        (r#"{"id":1,"method":"ping"}"#, "missing \"jsonrpc\""),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            "\"jsonrpc\" must be \"2.0\"",
        ),
        (
            r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
            "\"jsonrpc\" must be \"2.0\"",
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            "id must be a string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            "id must be a string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1e3,"method":"ping"}"#,
            "id must be a string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            "id must be a string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            "method must be a string",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","result":{}}"#,
            "request with result or error",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#,
            "params must be structured",
        ),
        (r#"{"jsonrpc":"2.0","id":1}"#, "no method, result or error"),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            "both result and error",
        ),
        (r#"{"jsonrpc":"2.0","result":{}}"#, "response without id"),
        (
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            "id must be a string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":"x"}"#,
            "error must be an object",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            "duplicate member",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            "duplicate member",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            "expected a single JSON-RPC object",
        ),
        ("42", "expected a single JSON-RPC object"),
    ];
    for (m, why) in cases {
        assert_eq!(inv(m), PeekError::InvalidRequest(why), "{m}");
        assert_eq!(inv(m).code(), INVALID_REQUEST);
    }
}

#[test]
fn params_shapes() {
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}"#;
    assert_eq!(peek(m).unwrap().name, None);
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#;
    assert_eq!(peek(m).unwrap().name, None);
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"a":1}}}"#;
    assert_eq!(
        peek(m).unwrap().name,
        None,
        "non-string name: the relay answers -32602"
    );
}

#[test]
fn batches() {
    assert!(is_batch(b" \r\n\t[1]"));
    assert!(!is_batch(b"{}"));
    let m = br#"[ {"jsonrpc":"2.0","id":1,"method":"ping"} , {"jsonrpc":"2.0","method":"n"},3 ]"#;
    let parts = split_batch(m).unwrap();
    assert_eq!(
        parts,
        vec![
            &br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#[..],
            br#"{"jsonrpc":"2.0","method":"n"}"#,
            b"3"
        ]
    );
    assert_eq!(peek(parts[0]).unwrap().kind, Kind::Request);
    assert_eq!(
        split_batch(b"[]"),
        Err(PeekError::InvalidRequest("empty batch"))
    );
    assert_eq!(split_batch(b"[1,"), Err(PeekError::Parse));
    assert_eq!(
        split_batch(b"{}"),
        Err(PeekError::InvalidRequest("expected a JSON array (batch)"))
    );
}

#[test]
fn replace_id_keeps_every_other_byte() {
    let m = br#"{ "jsonrpc" : "2.0", "id" :  "c-1" , "method":"tools/call","params":{"id":9,"name":"x"}}"#;
    let out = replace_id(m, "17").unwrap();
    assert_eq!(
        out,
        br#"{ "jsonrpc" : "2.0", "id" :  17 , "method":"tools/call","params":{"id":9,"name":"x"}}"#
    );
    assert_eq!(replace_id(&out, r#""c-1""#).unwrap(), m);
    let r = br#"{"result":{"id":1},"jsonrpc":"2.0","id":42}"#;
    assert_eq!(
        replace_id(r, r#""x""#).unwrap(),
        br#"{"result":{"id":1},"jsonrpc":"2.0","id":"x"}"#
    );
    let n = br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
    assert_eq!(
        replace_id(n, "1"),
        Err(PeekError::InvalidRequest("message has no id"))
    );
    assert_eq!(replace_id(b"{", "1"), Err(PeekError::Parse));
}

#[test]
fn builders_round_trip() {
    let e = error_object(
        Some("\"a\""),
        METHOD_NOT_FOUND,
        "no \"such\"\nmethod\u{1}",
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(v["id"], "a");
    assert_eq!(v["error"]["code"], -32601);
    assert_eq!(v["error"]["message"], "no \"such\"\nmethod\u{1}");
    assert!(v["error"].get("data").is_none());
    let data = serde_json::json!({"k":[1]});
    let e = error_object(None, PARSE_ERROR, "Parse error", Some(&data));
    assert_eq!(
        e,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"k":[1]}}}"#
    );
    assert_eq!(peek(&e).unwrap().kind, Kind::Response);

    assert_eq!(
        result_object("3", b"{}"),
        br#"{"jsonrpc":"2.0","id":3,"result":{}}"#
    );
    let r = request("\"g-1\"", "tools/call", Some(br#"{"name":"t"}"#));
    let e = peek(&r).unwrap();
    assert_eq!(
        (e.id, e.method, e.name.as_deref()),
        (Some("\"g-1\""), Some("tools/call"), Some("t"))
    );
    assert_eq!(
        request("1", "ping", None),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
    );
    assert_eq!(
        peek(&notification("notifications/initialized", None))
            .unwrap()
            .kind,
        Kind::Notification
    );
}

#[test]
fn error_messages() {
    assert_eq!(PeekError::Parse.message(), "Parse error");
    assert_eq!(PeekError::InvalidRequest("x").message(), "x");
    assert_eq!(PeekError::Parse.to_string(), "Parse error (-32700)");
}

#[test]
fn fuzz_entry_smoke() {
    let seeds: &[&[u8]] = &[
        br#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"x"}}"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}]"#,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#,
        br#"{"tools":[{"name":"t","description":"d"}],"nextCursor":"c"}"#,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\\u0070ing\"}",
        b"[{",
        b"",
    ];
    for s in seeds {
        crate::mcp::fuzz_jsonrpc(s);
        for cut in 0..s.len() {
            crate::mcp::fuzz_jsonrpc(&s[..cut]);
        }
    }
}
