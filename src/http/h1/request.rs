//! Request-head parsing: httparse tokenises, this module enforces what a security-sensitive
//! edge proxy needs on top (CRLF only, limits, Host rules, unambiguous body framing).
//!
//! Zero-copy: every string in [`RequestHead`] borrows the caller's read buffer. Not here: body
//! decoding (see `chunked`), routing, or anything about authorization.

use httparse::{Header, Status};

use super::fields::{fold_content_length, list_elements, transfer_encoding, TeVerdict};
use super::syntax::{check_crlf, diagnose, Side, H2_PREFACE_START};
use super::target::{is_valid_host, split_target};
use super::{H1Error, MAX_HEADERS, MAX_HEAD_BYTES};

/// How the request body is delimited.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: no body.
    None,
    /// `Content-Length: n` (`Length(0)` is kept distinct from `None`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl BodyKind {
    /// Whether body bytes may follow the head.
    pub fn has_body(self) -> bool {
        !matches!(self, BodyKind::None | BodyKind::Length(0))
    }
}

/// A validated request head, borrowed from the read buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    /// The request target exactly as sent.
    pub target: &'b str,
    /// Path without the query; for absolute-form the path part (`/` if empty); `*` for
    /// `OPTIONS *`. As sent: not normalised (see [`normalize_path`](super::normalize_path),
    /// which `dispatch` applies before routing).
    pub path: &'b str,
    /// Query without the `?`; empty if none.
    pub query: &'b str,
    /// Authority of an absolute-form target, else the Host value (`None` only for HTTP/1.0
    /// without Host).
    pub authority: Option<&'b [u8]>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Length of the head including the final CRLFCRLF; the body starts here.
    pub head_len: usize,
    pub body: BodyKind,
    /// Whether the connection may serve another request after this one (HTTP/1.1: unless
    /// `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (ignored for HTTP/1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// The client asked to switch protocols: an `Upgrade` header or a `Connection: upgrade`
    /// token. Portcullis does not tunnel; the caller decides what to answer.
    pub upgrade: bool,
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)`: the head is incomplete; read more and call again with the whole buffer. Pass
/// `MAX_HEADERS + 1` slots in `headers` so that "too many" is detected rather than truncated.
/// The returned headers are the ones parsed, in order, duplicates included.
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Option<(RequestHead<'b>, &'h [Header<'b>])>, H1Error> {
    if buf.starts_with(H2_PREFACE_START) {
        return Err(H1Error::Http2Preface);
    }
    if buf.starts_with(&[0x16, 0x03]) {
        return Err(H1Error::TlsOnPlainPort);
    }
    // Never look past the limit: a head that is not complete within it is too large.
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(window) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(H1Error::HeadTooLarge),
        Ok(Status::Partial) => {
            // Refuse a bare LF now rather than waiting for a head that will be refused anyway.
            check_crlf(window)?;
            return Ok(None);
        }
        Err(e) => return Err(diagnose(window, e, Side::Request)),
    };
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let headers: &'h [Header<'b>] = headers;
    // httparse fills all three on Complete.
    let (Some(method), Some(target), Some(version_minor)) = (method, path, version) else {
        return Err(H1Error::MalformedRequestLine);
    };
    check_crlf(&buf[..head_len])?;
    if headers.len() > MAX_HEADERS {
        return Err(H1Error::TooManyHeaders);
    }
    let t = split_target(method, target)?;
    let s = scan_headers(headers);
    if s.host_count > 1 {
        return Err(H1Error::DuplicateHost);
    }
    if s.authorization_count > 1 {
        return Err(H1Error::DuplicateAuthorization);
    }

    let body = request_body(&s, version_minor, headers)?;
    if s.host.is_none() && version_minor == 1 {
        return Err(H1Error::MissingHost);
    }
    if s.host.is_some_and(|h| !is_valid_host(h)) {
        return Err(H1Error::InvalidHost);
    }
    let keep_alive = match version_minor {
        1 => !s.conn_close,
        _ => s.conn_keep_alive && !s.conn_close,
    };
    let head = RequestHead {
        method,
        target,
        path: t.path,
        query: t.query,
        authority: t.authority.or(s.host),
        version_minor,
        head_len,
        body,
        keep_alive,
        expect_continue: s.expect_continue && version_minor == 1,
        upgrade: s.conn_upgrade || s.upgrade_header,
    };
    Ok(Some((head, headers)))
}

/// What one pass over the headers found. Content-Length errors are deferred so that the
/// CL+TE smuggling signal wins over a malformed CL.
#[derive(Default)]
struct Scan<'b> {
    host: Option<&'b [u8]>,
    host_count: usize,
    authorization_count: usize,
    content_length: Option<Result<u64, H1Error>>,
    has_te: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    upgrade_header: bool,
    expect_continue: bool,
}

fn scan_headers<'b>(headers: &[Header<'b>]) -> Scan<'b> {
    let mut s = Scan::default();
    for h in headers {
        // Dispatch on length first: most headers are rejected by one integer compare.
        let name = h.name;
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                s.host_count += 1;
                s.host = Some(h.value);
            }
            13 if name.eq_ignore_ascii_case("authorization") => s.authorization_count += 1,
            14 if name.eq_ignore_ascii_case("content-length") => {
                s.content_length = Some(match s.content_length {
                    None => fold_content_length(None, h.value),
                    Some(Ok(prev)) => fold_content_length(Some(prev), h.value),
                    Some(Err(e)) => Err(e),
                });
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => s.has_te = true,
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in list_elements(h.value) {
                    s.conn_close |= token.eq_ignore_ascii_case(b"close");
                    s.conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    s.conn_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                }
            }
            7 if name.eq_ignore_ascii_case("upgrade") => s.upgrade_header = true,
            6 if name.eq_ignore_ascii_case("expect") => {
                s.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
    }
    s
}

/// RFC 9112 §6.1–6.3 for requests, strictly: anything ambiguous is an error and closes.
fn request_body(
    s: &Scan<'_>,
    version_minor: u8,
    headers: &[Header<'_>],
) -> Result<BodyKind, H1Error> {
    if s.has_te {
        if s.content_length.is_some() {
            return Err(H1Error::ContentLengthWithTransferEncoding);
        }
        if version_minor == 0 {
            return Err(H1Error::TransferEncodingInHttp10);
        }
        return match transfer_encoding(headers) {
            TeVerdict::Chunked => Ok(BodyKind::Chunked),
            TeVerdict::ChunkedAfterOthers => Err(H1Error::UnsupportedTransferCoding),
            TeVerdict::NotChunkedFinal | TeVerdict::Malformed => {
                Err(H1Error::TransferEncodingNotChunked)
            }
        };
    }
    match s.content_length {
        Some(cl) => cl.map(BodyKind::Length),
        None => Ok(BodyKind::None),
    }
}

#[cfg(test)]
mod tests;
