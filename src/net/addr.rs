//! Where an upstream server is: the configured authority, its address (resolved at load, or a
//! name resolved when a connection is opened) and its weight among a route's backends.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct HostTarget {
    /// `host:port` as configured, sent as the upstream authority when the client sent none.
    pub authority: String,
    pub addr: HostAddr,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub enum HostAddr {
    Resolved(SocketAddr),
    /// A host name, resolved when a connection is opened.
    Name(String, u16),
}
