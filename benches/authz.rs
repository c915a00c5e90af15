//! Authorization (`mcpAuthorization`): what a decision costs on a cache hit (the issue's target
//! is ≤ 0.5 µs), on a miss (CEL evaluation with a fresh context), and what filtering a 500-tool
//! `tools/list` answer adds to relaying it (the relay restores the client's id with
//! `replace_id` either way). Rules: agentgateway's `examples/authorization` three.
//! Run: `cargo bench --bench authz`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis::fuzzing::authz::{
    compile, filter_response, replace_id, Caller, Decider, Decisions, Evaluator, Item, ItemKind,
    Policy, RuleKind,
};

const CLAIMS: &str = r#"{"iss":"agentgateway.dev","aud":"test.agentgateway.dev","sub":"test-user","exp":1900650294,"iat":1700000000,"scope":"openid profile mcp:read","client_id":"c","nested":{"key":"value"},"list":["apple","banana"]}"#;

const RULES: [(RuleKind, &str); 3] = [
    (RuleKind::Allow, r#"mcp.tool.name == "echo""#),
    (
        RuleKind::Allow,
        r#"jwt.sub == "test-user" && mcp.tool.name == "add""#,
    ),
    (
        RuleKind::Allow,
        r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#,
    ),
];

/// A `tools/list` answer of `n` tools (~250 B each), every other one allowed by [`RULES`]
/// (`echo`/`add` vs `tool_N`).
fn tools_list(n: usize) -> Vec<u8> {
    let tool = r#"{"name":"NAME","title":"Tool","description":"Does the N-th thing with the given input and returns a structured summary.","inputSchema":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}}"#;
    let tools: Vec<String> = (0..n)
        .map(|i| {
            let name = if i % 2 == 0 {
                "echo".to_owned()
            } else {
                format!("tool_{i}")
            };
            tool.replace("NAME", &name)
        })
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":"up-7","result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let set = compile(&RULES, Policy::Mcp).unwrap();
    let caller = Caller {
        id: 1,
        claims: Some(Arc::from(CLAIMS)),
        request: None,
    };
    let add = Item {
        kind: ItemKind::Tool,
        target: "srv",
        name: "add",
    };
    let mut g = c.benchmark_group("authz");
    let mut cache = Decisions::default();
    Decider::new(&set, &caller, &mut cache).decide(Some(add));
    g.bench_function("decision_hit", |b| {
        b.iter(|| {
            Decider::new(&set, &caller, &mut cache)
                .decide(black_box(Some(add)))
                .allowed()
        })
    });
    g.bench_function("decision_miss", |b| {
        b.iter(|| {
            Evaluator::new(&set, &caller)
                .decide(black_box(Some(add)))
                .allowed()
        })
    });
    let list = tools_list(500);
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.bench_function("list500_relayed", |b| {
        b.iter(|| replace_id(black_box(&list), "3").unwrap())
    });
    let mut cache = Decisions::default();
    g.bench_function("list500_relayed_filtered", |b| {
        b.iter(|| {
            let msg = replace_id(black_box(&list), "3").unwrap();
            let mut d = Decider::new(&set, &caller, &mut cache);
            let target = "srv";
            filter_response(&msg, "tools", &mut |name| {
                d.decide(Some(Item {
                    kind: ItemKind::Tool,
                    target,
                    name,
                }))
                .allowed()
            })
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
