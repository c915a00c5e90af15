//! Request routing: picks the route (and which of its `matches[]` entries) for a request,
//! following agentgateway / Gateway API matching and precedence rules.
//!
//! Owns: compiled match conditions (`matcher`), hostname patterns and port stripping
//! (`host`), and the precedence-sorted [`RouteTable`] (`table`).
//! Does not: do I/O, parse HTTP, apply policies, pick backends, or allocate on the lookup
//! path. The table is built once per config snapshot and shared read-only by workers.

mod host;
mod matcher;
mod table;

#[cfg(test)]
mod tests;

pub(crate) use host::{hostname_matches, HostnameMatch};
#[cfg(test)]
pub(crate) use matcher::query_pairs;
pub(crate) use matcher::QueryMatch;
pub use matcher::{HeaderMatch, PathMatch, RouteMatch, ValueMatch};
pub use table::{RouteSpec, RouteTable};

/// The parts of a request that routing looks at, borrowed from the parsed head.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Port already stripped (see `http::authority::strip_port`); compared ASCII case-insensitively.
    pub host: &'a str,
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Query string without the leading `?`; empty if none.
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
}
