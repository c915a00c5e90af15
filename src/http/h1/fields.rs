//! Header-field helpers shared by the request and response parsers: lookup, list splitting,
//! hop-by-hop classification, and the Content-Length / Transfer-Encoding framing rules.
//!
//! Pure functions over already-tokenised `httparse::Header`s. Not here: head syntax checks
//! (see `syntax`), and any knowledge of which headers a proxy adds or rewrites.

use httparse::Header;

use super::H1Error;

/// Value of the first header named `lowercase_name` (compared case-insensitively).
#[inline]
pub(crate) fn find_header<'b>(headers: &[Header<'b>], lowercase_name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(lowercase_name))
        .map(|h| h.value)
}

/// Whether `name` is a hop-by-hop header that a proxy must not forward (RFC 9110 §7.6.1),
/// case-insensitively. Headers listed in `Connection` are hop-by-hop too: see
/// [`connection_tokens`] and [`is_connection_listed`].
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    ];
    HOP.iter()
        .any(|h| h.len() == name.len() && h.eq_ignore_ascii_case(name))
}

/// Comma-separated list elements of a field value, with surrounding SP/HTAB trimmed and empty
/// elements skipped (RFC 9110 §5.6.1).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Every token listed in every `Connection` header, in order (not lowercased).
pub(crate) fn connection_tokens<'a, 'b: 'a>(
    headers: &'a [Header<'b>],
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_elements(h.value))
}

/// Whether `name` is listed in a `Connection` header (so must not be forwarded).
pub(crate) fn is_connection_listed(headers: &[Header<'_>], name: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Folds one Content-Length header value into `acc` (the value agreed so far).
///
/// A list (`5, 5`) or several headers are accepted only when every element is identical
/// (RFC 9112 §6.3 item 5); differing values, empty elements and non-digits are errors.
pub(super) fn fold_content_length(acc: Option<u64>, value: &[u8]) -> Result<u64, H1Error> {
    let mut acc = acc;
    for elem in value.split(|&b| b == b',') {
        let n = parse_decimal(trim_ows(elem))?;
        match acc {
            Some(prev) if prev != n => return Err(H1Error::ConflictingContentLength),
            _ => acc = Some(n),
        }
    }
    // `split` always yields at least one element, so `acc` is set here.
    acc.ok_or(H1Error::InvalidContentLength)
}

fn parse_decimal(digits: &[u8]) -> Result<u64, H1Error> {
    if digits.is_empty() {
        return Err(H1Error::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(H1Error::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(H1Error::ContentLengthOverflow)?;
    }
    Ok(n)
}

/// What the Transfer-Encoding headers of a message amount to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum TeVerdict {
    /// Exactly one coding, `chunked`.
    Chunked,
    /// `chunked` is final but other codings precede it (`gzip, chunked`).
    ChunkedAfterOthers,
    /// Final coding is something other than `chunked`.
    NotChunkedFinal,
    /// `chunked` applied more than once, or an empty list.
    Malformed,
}

/// Classifies the combined list of all Transfer-Encoding header values.
pub(super) fn transfer_encoding(headers: &[Header<'_>]) -> TeVerdict {
    let mut count = 0usize;
    let mut chunked_seen = 0usize;
    let mut last_chunked = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        for coding in list_elements(h.value) {
            count += 1;
            last_chunked = coding.eq_ignore_ascii_case(b"chunked");
            chunked_seen += usize::from(last_chunked);
        }
    }
    match (last_chunked, chunked_seen, count) {
        (_, _, 0) => TeVerdict::Malformed,
        (_, 2.., _) => TeVerdict::Malformed,
        (true, _, 1) => TeVerdict::Chunked,
        (true, _, _) => TeVerdict::ChunkedAfterOthers,
        (false, _, _) => TeVerdict::NotChunkedFinal,
    }
}

#[cfg(test)]
mod tests;
