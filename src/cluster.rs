//! Several replicas, one set of MCP sessions: session ids that name their owner, and the
//! authentication of requests one replica forwards to another.
//!
//! A 2025-era MCP session lives in one process (its stdio server, its upstream sessions). When
//! `PORTCULLIS_PEER_ADDR` and a peer key are set, a new session's id is sealed with the key
//! (AES-256-GCM): it carries the owner's peer address, its worker and 128 random bits. Clients
//! can neither read the address nor make an id that opens with the key; a replica that receives
//! a request for another replica's session forwards it there (`server::dispatch`), signing the
//! request with an HMAC of the same secret so that the owner's peer listener serves only its
//! fellow replicas.
//!
//! Owns: the key material (secrets from the environment, derived keys), sealing and opening ids,
//! signing and checking the `portcullis-peer` header. Sans-IO: reading the key file happens in
//! `config::lower`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::policy::mcp_auth::b64;

/// The header a forwarding replica adds: `<unix secs>.<port>.<https 0|1>.<client ip>.<mac>`.
pub(crate) const PEER_HEADER: &str = "portcullis-peer";

/// How far a forwarded request's timestamp may be from the owner's clock.
const SKEW_SECS: u64 = 30;

/// Version byte of a sealed session id's plaintext.
const SEALED_V1: u8 = 1;
/// version, worker, IPv6 (or mapped IPv4) address, port, random.
const PLAIN_LEN: usize = 1 + 1 + 16 + 2 + 16;
const SEALED_LEN: usize = 12 + PLAIN_LEN + 16;
/// Associated data of every sealed id (binds the ciphertext to its use).
const AAD: &[u8] = b"portcullis session id v1";

/// One shared secret, as the two keys derived from it.
struct Secret {
    seal: LessSafeKey,
    mac: hmac::Key,
}

impl Secret {
    fn new(secret: &[u8]) -> Secret {
        let derive = |label: &[u8]| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(label);
            ctx.update(secret);
            ctx.finish()
        };
        let seal = derive(b"portcullis session seal\0");
        let mac = derive(b"portcullis peer request\0");
        Secret {
            seal: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, seal.as_ref()).expect("32-byte AES key"),
            ),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac.as_ref()),
        }
    }
}

/// This replica's place among its peers.
pub struct Peering {
    /// The address the other replicas reach this one at (its peer listener's port).
    pub addr: SocketAddr,
    /// The first seals and signs; all open and check (a rotation's old keys).
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for Peering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peering")
            .field("addr", &self.addr)
            .field("keys", &self.secrets.len())
            .finish()
    }
}

/// Who owns a session, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A worker of this process.
    Local(usize),
    /// Another replica, at its peer address.
    Peer(SocketAddr),
}

/// The smallest secret accepted: 16 bytes (128 bits).
pub(crate) const MIN_SECRET: usize = 16;

impl Peering {
    /// `secrets`: the current one first. Each is at least [`MIN_SECRET`] bytes.
    pub fn new(addr: SocketAddr, secrets: &[Vec<u8>]) -> Result<Peering, String> {
        if secrets.is_empty() {
            return Err("no peer key".into());
        }
        if let Some(i) = secrets.iter().position(|s| s.len() < MIN_SECRET) {
            return Err(format!(
                "peer key {} is shorter than {MIN_SECRET} bytes: use e.g. `head -c 32 \
                 /dev/urandom | base64`",
                i + 1
            ));
        }
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(format!(
                "{addr} is not an address the other replicas can reach: give this replica's own \
                 address and the peer port, e.g. $(POD_IP):15030"
            ));
        }
        Ok(Peering {
            addr,
            secrets: secrets.iter().map(|s| Secret::new(s)).collect(),
        })
    }

    /// A new session id owned by `worker` of this replica: base64url of nonce, ciphertext, tag.
    pub(crate) fn seal(&self, worker: usize, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(PLAIN_LEN + 16);
        plain.push(SEALED_V1);
        plain.push((worker % 256) as u8);
        plain.extend_from_slice(&v6(self.addr.ip()).octets());
        plain.extend_from_slice(&self.addr.port().to_be_bytes());
        plain.extend_from_slice(random);
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the OS random source works");
        self.secrets[0]
            .seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut plain,
            )
            .expect("AES-GCM seals a short message");
        let mut sealed = Vec::with_capacity(SEALED_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&plain);
        b64::encode(&sealed)
    }

    /// The owner named by a sealed id, or `None`: not one of ours (malformed, tampered, or
    /// sealed with a key this replica does not have).
    pub(crate) fn open(&self, id: &str) -> Option<Owner> {
        let mut sealed = Vec::with_capacity(SEALED_LEN);
        b64::decode_into(id.as_bytes(), &mut sealed).ok()?;
        if sealed.len() != SEALED_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        for s in &self.secrets {
            let mut buf = body.to_vec();
            let Ok(plain) = s.seal.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut buf,
            ) else {
                continue;
            };
            if plain.len() != PLAIN_LEN || plain[0] != SEALED_V1 {
                return None;
            }
            let worker = usize::from(plain[1]);
            let ip: [u8; 16] = plain[2..18].try_into().ok()?;
            let port = u16::from_be_bytes([plain[18], plain[19]]);
            let addr = SocketAddr::new(Ipv6Addr::from(ip).to_canonical(), port);
            return Some(if addr == self.addr {
                Owner::Local(worker)
            } else {
                Owner::Peer(addr)
            });
        }
        None
    }

    /// The `portcullis-peer` header value for a request forwarded to a peer.
    pub(crate) fn sign(&self, req: &PeerRequest<'_>, now: u64) -> Vec<u8> {
        let mut v =
            format!("{now}.{}.{}.{}.", req.port, u8::from(req.https), req.client).into_bytes();
        let tag = hmac::sign(&self.secrets[0].mac, &signed(&v, req));
        v.extend_from_slice(b64::encode(tag.as_ref()).as_bytes());
        v
    }

    /// Checks a forwarded request's header against the request: the facts of the edge
    /// connection it came from, or `None` (malformed, stale, or not signed with any of our keys).
    pub(crate) fn check(
        &self,
        value: &[u8],
        method: &str,
        target: &[u8],
        session: &[u8],
        now: u64,
    ) -> Option<Forwarded> {
        let at = value.iter().rposition(|&b| b == b'.')?;
        let (signed_part, mac) = (&value[..=at], &value[at + 1..]);
        let text = std::str::from_utf8(signed_part).ok()?;
        let mut it = text.trim_end_matches('.').splitn(4, '.');
        let ts: u64 = it.next()?.parse().ok()?;
        let port: u16 = it.next()?.parse().ok()?;
        let https = match it.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let client: IpAddr = it.next()?.parse().ok()?;
        if ts.abs_diff(now) > SKEW_SECS {
            return None;
        }
        let mut tag = Vec::new();
        b64::decode_into(mac, &mut tag).ok()?;
        let req = PeerRequest {
            port,
            https,
            client,
            method,
            target,
            session,
        };
        let msg = signed(signed_part, &req);
        self.secrets
            .iter()
            .any(|s| hmac::verify(&s.mac, &msg, &tag).is_ok())
            .then_some(Forwarded {
                port,
                https,
                client,
            })
    }
}

