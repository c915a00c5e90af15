use std::sync::Arc;

use super::*;

fn set(rules: &[(RuleKind, &str)]) -> RuleSet {
    compile(rules, Policy::Mcp).expect("compiles")
}

fn allow(rules: &[&str]) -> RuleSet {
    set(&rules
        .iter()
        .map(|r| (RuleKind::Allow, *r))
        .collect::<Vec<_>>())
}

fn caller(claims: &str) -> Caller {
    Caller {
        id: 7,
        claims: Some(Arc::from(claims)),
        request: None,
    }
}

fn tool(name: &str) -> Item<'_> {
    Item {
        kind: ItemKind::Tool,
        target: "srv",
        name,
    }
}

fn decide(s: &RuleSet, c: &Caller, item: Item<'_>) -> Verdict {
    Evaluator::new(s, c).decide(Some(item))
}

const EXAMPLE1: &str = r#"{"iss":"agentgateway.dev","aud":"test.agentgateway.dev","sub":"test-user","exp":1900650294,"field1":"value1","nested":{"key":"value"},"list":["apple","banana"]}"#;
const EXAMPLE2: &str =
    r#"{"iss":"agentgateway.dev","aud":"test.agentgateway.dev","sub":"other","exp":1900650294}"#;

/// agentgateway's `examples/authorization` rules: claims × tool → verdict.
#[test]
fn agentgateway_example_rules() {
    let s = allow(&[
        r#"mcp.tool.name == "echo""#,
        r#"jwt.sub == "test-user" && mcp.tool.name == "add""#,
        r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#,
    ]);
    let one = caller(EXAMPLE1);
    let two = caller(EXAMPLE2);
    let none = Caller::default();
    let table = [
        (&one, "echo", true),
        (&one, "add", true),
        (&one, "printEnv", true),
        (&one, "other", false),
        (&two, "echo", true),
        (&two, "add", false),
        (&two, "printEnv", false), // no `nested` claim: the rule errors, so it does not allow
        (&none, "echo", true),
        (&none, "add", false), // no token: `jwt` is unset, the rule errors
    ];
    for (c, name, want) in table {
        assert_eq!(
            decide(&s, c, tool(name)).allowed(),
            want,
            "{name} for {:?}",
            c.claims
        );
    }
}

