//! Building JSON-RPC messages by appending bytes: ids, results and params are raw JSON
//! text inserted as given (the caller's invariant); strings are escaped here.

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `{"jsonrpc":"2.0","id":<raw id or null>,"error":{"code":..,"message":..[,"data":..]}}`.
pub(crate) fn error_object(
    id: Option<&str>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.unwrap_or("null").as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_str(&mut out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.to_string().as_bytes());
    }
    out.extend_from_slice(b"}}");
    out
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result_json>}`; `result_json` is inserted as is.
pub(crate) fn result_object(id: &str, result_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + id.len() + result_json.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result_json);
    out.push(b'}');
    out
}

/// A request with raw `id`; `params_json` is inserted as is.
pub(crate) fn request(id: &str, method: &str, params_json: Option<&[u8]>) -> Vec<u8> {
    build(Some(id), method, params_json)
}

/// A notification (no id); `params_json` is inserted as is.
#[cfg(test)]
pub(crate) fn notification(method: &str, params_json: Option<&[u8]>) -> Vec<u8> {
    build(None, method, params_json)
}

fn build(id: Option<&str>, method: &str, params_json: Option<&[u8]>) -> Vec<u8> {
    let params_len = params_json.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(48 + method.len() + params_len);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"method\":");
    write_json_str(&mut out, method);
    if let Some(p) = params_json {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(p);
    }
    out.push(b'}');
    out
}
