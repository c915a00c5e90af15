use super::*;

fn parse(buf: &[u8]) -> Result<Option<RequestHead<'_>>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    // The head is Copy and borrows only `buf`, so it outlives the header slots.
    parse_request(buf, &mut headers).map(|r| r.map(|(h, _)| h))
}

fn ok(buf: &[u8]) -> RequestHead<'_> {
    match parse(buf) {
        Ok(Some(h)) => h,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn err(buf: &[u8]) -> H1Error {
    match parse(buf) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[test]
fn simple_get() {
    let buf = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\n\r\nBODY";
    let h = ok(buf);
    assert_eq!(h.method, "GET");
    assert_eq!(h.target, "/a/b?x=1&y");
    assert_eq!((h.path, h.query), ("/a/b", "x=1&y"));
    assert_eq!(h.authority, Some(&b"example.com:8080"[..]));
    assert_eq!(h.version_minor, 1);
    assert_eq!(h.head_len, buf.len() - 4);
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive && !h.expect_continue && !h.upgrade);
}

#[test]
fn returns_headers_in_order() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let (_, hs) = parse_request(buf, &mut slots).unwrap().unwrap();
    assert_eq!(hs.len(), 3);
    assert_eq!(super::super::find_header(hs, "x-a"), Some(&b"1"[..]));
}

#[test]
fn incomplete_until_final_crlf() {
    let buf = b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(parse(&buf[..end]), Ok(None), "prefix {end}");
    }
    assert_eq!(ok(buf).body, BodyKind::Length(2));
}

#[test]
fn post_mcp_with_expect_and_length() {
    let h =
        ok(b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(10));
    assert!(h.expect_continue);
    assert!(h.body.has_body());
    assert!(
        !ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            .body
            .has_body()
    );
}

#[test]
fn expect_ignored_in_http10() {
    assert!(!ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
}

#[test]
fn chunked_body() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
}

#[test]
fn keep_alive_rules() {
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(
        !ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").keep_alive
    );
}

#[test]
fn http10_without_host_has_no_authority() {
    let h = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((h.version_minor, h.authority), (0, None));
}

#[test]
fn upgrade_detection() {
    assert!(
        ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .upgrade
    );
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n").upgrade);
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n").upgrade);
}

#[test]
fn leading_empty_line_is_tolerated() {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    let h = ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.method, "GET");
}

// --- request line ---

