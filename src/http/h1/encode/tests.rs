use super::*;
use crate::http::h1::decode_all;

#[test]
fn status_lines() {
    let mut out = Vec::new();
    write_status_line(&mut out, 200);
    write_status_line(&mut out, 431);
    write_status_line(&mut out, 599);
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nHTTP/1.1 431 Request Header Fields Too Large\r\nHTTP/1.1 599 \r\n"
    );
}

#[test]
fn headers() {
    let mut out = Vec::new();
    write_header(&mut out, "Content-Type", b"application/json");
    assert_eq!(out, b"Content-Type: application/json\r\n");
}

#[test]
fn header_values_cannot_split_the_head() {
    let mut out = Vec::new();
    write_header(&mut out, "X", b"a\r\nSet-Cookie: evil\0");
    assert_eq!(out, b"X: a  Set-Cookie: evil \r\n");
}

#[test]
fn chunks_round_trip_through_the_decoder() {
    let mut out = Vec::new();
    write_chunk(&mut out, b"hello");
    write_chunk(&mut out, b"");
    write_chunk(&mut out, &[b'z'; 300]);
    write_last_chunk(&mut out);
    assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
    assert!(out.ends_with(b"\r\n0\r\n\r\n"));
    let (body, end) = decode_all(&out, u64::MAX, &[]);
    assert_eq!(body.len(), 305);
    assert_eq!(end, Ok(Some(out.len())));
}
