//! The request head as the MCP transport needs it, copied once while the head is borrowed.

/// What the relay needs from the request head, copied while the head is borrowed: the values
/// back to back in one buffer (one allocation per request), found in one pass over the headers.
#[derive(Debug, Default)]
pub(crate) struct McpHead {
    bytes: Vec<u8>,
    method: Span,
    host: Span,
    fields: [Option<Span>; FIELDS.len()],
    /// Every `Mcp-Param-*` header (name, value), forwarded as they came on 2026-07-28 requests
    /// (usually none: no allocation then).
    params: Vec<(Span, Span)>,
    /// The request arrived on a loopback address.
    pub local_loopback: bool,
    /// The `traceparent` this request's upstream gets when it is traced here (else the
    /// client's goes on unchanged).
    pub traceparent: Option<Vec<u8>>,
}

/// Offsets of a value in [`McpHead::bytes`].
type Span = (u32, u32);

/// The request headers the relay reads, by index into [`McpHead::fields`]; the first occurrence
/// of each counts.
const FIELDS: [&str; 10] = [
    "accept",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "origin",
    "last-event-id",
    // Only kept when the route passes the client's token through (`backendAuth: passthrough`).
    "authorization",
    // 2026-07-28's mirrored headers.
    "mcp-method",
    "mcp-name",
    // W3C trace context, passed on to 2026-07-28 targets.
    "traceparent",
];
const ACCEPT: usize = 0;
const CONTENT_TYPE: usize = 1;
const VERSION: usize = 2;
const SESSION: usize = 3;
const ORIGIN: usize = 4;
const LAST_EVENT_ID: usize = 5;
const AUTHORIZATION: usize = 6;
const MCP_METHOD: usize = 7;
const MCP_NAME: usize = 8;
const TRACEPARENT: usize = 9;

impl McpHead {
    pub(crate) fn from_request(
        method: &str,
        host: &[u8],
        headers: &[httparse::Header<'_>],
        keep_authorization: bool,
        local_loopback: bool,
    ) -> McpHead {
        let mut found: [Option<&[u8]>; FIELDS.len()] = [None; FIELDS.len()];
        let mut params: Vec<&httparse::Header<'_>> = Vec::new();
        for h in headers {
            if let Some(i) = FIELDS.iter().position(|f| h.name.eq_ignore_ascii_case(f)) {
                found[i].get_or_insert(h.value);
            } else if h.name.len() > 10 && h.name[..10].eq_ignore_ascii_case("mcp-param-") {
                params.push(h);
            }
        }
        if !keep_authorization {
            found[AUTHORIZATION] = None;
        }
        let len = method.len()
            + host.len()
            + found.iter().flatten().map(|v| v.len()).sum::<usize>()
            + params
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        let mut put = |v: &[u8]| {
            let at = bytes.len() as u32;
            bytes.extend_from_slice(v);
            (at, bytes.len() as u32)
        };
        let method = put(method.as_bytes());
        let host = put(host);
        let fields = found.map(|v| v.map(&mut put));
        let params = params
            .iter()
            .map(|h| (put(h.name.as_bytes()), put(h.value)))
            .collect();
        McpHead {
            bytes,
            method,
            host,
            fields,
            params,
            local_loopback,
            traceparent: None,
        }
    }

    /// The `traceparent` for the upstream: this proxy's span when traced here, else the
    /// client's.
    pub(crate) fn traceparent(&self) -> Option<&[u8]> {
        self.traceparent
            .as_deref()
            .or_else(|| self.field(TRACEPARENT))
    }

    fn span(&self, (from, to): Span) -> &[u8] {
        &self.bytes[from as usize..to as usize]
    }

    fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields[i].map(|s| self.span(s))
    }

    fn text(&self, i: usize) -> Option<String> {
        self.field(i)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub(crate) fn method(&self) -> &[u8] {
        self.span(self.method)
    }

    pub(crate) fn host(&self) -> &[u8] {
        self.span(self.host)
    }

    pub(crate) fn accept(&self) -> Option<&[u8]> {
        self.field(ACCEPT)
    }

    pub(crate) fn content_type(&self) -> Option<&[u8]> {
        self.field(CONTENT_TYPE)
    }

    pub(crate) fn version(&self) -> Option<&[u8]> {
        self.field(VERSION)
    }

    pub(crate) fn session(&self) -> Option<String> {
        self.text(SESSION)
    }

    pub(crate) fn origin(&self) -> Option<&[u8]> {
        self.field(ORIGIN)
    }

    pub(crate) fn last_event_id(&self) -> Option<String> {
        self.text(LAST_EVENT_ID)
    }

    /// 2026-07-28's `Mcp-Method`.
    pub(crate) fn mcp_method(&self) -> Option<&[u8]> {
        self.field(MCP_METHOD)
    }

    /// 2026-07-28's `Mcp-Name` (possibly `=?base64?…?=`).
    pub(crate) fn mcp_name(&self) -> Option<&[u8]> {
        self.field(MCP_NAME)
    }

    /// The `Mcp-Param-*` headers, as received.
    pub(crate) fn mcp_params(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.params
            .iter()
            .map(|(n, v)| (self.span(*n), self.span(*v)))
    }

    /// The client's `Authorization` value, when the route passes it through.
    pub(crate) fn authorization(&self) -> Option<String> {
        self.text(AUTHORIZATION)
    }
}

#[cfg(test)]
mod tests {
    use super::McpHead;

    fn h<'a>(name: &'a str, value: &'a [u8]) -> httparse::Header<'a> {
        httparse::Header { name, value }
    }

    #[test]
    fn head_keeps_the_first_of_each_field_in_one_buffer() {
        let hs = [
            h("Accept", b"application/json, text/event-stream"),
            h("MCP-Session-Id", b"00abc"),
            h("mcp-session-id", b"ffdef"),
            h("Authorization", b"Bearer t"),
            h("X-Other", b"x"),
            h("Last-Event-ID", b"r7"),
        ];
        let head = McpHead::from_request("POST", b"localhost:1", &hs, false, true);
        assert_eq!(head.method(), b"POST");
        assert_eq!(head.host(), b"localhost:1");
        assert_eq!(
            head.accept(),
            Some(&b"application/json, text/event-stream"[..])
        );
        assert_eq!(head.session().as_deref(), Some("00abc"));
        assert_eq!(head.last_event_id().as_deref(), Some("r7"));
        assert_eq!(head.content_type(), None);
        assert_eq!(head.origin(), None);
        assert_eq!(head.version(), None);
        // The token is dropped unless the route passes it through.
        assert_eq!(head.authorization(), None);
        let kept = McpHead::from_request("POST", b"h", &hs, true, false);
        assert_eq!(kept.authorization().as_deref(), Some("Bearer t"));
        assert!(!kept.local_loopback);
    }
}
