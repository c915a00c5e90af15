//! Route lookup cost in a 50-route table mixing exact, prefix, regex and header matches:
//! a hit on one of the lowest-precedence entries (near the end of the scan) and a miss
//! (full scan). Baseline: a linear scan is what the table does, so the miss is the bound.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis::fuzzing::routing::{
    HeaderMatch, PathMatch, RequestView, RouteMatch, RouteSpec, RouteTable, ValueMatch,
};

fn table() -> RouteTable<usize> {
    let mut routes = Vec::new();
    for i in 0..50usize {
        let path = match i % 4 {
            0 => PathMatch::Exact(format!("/svc{i}/exact")),
            1 => PathMatch::Prefix(format!("/svc{i}")),
            2 => PathMatch::regex(&format!("/svc{i}/[a-z]+/[0-9]+")).unwrap(),
            _ => PathMatch::Prefix(format!("/svc{i}/h")),
        };
        let mut m = RouteMatch::path(path);
        if i % 4 == 3 {
            m.headers.push(HeaderMatch::new(
                "x-tenant",
                ValueMatch::Exact(format!("t{i}")),
            ));
        }
        if i % 5 == 0 {
            m.method = Some("POST".into());
        }
        routes.push(RouteSpec {
            hostnames: if i % 7 == 0 {
                vec!["*.example.com".into()]
            } else {
                vec![]
            },
            matches: vec![m],
            key: format!("route{i:02}"),
            value: i,
        });
    }
    RouteTable::new(routes)
}

fn bench(c: &mut Criterion) {
    let t = table();
    let headers = [
        httparse::Header {
            name: "User-Agent",
            value: b"bench/1.0",
        },
        httparse::Header {
            name: "Accept",
            value: b"*/*",
        },
        httparse::Header {
            name: "X-Tenant",
            value: b"t47",
        },
    ];
    // Regex entries sort last; route 46's regex is among the final entries scanned.
    let hit = RequestView {
        host: "api.example.org",
        method: "GET",
        path: "/svc46/items/42",
        query: "a=1&b=2",
        headers: &headers,
    };
    let miss = RequestView {
        path: "/nothing/here",
        ..hit
    };
    assert_eq!(t.lookup(&hit).map(|(v, _)| *v), Some(46));
    assert!(t.lookup(&miss).is_none());

    let mut g = c.benchmark_group("route_match_50");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hit_near_end", |b| {
        b.iter(|| t.lookup(black_box(&hit)).map(|(v, _)| *v))
    });
    g.bench_function("miss", |b| b.iter(|| t.lookup(black_box(&miss)).is_some()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
