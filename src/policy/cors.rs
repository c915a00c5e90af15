//! CORS with agentgateway's current (HEAD) semantics: preflight = `OPTIONS` + `Origin` +
//! non-empty `Access-Control-Request-Method`, answered locally with 200 whether or not the
//! origin is allowed; origins matched as scheme/host/port with default ports normalised and
//! `*` host globs; wildcard allow-methods/-headers echo the request (or `*` without
//! credentials); allow-credentials and expose-headers on preflight too.
//!
//! Owns: compiling a [`CorsSpec`] into pre-rendered header lines and writing them.
//! Does not: build the status line or body, decide *when* CORS runs relative to auth (the
//! caller runs it before authn/authz per HEAD), or allocate per request beyond growing `out`.
//! Deliberate additions over agentgateway: `Vary` lines, and `Access-Control-Allow-Origin: *`
//! (instead of echoing) when `allowOrigins` is `*` and credentials are off.

mod origin;

#[cfg(test)]
mod tests;

use std::time::Duration;

use origin::OriginPattern;

use super::validate::{is_token, push_line};

const ACAO: &str = "Access-Control-Allow-Origin";
const ACAC: &str = "Access-Control-Allow-Credentials";
const ACAM: &str = "Access-Control-Allow-Methods";
const ACAH: &str = "Access-Control-Allow-Headers";
const ACEH: &str = "Access-Control-Expose-Headers";
const ACMA: &str = "Access-Control-Max-Age";

/// The `cors` route policy as configured (agentgateway field names, camelCase in YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSpec {
    pub allow_credentials: bool,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_origins: Vec<String>,
    pub expose_headers: Vec<String>,
    /// Emitted as whole seconds.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Origins {
    /// Empty `allowOrigins`: no origin is allowed.
    None,
    /// `allowOrigins` contains `*`: every origin string is allowed.
    Any,
    List(Vec<OriginPattern>),
}

/// Allow-methods / allow-headers for preflight.
#[derive(Debug, Clone)]
enum Allow {
    None,
    /// Echo the request's `Access-Control-Request-*`, or `*` without credentials.
    Wildcard,
    /// The full pre-rendered line.
    Line(Vec<u8>),
}

/// A compiled CORS policy; immutable and shareable across workers.
#[derive(Debug, Clone)]
pub struct Cors {
    credentials: bool,
    origins: Origins,
    methods: Allow,
    headers: Allow,
    expose_headers: Vec<String>,
    /// `Vary` for preflight answers from an allowed origin (may be empty).
    preflight_vary: Vec<u8>,
    /// Max-age, allow-credentials and expose-headers lines for preflight.
    preflight_tail: Vec<u8>,
    /// Allow-credentials and expose-headers lines for actual responses.
    actual_tail: Vec<u8>,
}

/// Splits a configured list into none / wildcard / validated entries.
fn list<'s>(
    what: &str,
    values: &'s [String],
    valid: impl Fn(&str) -> bool,
) -> Result<Option<Option<&'s [String]>>, String> {
    if values.iter().any(|v| v == "*") {
        return Ok(Some(None));
    }
    if let Some(bad) = values.iter().find(|v| !valid(v)) {
        return Err(format!("cors: invalid {what} {bad:?}"));
    }
    Ok((!values.is_empty()).then_some(Some(values)))
}

fn joined_line(name: &str, values: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    push_line(&mut out, name, values.join(", ").as_bytes());
    out
}

fn allow(what: &str, name: &str, values: &[String]) -> Result<Allow, String> {
    Ok(match list(what, values, is_token)? {
        None => Allow::None,
        Some(None) => Allow::Wildcard,
        Some(Some(v)) => Allow::Line(joined_line(name, v)),
    })
}

impl Cors {
    /// Validates and pre-renders `spec`. The error names the first bad value.
    pub fn compile(spec: &CorsSpec) -> Result<Cors, String> {
        let origins = match list("origin", &spec.allow_origins, |o| {
            OriginPattern::parse(o).is_some()
        })? {
            None => Origins::None,
            Some(None) => Origins::Any,
            Some(Some(v)) => {
                Origins::List(v.iter().filter_map(|o| OriginPattern::parse(o)).collect())
            }
        };
        let methods = allow("method", ACAM, &spec.allow_methods)?;
        let headers = allow("header name", ACAH, &spec.allow_headers)?;
        let expose = list("expose header name", &spec.expose_headers, is_token)?;

        let mut actual_tail = Vec::new();
        if spec.allow_credentials {
            push_line(&mut actual_tail, ACAC, b"true");
        }
        match expose {
            None => {}
            Some(None) => push_line(&mut actual_tail, ACEH, b"*"),
            Some(Some(v)) => actual_tail.extend_from_slice(&joined_line(ACEH, v)),
        }
        let mut preflight_tail = Vec::new();
        if let Some(age) = spec.max_age {
            push_line(
                &mut preflight_tail,
                ACMA,
                age.as_secs().to_string().as_bytes(),
            );
        }
        preflight_tail.extend_from_slice(&actual_tail);

        let mut cors = Cors {
            credentials: spec.allow_credentials,
            origins,
            methods,
            headers,
            expose_headers: spec.expose_headers.clone(),
            preflight_vary: Vec::new(),
            preflight_tail,
            actual_tail,
        };
        let mut vary: Vec<&str> = Vec::new();
        if cors.echoes_origin() {
            vary.push("Origin");
        }
        if matches!(cors.methods, Allow::Wildcard) {
            vary.push("Access-Control-Request-Method");
        }
        if matches!(cors.headers, Allow::Wildcard) {
            vary.push("Access-Control-Request-Headers");
        }
        if !vary.is_empty() {
            push_line(&mut cors.preflight_vary, "Vary", vary.join(", ").as_bytes());
        }
        Ok(cors)
    }

