//! HTTP/1.1 encoders: status line, header lines, chunked framing, appended to a reusable
//! `Vec<u8>`.
//!
//! Allocation-free beyond growing `out`, no `format!`. Not here: choosing which headers to send
//! or strip (the proxy does that with `is_hop_by_hop`), or body buffering.

/// Appends one chunk (`<hex size>\r\n<data>\r\n`). Empty `data` writes nothing, since an empty
/// chunk would end the body; use [`write_last_chunk`] for that.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.reserve(hex.len() - i + data.len() + 4);
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and an empty trailer section: `0\r\n\r\n`.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// Appends `HTTP/1.1 <status> <reason>\r\n` with the canonical reason phrase (empty for codes
/// without one). `status` must be a three-digit code; others are written as 500.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    debug_assert!(
        (100..=999).contains(&status),
        "status {status} is not three digits"
    );
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    // Three digits, checked above; each `% 10` fits in a u8.
    out.push(b'0' + (status / 100) as u8);
    out.push(b'0' + (status / 10 % 10) as u8);
    out.push(b'0' + (status % 10) as u8);
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `<name>: <value>\r\n`.
///
/// Values parsed by httparse never contain CR, LF or NUL. Should a caller pass one anyway
/// (config, computed values), each such byte is written as SP rather than letting it split the
/// header: response splitting is not reachable through this function.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    if memchr::memchr3(b'\r', b'\n', b'\0', value).is_none() {
        out.extend_from_slice(value);
    } else {
        out.extend(value.iter().map(|&b| {
            if matches!(b, b'\r' | b'\n' | b'\0') {
                b' '
            } else {
                b
            }
        }));
    }
    out.extend_from_slice(b"\r\n");
}

/// Canonical reason phrase (RFC 9110 §15), or "" for unregistered codes.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
