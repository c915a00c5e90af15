use super::*;

fn hdr<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
    httparse::Header {
        name,
        value: value.as_bytes(),
    }
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.to_owned())
}
fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.to_owned())
}
fn regex(p: &str) -> PathMatch {
    PathMatch::regex(p).unwrap()
}

fn m(path: PathMatch) -> RouteMatch {
    RouteMatch::path(path)
}
fn with_method(mut r: RouteMatch, method: &str) -> RouteMatch {
    r.method = Some(method.to_owned());
    r
}
fn with_header(mut r: RouteMatch, name: &str, v: ValueMatch) -> RouteMatch {
    r.headers.push(HeaderMatch::new(name, v));
    r
}
fn with_query(mut r: RouteMatch, name: &str, v: ValueMatch) -> RouteMatch {
    r.query.push(QueryMatch {
        name: name.to_owned(),
        value: v,
    });
    r
}
fn vexact(v: &str) -> ValueMatch {
    ValueMatch::Exact(v.to_owned())
}

fn route(key: &str, hosts: &[&str], matches: Vec<RouteMatch>) -> RouteSpec<String> {
    RouteSpec {
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        matches,
        key: key.to_owned(),
        value: key.to_owned(),
    }
}

struct Req<'a> {
    host: &'a str,
    method: &'a str,
    target: &'a str,
    headers: Vec<httparse::Header<'a>>,
}

fn req<'a>(host: &'a str, method: &'a str, target: &'a str) -> Req<'a> {
    Req {
        host,
        method,
        target,
        headers: Vec::new(),
    }
}

fn lookup<'t>(t: &'t RouteTable<String>, r: &Req<'_>) -> Option<&'t str> {
    let (path, query) = r.target.split_once('?').unwrap_or((r.target, ""));
    let view = RequestView {
        host: r.host,
        method: r.method,
        path,
        query,
        headers: &r.headers,
    };
    t.lookup(&view).map(|(v, _)| v.as_str())
}

