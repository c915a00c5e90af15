//! Where an upstream server is: the configured authority, its address (an IP literal, or a name
//! the workers resolve and keep fresh, see `net::dns`) and its weight among a route's backends.

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

impl HostAddr {
    /// `host:port`, `[v6]:port` or `name:port`. A name is kept as a name: workers resolve it
    /// off their threads and keep it fresh (`net::dns`), so a change in DNS is followed.
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
        Ok(HostAddr::Name(name.to_owned(), port))
    }
}
