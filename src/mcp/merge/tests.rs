use super::*;

#[test]
fn prefix_and_split() {
    assert_eq!(prefix("github", "create_issue"), "github_create_issue");
    let targets = ["github", "git", "my"];
    assert_eq!(
        split("github_create_issue", &targets),
        Some(("github", "create_issue"))
    );
    assert_eq!(split("git_log", &targets), Some(("git", "log")));
    assert_eq!(split("my_tool_x", &targets), Some(("my", "tool_x")));
    assert_eq!(split("unknown_x", &targets), None);
    assert_eq!(split("github", &targets), None);
    assert_eq!(split("git_", &targets), Some(("git", "")));
    // the first '_' whose left part is a target, not necessarily the first '_'
    assert_eq!(split("a_b_c", &["a_b"]), Some(("a_b", "c")));
}

#[test]
fn tools_list_from_two_targets() {
    let a = br#"{"tools":[{"name":"echo","inputSchema":{"type":"object","properties":{"name":{"type":"string"}}}},{"description":"d","name":"add"}],"nextCursor":"abc"}"#;
    let b = br#"{ "tools" : [ {"name":"se\u0061rch","annotations":{"name":"keep"}} ] }"#;
    let out = merge_list("tools", &[("alpha", a), ("beta", b)], true).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"tools":[{"name":"alpha_echo","inputSchema":{"type":"object","properties":{"name":{"type":"string"}}}},{"description":"d","name":"alpha_add"},{"name":"beta_search","annotations":{"name":"keep"}}]}"#
    );
    let plain = merge_list("tools", &[("alpha", a)], false).unwrap();
    let v: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(v["tools"][0]["name"], "echo");
    assert!(v.get("nextCursor").is_none());
}