/// The precedence table: each row is (routes, request, expected route key).
#[test]
fn precedence_table() {
    type Case<'a> = (&'a str, Vec<RouteSpec<String>>, Req<'a>, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "exact beats prefix",
            vec![
                route("p", &[], vec![m(prefix("/a"))]),
                route("e", &[], vec![m(exact("/a"))]),
            ],
            req("h", "GET", "/a"),
            Some("e"),
        ),
        (
            "prefix beats regex",
            vec![
                route("r", &[], vec![m(regex("/a.*"))]),
                route("p", &[], vec![m(prefix("/a"))]),
            ],
            req("h", "GET", "/a/b"),
            Some("p"),
        ),
        (
            "exact beats longer prefix",
            vec![
                route("p", &[], vec![m(prefix("/api/v1/long"))]),
                route("e", &[], vec![m(exact("/api/v1/long"))]),
            ],
            req("h", "GET", "/api/v1/long"),
            Some("e"),
        ),
        (
            "longest prefix wins",
            vec![
                route("short", &[], vec![m(prefix("/api"))]),
                route("long", &[], vec![m(prefix("/api/v1"))]),
            ],
            req("h", "GET", "/api/v1/x"),
            Some("long"),
        ),
        (
            "longest prefix falls back",
            vec![
                route("short", &[], vec![m(prefix("/api"))]),
                route("long", &[], vec![m(prefix("/api/v1"))]),
            ],
            req("h", "GET", "/api/v2"),
            Some("short"),
        ),
        (
            "longer regex pattern first",
            vec![
                route("r1", &[], vec![m(regex("/.*"))]),
                route("r2", &[], vec![m(regex("/a/.*"))]),
            ],
            req("h", "GET", "/a/b"),
            Some("r2"),
        ),
        (
            "method present first",
            vec![
                route("any", &[], vec![m(prefix("/"))]),
                route("get", &[], vec![with_method(m(prefix("/")), "GET")]),
            ],
            req("h", "GET", "/x"),
            Some("get"),
        ),
        (
            "method mismatch falls through",
            vec![
                route("any", &[], vec![m(prefix("/"))]),
                route("post", &[], vec![with_method(m(prefix("/")), "POST")]),
            ],
            req("h", "GET", "/x"),
            Some("any"),
        ),
        (
            "method is case-sensitive",
            vec![route("get", &[], vec![with_method(m(prefix("/")), "GET")])],
            req("h", "get", "/x"),
            None,
        ),
        (
            "path length beats method",
            vec![
                route("get", &[], vec![with_method(m(prefix("/")), "GET")]),
                route("long", &[], vec![m(prefix("/x"))]),
            ],
            req("h", "GET", "/x"),
            Some("long"),
        ),
        (
            "more query matches first",
            vec![
                route(
                    "q1",
                    &[],
                    vec![with_query(m(prefix("/")), "a", vexact("1"))],
                ),
                route(
                    "q2",
                    &[],
                    vec![with_query(
                        with_query(m(prefix("/")), "a", vexact("1")),
                        "b",
                        vexact("2"),
                    )],
                ),
            ],
            req("h", "GET", "/?a=1&b=2"),
            Some("q2"),
        ),
        (
            "query mismatch falls through",
            vec![
                route(
                    "q1",
                    &[],
                    vec![with_query(m(prefix("/")), "a", vexact("1"))],
                ),
                route(
                    "q2",
                    &[],
                    vec![with_query(
                        with_query(m(prefix("/")), "a", vexact("1")),
                        "b",
                        vexact("2"),
                    )],
                ),
            ],
            req("h", "GET", "/?a=1&b=3"),
            Some("q1"),
        ),
        (
            "route key order is the final tiebreak",
            vec![
                route("b", &[], vec![m(prefix("/"))]),
                route("a", &[], vec![m(prefix("/"))]),
            ],
            req("h", "GET", "/"),
            Some("a"),
        ),
        (
            "exact hostname beats wildcard",
            vec![
                route("wild", &["*.example.com"], vec![m(exact("/a"))]),
                route("exact", &["api.example.com"], vec![m(prefix("/"))]),
            ],
            req("api.example.com", "GET", "/a"),
            Some("exact"),
        ),
        (
            "longer wildcard beats shorter",
            vec![
                route("short", &["*.example.com"], vec![m(exact("/a"))]),
                route("long", &["*.api.example.com"], vec![m(prefix("/"))]),
            ],
            req("x.api.example.com", "GET", "/a"),
            Some("long"),
        ),
        (
            "wildcard beats no hostname",
            vec![
                route("none", &[], vec![m(exact("/a"))]),
                route("wild", &["*.example.com"], vec![m(prefix("/"))]),
            ],
            req("a.b.example.com", "GET", "/a"),
            Some("wild"),
        ),
        (
            "hostname mismatch skips route",
            vec![
                route("none", &[], vec![m(prefix("/"))]),
                route("other", &["other.com"], vec![m(exact("/a"))]),
            ],
            req("example.com", "GET", "/a"),
            Some("none"),
        ),
        (
            "wildcard does not match apex",
            vec![route("wild", &["*.example.com"], vec![m(prefix("/"))])],
            req("example.com", "GET", "/"),
            None,
        ),
        (
            "hostname compare is case-insensitive",
            vec![route("e", &["API.Example.com"], vec![m(prefix("/"))])],
            req("api.EXAMPLE.com", "GET", "/"),
            Some("e"),
        ),
        (
            "hostname falls back when path misses",
            vec![
                route("exact", &["api.example.com"], vec![m(exact("/only"))]),
                route("none", &[], vec![m(prefix("/"))]),
            ],
            req("api.example.com", "GET", "/other"),
            Some("none"),
        ),
        (
            "default match is prefix /",
            vec![route("d", &[], vec![])],
            req("h", "DELETE", "/anything/at/all"),
            Some("d"),
        ),
        (
            "several matches are OR-ed",
            vec![route("or", &[], vec![m(exact("/a")), m(exact("/b"))])],
            req("h", "GET", "/b"),
            Some("or"),
        ),
        (
            "prefix is segment-aware",
            vec![route("p", &[], vec![m(prefix("/hello"))])],
            req("h", "GET", "/helloX"),
            None,
        ),
        (
            "prefix with trailing slash on config",
            vec![route("p", &[], vec![m(prefix("/hello/"))])],
            req("h", "GET", "/hello"),
            Some("p"),
        ),
        (
            "exact compares raw path",
            vec![route("e", &[], vec![m(exact("/a"))])],
            req("h", "GET", "/a/"),
            None,
        ),
        (
            "regex must match whole path",
            vec![route("r", &[], vec![m(regex("/a"))])],
            req("h", "GET", "/a/b"),
            None,
        ),
        (
            "unanchored user regex: leftmost match must span",
            vec![route(
                "r",
                &[],
                vec![m(PathMatch::Regex(regex::Regex::new("/a").unwrap()))],
            )],
            req("h", "GET", "/x/a"),
            None,
        ),
        ("empty table", vec![], req("h", "GET", "/"), None),
    ];
    for (name, routes, r, want) in cases {
        let t = RouteTable::new(routes);
        assert_eq!(lookup(&t, &r), want, "case: {name}");
    }
}

