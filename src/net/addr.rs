//! Where an upstream server is: the configured authority, its address (resolved at load, or a
//! name resolved when a connection is opened) and its weight among a route's backends.

use std::net::{SocketAddr, ToSocketAddrs};

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

impl HostAddr {
    /// `host:port`, `[v6]:port` or `name:port`. Names are resolved now (off the workers); one that
    /// does not resolve yet is kept by name and resolved when a connection is opened.
    #[allow(clippy::disallowed_methods)] // config loading runs on the control thread, never a worker
    pub(crate) fn parse(h: &str) -> Result<HostAddr, String> {
        if let Ok(a) = h.parse::<SocketAddr>() {
            return Ok(HostAddr::Resolved(a));
        }
        let (name, port) = h
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid host {h:?}: expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| format!("invalid port in {h:?}"))?;
        if name.is_empty() {
            return Err(format!("invalid host {h:?}: empty host name"));
        }
        match (name, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
        {
            Some(a) => Ok(HostAddr::Resolved(a)),
            None => Ok(HostAddr::Name(name.to_owned(), port)),
        }
    }
}
