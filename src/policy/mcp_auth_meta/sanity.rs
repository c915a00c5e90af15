//! Config-load sanity warnings for `mcpAuthentication`: mistakes that load fine but break
//! real MCP clients. Each warning is one full sentence naming the field.
//!
//! Does not: fail the config (the caller logs these at `warn!`) or fetch the discovery
//! document (the caller passes its `issuer` when it has one).

use super::url::parse_resource_url;

/// See the module doc. `route_public_url` is the URL clients use for the MCP route;
/// `fetched_issuer` is `issuer` from the IdP's discovery document, if fetched.
pub(crate) fn sanity_warnings(
    route_public_url: Option<&str>,
    resource: Option<&str>,
    issuer: &str,
    fetched_issuer: Option<&str>,
    bearer_methods: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(resource) = resource {
        resource_warnings(&mut out, route_public_url, resource);
    }
    if let Some(fetched) = fetched_issuer.filter(|f| *f != issuer) {
        let trailing_only = issuer.trim_end_matches('/') == fetched.trim_end_matches('/');
        out.push(if trailing_only {
            format!(
                "mcpAuthentication.issuer {issuer:?} differs from the issuer {fetched:?} in the \
                 IdP's discovery document only by a trailing slash; token `iss` checks and \
                 clients' RFC 8414 §3.3 issuer check compare byte for byte, so configure {fetched:?}."
            )
        } else {
            format!(
                "mcpAuthentication.issuer {issuer:?} differs from the issuer {fetched:?} in the \
                 IdP's discovery document; tokens will fail the `iss` check and clients will \
                 reject the authorization server metadata (RFC 8414 §3.3)."
            )
        });
    }
    let unsupported: Vec<&str> = bearer_methods
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "header")
        .collect();
    if !unsupported.is_empty() {
        out.push(format!(
            "mcpAuthentication.resourceMetadata.bearerMethodsSupported advertises {unsupported:?}, \
             but Portcullis accepts access tokens only in the Authorization header (MCP forbids \
             tokens in the query string); advertise [\"header\"] only."
        ));
    }
    out
}

fn resource_warnings(out: &mut Vec<String>, route_public_url: Option<&str>, resource: &str) {
    let parsed = match parse_resource_url(resource) {
        Ok(p) => p,
        Err(e) => {
            out.push(format!(
                "mcpAuthentication.resourceMetadata.resource is not a usable resource \
                 identifier: {e}."
            ));
            return;
        }
    };
    let Some(public) = route_public_url.filter(|p| *p != resource) else {
        return;
    };
    let same_modulo_case = parse_resource_url(public).is_ok_and(|p| p.canonical_eq(&parsed));
    out.push(if same_modulo_case {
        format!(
            "mcpAuthentication.resourceMetadata.resource {resource:?} matches the route's public \
             URL {public:?} only after case folding or default-port normalisation; MCP clients \
             compare the PRM resource byte for byte (RFC 9728 §3.3), so use {public:?}."
        )
    } else {
        format!(
            "mcpAuthentication.resourceMetadata.resource {resource:?} does not match the route's \
             public URL {public:?}; MCP clients reject protected resource metadata whose \
             resource is not the URL they connect to (RFC 9728 §3.3)."
        )
    });
}
