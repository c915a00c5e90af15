//! Upstream response-head parsing, with the same syntax strictness as requests.
//!
//! Any error here means the upstream misbehaved: the caller answers its client 502 and drops
//! the upstream connection. Not here: rewriting headers for the client (see `encode`).

use httparse::{Header, Status};

use super::fields::{fold_content_length, list_elements, transfer_encoding, TeVerdict};
use super::syntax::{check_crlf, diagnose, Side};
use super::{H1Error, MAX_HEADERS, MAX_HEAD_BYTES};

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RespBody {
    /// 1xx, 204, 304, or the answer to HEAD.
    None,
    Length(u64),
    /// Transfer-Encoding ending in `chunked` (earlier codings pass through untouched).
    Chunked,
    /// Neither Content-Length nor chunked: the body ends when the upstream closes.
    UntilClose,
}

/// A validated response head, borrowed from the read buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead<'b> {
    pub status: u16,
    /// Reason phrase; empty if absent or not ASCII.
    pub reason: &'b str,
    pub version_minor: u8,
    pub head_len: usize,
    pub body: RespBody,
    /// Whether the upstream connection may be reused after this response. Always false for
    /// [`RespBody::UntilClose`].
    pub keep_alive: bool,
}

/// Parses an upstream response head. `request_was_head` must be true when answering HEAD.
///
/// `Ok(None)`: incomplete. A 1xx head is returned like any other (body `None`); the caller
/// reads the next head after it.
pub(crate) fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    request_was_head: bool,
) -> Result<Option<(ResponseHead<'b>, &'h [Header<'b>])>, H1Error> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut resp = httparse::Response::new(headers);
    let head_len = match resp.parse(window) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(H1Error::HeadTooLarge),
        Ok(Status::Partial) => {
            // Refuse a bare LF now rather than waiting for a head that will be refused anyway.
            check_crlf(window)?;
            return Ok(None);
        }
        Err(e) => return Err(diagnose(window, e, Side::Response)),
    };
    let httparse::Response {
        version,
        code,
        reason,
        headers,
    } = resp;
    let headers: &'h [Header<'b>] = headers;
    let (Some(version_minor), Some(status)) = (version, code) else {
        return Err(H1Error::MalformedStatusLine);
    };
    if !(100..=599).contains(&status) {
        return Err(H1Error::InvalidStatus);
    }
    check_crlf(&buf[..head_len])?;
    if headers.len() > MAX_HEADERS {
        return Err(H1Error::TooManyHeaders);
    }

    let mut content_length: Option<Result<u64, H1Error>> = None;
    let (mut has_te, mut close, mut keep_alive_token) = (false, false, false);
    for h in headers {
        let name = h.name;
        match name.len() {
            14 if name.eq_ignore_ascii_case("content-length") => {
                content_length = Some(match content_length {
                    None => fold_content_length(None, h.value),
                    Some(Ok(prev)) => fold_content_length(Some(prev), h.value),
                    Some(Err(e)) => Err(e),
                });
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => has_te = true,
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in list_elements(h.value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
    }
    if has_te && content_length.is_some() {
        return Err(H1Error::ContentLengthWithTransferEncoding);
    }
    let length = content_length.transpose()?;

    let bodiless = request_was_head || status < 200 || status == 204 || status == 304;
    let body = if bodiless {
        RespBody::None
    } else if has_te {
        match transfer_encoding(headers) {
            TeVerdict::Chunked => RespBody::Chunked,
            // `gzip, chunked`: a transfer coding the client never asked for (TE is hop-by-hop
            // and not forwarded) and that the proxy does not decode.
            // So is `gzip` alone (a body delimited by the close, still gzip-coded).
            TeVerdict::ChunkedAfterOthers | TeVerdict::NotChunkedFinal => {
                return Err(H1Error::UnsupportedTransferCoding)
            }
            TeVerdict::Malformed => return Err(H1Error::TransferEncodingNotChunked),
        }
    } else {
        length.map_or(RespBody::UntilClose, RespBody::Length)
    };
    let persistent = match version_minor {
        1 => !close,
        _ => keep_alive_token && !close,
    };
    let head = ResponseHead {
        status,
        reason: reason.unwrap_or(""),
        version_minor,
        head_len,
        body,
        keep_alive: persistent && body != RespBody::UntilClose,
    };
    Ok(Some((head, headers)))
}

#[cfg(test)]
mod tests;
