use super::*;

fn reply(status: u16, kind: BodyKind, body: &str) -> Reply {
    let mut r = Reply::default();
    r.status = status;
    r.kind = kind;
    r.body = body.as_bytes().to_vec();
    r.matched = kind == BodyKind::Sse;
    r
}

fn target() -> Target {
    Target {
        addr: "127.0.0.1:1".parse().unwrap(),
        host: "h".into(),
        path: "/mcp".into(),
        metadata_path: "/.well-known/oauth-protected-resource/mcp".into(),
        protocol_version: "2025-06-18".into(),
        tool_json: "\"echo\"".into(),
        tool_header: "echo".into(),
        args_json: "{}".into(),
        calls: 2,
    }
}

#[test]
fn judges_challenges_and_rejections() {
    let mut r = reply(401, BodyKind::Json, "{}");
    assert_eq!(
        judge(Op::Unauth, Expect::Accept, Some(1), &r),
        Outcome::Err(ErrClass::Challenge)
    );
    r.set_www_auth(b"Bearer realm=\"x\"");
    assert_eq!(
        judge(Op::Unauth, Expect::Accept, Some(1), &r),
        Outcome::Err(ErrClass::Challenge)
    );
    r.set_www_auth(b"Bearer resource_metadata=\"http://h/.well-known/x\"");
    assert_eq!(judge(Op::Unauth, Expect::Accept, Some(1), &r), Outcome::Ok);
    assert_eq!(
        judge(Op::ToolsCall, Expect::Reject, Some(1), &r),
        Outcome::Rejected
    );
    assert_eq!(
        judge(Op::ToolsCall, Expect::Accept, Some(1), &r),
        Outcome::Err(ErrClass::Unauthorized)
    );
    let ok = reply(
        200,
        BodyKind::Json,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
    );
    assert_eq!(
        judge(Op::ToolsCall, Expect::Reject, Some(1), &ok),
        Outcome::Err(ErrClass::AcceptedInvalid)
    );
    assert_eq!(
        judge(Op::Unauth, Expect::Accept, Some(1), &ok),
        Outcome::Err(ErrClass::AcceptedInvalid)
    );
}

