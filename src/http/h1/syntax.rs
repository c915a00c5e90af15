//! Head syntax checks httparse does not make, and the translation of httparse's coarse errors
//! into precise [`H1Error`] variants.
//!
//! httparse tolerates bare LF line endings, so every complete head is scanned here (one memchr
//! pass, ~1 hit per line). httparse's error kinds say *where* parsing failed but not *why*; the
//! diagnosis below re-reads the offending region, only on the error path. Not here: framing
//! (Content-Length / Transfer-Encoding) rules, which live in `fields`.

use memchr::memchr_iter;

use super::H1Error;

/// First bytes of the HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
pub(super) const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// Rejects any LF in `head` that is not preceded by CR.
#[inline]
pub(super) fn check_crlf(head: &[u8]) -> Result<(), H1Error> {
    for i in memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(H1Error::BareLf);
        }
    }
    Ok(())
}

/// Which start line httparse was reading, for the error diagnosis.
#[derive(Copy, Clone)]
pub(super) enum Side {
    Request,
    Response,
}

/// Maps an httparse error on `buf` to the most specific [`H1Error`].
#[cold]
pub(super) fn diagnose(buf: &[u8], err: httparse::Error, side: Side) -> H1Error {
    use httparse::Error as E;
    let (start_line, rest) = split_start_line(buf);
    match (err, side) {
        (E::TooManyHeaders, _) => H1Error::TooManyHeaders,
        (E::HeaderName, _) => diagnose_header_lines(rest).unwrap_or(H1Error::InvalidHeaderName),
        (E::HeaderValue, _) => H1Error::InvalidHeaderValue,
        (E::Token, Side::Request) => diagnose_method_target(start_line),
        (E::Version, Side::Request) => classify_version(request_version_token(start_line)),
        (E::Version, Side::Response) => classify_version(response_version_token(start_line)),
        (E::NewLine, _) => {
            if rest.is_none() || !start_line_plausible(start_line, side) {
                start_line_error(side)
            } else {
                H1Error::MalformedHeader
            }
        }
        (E::Status, Side::Response) => H1Error::MalformedStatusLine,
        _ => start_line_error(side),
    }
}

fn start_line_error(side: Side) -> H1Error {
    match side {
        Side::Request => H1Error::MalformedRequestLine,
        Side::Response => H1Error::MalformedStatusLine,
    }
}

/// Splits off the start line (after leading empty lines, without its line ending). `rest` is
/// `None` when the start line is not terminated within `buf`.
fn split_start_line(mut buf: &[u8]) -> (&[u8], Option<&[u8]>) {
    while let [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] = buf {
        buf = rest;
    }
    match memchr::memchr(b'\n', buf) {
        Some(i) => {
            let line = &buf[..i];
            (
                line.strip_suffix(b"\r").unwrap_or(line),
                Some(&buf[i + 1..]),
            )
        }
        None => (buf, None),
    }
}

/// Whether httparse could have finished the start line, so a `NewLine` error is in the headers.
fn start_line_plausible(line: &[u8], side: Side) -> bool {
    let no_cr = memchr::memchr(b'\r', line).is_none();
    match side {
        Side::Request => no_cr && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")),
        Side::Response => no_cr && line.starts_with(b"HTTP/1."),
    }
}

/// An RFC 9110 `token` (methods, header names): one or more `tchar`s. The one check for
/// the codec, policy compilation and config validation.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

pub(super) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~')
}

fn diagnose_method_target(line: &[u8]) -> H1Error {
    let method_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    if method_end == 0 {
        // Empty method (line starts with SP) is a shape problem; anything else a bad byte.
        return match line.first() {
            None | Some(b' ') => H1Error::MalformedRequestLine,
            Some(_) => H1Error::InvalidMethod,
        };
    }
    match line.get(method_end) {
        None | Some(b'\r') => H1Error::MalformedRequestLine,
        Some(b' ') => {
            let target = &line[method_end + 1..];
            let empty = target.first().is_none_or(|&b| b == b' ');
            if empty || !target.contains(&b' ') {
                H1Error::MalformedRequestLine
            } else {
                H1Error::InvalidTarget
            }
        }
        Some(_) => H1Error::InvalidMethod,
    }
}

fn request_version_token(line: &[u8]) -> &[u8] {
    let mut parts = line.splitn(3, |&b| b == b' ');
    parts.nth(2).unwrap_or(b"")
}

fn response_version_token(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b' ').next().unwrap_or(b"")
}

/// `HTTP/d.d` (or a prefix of it, as httparse fails early on short input) other than 1.0/1.1
/// is a version we do not support (505); anything else is malformed (400).
fn classify_version(token: &[u8]) -> H1Error {
    let Some(nums) = token.strip_prefix(b"HTTP/") else {
        return H1Error::InvalidVersion;
    };
    let well_formed = match nums {
        [a] => a.is_ascii_digit(),
        [a, b'.'] => a.is_ascii_digit(),
        [a, b'.', b] => a.is_ascii_digit() && b.is_ascii_digit(),
        _ => false,
    };
    if well_formed {
        H1Error::UnsupportedVersion
    } else {
        H1Error::InvalidVersion
    }
}

/// Finds the first header line that explains an httparse `HeaderName` error.
fn diagnose_header_lines(rest: Option<&[u8]>) -> Option<H1Error> {
    for raw in rest?.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            return None;
        }
        if let Some(e) = diagnose_header_line(line) {
            return Some(e);
        }
    }
    None
}

fn diagnose_header_line(line: &[u8]) -> Option<H1Error> {
    if matches!(line[0], b' ' | b'\t') {
        return Some(H1Error::ObsFold);
    }
    let name_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    match line.get(name_end) {
        Some(b':') if name_end > 0 => None,
        Some(b' ' | b'\t') if name_end > 0 => {
            let after = &line[name_end..];
            let ws = after
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            if after.get(ws) == Some(&b':') {
                Some(H1Error::SpaceBeforeColon)
            } else {
                Some(H1Error::InvalidHeaderName)
            }
        }
        None => Some(H1Error::MalformedHeader),
        Some(_) => Some(H1Error::InvalidHeaderName),
    }
}
