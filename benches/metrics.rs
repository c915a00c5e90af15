//! What counting costs on a worker, per request: `record` (agentgateway's and Portcullis's
//! request series and both duration histograms) and `mcp_request` (an MCP call's series and
//! its duration), on a worker that already holds the series (the steady state), and for a
//! tool name seen for the first time. Run: `cargo bench --bench metrics`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::fuzzing::metrics::{method_index, Reason, RouteLabels, WorkerMetrics};

fn bench(c: &mut Criterion) {
    let name: Arc<str> = Arc::from("mcp");
    let labels = RouteLabels::new("ns/gw", 3000, "main", "default", &name, None, "mcp", "mcp");
    let post = method_index("POST");
    let mut m = WorkerMetrics::default();
    m.record(
        &labels,
        post,
        200,
        Reason::Upstream,
        Duration::from_micros(40),
    );
    c.bench_function("record", |b| {
        b.iter(|| {
            m.record(
                black_box(&labels),
                black_box(post),
                black_box(200),
                Reason::Upstream,
                black_box(Duration::from_micros(40)),
            )
        })
    });
    let scope = labels.scope.clone();
    c.bench_function("mcp_request", |b| {
        b.iter(|| {
            m.mcp_request(
                black_box("mcp"),
                black_box(&scope),
                black_box("tools/call"),
                Some(black_box("server")),
                Some(black_box("echo")),
                Some(Duration::from_micros(40)),
            )
        })
    });
    let mut i = 0u64;
    c.bench_function("mcp_request_new_name", |b| {
        b.iter(|| {
            i += 1;
            let mut fresh = WorkerMetrics::default();
            let tool = format!("tool{}", i % 64);
            fresh.mcp_request(
                "mcp",
                &scope,
                "tools/call",
                Some("server"),
                Some(&tool),
                None,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