#[test]
fn malformed_request_line() {
    assert_eq!(
        err(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::MalformedRequestLine
    );
    assert_eq!(
        err(b"GET /\r\nHost: a\r\n\r\n"),
        H1Error::MalformedRequestLine
    );
    assert_eq!(
        err(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
        H1Error::MalformedRequestLine
    );
    assert_eq!(
        err(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::MalformedRequestLine
    );
}

#[test]
fn invalid_method() {
    assert_eq!(
        err("GÉT / HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes()),
        H1Error::InvalidMethod
    );
    assert_eq!(
        err(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidMethod
    );
    assert_eq!(err(b"\x00GET / HTTP/1.1\r\n\r\n"), H1Error::InvalidMethod);
}

#[test]
fn invalid_target() {
    assert_eq!(
        err(b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err("GET /é HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes()),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err(b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err(b"GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err(b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
    assert_eq!(
        err(b"GET http://u@h/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidTarget
    );
}

#[test]
fn absolute_form() {
    let h = ok(b"GET http://up.example:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.authority, Some(&b"up.example:8080"[..]));
    assert_eq!((h.path, h.query), ("/p/q", "x=1"));
    let h = ok(b"GET HTTPS://up.example HTTP/1.1\r\nHost: up.example\r\n\r\n");
    assert_eq!(
        (h.path, h.query, h.authority),
        ("/", "", Some(&b"up.example"[..]))
    );
    let h = ok(b"GET http://up?q HTTP/1.1\r\nHost: up\r\n\r\n");
    assert_eq!((h.path, h.query), ("/", "q"));
}

#[test]
fn asterisk_form_only_with_options() {
    let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((h.path, h.query), ("*", ""));
    assert_eq!(
        err(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
        H1Error::AsteriskNotOptions
    );
}

#[test]
fn connect_not_supported() {
    let e = err(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::ConnectNotSupported, 501));
}

#[test]
fn versions() {
    let e = err(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::UnsupportedVersion, 505));
    assert_eq!(
        err(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        H1Error::UnsupportedVersion
    );
    assert_eq!(err(b"GET / HTTP/0.9\r\n\r\n"), H1Error::UnsupportedVersion);
    assert_eq!(err(b"GET / HTTP/3"), H1Error::UnsupportedVersion);
    let e = err(b"GET / HTTX/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::InvalidVersion, 400));
    assert_eq!(
        err(b"GET / http/1.1\r\nHost: a\r\n\r\n"),
        H1Error::InvalidVersion
    );
}

#[test]
fn http2_preface_detected_early() {
    let full = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for end in 12..=full.len() {
        let e = err(&full[..end]);
        assert_eq!(e, H1Error::Http2Preface);
        assert!(e.must_close() && e.reason().contains("HTTP/2"));
    }
    assert_eq!(H1Error::Http2Preface.status(), 505);
    // Shorter prefixes are simply incomplete.
    assert_eq!(parse(b"PRI * HTTP/"), Ok(None));
}

// --- head syntax ---

#[test]
fn bare_lf_anywhere_is_rejected() {
    assert_eq!(err(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), H1Error::BareLf);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\n\r\n"), H1Error::BareLf);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), H1Error::BareLf);
    assert_eq!(err(b"GET / HTTP/1.1\nHost: a\n\n"), H1Error::BareLf);
    assert_eq!(err(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1Error::BareLf);
    assert_eq!(H1Error::BareLf.status(), 400);
    // Already while the head is incomplete.
    assert_eq!(err(b"GET / HTTP/1.1\nHost: a"), H1Error::BareLf);
}

#[test]
fn obs_fold_rejected() {
    let e = err(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n");
    assert_eq!(e, H1Error::ObsFold);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tTransfer-Encoding: chunked\r\n\r\n"),
        H1Error::ObsFold
    );
    assert_eq!(err(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), H1Error::ObsFold);
}

#[test]
fn space_before_colon_rejected() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::SpaceBeforeColon, 400));
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
        H1Error::SpaceBeforeColon
    );
}

#[test]
fn invalid_header_name() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n"),
        H1Error::InvalidHeaderName
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"),
        H1Error::InvalidHeaderName
    );
    assert_eq!(
        err("GET / HTTP/1.1\r\nHöst: a\r\n\r\n".as_bytes()),
        H1Error::InvalidHeaderName
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nX a: 1\r\n\r\n"),
        H1Error::InvalidHeaderName
    );
}

#[test]
fn malformed_header_without_colon() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
        H1Error::MalformedHeader
    );
}

#[test]
fn invalid_header_value() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"),
        H1Error::InvalidHeaderValue
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
        H1Error::InvalidHeaderValue
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"),
        H1Error::InvalidHeaderValue
    );
}

// --- limits ---

#[test]
fn head_too_large_complete_and_incomplete() {
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.resize(MAX_HEAD_BYTES + 10, b'x');
    assert_eq!(err(&big), H1Error::HeadTooLarge);
    big.extend_from_slice(b"\r\n\r\n");
    let e = err(&big);
    assert_eq!((e, e.status()), (H1Error::HeadTooLarge, 431));
}

#[test]
fn head_exactly_at_limit_is_accepted() {
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    buf.resize(MAX_HEAD_BYTES - 4, b'x');
    buf.extend_from_slice(b"\r\n\r\n");
    assert_eq!(ok(&buf).head_len, MAX_HEAD_BYTES);
    // A body after a head that fits is not counted against the limit.
    buf.resize(MAX_HEAD_BYTES * 2, b'b');
    assert_eq!(ok(&buf).head_len, MAX_HEAD_BYTES);
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
    buf
}

#[test]
fn too_many_headers() {
    assert!(parse(&with_headers(MAX_HEADERS)).is_ok_and(|h| h.is_some()));
    let e = err(&with_headers(MAX_HEADERS + 1));
    assert_eq!((e, e.status()), (H1Error::TooManyHeaders, 431));
    assert_eq!(
        err(&with_headers(MAX_HEADERS + 50)),
        H1Error::TooManyHeaders
    );
}

// --- Host ---

#[test]
fn missing_host_in_http11() {
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), H1Error::MissingHost);
    // Absolute-form still requires Host in HTTP/1.1.
    assert_eq!(err(b"GET http://a/ HTTP/1.1\r\n\r\n"), H1Error::MissingHost);
}

#[test]
fn duplicate_host() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
        H1Error::DuplicateHost
    );
    assert_eq!(
        err(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
        H1Error::DuplicateHost
    );
}

