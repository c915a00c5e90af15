//! Lowering of `mcpAuthentication` and `jwtAuth` (both dialects) into [`AuthPolicy`]: key
//! sources to keep fresh, validation rules, the discovery documents and the answers rendered
//! once, and the well-known paths each protected route adds to its listener.
//!
//! Not here: the bytes of the 401/503 answers (`auth::challenge`), fetching keys (`auth::keys`),
//! checking tokens (`policy::mcp_auth`), serving the documents (`server::discovery`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::auth::challenge;
use crate::auth::policy::{
    AsRewrite, AuthMode, AuthPolicy, AuthProvider, McpAuthMeta, Registration, Source, SourceKind,
    WellKnown,
};
use crate::http::response::Prebuilt;
use crate::net::addr::{HostAddr, HostTarget};
use crate::policy::mcp_auth::Validation;
use crate::policy::mcp_auth_meta as meta;
use crate::schema as model;
use crate::schema::ConfigError;

/// Default allowance for clock skew on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// What lowering one route's auth policy produced besides the policy itself.
#[derive(Default)]
pub(crate) struct AuthExtras {
    pub sources: Vec<Source>,
    pub well_known: Vec<(String, WellKnown)>,
    pub warnings: Vec<String>,
}

static PROVIDER_IDS: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    PROVIDER_IDS.fetch_add(1, Ordering::Relaxed)
}

fn mode(m: Option<&model::AuthMode>, default: AuthMode) -> AuthMode {
    match m {
        Some(model::AuthMode::Strict) => AuthMode::Strict,
        Some(model::AuthMode::Optional) => AuthMode::Optional,
        Some(model::AuthMode::Permissive) => AuthMode::Permissive,
        None => default,
    }
}

