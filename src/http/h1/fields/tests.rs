use super::*;
use httparse::Header;

const HS: &[Header<'static>] = &[
    Header {
        name: "Host",
        value: b"a",
    },
    Header {
        name: "Connection",
        value: b"keep-alive, X-Secret",
    },
    Header {
        name: "connection",
        value: b" ,Upgrade",
    },
];

#[test]
fn find_header_is_case_insensitive() {
    assert_eq!(find_header(HS, "host"), Some(&b"a"[..]));
    assert_eq!(
        find_header(HS, "connection"),
        Some(&b"keep-alive, X-Secret"[..])
    );
    assert_eq!(find_header(HS, "missing"), None);
}

#[test]
fn hop_by_hop() {
    for n in [
        "Connection",
        "KEEP-ALIVE",
        "proxy-connection",
        "TE",
        "Trailer",
        "transfer-encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "proxy-authorization",
    ] {
        assert!(is_hop_by_hop(n), "{n}");
    }
    for n in ["Host", "Content-Length", "Trailers", "Authorization", "tee"] {
        assert!(!is_hop_by_hop(n), "{n}");
    }
}

#[test]
fn connection_listed_names() {
    let tokens: Vec<&[u8]> = connection_tokens(HS).collect();
    assert_eq!(tokens, [&b"keep-alive"[..], b"X-Secret", b"Upgrade"]);
    assert!(is_connection_listed(HS, "x-secret"));
    assert!(!is_connection_listed(HS, "host"));
}

#[test]
fn content_length_folding() {
    assert_eq!(fold_content_length(None, b"42"), Ok(42));
    assert_eq!(fold_content_length(Some(42), b"42, 42"), Ok(42));
    assert_eq!(
        fold_content_length(Some(1), b"42"),
        Err(H1Error::ConflictingContentLength)
    );
    assert_eq!(
        fold_content_length(None, b" "),
        Err(H1Error::InvalidContentLength)
    );
}
