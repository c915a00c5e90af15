//! Entry points for the cargo-fuzz targets in `fuzz/` (each must return normally for any input)
//! and the sans-IO code the criterion benches in `benches/` measure. Not part of the public API.

/// The request-head parser (`fuzz/fuzz_targets/h1_request.rs`).
pub fn h1_request(data: &[u8]) {
    crate::http::h1::fuzz_request(data);
}

/// The chunked decoder, including split-invariance (`fuzz/fuzz_targets/chunked.rs`).
pub fn chunked(data: &[u8]) {
    crate::http::h1::fuzz_chunked(data);
}

/// Request-path normalisation against the RFC 3986 §5.2.4 oracle, plus its invariants
/// (`fuzz/fuzz_targets/path_normalize.rs`).
pub fn path_normalize(data: &[u8]) {
    crate::http::h1::fuzz_path(data);
}

/// YAML → wire model → validation (`fuzz/fuzz_targets/config_yaml.rs`). Lowering is left out:
/// it resolves host names, and a fuzzer must not send DNS queries.
pub fn config(data: &[u8]) {
    crate::config::fuzz_load(data);
}

/// JWT parsing, signature checks and claim validation (`fuzz/fuzz_targets/jwt_compact.rs`).
pub fn jwt(data: &[u8]) {
    crate::policy::mcp_auth::fuzz_jwt(data);
}

/// JWKS parsing (`fuzz/fuzz_targets/jwks_json.rs`).
pub fn jwks(data: &[u8]) {
    crate::policy::mcp_auth::fuzz_jwks(data);
}

/// The JSON-RPC envelope peek and id rewriting (`fuzz/fuzz_targets/jsonrpc.rs`).
pub fn jsonrpc(data: &[u8]) {
    crate::mcp::fuzz_jsonrpc(data);
}

/// The SSE event parser (`fuzz/fuzz_targets/sse_event.rs`).
pub fn sse(data: &[u8]) {
    crate::mcp::fuzz_sse(data);
}

/// What `benches/h1_parse.rs` measures.
pub mod h1 {
    pub use crate::http::h1::{
        normalize_path, parse_request, write_chunk, write_last_chunk, ChunkedDecoder, MAX_HEADERS,
    };
}

/// What `benches/jsonrpc.rs` measures.
pub mod jsonrpc {
    pub use crate::mcp::jsonrpc::{peek, replace_id};
}

/// The 2026-07-28 header check `benches/jsonrpc.rs` measures, and its serde reference.
pub mod modern {
    pub use crate::mcp::modern::{check, reference, Mirrored};
}

/// Authorization rules (`fuzz/fuzz_targets/authz_rule.rs`): the input's first line is a rule,
/// the second the token's claims, the rest a list answer. The rule compiles or is refused
/// (with a position inside it), a compiled rule is evaluated as `allow`, `deny` and `require`
/// for a tool, and the answer is filtered with its verdicts: nothing panics.
pub fn authz_rule(data: &[u8]) {
    use crate::policy::authz::{self, Caller, Evaluator, Item, ItemKind, Policy, RuleKind};
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (rule, claims, answer) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let caller = Caller {
        id: 1,
        claims: Some(std::sync::Arc::from(claims)),
        request: None,
    };
    for kind in [RuleKind::Allow, RuleKind::Deny, RuleKind::Require] {
        match authz::compile(&[(kind, rule)], Policy::Mcp) {
            Ok(set) => {
                let e = Evaluator::new(&set, &caller);
                fn item(name: &str) -> Item<'_> {
                    Item {
                        kind: ItemKind::Tool,
                        target: "t",
                        name,
                    }
                }
                let _ = e.decide(Some(item("echo")));
                let _ = crate::mcp::merge::filter_response(answer.as_bytes(), "tools", &mut |n| {
                    e.decide(Some(item(n))).allowed()
                });
            }
            Err(err) => assert!(err.line >= 1 && err.column >= 1, "{err}"),
        }
    }
}

/// What `benches/authz.rs` measures.
pub mod authz {
    pub use crate::mcp::jsonrpc::replace_id;
    pub use crate::mcp::merge::filter_response;
    pub use crate::policy::authz::{
        compile, Caller, Decider, Decisions, Evaluator, Item, ItemKind, Policy, RuleKind, Verdict,
    };
}

/// What `benches/metrics.rs` measures.
pub mod metrics {
    pub use crate::metrics::labels::RouteLabels;
    pub use crate::metrics::{method_index, Reason, WorkerMetrics};
}

/// What `benches/jwt_verify.rs` measures.
pub mod mcp_auth {
    pub use crate::policy::mcp_auth::{
        b64url_decode, check_token, parse, parse_jwks, scan_claims_json, scan_header_json,
        verify_signature, Alg, KeySet, Scratch, TokenCache, Validation,
    };
}

/// What `benches/route_match.rs` measures.
pub mod routing {
    pub use crate::routing::{
        HeaderMatch, PathMatch, RequestView, RouteMatch, RouteSpec, RouteTable, ValueMatch,
    };
}