#[test]
fn duplicate_authorization() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nauthorization: Bearer y\r\n\r\n"),
        H1Error::DuplicateAuthorization
    );
    assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n").is_ok());
}

#[test]
fn invalid_host() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        H1Error::InvalidHost
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"),
        H1Error::InvalidHost
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        H1Error::InvalidHost
    );
    assert!(ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
        .authority
        .is_some());
    // An empty Host is a valid field value (RFC 9112 §3.2).
    assert_eq!(
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").authority,
        Some(&b""[..])
    );
}

// --- framing / smuggling ---

#[test]
fn content_length_with_transfer_encoding() {
    let e = err(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(e, H1Error::ContentLengthWithTransferEncoding);
    assert!(e.must_close() && e.status() == 400);
    // Also when the Content-Length is itself malformed: the smuggling signal wins.
    let e = err(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
    );
    assert_eq!(e, H1Error::ContentLengthWithTransferEncoding);
}

#[test]
fn conflicting_content_length() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::ConflictingContentLength, 400));
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"),
        H1Error::ConflictingContentLength
    );
}

#[test]
fn identical_content_lengths_accepted() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(5));
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 , 7\r\n\r\n").body,
        BodyKind::Length(7)
    );
}

#[test]
fn invalid_content_length() {
    for v in ["-1", "+5", "5a", "0x10", "", "1 2", "5,", ",5", "٣"] {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(err(buf.as_bytes()), H1Error::InvalidContentLength, "{v:?}");
    }
}

#[test]
fn content_length_overflow() {
    let max = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(max.body, BodyKind::Length(u64::MAX));
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n");
    assert_eq!((e, e.status()), (H1Error::ContentLengthOverflow, 400));
}

#[test]
fn transfer_encoding_not_chunked_final() {
    for v in [
        "gzip",
        "chunked, gzip",
        "chunked, chunked",
        "chunked;x=1",
        "identity",
        "",
    ] {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n");
        let e = err(buf.as_bytes());
        assert_eq!(
            (e, e.status(), e.must_close()),
            (H1Error::TransferEncodingNotChunked, 400, true),
            "{v:?}"
        );
    }
    // Split across two headers, chunked twice.
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, H1Error::TransferEncodingNotChunked);
}

#[test]
fn transfer_coding_before_chunked_not_implemented() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(
        (e, e.status(), e.must_close()),
        (H1Error::UnsupportedTransferCoding, 501, true)
    );
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, H1Error::UnsupportedTransferCoding);
}

#[test]
fn transfer_encoding_in_http10() {
    let e = err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        (e, e.status(), e.must_close()),
        (H1Error::TransferEncodingInHttp10, 400, true)
    );
}

#[test]
fn every_error_has_a_reason_and_closes() {
    // Spot-check the mapping used by the error choke point.
    for e in [
        H1Error::BodyTooLarge,
        H1Error::InvalidChunkSize,
        H1Error::InvalidStatus,
    ] {
        assert!(!e.reason().is_empty() && e.must_close());
    }
    assert_eq!(H1Error::BodyTooLarge.status(), 413);
    assert_eq!(
        H1Error::ContentLengthWithTransferEncoding.reason(),
        "both Content-Length and Transfer-Encoding present"
    );
}
