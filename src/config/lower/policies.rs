//! Lowering of route `policies`: CORS, header modifiers, redirects and rewrites, timeouts,
//! `localRateLimit`, direct responses, and the authentication policies (`auth::lower`).

use std::path::Path;

use crate::auth::lower::{self as lower_auth, AuthExtras};
use crate::config::ConfigError;
use crate::http::response::Prebuilt;
use crate::policy::cors::{Cors, CorsSpec};
use crate::policy::headers::HeaderModifier;
use crate::policy::rewrite::PathRewrite;
use crate::schema as model;
use crate::snapshot::{AuthorityRewrite, Policies, Redirect, Rewrite, Timeouts};

use super::*;

pub(super) fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(super) fn modifier(
    m: &model::HeaderModifier,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<HeaderModifier> {
    let model::HeaderModifier { add, set, remove } = m;
    match HeaderModifier::compile(&pairs(add), &pairs(set), remove) {
        Ok(h) => Some(h),
        Err(e) => {
            errs.push(ConfigError::new(path, e));
            None
        }
    }
}

fn authority(a: &Option<model::HostRedirect>) -> Option<AuthorityRewrite> {
    match a.as_ref()? {
        model::HostRedirect::Full(f) => Some(AuthorityRewrite::Full(f.clone())),
        model::HostRedirect::Host(h) => Some(AuthorityRewrite::Host(h.clone())),
        model::HostRedirect::Port(p) => Some(AuthorityRewrite::Port(*p)),
        model::HostRedirect::Auto | model::HostRedirect::Unchanged => None,
    }
}

fn path_rewrite(p: &Option<model::PathRedirect>) -> Option<PathRewrite> {
    match p.as_ref()? {
        model::PathRedirect::Full(f) => Some(PathRewrite::Full(f.clone())),
        model::PathRedirect::Prefix(f) => Some(PathRewrite::Prefix(f.clone())),
    }
}

pub(super) fn lower_policies(
    p: &model::Policies,
    path: &str,
    route_paths: &[String],
    base_dir: Option<&Path>,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
) -> Policies {
    let mut out = Policies::default();
    let passthrough = p
        .backend_auth
        .as_ref()
        .is_some_and(|b| b.passthrough.is_some());
    if let Some(a) = &p.mcp_authentication {
        let apath = format!("{path}.mcpAuthentication");
        out.auth =
            lower_auth::lower_mcp_auth(a, route_paths, passthrough, base_dir, &apath, errs, extras);
    } else if let Some(j) = &p.jwt_auth {
        let jpath = format!("{path}.jwtAuth");
        out.auth = lower_auth::lower_jwt_auth(j, passthrough, base_dir, &jpath, errs, extras);
    }
    if let Some(c) = &p.cors {
        // Every field, named (here and in the policies below): one added to the wire model
        // does not compile until it is lowered here or refused in `config::validate`.
        let model::Cors {
            allow_credentials,
            allow_headers,
            allow_methods,
            allow_origins,
            expose_headers,
            max_age,
        } = c;
        let max_age = dur(max_age, &format!("{path}.cors.maxAge"), errs);
        let mut expose_headers = expose_headers.clone();
        // Browser MCP clients must be able to read the challenge of a protected route.
        if out.auth.is_some()
            && !expose_headers
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case("www-authenticate"))
        {
            expose_headers.push("www-authenticate".to_owned());
        }
        let spec = CorsSpec {
            allow_credentials: *allow_credentials,
            allow_headers: allow_headers.clone(),
            allow_methods: allow_methods.clone(),
            allow_origins: allow_origins.clone(),
            expose_headers,
            max_age,
        };
        match Cors::compile(&spec) {
            Ok(c) => out.cors = Some(c),
            Err(e) => errs.push(ConfigError::new(format!("{path}.cors"), e)),
        }
    }
    if let Some(r) = &p.request_redirect {
        let model::RequestRedirect {
            scheme,
            authority: to,
            path: to_path,
            status,
        } = r;
        out.redirect = Some(Redirect {
            scheme: scheme.clone(),
            authority: authority(to),
            path: path_rewrite(to_path),
            status: status.unwrap_or(302),
        });
    }
    if let Some(d) = &p.direct_response {
        let model::DirectResponse {
            body,
            status,
            body_expression: _,
            headers: _,
            conditional: _,
        } = d;
        out.direct = Some(Prebuilt::new(
            status.unwrap_or(200),
            None,
            &[],
            body.0.clone(),
        ));
    }
    if let Some(m) = &p.request_header_modifier {
        out.request_headers = modifier(m, &format!("{path}.requestHeaderModifier"), errs);
    }
    if let Some(m) = &p.response_header_modifier {
        out.response_headers = modifier(m, &format!("{path}.responseHeaderModifier"), errs);
    }
    if let Some(u) = &p.url_rewrite {
        let model::UrlRewrite {
            authority: to,
            path: to_path,
        } = u;
        out.rewrite = Some(Rewrite {
            path: path_rewrite(to_path),
            authority: authority(to),
        });
    }
    if let Some(t) = &p.timeout {
        let model::Timeout {
            request_timeout: _,
            backend_request_timeout: _,
        } = t;
        out.timeouts = Timeouts {
            request: dur(
                &t.request_timeout,
                &format!("{path}.timeout.requestTimeout"),
                errs,
            ),
            backend: dur(
                &t.backend_request_timeout,
                &format!("{path}.timeout.backendRequestTimeout"),
                errs,
            ),
        };
    }
    out.auth_passthrough = passthrough;
    if let Some(v) = &p.local_rate_limit {
        out.rate_limits = rate_limits(v, &format!("{path}.localRateLimit"), errs);
    }
    out
}

