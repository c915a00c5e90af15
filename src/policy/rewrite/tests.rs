use super::*;

fn run(rw: &PathRewrite, m: &PathMatch, path: &str) -> String {
    let mut out = String::new();
    rw.apply(m, path, &mut out);
    out
}

#[test]
fn prefix_rewrite_table() {
    let cases = [
        // (match prefix, rewrite prefix, path, expected)
        ("/foo", "/bar", "/foo/x", "/bar/x"),
        ("/foo", "/bar", "/foo", "/bar"),
        ("/foo", "/bar", "/foo/", "/bar/"),
        ("/foo/", "/bar", "/foo/x", "/bar/x"),
        ("/foo", "/bar/", "/foo/x", "/bar/x"),
        ("/foo", "/", "/foo/x", "/x"),
        ("/foo", "/", "/foo", "/"),
        ("/foo", "", "/foo/x/y", "/x/y"),
        ("/", "/bar", "/x", "/bar/x"),
        ("/", "/bar", "/", "/bar/"),
        ("/api/v1", "/v2", "/api/v1/items/7", "/v2/items/7"),
    ];
    for (m, rw, path, want) in cases {
        let got = run(
            &PathRewrite::Prefix(rw.into()),
            &PathMatch::Prefix(m.into()),
            path,
        );
        assert_eq!(got, want, "match {m} rewrite {rw} path {path}");
    }
}

#[test]
fn prefix_with_non_prefix_match_is_full() {
    let rw = PathRewrite::Prefix("/bar".into());
    assert_eq!(run(&rw, &PathMatch::Exact("/foo".into()), "/foo"), "/bar");
    let re = PathMatch::regex("/f.*").unwrap();
    assert_eq!(run(&rw, &re, "/foo/x"), "/bar");
    // Defensive: a path the prefix does not cover.
    assert_eq!(run(&rw, &PathMatch::Prefix("/foo".into()), "/foox"), "/bar");
}

#[test]
fn full_rewrite_and_append() {
    let rw = PathRewrite::Full("/new".into());
    assert_eq!(
        run(&rw, &PathMatch::Prefix("/old".into()), "/old/x"),
        "/new"
    );
    let mut out = String::from("GET ");
    rw.apply(&PathMatch::Exact("/a".into()), "/a", &mut out);
    assert_eq!(out, "GET /new");
}
