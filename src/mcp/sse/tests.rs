use super::*;

fn ev(id: Option<&str>, event: Option<&str>, data: &str, retry: Option<u64>) -> OwnedEvent {
    OwnedEvent {
        id: id.map(Into::into),
        event: event.map(Into::into),
        data: data.into(),
        retry,
    }
}

fn parse_chunks(chunks: &[&[u8]], max: usize) -> (Vec<OwnedEvent>, usize) {
    let mut p = SseParser::new(max);
    let (mut out, mut errs) = (Vec::new(), 0);
    for c in chunks {
        errs += usize::from(p.feed(c).is_err());
        out.extend(std::iter::from_fn(|| p.next_event()));
    }
    (out, errs)
}

fn parse(input: &[u8]) -> Vec<OwnedEvent> {
    parse_chunks(&[input], 1 << 20).0
}

/// Every split into two pieces, and one byte at a time, gives the same events.
fn parse_every_split(input: &[u8]) -> Vec<OwnedEvent> {
    let whole = parse(input);
    for at in 0..=input.len() {
        assert_eq!(
            parse_chunks(&[&input[..at], &input[at..]], 1 << 20).0,
            whole,
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(parse_chunks(&bytes, 1 << 20).0, whole, "bytewise");
    whole
}

const STREAM: &[u8] = b"\xEF\xBB\xBF: priming comment\nid: 1\ndata:\n\nevent: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\ndata:  \"id\":1}\n\nretry: 3000\n\ndata\n\nfoo: bar\n\n";

#[test]
fn lf_stream_at_every_split() {
    let got = parse_every_split(STREAM);
    assert_eq!(
        got,
        vec![
            ev(Some("1"), None, "", None),
            ev(
                Some("2"),
                Some("message"),
                "{\"jsonrpc\":\"2.0\",\n \"id\":1}",
                None
            ),
            ev(None, None, "", Some(3000)),
            ev(None, None, "", None),
        ]
    );
}

#[test]
fn crlf_and_cr_endings_at_every_split() {
    let lf = parse(STREAM);
    let crlf = String::from_utf8_lossy(STREAM).replace('\n', "\r\n");
    assert_eq!(parse_every_split(crlf.as_bytes()), lf);
    let cr = String::from_utf8_lossy(STREAM).replace('\n', "\r");
    assert_eq!(parse_every_split(cr.as_bytes()), lf);
    // mixed, with a CR at a chunk boundary followed by data (not LF)
    let mixed = b"data: a\r\rdata: b\r\n\ndata: c\n\r";
    assert_eq!(
        parse_every_split(mixed),
        vec![
            ev(None, None, "a", None),
            ev(None, None, "b", None),
            ev(None, None, "c", None)
        ]
    );
}

#[test]
fn fields_and_edge_cases() {
    let got = parse_every_split(
        b"data:no space\ndata:  two spaces\nid\nretry: 12x\nretry:7\nevent:\n\nid: a\0b\ndata: x\n\n",
    );
    assert_eq!(
        got,
        vec![
            ev(Some(""), Some(""), "no space\n two spaces", Some(7)),
            ev(None, None, "x", None),
        ]
    );
    // only comments: nothing; an unterminated event is not delivered
    assert!(parse(b": a\n: b\n\n:c\n\ndata: pending\n").is_empty());
    // a BOM only at the very start
    assert_eq!(parse(b"\xEF\xBB\xBFdata: x\n\n")[0].data, "x");
    assert!(
        parse(b"data: x\n\n\xEF\xBB\xBFdata: y\n\n").len() == 1,
        "BOM later is a bad field"
    );
    // partial BOM then something else
    assert_eq!(parse_every_split(b"\xEFdata: x\n\ndata: y\n\n").len(), 1);
    // invalid UTF-8 is replaced
    assert_eq!(parse(b"data: \xff\n\n")[0].data, "\u{fffd}");
    // retry overflow is ignored
    assert_eq!(
        parse(b"retry: 99999999999999999999999\ndata: x\n\n")[0].retry,
        None
    );
}

#[test]
fn last_event_id_persists() {
    let mut p = SseParser::new(1024);
    p.feed(b"id: 5\ndata: a\n\ndata: b\n\n").unwrap();
    assert_eq!(p.next_event().unwrap().id.as_deref(), Some("5"));
    assert_eq!(p.next_event().unwrap().id, None);
    assert_eq!(p.last_event_id(), "5");
    p.feed(b"id:\n\n").unwrap();
    assert_eq!(p.last_event_id(), "");
}

#[test]
fn oversized_event_is_dropped_and_parsing_resumes() {
    let input = b"data: ok1\n\ndata: 0123456789\ndata: 0123456789\nid: 9\n\ndata: ok2\n\n";
    for at in 0..=input.len() {
        let (events, errs) = parse_chunks(&[&input[..at], &input[at..]], 16);
        assert_eq!(errs, 1, "split at {at}");
        assert_eq!(
            events,
            vec![ev(None, None, "ok1", None), ev(None, None, "ok2", None)]
        );
    }
    // one never-ending line is bounded too
    let mut p = SseParser::new(16);
    assert!(p.feed(&[b'a'; 10]).is_ok());
    assert_eq!(p.feed(&[b'a'; 10]), Err(SseError::EventTooLarge));
    assert!(p.feed(&[b'a'; 1000]).is_ok(), "reported once");
    p.feed(b"\n\ndata: z\n\n").unwrap();
    assert_eq!(p.next_event().unwrap().data, "z");
    // exactly at the limit: "data: " is 6 bytes of line, data buffer 4 + "\n"
    let (events, errs) = parse_chunks(&[b"data: abcd\n\n"], 10);
    assert_eq!((events.len(), errs), (1, 0));
}

#[test]
fn writers() {
    let mut out = Vec::new();
    write_event(&mut out, Some("s1-4"), Some("message"), b"{\"a\":1}");
    assert_eq!(out, b"id: s1-4\nevent: message\ndata: {\"a\":1}\n\n");
    out.clear();
    write_event(&mut out, Some("x\ny"), None, b"l1\r\nl2\rl3\n");
    assert_eq!(out, b"id: xy\ndata: l1\ndata: l2\ndata: l3\ndata:\n\n");
    assert_eq!(
        parse(&out),
        vec![ev(Some("xy"), None, "l1\nl2\nl3\n", None)]
    );
    out.clear();
    write_event(&mut out, Some("0"), None, b"");
    assert_eq!(out, b"id: 0\ndata:\n\n");
    assert_eq!(parse(&out), vec![ev(Some("0"), None, "", None)]);
    out.clear();
    write_comment(&mut out, "keep-alive");
    write_retry(&mut out, 1500);
    assert_eq!(out, b":keep-alive\n\nretry: 1500\n\n");
    assert_eq!(parse(&out), vec![ev(None, None, "", Some(1500))]);
    let owned = ev(Some("i"), None, "d", None);
    assert_eq!(owned.as_event().data, "d");
}

#[test]
fn fuzz_entry_smoke() {
    for s in [
        STREAM,
        b"data: a\r",
        b"\r\n\r\n",
        b"\xEF\xBB",
        b"id: \0\n\n",
        &[b'x'; 200][..],
    ] {
        for cut in 0..=s.len() {
            crate::mcp::fuzz_sse(&s[..cut]);
        }
    }
}