/// What a forwarded request's signature covers besides the header's own fields.
pub(crate) struct PeerRequest<'a> {
    /// The port and scheme of the edge listener the client used, and the client's address.
    pub port: u16,
    pub https: bool,
    pub client: IpAddr,
    pub method: &'a str,
    /// The request target as forwarded (path and query).
    pub target: &'a [u8],
    /// The `Mcp-Session-Id` value.
    pub session: &'a [u8],
}

/// The edge connection a checked forwarded request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub port: u16,
    pub https: bool,
    pub client: IpAddr,
}

fn signed(fields: &[u8], req: &PeerRequest<'_>) -> Vec<u8> {
    let mut m = Vec::with_capacity(fields.len() + req.target.len() + req.session.len() + 16);
    m.extend_from_slice(fields);
    m.push(b'\n');
    m.extend_from_slice(req.method.as_bytes());
    m.push(b' ');
    m.extend_from_slice(req.target);
    m.push(b'\n');
    m.extend_from_slice(req.session);
    m
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Parses the environment's peer settings: `PORTCULLIS_PEER_ADDR` and the secrets, one per
/// non-empty line of the key file (or `PORTCULLIS_PEER_KEY`). Errors name the variable.
pub(crate) fn from_env_values(
    addr: Option<&str>,
    key_file_text: Option<(&str, &str)>,
    key: Option<&str>,
) -> Result<Option<Peering>, (String, String)> {
    let secrets: Option<(Vec<Vec<u8>>, &str)> =
        match (key_file_text, key) {
            (Some(_), Some(_)) => return Err((
                "PORTCULLIS_PEER_KEY".into(),
                "give the peer key once: PORTCULLIS_PEER_KEY_FILE or PORTCULLIS_PEER_KEY, not both"
                    .into(),
            )),
            (Some((path, text)), None) => Some((
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.as_bytes().to_vec())
                    .collect(),
                path,
            )),
            (None, Some(k)) => Some((vec![k.trim().as_bytes().to_vec()], "PORTCULLIS_PEER_KEY")),
            (None, None) => None,
        };
    match (addr, secrets) {
        (None, None) => Ok(None),
        (Some(_), None) => Err((
            "PORTCULLIS_PEER_ADDR".into(),
            "a peer address needs the replicas' shared key: set PORTCULLIS_PEER_KEY_FILE \
             (or PORTCULLIS_PEER_KEY)"
                .into(),
        )),
        (None, Some((_, from))) => Err((
            from.to_owned(),
            "a peer key needs this replica's peer address: set PORTCULLIS_PEER_ADDR \
             (e.g. $(POD_IP):15030)"
                .into(),
        )),
        (Some(a), Some((secrets, from))) => {
            let addr: SocketAddr = a.trim().parse().map_err(|e| {
                (
                    "PORTCULLIS_PEER_ADDR".to_owned(),
                    format!("{a:?} is not ip:port: {e}"),
                )
            })?;
            if secrets.is_empty() {
                return Err((from.to_owned(), "holds no key".into()));
            }
            Peering::new(addr, &secrets)
                .map(Some)
                .map_err(|e| (from.to_owned(), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peering(addr: &str, keys: &[&str]) -> Peering {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        Peering::new(addr.parse().unwrap(), &keys).unwrap()
    }

    const K1: &str = "0123456789abcdef-first-key";
    const K2: &str = "fedcba9876543210-second-key";

    #[test]
    fn sealed_ids_name_their_owner_and_open_only_with_the_key() {
        let a = peering("10.0.0.1:15030", &[K1]);
        let b = peering("10.0.0.2:15030", &[K1]);
        let id = a.seal(3, &[7; 16]);
        assert_eq!(id.len(), 86);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(a.open(&id), Some(Owner::Local(3)));
        assert_eq!(
            b.open(&id),
            Some(Owner::Peer("10.0.0.1:15030".parse().unwrap()))
        );
        // Each id is different, even for the same random part (the nonce).
        assert_ne!(a.seal(3, &[7; 16]), id);
        // Another key: not ours.
        assert_eq!(peering("10.0.0.2:15030", &[K2]).open(&id), None);
        // Rotation: the old key still opens.
        assert!(peering("10.0.0.2:15030", &[K2, K1]).open(&id).is_some());
        // Tampering with any character is detected.
        for i in 0..id.len() {
            let mut t = id.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(a.open(&t), None, "tampered at {i}");
        }
        for bad in ["", "00", &"0".repeat(34), &id[..85], &format!("{id}A")] {
            assert_eq!(a.open(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv6_owners_round_trip() {
        let a = peering("[fd00::5]:15030", &[K1]);
        let b = peering("10.0.0.2:15030", &[K1]);
        let id = a.seal(0, &[1; 16]);
        assert_eq!(
            b.open(&id),
            Some(Owner::Peer("[fd00::5]:15030".parse().unwrap()))
        );
    }

    #[test]
    fn forwarded_requests_are_signed_and_checked() {
        let a = peering("10.0.0.1:15030", &[K1]);
        let owner = peering("10.0.0.2:15030", &[K2, K1]);
        let req = PeerRequest {
            port: 3000,
            https: true,
            client: "192.0.2.7".parse().unwrap(),
            method: "POST",
            target: b"/mcp",
            session: b"abc",
        };
        let h = a.sign(&req, 1000);
        let want = Forwarded {
            port: 3000,
            https: true,
            client: req.client,
        };
        assert_eq!(owner.check(&h, "POST", b"/mcp", b"abc", 1010), Some(want));
        // Another method, target or session: refused.
        assert_eq!(owner.check(&h, "GET", b"/mcp", b"abc", 1010), None);
        assert_eq!(owner.check(&h, "POST", b"/mcp2", b"abc", 1010), None);
        assert_eq!(owner.check(&h, "POST", b"/mcp", b"abd", 1010), None);
        // Stale, or from the future.
        assert_eq!(owner.check(&h, "POST", b"/mcp", b"abc", 1031), None);
        assert_eq!(owner.check(&h, "POST", b"/mcp", b"abc", 969), None);
        // The fields are covered: change the port.
        let mut forged = h;
        let at = forged.iter().position(|&b| b == b'.').unwrap() + 1;
        forged[at] = b'4';
        assert_eq!(owner.check(&forged, "POST", b"/mcp", b"abc", 1010), None);
        // A replica without the key cannot sign.
        let stranger = peering("10.0.0.9:15030", &[K2]);
        let h2 = stranger.sign(&req, 1000);
        assert_eq!(a.check(&h2, "POST", b"/mcp", b"abc", 1000), None);
        for junk in [&b""[..], b"....", b"1.2.3.4.5", b"x.3000.1.192.0.2.7.AAAA"] {
            assert_eq!(owner.check(junk, "POST", b"/mcp", b"abc", 1000), None);
        }
    }

    #[test]
    fn settings_from_the_environment() {
        assert!(from_env_values(None, None, None).unwrap().is_none());
        let err = |a, f, k| from_env_values(a, f, k).unwrap_err();
        assert_eq!(
            err(Some("10.0.0.1:15030"), None, None).0,
            "PORTCULLIS_PEER_ADDR"
        );
        assert_eq!(err(None, None, Some(K1)).0, "PORTCULLIS_PEER_KEY");
        assert!(err(Some("10.0.0.1:15030"), None, Some("short"))
            .1
            .contains("shorter"));
        assert!(err(Some("0.0.0.0:15030"), None, Some(K1))
            .1
            .contains("reach"));
        assert!(err(Some("nope"), None, Some(K1)).1.contains("ip:port"));
        let text = format!("# current\n{K2}\n\n{K1}\n");
        let p = from_env_values(Some("10.0.0.1:15030"), Some(("/k", &text)), None)
            .unwrap()
            .unwrap();
        assert_eq!(p.secrets.len(), 2);
        assert_eq!(
            err(Some("10.0.0.1:15030"), Some(("/k", "\n")), None).0,
            "/k"
        );
    }
}
