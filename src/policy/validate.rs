//! Byte-level validity checks (RFC 9110 tokens and field values) used when compiling
//! policies, so nothing invalid is ever rendered into a response head.
//! Does not: normalise or repair values — invalid input is a config error.

pub(crate) use crate::http::h1::is_token;

/// RFC 9110 `field-value`: visible ASCII, obs-text, SP and HTAB; no CR, LF or NUL.
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// Appends `name: value\r\n`.
pub(crate) fn push_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
