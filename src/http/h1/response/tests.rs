use super::*;

fn parse(buf: &[u8], head: bool) -> Result<Option<ResponseHead<'_>>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    parse_response(buf, &mut headers, head).map(|r| r.map(|(h, _)| h))
}

fn ok(buf: &[u8]) -> ResponseHead<'_> {
    parse(buf, false).unwrap().unwrap()
}

fn err(buf: &[u8]) -> H1Error {
    parse(buf, false).unwrap_err()
}

#[test]
fn basic_length_response() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: application/json\r\n\r\n";
    let h = ok(buf);
    assert_eq!((h.status, h.reason, h.version_minor), (200, "OK", 1));
    assert_eq!(
        (h.head_len, h.body, h.keep_alive),
        (buf.len(), RespBody::Length(12), true)
    );
}

#[test]
fn incomplete() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(parse(&buf[..end], false), Ok(None), "prefix {end}");
    }
}

#[test]
fn bodiless_statuses_and_head() {
    for s in [
        "100 Continue",
        "101 Switching Protocols",
        "204 No Content",
        "304 Not Modified",
    ] {
        let buf = format!("HTTP/1.1 {s}\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(
            parse(buf.as_bytes(), false).unwrap().unwrap().body,
            RespBody::None,
            "{s}"
        );
    }
    let h = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(h.body, RespBody::None);
    let h = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!((h.body, h.keep_alive), (RespBody::None, true));
}

#[test]
fn chunked_and_until_close() {
    assert_eq!(
        ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").body,
        RespBody::Chunked
    );
    // Transfer codings other than chunked are not decoded, and the client never asked for
    // them (TE is hop-by-hop): the answer is refused (502), not forwarded still coded.
    for te in ["gzip, chunked", "gzip"] {
        let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
        assert_eq!(
            parse_response(raw.as_bytes(), &mut headers, false).err(),
            Some(H1Error::UnsupportedTransferCoding),
            "{te}"
        );
    }
    let h = ok(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
    assert_eq!((h.body, h.keep_alive), (RespBody::UntilClose, false));
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        H1Error::TransferEncodingNotChunked
    );
}

#[test]
fn keep_alive_rules() {
    assert!(!ok(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(
        ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n").keep_alive
    );
}

#[test]
fn missing_reason_phrase() {
    assert_eq!(ok(b"HTTP/1.1 204\r\n\r\n").reason, "");
    assert_eq!(ok(b"HTTP/1.1 204 \r\n\r\n").reason, "");
}

#[test]
fn status_range() {
    assert_eq!(err(b"HTTP/1.1 099 Low\r\n\r\n"), H1Error::InvalidStatus);
    assert_eq!(err(b"HTTP/1.1 600 High\r\n\r\n"), H1Error::InvalidStatus);
    assert_eq!(
        ok(b"HTTP/1.1 599 Edge\r\nContent-Length: 0\r\n\r\n").status,
        599
    );
}

#[test]
fn malformed_status_line() {
    assert_eq!(err(b"HTTP/1.1 20 OK\r\n\r\n"), H1Error::MalformedStatusLine);
    assert_eq!(
        err(b"HTTP/1.1 2000 OK\r\n\r\n"),
        H1Error::MalformedStatusLine
    );
    assert_eq!(
        err(b"HTTP/1.1 200 O\x01K\r\n\r\n"),
        H1Error::MalformedStatusLine
    );
    assert_eq!(err(b"HTTP/2 200\r\n\r\n"), H1Error::UnsupportedVersion);
    assert_eq!(err(b"ICY 200 OK\r\n\r\n"), H1Error::InvalidVersion);
}

#[test]
fn smuggling_and_syntax_rules_apply_to_responses() {
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        H1Error::ContentLengthWithTransferEncoding
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        H1Error::ConflictingContentLength
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n"),
        H1Error::InvalidContentLength
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\nContent-Length: 3\r\n\r\n"),
        H1Error::BareLf
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
        H1Error::ObsFold
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
        H1Error::SpaceBeforeColon
    );
}

#[test]
fn response_head_too_large() {
    let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    big.resize(MAX_HEAD_BYTES + 1, b'x');
    assert_eq!(err(&big), H1Error::HeadTooLarge);
}