#[test]
fn deny_require_and_errors() {
    // No rules: everything.
    assert!(decide(&set(&[]), &caller(EXAMPLE2), tool("x")).allowed());
    // Deny only: everything but what it denies (agentgateway since v1.0).
    let deny = set(&[(RuleKind::Deny, r#"mcp.tool.name == "rm""#)]);
    assert!(decide(&deny, &caller(EXAMPLE2), tool("ls")).allowed());
    assert!(!decide(&deny, &caller(EXAMPLE2), tool("rm")).allowed());
    // A deny rule that errors does not deny (agentgateway: "expression failures fail to deny").
    let deny_err = set(&[(RuleKind::Deny, r#"jwt.nested.key == "value""#)]);
    assert!(decide(&deny_err, &caller(EXAMPLE2), tool("x")).allowed());
    assert!(!decide(&deny_err, &caller(EXAMPLE1), tool("x")).allowed());
    // Deny wins over allow.
    let both = set(&[
        (RuleKind::Allow, "true"),
        (RuleKind::Deny, r#"jwt.sub == "other""#),
    ]);
    assert!(!decide(&both, &caller(EXAMPLE2), tool("x")).allowed());
    assert!(decide(&both, &caller(EXAMPLE1), tool("x")).allowed());
    // Require: must hold, and an error fails closed.
    let req = set(&[
        (RuleKind::Require, r#"jwt.nested.key == "value""#),
        (RuleKind::Allow, r#"mcp.tool.name == "echo""#),
    ]);
    assert!(decide(&req, &caller(EXAMPLE1), tool("echo")).allowed());
    assert!(!decide(&req, &caller(EXAMPLE1), tool("add")).allowed());
    assert!(!decide(&req, &caller(EXAMPLE2), tool("echo")).allowed());
    // Require only: what passes it is allowed.
    let req_only = set(&[(RuleKind::Require, r#"jwt.sub == "test-user""#)]);
    assert!(decide(&req_only, &caller(EXAMPLE1), tool("any")).allowed());
    assert!(!decide(&req_only, &caller(EXAMPLE2), tool("any")).allowed());
    // A rule that is not a boolean never holds.
    let not_bool = allow(&["jwt.sub"]);
    assert!(!decide(&not_bool, &caller(EXAMPLE1), tool("x")).allowed());
}

#[test]
fn prompts_resources_targets_and_claim_types() {
    let s = allow(&[
        r#"mcp.prompt.name == "greet""#,
        r#"mcp.resource.name.startsWith("file:///public/")"#,
        r#"mcp.tool.target == "math" && jwt.list.exists(x, x == "apple")"#,
        r#"jwt.exp > 1000 && mcp.tool.name == "int""#,
    ]);
    let c = caller(EXAMPLE1);
    let item = |kind, target, name| Item { kind, target, name };
    assert!(decide(&s, &c, item(ItemKind::Prompt, "a", "greet")).allowed());
    assert!(!decide(&s, &c, item(ItemKind::Tool, "a", "greet")).allowed());
    assert!(decide(&s, &c, item(ItemKind::Resource, "a", "file:///public/x")).allowed());
    assert!(!decide(&s, &c, item(ItemKind::Resource, "a", "file:///etc/passwd")).allowed());
    assert!(decide(&s, &c, item(ItemKind::Tool, "math", "anything")).allowed());
    assert!(!decide(&s, &caller(EXAMPLE2), item(ItemKind::Tool, "math", "x")).allowed());
    assert!(decide(&s, &c, item(ItemKind::Tool, "t", "int")).allowed());
}

#[test]
fn compile_errors_name_the_rule_and_position() {
    let e = compile(
        &[
            (RuleKind::Allow, "true"),
            (RuleKind::Allow, "mcp.tool.name =="),
        ],
        Policy::Mcp,
    )
    .unwrap_err();
    assert_eq!((e.index, e.line), (1, 1));
    assert!(e.column >= 15, "{e}");
    assert!(e.message.contains("not a CEL expression"), "{e}");

    let e = compile(
        &[(RuleKind::Allow, "mcp.tool.name == 'x' &&\n  foo.bar == 1")],
        Policy::Mcp,
    )
    .unwrap_err();
    assert_eq!((e.index, e.line, e.column), (0, 2, 3), "{e}");
    assert!(e.message.contains("unknown variable `foo`"), "{e}");

    let e = compile(&[(RuleKind::Deny, "llm.model == 'x'")], Policy::Mcp).unwrap_err();
    assert!(e.message.contains("agentgateway variable"), "{e}");
    let e = compile(&[(RuleKind::Allow, "mcp.tool.name == 'x'")], Policy::Http).unwrap_err();
    assert!(
        e.message.contains("only available in mcpAuthorization"),
        "{e}"
    );
    // Bounded before evaluation can recurse too deep.
    let deep = format!("jwt{} == 1", ".a".repeat(200));
    let e = compile(&[(RuleKind::Allow, &deep)], Policy::Mcp).unwrap_err();
    assert!(e.message.contains("nests"), "{e}");
    let long = format!("jwt.sub == '{}'", "x".repeat(5000));
    let e = compile(&[(RuleKind::Allow, &long)], Policy::Mcp).unwrap_err();
    assert!(e.message.contains("at most 4096 bytes"), "{e}");
    let parens = format!("{}1{} == 1", "(".repeat(300), ")".repeat(300));
    assert!(compile(&[(RuleKind::Allow, &parens)], Policy::Mcp).is_err());
    // The deepest accepted rule evaluates on an ordinary thread's stack.
    let deepest = format!("{}true{}", "[".repeat(15), "][0]".repeat(15));
    let s = compile(&[(RuleKind::Allow, &deepest)], Policy::Mcp).unwrap();
    assert!(decide(&s, &caller(EXAMPLE1), tool("x")).allowed());
    // Comprehension variables are not roots.
    compile(
        &[(RuleKind::Allow, "jwt.groups.exists(g, g == 'admin')")],
        Policy::Http,
    )
    .unwrap();
}

#[test]
fn request_attributes_make_a_set_per_request() {
    let s = allow(&[r#"request.headers["x-team"] == "blue" && source.address == "10.0.0.1""#]);
    assert!(s.per_request());
    let mut c = caller(EXAMPLE2);
    c.request = Some(Arc::new(RequestAttrs {
        method: "POST".into(),
        headers: vec![("x-team".into(), "blue".into())],
        source: Some("10.0.0.1:5555".parse().unwrap()),
        ..RequestAttrs::default()
    }));
    assert!(decide(&s, &c, tool("x")).allowed());
    c.request = Some(Arc::new(RequestAttrs {
        headers: vec![("x-team".into(), "red".into())],
        source: Some("10.0.0.1:5555".parse().unwrap()),
        ..RequestAttrs::default()
    }));
    assert!(!decide(&s, &c, tool("x")).allowed());
    assert!(!allow(&["jwt.sub == 'a'"]).per_request());
}

#[test]
fn missing_scopes_are_all_named() {
    let s = allow(&[
        r#"mcp.tool.name == "read""#,
        r#"mcp.tool.name == "write" && "files:write" in jwt.scope.split(" ") && "files:audit" in jwt.scope.split(" ")"#,
    ]);
    let c = caller(r#"{"sub":"u","scope":"files:read"}"#);
    assert!(decide(&s, &c, tool("read")).allowed());
    assert_eq!(
        decide(&s, &c, tool("write")),
        Verdict::NeedsScopes(Arc::from("files:read files:write files:audit"))
    );
    // No scope would help: a plain denial.
    assert_eq!(decide(&s, &c, tool("rm")), Verdict::Deny);
    let ok = caller(r#"{"sub":"u","scp":["files:write","files:audit"]}"#);
    // The token holds the scopes, in `scp`, which the rules do not read: no step-up loop.
    assert_eq!(decide(&s, &ok, tool("write")), Verdict::Deny);
    let s2 = allow(&[r#"mcp.tool.name == "write" && "files:write" in jwt.scp"#]);
    assert!(decide(&s2, &ok, tool("write")).allowed());
    // A require rule on a scope.
    let s3 = set(&[(RuleKind::Require, r#""admin" in jwt.scope.split(" ")"#)]);
    assert_eq!(
        decide(&s3, &c, tool("x")),
        Verdict::NeedsScopes(Arc::from("files:read admin"))
    );
}

#[test]
fn cached_decisions_are_per_caller_set_and_item() {
    let s = allow(&[r#"jwt.sub == "test-user" && mcp.tool.name == "add""#]);
    let s2 = allow(&["true"]);
    let mut cache = Decisions::with_capacity(4);
    let one = caller(EXAMPLE1);
    let mut two = caller(EXAMPLE2);
    two.id = 8;
    assert!(Decider::new(&s, &one, &mut cache)
        .decide(Some(tool("add")))
        .allowed());
    assert!(!Decider::new(&s, &two, &mut cache)
        .decide(Some(tool("add")))
        .allowed());
    assert!(!Decider::new(&s, &one, &mut cache)
        .decide(Some(tool("ad")))
        .allowed());
    assert!(Decider::new(&s2, &two, &mut cache)
        .decide(Some(tool("add")))
        .allowed());
    assert_eq!((cache.hits, cache.misses), (0, 4));
    assert!(Decider::new(&s, &one, &mut cache)
        .decide(Some(tool("add")))
        .allowed());
    assert!(!Decider::new(&s, &two, &mut cache)
        .decide(Some(tool("add")))
        .allowed());
    assert_eq!(cache.hits, 2);
    // Bounded: a fifth entry starts over.
    let _ = Decider::new(&s, &one, &mut cache).decide(Some(tool("five")));
    assert_eq!(cache.len(), 1);
}

#[test]
fn long_names_are_decided_but_not_kept() {
    let s = allow(&["true"]);
    let mut cache = Decisions::with_capacity(8);
    let c = caller(EXAMPLE1);
    let long = "x".repeat(cache::MAX_NAME + 1);
    assert!(Decider::new(&s, &c, &mut cache)
        .decide(Some(tool(&long)))
        .allowed());
    assert_eq!(cache.len(), 0);
    assert!(Decider::new(&s, &c, &mut cache)
        .decide(Some(tool("short")))
        .allowed());
    assert_eq!(cache.len(), 1);
}
