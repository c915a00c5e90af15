//! Integration tests: each starts the real `portcullis` binary on ephemeral loopback ports and
//! talks HTTP/1.1 to it; I/O tests run on both monoio drivers (io_uring and epoll).

// clippy.toml's rules are for the proxy's workers; tests block and sleep on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod harness;

mod admin; // /config_dump, /logging, /quitquitquit on config.adminAddr
mod auth; // mcpAuthentication/jwtAuth: challenges, validation, discovery, JWKS lifecycle
mod auth_idp; // against oidc-provider in Keycloak's layout: the seed, rotation, outages
mod authz; // mcpAuthorization and authorization: SDK clients, multiplexing, scopes, both eras
mod backend_tls; // backendTLS: private roots, hostname, insecure*, mTLS, MCP targets over TLS
mod bad_input; // malformed, oversized and smuggling requests get their status; others keep working
mod clients; // official TS/Python SDK clients with full OAuth, and the MCP conformance suite
mod cluster; // three replicas on three hosts (network namespaces) behind HAProxy, with the SDKs
mod compat; // MCP 2026-07-28 clients of 2025 servers: the compatibility mode
mod config_cli; // --validate-only, malformed configs name their path, env expansion, seed
mod cors; // preflight, actual and error responses
mod deploy; // the Dockerfiles and deploy/kubernetes, run in an empty root as the image would
mod dns; // host names followed while running: a changed answer, failover, no answer
mod idp; // the oidc-provider test peer
mod lifecycle; // hot reload good and bad, SIGTERM drain, metrics and readiness
mod load; // mcp-load scenarios, tokens, reports
mod mcp; // the MCP relay: transport rules, sessions, stdio lifecycle, targets, upstreams
mod metrics; // /metrics after known traffic: agentgateway and Portcullis series, the dashboard
mod modern; // MCP 2026-07-28: SDK clients and servers of both eras, mirrored headers, auth
mod paths; // dot-segments and encoded separators: normalised before routing, or refused
mod peers; // MCP sessions across replicas: sealed ids, the peer listener, forwarding
mod ports; // a taken port is an error at start and on reload; --reuse-port shares on purpose
mod proxy; // host backends: headers, bodies, pipelining, SSE streaming, errors, timeouts
mod routing; // agentgateway precedence table
mod tls; // HTTPS listeners, SNI, certificate reload
mod tokens;
mod tracing; // config.tracing: OTLP/HTTP spans decoded with the official protos, traceparent, sampling // test-only token minting (ES256, EdDSA)