#[test]
fn prompts_and_resources() {
    let p = br#"{"prompts":[{"name":"greet","arguments":[]}]}"#;
    let out = merge_list("prompts", &[("t1", p)], true).unwrap();
    assert_eq!(out, br#"{"prompts":[{"name":"t1_greet","arguments":[]}]}"#);
    let r = br#"{"resources":[{"uri":"file:///a","name":"a"}]}"#;
    let out = merge_list(
        "resources",
        &[("t1", r), ("t2", br#"{"resources":[]}"#)],
        true,
    )
    .unwrap();
    assert_eq!(
        out, br#"{"resources":[{"uri":"file:///a","name":"a"}]}"#,
        "resources keep uri and name"
    );
    let t = br#"{"resourceTemplates":[{"uriTemplate":"x://{id}","name":"n"}]}"#;
    assert_eq!(
        merge_list("resourceTemplates", &[("t", t)], true).unwrap(),
        br#"{"resourceTemplates":[{"uriTemplate":"x://{id}","name":"n"}]}"#
    );
}

#[test]
fn malformed_target_results_name_the_target() {
    let good = br#"{"tools":[]}"#;
    let e = merge_list("tools", &[("ok", good), ("bad", b"{")], true).unwrap_err();
    assert!(e.starts_with("target bad:"), "{e}");
    let e = merge_list("tools", &[("bad", br#"{"prompts":[]}"#)], true).unwrap_err();
    assert!(e.contains("no \"tools\""), "{e}");
    let e = merge_list("tools", &[("bad", br#"{"tools":{}}"#)], true).unwrap_err();
    assert!(e.contains("not an array"), "{e}");
    let e = merge_list("tools", &[("bad", br#"{"tools":[{"name":1}]}"#)], true).unwrap_err();
    assert!(e.contains("no string name"), "{e}");
    let e = merge_list(
        "tools",
        &[("bad", br#"{"tools":[{"name":"a","name":"b"}]}"#)],
        true,
    );
    assert!(e.unwrap_err().contains("duplicate"));
}

#[test]
fn initialize_merge() {
    let a = br#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true},"logging":{}},"serverInfo":{"name":"a","version":"1"},"instructions":"Use a."}"#;
    let b = br#"{"protocolVersion":"2025-03-26","capabilities":{"tools":{},"prompts":{},"resources":{"subscribe":true}},"serverInfo":{"name":"b","version":"2"}}"#;
    let c = br#"{"protocolVersion":"2025-11-25","capabilities":{"resources":{"listChanged":true}},"serverInfo":{"name":"c","version":"3"},"instructions":"Use c."}"#;
    let out =
        merge_initialize(&[("a", a), ("b", b), ("c", c)], "2025-06-18", "portcullis").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["protocolVersion"], "2025-06-18");
    assert_eq!(
        v["capabilities"],
        serde_json::json!({
            "tools": {"listChanged": true},
            "prompts": {},
            "resources": {"subscribe": true, "listChanged": true},
            "logging": {}
        })
    );
    assert_eq!(v["serverInfo"]["name"], "portcullis");
    assert_eq!(v["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["instructions"], "[a]\nUse a.\n\n[c]\nUse c.");

    let out = merge_initialize(&[("b", b)], "2025-03-26", "p").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v.get("instructions").is_none());
    assert!(v["capabilities"].get("logging").is_none());
    assert!(merge_initialize(&[("x", b"[]")], "v", "p")
        .unwrap_err()
        .starts_with("target x"));
    assert!(merge_initialize(&[("x", b"{")], "v", "p").is_err());
}

#[test]
fn rename_param_name_keeps_the_rest() {
    let m = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{ "arguments":{"name":"arg"}, "name" : "alpha_echo" ,"_meta":{}}}"#;
    let out = rename_param_name(m, "echo").unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{ "arguments":{"name":"arg"}, "name" : "echo" ,"_meta":{}}}"#
    );
    let e = crate::mcp::jsonrpc::peek(&out).unwrap();
    assert_eq!(e.name.as_deref(), Some("echo"));
    assert_eq!(
        rename_param_name(br#"{"params":{"name":"a"}}"#, "q\"uote").unwrap(),
        br#"{"params":{"name":"q\"uote"}}"#
    );
    assert!(rename_param_name(br#"{"params":{}}"#, "x").is_err());
    assert!(rename_param_name(br#"{"method":"x"}"#, "x").is_err());
    assert!(rename_param_name(br#"{"params":{"name":3}}"#, "x").is_err());
    assert!(rename_param_name(br#"{"params":{"name":"a","name":"b"}}"#, "x").is_err());
    assert!(rename_param_name(br#"{"params":[]}"#, "x").is_err());
}

#[test]
fn lists_filtered_by_name_keep_every_other_byte() {
    let msg = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a","x":1},{"name":"b"},{"name":"c","d":{"name":"z"}}],"nextCursor":"p2"}}"#;
    let (out, dropped) = filter_response(msg, "tools", &mut |n| n != "b").unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a","x":1},{"name":"c","d":{"name":"z"}}],"nextCursor":"p2"}}"#
    );
    // Resources by URI; an error answer passes as it is.
    let res = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///a","name":"a"},{"uri":"file:///b","name":"b"}]}}"#;
    let (out, _) = filter_response(res, "resources", &mut |u| u == "file:///b").unwrap();
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///b","name":"b"}]}}"#
    );
    let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#;
    assert_eq!(
        filter_response(err, "tools", &mut |_| false).unwrap().0,
        err
    );
    // Entries without a name are left out; a list that is not an array is an error.
    let (out, dropped) =
        filter_response(br#"{"result":{"tools":[{"x":1}]}}"#, "tools", &mut |_| true).unwrap();
    assert_eq!(
        (out.as_slice(), dropped),
        (&br#"{"result":{"tools":[]}}"#[..], 1)
    );
    assert!(filter_response(br#"{"result":{"tools":{}}}"#, "tools", &mut |_| true).is_err());
}

#[test]
fn merged_lists_are_filtered_by_target_and_unprefixed_name() {
    let a = br#"{"tools":[{"name":"echo"},{"name":"rm"}]}"#;
    let b = br#"{"tools":[{"name":"echo"}]}"#;
    let mut seen = Vec::new();
    let mut keep = |t: &str, n: &str| {
        seen.push(format!("{t}/{n}"));
        !(t == "a" && n == "rm")
    };
    let (out, dropped) =
        merge_list_filtered("tools", &[("a", a), ("b", b)], true, Some(&mut keep)).unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"tools":[{"name":"a_echo"},{"name":"b_echo"}]}"#
    );
    assert_eq!(seen, ["a/echo", "a/rm", "b/echo"]);
}