/// agentgateway's `localRateLimit` as a list of buckets: `maxTokens`, `tokensPerFill`,
/// `fillInterval` (required), `type: requests` (`tokens` counts LLM tokens: refused).
fn rate_limits(
    v: &serde_json::Value,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Vec<crate::policy::rate_limit::RateLimit> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Spec {
        #[serde(default)]
        max_tokens: u64,
        #[serde(default)]
        tokens_per_fill: u64,
        fill_interval: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let items = match v {
        serde_json::Value::Null => return Vec::new(),
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) if o.contains_key("conditional") => {
            errs.push(ConfigError::new(
                format!("{path}.conditional"),
                crate::config::validate::unsupported_msg(
                    "conditional localRateLimit (CEL conditions)",
                ),
            ));
            return Vec::new();
        }
        _ => {
            errs.push(ConfigError::new(
                path,
                "expected a list of rate limits ({maxTokens, tokensPerFill, fillInterval})",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let spec: Spec = match serde_json::from_value(item.clone()) {
            Ok(s) => s,
            Err(e) => {
                errs.push(ConfigError::new(ip, e.to_string()));
                continue;
            }
        };
        match spec.kind.as_deref() {
            None | Some("requests") => {}
            Some("tokens") => {
                errs.push(ConfigError::new(
                    format!("{ip}.type"),
                    crate::config::validate::unsupported_msg(
                        "localRateLimit type tokens (LLM tokens)",
                    ),
                ));
                continue;
            }
            Some(other) => {
                errs.push(ConfigError::new(
                    format!("{ip}.type"),
                    format!("unknown type {other:?} (expected \"requests\")"),
                ));
                continue;
            }
        }
        let Some(interval) = dur(
            &Some(spec.fill_interval),
            &format!("{ip}.fillInterval"),
            errs,
        ) else {
            continue;
        };
        let mut bad =
            |field: &str, msg: &str| errs.push(ConfigError::new(format!("{ip}.{field}"), msg));
        if interval.is_zero() {
            bad("fillInterval", "must be longer than 0");
            continue;
        }
        if spec.max_tokens == 0 {
            bad(
                "maxTokens",
                "must be at least 1 (a bucket of 0 refuses every request)",
            );
            continue;
        }
        if spec.tokens_per_fill == 0 {
            bad(
                "tokensPerFill",
                "must be at least 1 (the bucket would never fill again)",
            );
            continue;
        }
        if spec.max_tokens < spec.tokens_per_fill {
            bad("maxTokens", "cannot be less than tokensPerFill");
            continue;
        }
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&ip, spec.max_tokens, spec.tokens_per_fill, interval).hash(&mut h);
            h.finish()
        };
        out.push(crate::policy::rate_limit::RateLimit {
            max_tokens: spec.max_tokens,
            tokens_per_fill: spec.tokens_per_fill,
            fill_interval: interval,
            key,
        });
    }
    out
}