#[test]
fn judges_json_rpc_answers() {
    let j = |s: &str| reply(200, BodyKind::Json, s);
    let call = |r: &Reply| judge(Op::ToolsCall, Expect::Accept, Some(7), r);
    assert_eq!(
        call(&j(
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"x"}]}}"#
        )),
        Outcome::Ok
    );
    assert_eq!(
        call(&j(r#"{"jsonrpc":"2.0","id":8,"result":{"content":[]}}"#)),
        Outcome::Err(ErrClass::BadResponse)
    );
    assert_eq!(
        call(&j(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#)),
        Outcome::Err(ErrClass::BadResponse)
    );
    assert_eq!(
        call(&j(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"m"}}"#
        )),
        Outcome::Err(ErrClass::JsonRpcError)
    );
    assert_eq!(
        call(&j(
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#
        )),
        Outcome::Err(ErrClass::ToolError)
    );
    assert_eq!(call(&j("not json")), Outcome::Err(ErrClass::BadResponse));
    let mut sse = reply(200, BodyKind::Sse, "");
    sse.matched = false;
    assert_eq!(call(&sse), Outcome::Err(ErrClass::NoEvent));
    assert_eq!(
        call(&reply(404, BodyKind::Other, "")),
        Outcome::Err(ErrClass::SessionLost)
    );
    assert_eq!(
        call(&reply(500, BodyKind::Other, "")),
        Outcome::Err(ErrClass::Status)
    );
    let init = j(
        r#"{"jsonrpc":"2.0","id":7,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#,
    );
    assert_eq!(
        judge(Op::Initialize, Expect::Accept, Some(7), &init),
        Outcome::Ok
    );
    let list = j(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#);
    assert_eq!(
        judge(Op::ToolsList, Expect::Accept, Some(7), &list),
        Outcome::Ok
    );
    assert_eq!(
        judge(
            Op::Metadata,
            Expect::Accept,
            None,
            &j(r#"{"resource":"http://h/mcp"}"#)
        ),
        Outcome::Ok
    );
    assert_eq!(
        judge(Op::Metadata, Expect::Accept, None, &j(r#"{"x":1}"#)),
        Outcome::Err(ErrClass::BadResponse)
    );
    assert_eq!(
        judge(
            Op::Initialized,
            Expect::Accept,
            None,
            &reply(202, BodyKind::Other, "")
        ),
        Outcome::Ok
    );
    assert_eq!(
        judge(
            Op::Delete,
            Expect::Accept,
            None,
            &reply(405, BodyKind::Other, "")
        ),
        Outcome::Ok
    );
}

#[test]
fn session_walks_its_script_and_sends_its_headers() {
    let t = target();
    let mut vu = Vu::new(1);
    let mut seen = Vec::new();
    let mut init = reply(200, BodyKind::Json, "");
    init.session = Some("s-1".into());
    for _ in 0..7 {
        let op = vu.next_op(Scenario::Session, &t);
        let mut w = Vec::new();
        let id = vu.write(op, &t, Some("tok"), &mut w);
        let req = String::from_utf8(w).unwrap();
        assert!(req.contains("Authorization: Bearer tok\r\n"), "{req}");
        if op == Op::Initialize {
            assert!(!req.contains("Mcp-Session-Id") && !req.contains("MCP-Protocol-Version"));
            assert!(req.contains("Accept: application/json, text/event-stream\r\n"));
        } else {
            assert!(req.contains("Mcp-Session-Id: s-1\r\n"), "{op:?}: {req}");
            assert!(req.contains("MCP-Protocol-Version: 2025-06-18\r\n"));
        }
        assert_eq!(
            id.is_some(),
            matches!(op, Op::Initialize | Op::ToolsList | Op::ToolsCall)
        );
        seen.push(op);
        vu.advance(Scenario::Session, &t, op, Outcome::Ok, &init);
    }
    assert_eq!(
        seen,
        [
            Op::Initialize,
            Op::Initialized,
            Op::ToolsList,
            Op::ToolsCall,
            Op::ToolsCall,
            Op::Delete,
            Op::Initialize
        ]
    );
    // An error mid-session starts a new one.
    let mut vu = Vu::new(1);
    vu.advance(Scenario::Session, &t, Op::Initialize, Outcome::Ok, &init);
    vu.advance(
        Scenario::Session,
        &t,
        Op::Initialized,
        Outcome::Err(ErrClass::Io),
        &init,
    );
    assert_eq!(vu.next_op(Scenario::Session, &t), Op::Initialize);
    assert!(vu.session.is_none());
}

#[test]
fn unauth_requests_carry_no_token() {
    let t = target();
    let mut vu = Vu::new(1);
    let mut w = Vec::new();
    vu.write(Op::Unauth, &t, Some("tok"), &mut w);
    let req = String::from_utf8(w).unwrap();
    assert!(req.starts_with("POST /mcp HTTP/1.1\r\n") && !req.contains("Authorization"));
    assert!(req.contains(r#""method":"initialize""#));
}

#[test]
fn modern_discovers_once_then_calls_without_a_session() {
    let t = target();
    let mut vu = Vu::new(1);
    assert_eq!(vu.next_op(Scenario::Modern, &t), Op::Discover);
    let mut w = Vec::new();
    let id = vu.write(Op::Discover, &t, Some("tok"), &mut w);
    let text = String::from_utf8(w).unwrap();
    for want in [
        "MCP-Protocol-Version: 2026-07-28\r\n",
        "Mcp-Method: server/discover\r\n",
        "Authorization: Bearer tok\r\n",
        r#""io.modelcontextprotocol/protocolVersion":"2026-07-28""#,
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    assert!(!text.contains("Mcp-Session-Id") && !text.contains("Mcp-Name"));
    let ok = reply(
        200,
        BodyKind::Json,
        &format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"supportedVersions":["2026-07-28"]}}}}"#,
            id.unwrap()
        ),
    );
    let out = judge(Op::Discover, Expect::Accept, id, &ok);
    assert_eq!(out, Outcome::Ok);
    vu.advance(Scenario::Modern, &t, Op::Discover, out, &ok);
    assert_eq!(vu.next_op(Scenario::Modern, &t), Op::ToolsCall);
    let mut w = Vec::new();
    vu.write(Op::ToolsCall, &t, None, &mut w);
    let text = String::from_utf8(w).unwrap();
    assert!(
        text.contains("Mcp-Method: tools/call\r\nMcp-Name: echo\r\n"),
        "{text}"
    );
    assert!(
        text.contains(r#""name":"echo""#) && text.contains("_meta"),
        "{text}"
    );
    // A failed call does not send the user back to discovery.
    vu.advance(
        Scenario::Modern,
        &t,
        Op::ToolsCall,
        Outcome::Err(ErrClass::Status),
        &ok,
    );
    assert_eq!(vu.next_op(Scenario::Modern, &t), Op::ToolsCall);
}