fn provider_kind(
    p: Option<&model::McpProvider>,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> meta::Provider {
    match p {
        None => meta::Provider::Generic,
        Some(model::McpProvider::Keycloak {}) => meta::Provider::Keycloak,
        Some(model::McpProvider::Auth0 {}) => meta::Provider::Auth0,
        Some(other) => {
            errs.push(ConfigError::new(
                format!("{path}.provider"),
                format!("provider {other:?} is not supported by Portcullis (supported: keycloak, auth0)"),
            ));
            meta::Provider::Generic
        }
    }
}

/// The key source for a `jwks`/`jwksUrl` setting; an empty or absent URL is derived from the
/// issuer and provider as agentgateway does.
fn key_source(
    jwks: Option<&model::Jwks>,
    jwks_url: Option<&str>,
    issuer: &str,
    provider: meta::Provider,
    base_dir: Option<&Path>,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Source {
    let kind = match (jwks, jwks_url) {
        (Some(model::Jwks::File(f)), _) => {
            let p = Path::new(f);
            let p = match base_dir {
                Some(b) if p.is_relative() => b.join(p),
                _ => p.to_path_buf(),
            };
            match std::fs::read(&p) {
                Ok(bytes) => {
                    if let Err(e) = crate::policy::mcp_auth::parse_jwks(&bytes) {
                        errs.push(ConfigError::new(
                            format!("{path}.jwks.file"),
                            format!("{}: {e}", p.display()),
                        ));
                    }
                }
                Err(e) => errs.push(ConfigError::new(
                    format!("{path}.jwks.file"),
                    format!("cannot read {}: {e}", p.display()),
                )),
            }
            SourceKind::JwksFile(p)
        }
        (Some(model::Jwks::Inline(json)), _) => {
            if let Err(e) = crate::policy::mcp_auth::parse_jwks(json.as_bytes()) {
                errs.push(ConfigError::new(
                    format!("{path}.jwks"),
                    format!("inline JWKS: {e}"),
                ));
            }
            SourceKind::JwksInline(json.as_bytes().to_vec())
        }
        (Some(model::Jwks::Url(u)), _) if !u.is_empty() => url_source(u, path, errs),
        (None, Some(u)) if !u.is_empty() => url_source(u, path, errs),
        _ => SourceKind::JwksUrl(meta::default_jwks_url(issuer, provider)),
    };
    let id: Arc<str> = match &kind {
        SourceKind::JwksUrl(u) => format!("jwks:{u}").into(),
        SourceKind::JwksFile(p) => format!("jwks-file:{}", p.display()).into(),
        SourceKind::JwksInline(b) => format!("jwks-inline:{:016x}", fnv(b)).into(),
        SourceKind::AsMetadata { .. } => unreachable!("key_source builds JWKS sources only"),
    };
    Source { id, kind }
}

fn url_source(u: &str, path: &str, errs: &mut Vec<ConfigError>) -> SourceKind {
    if let Err(e) = crate::net::url::parse_url(u) {
        errs.push(ConfigError::new(format!("{path}.jwks"), e));
    }
    SourceKind::JwksUrl(u.to_owned())
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

fn validation(
    issuer: &str,
    audiences: Vec<String>,
    opts: Option<&model::JwtValidationOptions>,
) -> Validation {
    let required_claims = opts.and_then(|o| {
        let model::JwtValidationOptions { required_claims } = o;
        required_claims.clone()
    });
    Validation {
        issuer: issuer.to_owned(),
        audiences,
        leeway_secs: LEEWAY_SECS,
        require_typ: None,
        required_claims: required_claims.unwrap_or_else(|| vec!["exp".to_owned()]),
    }
}

/// `mcpAuthentication` on the route at `path`.
pub(crate) fn lower_mcp_auth(
    a: &model::McpAuthentication,
    route_paths: &[String],
    passthrough: bool,
    base_dir: Option<&Path>,
    path: &str,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
) -> Option<Arc<AuthPolicy>> {
    // Every field, named: one added to the wire model does not compile until it is lowered
    // here or refused in `config::validate` (`clientId`, `clientSecret`, `authorizationLocation`
    // are).
    let model::McpAuthentication {
        issuer: _,
        audience: _,
        audiences: _,
        jwks_url: _,
        jwks: _,
        provider: _,
        resource_metadata: _,
        mode: _,
        jwt_validation_options: _,
        client_id: _,
        client_secret: _,
        authorization_location: _,
    } = a;
    let before = errs.len();
    let provider = provider_kind(a.provider.as_ref(), path, errs);
    let audiences = match (&a.audience, &a.audiences) {
        (Some(one), _) => vec![one.clone()],
        (None, Some(many)) => many.clone(),
        (None, None) => Vec::new(),
    };
    let keys = key_source(
        a.jwks.as_ref(),
        a.jwks_url.as_deref(),
        &a.issuer,
        provider,
        base_dir,
        path,
        errs,
    );
    let rm = &a.resource_metadata;
    let resource = rm
        .get("resource")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let route_path = public_path(resource.as_deref(), route_paths, path, errs);
    let scopes: Vec<String> = strings(rm, &["scopesSupported", "scopes_supported"])
        .into_iter()
        .filter(|s| s != "offline_access")
        .collect();
    warn_about_resource(
        a,
        resource.as_deref(),
        &route_path,
        route_paths,
        path,
        extras,
    );
    if errs.len() > before {
        return None;
    }
    let (as_metadata, registration_upstream) = as_metadata_source(
        a,
        provider,
        &audiences,
        resource.as_deref(),
        &route_path,
        extras,
    );
    let authorization_servers = vec![a.issuer.clone()];
    let prm = resource.as_ref().map(|r| {
        let body = meta::render_prm(r, &authorization_servers, rm);
        Prebuilt::json(&crate::http::response::DISCOVERY_CORS, body)
    });
    let challenge_url = resource.as_ref().and_then(|r| meta::prm_url(r).ok());
    let answers = challenge::mcp_answers(challenge_url.as_deref(), &scopes);
    let mcp = Arc::new(McpAuthMeta {
        route_path,
        resource,
        authorization_servers,
        resource_metadata: rm.clone(),
        scopes,
        prm,
        as_metadata,
        registration_upstream,
    });
    add_well_known(&mcp, extras);
    let keys_id = keys.id.clone();
    extras.sources.push(keys);
    Some(Arc::new(AuthPolicy {
        mode: mode(a.mode.as_ref(), AuthMode::Strict),
        providers: vec![AuthProvider {
            id: next_id(),
            keys: keys_id,
            validation: validation(&a.issuer, audiences, a.jwt_validation_options.as_ref()),
        }],
        mcp: Some(mcp),
        passthrough,
        missing: answers.missing,
        invalid: answers.invalid,
        unavailable: answers.unavailable,
    }))
}

/// The public path of the MCP endpoint: from `resourceMetadata.resource`, else the route's first
/// path.
fn public_path(
    resource: Option<&str>,
    route_paths: &[String],
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> String {
    match resource {
        Some(r) => match meta::parse_resource_url(r) {
            Ok(u) => u.path,
            Err(e) => {
                errs.push(ConfigError::new(
                    format!("{path}.resourceMetadata.resource"),
                    e,
                ));
                String::new()
            }
        },
        None => route_paths.first().cloned().unwrap_or_default(),
    }
}

/// The strings of the first of `keys` that `rm` has as an array.
fn strings(
    rm: &std::collections::BTreeMap<String, serde_json::Value>,
    keys: &[&str],
) -> Vec<String> {
    keys.iter()
        .find_map(|k| rm.get(*k))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Warnings about a resource that loads but probably does not do what the author meant.
fn warn_about_resource(
    a: &model::McpAuthentication,
    resource: Option<&str>,
    route_path: &str,
    route_paths: &[String],
    path: &str,
    extras: &mut AuthExtras,
) {
    let bearer_methods = strings(&a.resource_metadata, &["bearerMethodsSupported"]);
    // The sanity sentences start with the field they are about (`mcpAuthentication.…`).
    let policies = path.strip_suffix(".mcpAuthentication").unwrap_or(path);
    for w in meta::sanity_warnings(resource, resource, &a.issuer, None, &bearer_methods) {
        extras.warnings.push(format!("{policies}.{w}"));
    }
    if route_paths.iter().all(|p| p != route_path)
        && !route_path.is_empty()
        && !route_paths.is_empty()
    {
        extras.warnings.push(format!(
            "{path}.resourceMetadata.resource: its path {route_path:?} is not one of the route's paths {route_paths:?}; clients will compare it with the URL they call"
        ));
    }
}

/// For providers whose metadata the gateway serves (Keycloak, Auth0): the `Source` of the
/// rewritten AS metadata, and (Keycloak) where the registration proxy forwards.
fn as_metadata_source(
    a: &model::McpAuthentication,
    provider: meta::Provider,
    audiences: &[String],
    resource: Option<&str>,
    route_path: &str,
    extras: &mut AuthExtras,
) -> (Option<Arc<str>>, Option<Registration>) {
    let rewrite = match provider {
        meta::Provider::Generic => return (None, None),
        meta::Provider::Keycloak => {
            let registration_path =
                format!("/.well-known/oauth-authorization-server{route_path}/client-registration");
            let origin = match resource.map(meta::parse_resource_url) {
                Some(Ok(u)) => format!("{}://{}", u.scheme, u.authority),
                _ => crate::auth::policy::ORIGIN_PLACEHOLDER.to_owned(),
            };
            AsRewrite::Keycloak {
                registration_url: format!("{origin}{registration_path}"),
            }
        }
        meta::Provider::Auth0 => AsRewrite::Auth0 {
            audience: audiences.first().cloned().unwrap_or_default(),
        },
    };
    let src = Source {
        id: format!("as-metadata:{route_path}:{}", a.issuer).into(),
        kind: SourceKind::AsMetadata {
            issuer: a.issuer.clone(),
            url: meta::discovery_url(&a.issuer),
            rewrite,
        },
    };
    let id = src.id.clone();
    extras.sources.push(src);
    let registration = match provider {
        meta::Provider::Keycloak => {
            let upstream = meta::keycloak_registration_target(&a.issuer);
            registration_target(&upstream)
        }
        _ => None,
    };
    (Some(id), registration)
}

/// The well-known paths the protected route adds to its listener.
fn add_well_known(mcp: &Arc<McpAuthMeta>, extras: &mut AuthExtras) {
    let route_path = &mcp.route_path;
    if route_path.is_empty() {
        return;
    }
    extras.well_known.push((
        format!("/.well-known/oauth-protected-resource{route_path}"),
        WellKnown::Prm(mcp.clone()),
    ));
    if mcp.as_metadata.is_some() {
        extras.well_known.push((
            format!("/.well-known/oauth-authorization-server{route_path}"),
            WellKnown::AsMetadata(mcp.clone()),
        ));
    }
    if mcp.registration_upstream.is_some() {
        extras.well_known.push((
            format!("/.well-known/oauth-authorization-server{route_path}/client-registration"),
            WellKnown::Registration(mcp.clone()),
        ));
    }
}

/// The DCR proxy's upstream, as a host target and path. Only plain-HTTP issuers can be proxied
/// by this build; for an https issuer the gateway does not offer the proxy (clients use the
/// IdP's own registration endpoint) and a warning says so.
fn registration_target(url: &str) -> Option<Registration> {
    let u = crate::net::url::parse_url(url).ok()?;
    let authority = format!("{}:{}", u.host, u.port);
    let addr = HostAddr::parse(&authority).ok()?;
    Some(Registration {
        target: HostTarget {
            authority,
            addr,
            weight: 1,
        },
        path: u.path,
        https: u.https,
    })
}

/// Route-level `jwtAuth` (single or multi-provider).
pub(crate) fn lower_jwt_auth(
    j: &model::JwtAuth,
    passthrough: bool,
    base_dir: Option<&Path>,
    path: &str,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
) -> Option<Arc<AuthPolicy>> {
    // Every field, named (here and for each provider): see `lower_mcp_auth`.
    let model::JwtAuth {
        mode: _,
        location: _,
        issuer: _,
        audiences: _,
        jwks: _,
        jwt_validation_options: _,
        providers: _,
    } = j;
    let mut providers = Vec::new();
    let mut add = |issuer: &str,
                   audiences: Vec<String>,
                   jwks: &model::Jwks,
                   opts: Option<&model::JwtValidationOptions>,
                   p: &str,
                   errs: &mut Vec<ConfigError>| {
        let src = key_source(
            Some(jwks),
            None,
            issuer,
            meta::Provider::Generic,
            base_dir,
            p,
            errs,
        );
        providers.push(AuthProvider {
            id: next_id(),
            keys: src.id.clone(),
            validation: validation(issuer, audiences, opts),
        });
        extras.sources.push(src);
    };
    match (&j.issuer, &j.jwks, &j.providers) {
        (Some(iss), Some(jwks), None) => add(
            iss,
            j.audiences.clone().unwrap_or_default(),
            jwks,
            j.jwt_validation_options.as_ref(),
            path,
            errs,
        ),
        (None, None, Some(list)) => {
            for (i, pr) in list.iter().enumerate() {
                let p = format!("{path}.providers[{i}]");
                let model::JwtProvider {
                    issuer,
                    audiences,
                    jwks,
                    jwt_validation_options,
                } = pr;
                add(
                    issuer,
                    audiences.clone().unwrap_or_default(),
                    jwks,
                    jwt_validation_options.as_ref(),
                    &p,
                    errs,
                );
            }
        }
        _ => {
            errs.push(ConfigError::new(
                path,
                "jwtAuth needs either issuer + jwks or providers",
            ));
            return None;
        }
    }
    let answers = challenge::jwt_answers();
    Some(Arc::new(AuthPolicy {
        mode: mode(j.mode.as_ref(), AuthMode::Optional),
        providers,
        mcp: None,
        passthrough,
        missing: answers.missing,
        invalid: answers.invalid,
        unavailable: answers.unavailable,
    }))
}

/// Root discovery paths, added when a listener has exactly one protected MCP route.
pub(crate) fn root_well_known(entries: &[(String, WellKnown)]) -> Vec<(String, WellKnown)> {
    let prms: Vec<_> = entries
        .iter()
        .filter(|(_, w)| matches!(w, WellKnown::Prm(_)))
        .collect();
    if prms.len() != 1 {
        return Vec::new();
    }
    let mut out = vec![(
        "/.well-known/oauth-protected-resource".to_owned(),
        prms[0].1.clone(),
    )];
    if let Some((_, w)) = entries
        .iter()
        .find(|(_, w)| matches!(w, WellKnown::AsMetadata(_)))
    {
        out.push((
            "/.well-known/oauth-authorization-server".to_owned(),
            w.clone(),
        ));
    }
    out
}
