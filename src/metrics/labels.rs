//! Label sets, rendered once when a config is lowered, and the bounded label vocabularies.

use std::sync::{Arc, LazyLock};

/// A route's labels, built when the config is lowered (never per request).
#[derive(Debug, Clone)]
pub struct RouteLabels {
    /// Identifies the label set in a worker's counters (a hash of `text`).
    pub id: u64,
    /// Portcullis's `route` label: the route's name.
    pub route: Arc<str>,
    /// agentgateway's labels of the route, rendered: `backend`, `protocol`, `bind`, `gateway`,
    /// `listener`, `route`, `route_rule`.
    pub text: Box<str>,
    /// The route-identifying part of `text` (`bind` … `route_rule`), which MCP series carry.
    pub scope: Arc<str>,
}

impl RouteLabels {
    #[allow(clippy::too_many_arguments)]
    /// The labels of route `name` (namespace `namespace`, rule `rule`) on listener `listener` of the bind on
    /// `port`, forwarding to `backend` over `protocol` (`http` or `mcp`). `gateway` is
    /// agentgateway's `<namespace>/<gateway>` (from `config.namespace` and `config.gateway`).
    pub fn new(
        gateway: &str,
        port: u16,
        listener: &str,
        namespace: &str,
        name: &Arc<str>,
        rule: Option<&str>,
        backend: &str,
        protocol: &str,
    ) -> RouteLabels {
        let scope = format!(
            "bind=\"bind/{port}\",gateway=\"{}\",listener=\"{}\",route=\"{}/{}\",route_rule=\"{}\"",
            escape_label(gateway),
            escape_label(listener),
            escape_label(namespace),
            escape_label(name),
            escape_label(rule.unwrap_or("unknown"))
        );
        let text = format!(
            "backend=\"{}\",protocol=\"{protocol}\",{scope}",
            escape_label(backend)
        );
        RouteLabels {
            id: id_of(&text),
            route: name.clone(),
            text: text.into(),
            scope: scope.into(),
        }
    }
}

fn id_of(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The labels of requests no route took (unknown host or path, malformed heads, timeouts before
/// a head), and of Portcullis's own endpoints outside routes.
pub(crate) static UNMATCHED: LazyLock<RouteLabels> = LazyLock::new(|| {
    let text = "backend=\"unknown\",protocol=\"unknown\",bind=\"unknown\",gateway=\"unknown\",\
                listener=\"unknown\",route=\"unknown\",route_rule=\"unknown\"";
    RouteLabels {
        id: 0,
        route: Arc::from(""),
        text: text.into(),
        scope: Arc::from(""),
    }
});

/// The labels of the client-registration endpoint Portcullis proxies for Keycloak (no route).
pub(crate) static REGISTRATION: LazyLock<RouteLabels> = LazyLock::new(|| {
    let text = "backend=\"client-registration\",protocol=\"http\",bind=\"unknown\",\
                gateway=\"unknown\",listener=\"unknown\",route=\"client-registration\",\
                route_rule=\"unknown\"";
    RouteLabels {
        id: 1,
        route: Arc::from("client-registration"),
        text: text.into(),
        scope: Arc::from(""),
    }
});

/// How metrics are exported, from the config (`config.metrics`, `config.namespace`,
/// `config.gateway`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsExport {
    /// agentgateway's `gateway` label: `<namespace>/<gateway>`.
    pub gateway: String,
    /// `config.metrics.remove`: families not rendered (full names or agentgateway's short
    /// names, e.g. `requests` for `agentgateway_requests_total`).
    pub removed: Vec<String>,
}

/// Escapes a Prometheus label value.
pub(crate) fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        return std::borrow::Cow::Borrowed(v);
    }
    std::borrow::Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// The MCP method label: one of the methods of the MCP revisions, or `other` for anything else
/// a client sends (a client cannot add series by inventing methods).
pub(crate) fn mcp_method_label(method: &str) -> &'static str {
    crate::mcp::jsonrpc::KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}