#[test]
fn header_matches_and_count_precedence() {
    let t = RouteTable::new(vec![
        route(
            "h1",
            &[],
            vec![with_header(m(prefix("/")), "X-A", vexact("1"))],
        ),
        route(
            "h2",
            &[],
            vec![with_header(
                with_header(m(prefix("/")), "x-a", vexact("1")),
                "x-b",
                ValueMatch::regex("v[0-9]+").unwrap(),
            )],
        ),
        route("none", &[], vec![m(prefix("/"))]),
    ]);
    let mut r = req("h", "GET", "/");
    r.headers = vec![hdr("x-a", "1"), hdr("X-B", "v12")];
    assert_eq!(lookup(&t, &r), Some("h2"));
    // Regex must match the whole value.
    r.headers = vec![hdr("x-a", "1"), hdr("x-b", "v12x")];
    assert_eq!(lookup(&t, &r), Some("h1"));
    // Multi-value: any line may match.
    r.headers = vec![hdr("X-a", "0"), hdr("x-A", "1")];
    assert_eq!(lookup(&t, &r), Some("h1"));
    r.headers = vec![hdr("x-a", "0")];
    assert_eq!(lookup(&t, &r), Some("none"));
}

#[test]
fn lookup_returns_matched_condition() {
    let t = RouteTable::new(vec![route(
        "or",
        &[],
        vec![m(exact("/a")), m(prefix("/b"))],
    )]);
    let view = RequestView {
        host: "h",
        method: "GET",
        path: "/b/c",
        query: "",
        headers: &[],
    };
    let (v, mm) = t.lookup(&view).unwrap();
    assert_eq!(v, "or");
    assert!(matches!(&mm.path, PathMatch::Prefix(p) if p == "/b"));
    assert_eq!(t.iter().count(), 1);
}

#[test]
fn segment_aware_prefix() {
    let p = prefix("/hello");
    for ok in ["/hello", "/hello/", "/hello/x", "/hello//"] {
        assert!(p.matches(ok), "{ok}");
    }
    for no in ["/helloX", "/hell", "/", "hello"] {
        assert!(!p.matches(no), "{no}");
    }
    let root = prefix("/");
    for ok in ["/", "/x", "/x/y"] {
        assert!(root.matches(ok), "{ok}");
    }
}

#[test]
fn query_parsing() {
    let q = QueryMatch {
        name: "a".into(),
        value: vexact("1"),
    };
    assert!(q.matches("a=1"));
    assert!(q.matches("b=2&a=1"));
    assert!(q.matches("a=0&a=1"));
    assert!(!q.matches("aa=1"));
    assert!(!q.matches("a=11"));
    assert!(!q.matches("A=1"));
    assert!(!q.matches(""));
    let empty = QueryMatch {
        name: "flag".into(),
        value: vexact(""),
    };
    assert!(empty.matches("x=1&&flag"));
    let pairs: Vec<_> = query_pairs("a=1&b&c=x=y").collect();
    assert_eq!(pairs, vec![("a", "1"), ("b", ""), ("c", "x=y")]);
}

#[test]
fn hostname_patterns() {
    assert!(hostname_matches("example.com", "EXAMPLE.com"));
    assert!(!hostname_matches("example.com", "a.example.com"));
    assert!(hostname_matches("*.example.com", "a.example.com"));
    assert!(hostname_matches("*.example.com", "a.b.example.com"));
    assert!(!hostname_matches("*.example.com", "example.com"));
    assert!(!hostname_matches("*.example.com", "aexample.com"));
    assert!(hostname_matches("*", "anything"));
    for (p, h) in [("*.Example.com", "x.example.COM"), ("a.com", "A.COM")] {
        assert_eq!(HostnameMatch::parse(p).matches(h), hostname_matches(p, h));
    }
    let exact = HostnameMatch::parse("a.example.com");
    let long = HostnameMatch::parse("*.a.example.com");
    let short = HostnameMatch::parse("*.com");
    use std::cmp::Ordering::Less;
    assert_eq!(exact.cmp_specificity(&long), Less);
    assert_eq!(long.cmp_specificity(&short), Less);
    assert_eq!(short.cmp_specificity(&HostnameMatch::Any), Less);
}