    /// `OPTIONS` with an `Origin` header and a non-empty `Access-Control-Request-Method`.
    pub fn is_preflight(method: &str, headers: &[httparse::Header<'_>]) -> bool {
        method == "OPTIONS"
            && find(headers, "origin").is_some()
            && find(headers, "access-control-request-method").is_some_and(|v| !v.is_empty())
    }

    /// Lines for a locally answered preflight (the caller sends `200`, empty body, and
    /// these). Writes nothing when the `Origin` is missing or not allowed — the preflight is
    /// still answered locally, just without CORS headers. Does not re-check
    /// [`Cors::is_preflight`].
    pub fn write_preflight(&self, headers: &[httparse::Header<'_>], out: &mut Vec<u8>) {
        let Some(origin) = find(headers, "origin") else {
            return;
        };
        if !self.allows(origin) {
            return;
        }
        self.write_origin(origin, out);
        out.extend_from_slice(&self.preflight_vary);
        match &self.methods {
            Allow::None => {}
            Allow::Line(line) => out.extend_from_slice(line),
            Allow::Wildcard => {
                let requested = find(headers, "access-control-request-method")
                    .map(<[u8]>::trim_ascii)
                    .filter(|m| std::str::from_utf8(m).is_ok_and(is_token));
                match requested {
                    Some(m) => push_line(out, ACAM, m),
                    None if !self.credentials => push_line(out, ACAM, b"*"),
                    None => {}
                }
            }
        }
        match &self.headers {
            Allow::None => {}
            Allow::Line(line) => out.extend_from_slice(line),
            Allow::Wildcard => self.write_echoed_headers(headers, out),
        }
        out.extend_from_slice(&self.preflight_tail);
    }

    /// Lines for an actual (non-preflight) response, including responses the proxy makes
    /// itself (404, 401, 502, ...). Nothing when `origin` is `None` or not allowed.
    pub fn write_actual(&self, origin: Option<&[u8]>, out: &mut Vec<u8>) {
        let Some(origin) = origin else {
            return;
        };
        if !self.allows(origin) {
            return;
        }
        self.write_origin(origin, out);
        if self.echoes_origin() {
            push_line(out, "Vary", b"Origin");
        }
        out.extend_from_slice(&self.actual_tail);
    }

    /// The configured `exposeHeaders`, verbatim.
    pub fn expose_headers(&self) -> &[String] {
        &self.expose_headers
    }

    /// Whether `origin` (the raw `Origin` value) is allowed.
    pub fn allows(&self, origin: &[u8]) -> bool {
        match &self.origins {
            Origins::None => false,
            Origins::Any => true,
            Origins::List(patterns) => patterns.iter().any(|p| p.matches(origin)),
        }
    }

    /// `Access-Control-Allow-Origin` echoes the origin unless it can be a literal `*`.
    fn echoes_origin(&self) -> bool {
        !matches!(self.origins, Origins::Any) || self.credentials
    }

    fn write_origin(&self, origin: &[u8], out: &mut Vec<u8>) {
        if self.echoes_origin() {
            push_line(out, ACAO, origin);
        } else {
            push_line(out, ACAO, b"*");
        }
    }

    /// Echoes `Access-Control-Request-Headers` normalised to `a, b` (empty and non-token
    /// entries dropped), else `*` without credentials, else nothing.
    fn write_echoed_headers(&self, headers: &[httparse::Header<'_>], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(ACAH.as_bytes());
        out.extend_from_slice(b": ");
        let body = out.len();
        if let Some(requested) = find(headers, "access-control-request-headers") {
            for item in requested.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if std::str::from_utf8(item).is_ok_and(is_token) {
                    if out.len() > body {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(item);
                }
            }
        }
        if out.len() == body {
            if self.credentials {
                out.truncate(start);
                return;
            }
            out.push(b'*');
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// First header named `name` (lowercase), compared case-insensitively.
fn find<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}
