use std::borrow::Cow;

use super::{fuzz_path, normalize_path, reference_normalize};
use crate::http::h1::H1Error;

fn norm(p: &str) -> String {
    normalize_path(p)
        .unwrap_or_else(|e| panic!("{p:?}: {e}"))
        .into_owned()
}

fn refused(p: &str) -> H1Error {
    normalize_path(p).expect_err(p)
}

#[test]
fn normal_paths_are_borrowed_without_allocating() {
    for p in [
        "/",
        "/mcp",
        "/a/b/c",
        "/a/b/",
        "/.well-known/oauth-protected-resource/mcp",
        "/a.b/c..d/...",
        "/a/.b/..c",
        "//a//b",
        "/~user/x-y_z",
    ] {
        assert!(
            matches!(normalize_path(p), Ok(Cow::Borrowed(q)) if q == p),
            "{p:?}"
        );
    }
}

#[test]
fn rfc3986_5_2_4_examples() {
    // §5.2.4's two worked examples, and the §5.4 "abnormal" ones rooted at `/`.
    assert_eq!(norm("/a/b/c/./../../g"), "/a/g");
    assert_eq!(norm("/mid/content=5/../6"), "/mid/6");
    assert_eq!(norm("/b/c/./g"), "/b/c/g");
    assert_eq!(norm("/b/c/."), "/b/c/");
    assert_eq!(norm("/b/c/./"), "/b/c/");
    assert_eq!(norm("/b/c/.."), "/b/");
    assert_eq!(norm("/b/c/../"), "/b/");
    assert_eq!(norm("/b/c/../g"), "/b/g");
    assert_eq!(norm("/b/c/../.."), "/");
    assert_eq!(norm("/b/c/../../g"), "/g");
    assert_eq!(norm("/b/c/g/./h"), "/b/c/g/h");
    assert_eq!(norm("/b/c/g/../h"), "/b/c/h");
}

#[test]
fn dot_dot_above_the_root_stays_at_the_root() {
    assert_eq!(norm("/.."), "/");
    assert_eq!(norm("/../"), "/");
    assert_eq!(norm("/../../../etc/passwd"), "/etc/passwd");
    assert_eq!(norm("/a/../../b"), "/b");
    assert_eq!(norm("/."), "/");
    assert_eq!(norm("/./"), "/");
    assert_eq!(norm("/./api/secret"), "/api/secret");
}

#[test]
fn the_issue_s_paths_leave_the_echo_prefix() {
    for p in [
        "/echo/../api/secret",
        "/echo/%2e%2e/api/secret",
        "/echo/%2E%2E/api/secret",
        "/echo/.%2e/api/secret",
        "/echo/%2e./api/secret",
        "/echo/./../api/secret",
        "/echo/x/../../api/secret",
        "/echo/%2e/../api/secret",
    ] {
        assert_eq!(norm(p), "/api/secret", "{p:?}");
    }
}

#[test]
fn empty_segments_are_kept() {
    // merge_slashes is off (agentgateway's and Envoy's default): `//` is a segment of its own.
    assert_eq!(norm("//a//b/"), "//a//b/");
    assert_eq!(norm("//a/./b"), "//a/b");
    // `..` removes the empty segment before it, as §5.2.4 does.
    assert_eq!(norm("/a//../b"), "/a/b");
    assert_eq!(norm("//.."), "/");
}

#[test]
fn unreserved_escapes_are_decoded_others_uppercased() {
    assert_eq!(norm("/%7Euser/%41%62%2D%5f%2e%30"), "/~user/Ab-_.0");
    assert_eq!(norm("/a%3ab/%3F%20%c3%a9"), "/a%3Ab/%3F%20%C3%A9");
    // `%25` stays an escape: no double decoding into `%2e`.
    assert_eq!(norm("/%252e%252e/x"), "/%252e%252e/x");
    assert_eq!(norm("/%2e%2e%2e"), "/...");
    assert_eq!(norm("/%2ex"), "/.x");
}

#[test]
fn separators_nul_and_bad_escapes_are_refused() {
    for p in [
        "/echo/..%2fapi",
        "/echo%2F..%2Fapi",
        "/a%5cb",
        "/a%5C..%5Capi",
    ] {
        assert_eq!(refused(p), H1Error::EncodedPathSeparator, "{p:?}");
    }
    for p in ["/echo\\..\\api", "/a\\", "/\\"] {
        assert_eq!(refused(p), H1Error::BackslashInPath, "{p:?}");
    }
    assert_eq!(refused("/a%00b"), H1Error::EncodedNul);
    for p in ["/%", "/a%2", "/%zz", "/%g0", "/%0g/", "/%%41"] {
        assert_eq!(refused(p), H1Error::InvalidPercentEncoding, "{p:?}");
    }
    for p in [
        "/echo/..;/api",
        "/echo/..;x=1/api",
        "/a/.;",
        "/%2e%2E;/x",
        "/..;",
    ] {
        assert_eq!(refused(p), H1Error::DotSegmentParameters, "{p:?}");
    }
    // Parameters on other segments, and three dots, are ordinary.
    for p in ["/a;b/c", "/...;/x", "/a/..b;/c"] {
        assert!(normalize_path(p).is_ok(), "{p:?}");
    }
    assert_eq!(refused("a/b"), H1Error::InvalidTarget);
    assert_eq!(refused(""), H1Error::InvalidTarget);
    for e in [
        H1Error::EncodedPathSeparator,
        H1Error::BackslashInPath,
        H1Error::EncodedNul,
        H1Error::InvalidPercentEncoding,
        H1Error::DotSegmentParameters,
    ] {
        assert_eq!(e.status(), 400);
        assert!(e.reason().contains("request path"), "{e:?}");
    }
}

#[test]
fn non_ascii_is_kept_as_is() {
    // The h1 parser refuses non-ASCII targets; the normaliser still must not corrupt them.
    assert_eq!(norm("/é/../ü"), "/ü");
}

/// Every path up to length 7 over an alphabet that reaches all the interesting states agrees
/// with the literal §5.2.4 algorithm and keeps the fuzz invariants.
#[test]
fn agrees_with_the_rfc_algorithm_exhaustively() {
    const ALPHABET: &[u8] = b"/.a%2e";
    let mut buf = vec![b'/'];
    fn walk(buf: &mut Vec<u8>, depth: usize) {
        fuzz_path(buf);
        if depth == 0 {
            return;
        }
        for &c in ALPHABET {
            buf.push(c);
            walk(buf, depth - 1);
            buf.pop();
        }
    }
    walk(&mut buf, 6);
    assert_eq!(reference_normalize("/a/./b/../c").unwrap(), "/a/c");
}

#[test]
fn fuzz_entry_point_takes_anything() {
    for d in [
        &b""[..],
        b"x",
        b"/",
        b"\xff/",
        b"/%",
        b"/%2f",
        b"/\\",
        b"/a/%2e%2E/./b/",
    ] {
        fuzz_path(d);
    }
}
