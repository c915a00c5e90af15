//! JWKS (RFC 7517) → [`KeySet`]: every accepted key parsed once into the bytes ring verifies
//! with, tagged with the algorithms it allows.
//!
//! Owns: key acceptance policy — signature keys only (`use` absent or `sig`, `key_ops`
//! absent or containing `verify`); RSA ≥ 2048 bits (≤ 8192, ring's limit), EC P-256/P-384,
//! OKP Ed25519; symmetric (`oct`) keys never. A key's allowed algs are its JWK `alg` if present
//! (which must be one we support *and* match the key type — otherwise the key is skipped,
//! failing closed), else its whole family (RSA → RS*/PS*, P-256 → ES256, P-384 → ES384,
//! Ed25519 → EdDSA). Bad keys are skipped with a warning; the rest still load.
//! Does not: fetch (`jwks_fetch`, control plane), verify signatures (`verify`), or log —
//! warnings are returned for the caller to log.

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::b64;
use super::verify::{Alg, Family};
use super::AuthReject;

/// A verification key, ready for ring.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    kid: Option<String>,
    family: Family,
    /// Bitmask of [`Alg::bit`].
    algs: u16,
    /// DER `RSAPublicKey`, an uncompressed EC point (`04‖x‖y`), or the 32-byte Ed25519 key.
    material: Box<[u8]>,
}

/// Verifies `signature` over `signing_input` with `key` under `alg`.
///
/// [`AuthReject::AlgNotAllowed`] if the key does not allow `alg` (so a caller that skipped
/// [`KeySet::select`](super::KeySet::select) still cannot mix families); any ring failure,
/// including a wrong-length or DER-encoded ECDSA signature, is [`AuthReject::BadSignature`].
pub fn verify_signature(
    key: &Key,
    alg: Alg,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), AuthReject> {
    if !key.allows(alg) {
        return Err(AuthReject::AlgNotAllowed);
    }
    ring::signature::UnparsedPublicKey::new(alg.spec().ring, key.material())
        .verify(signing_input, signature)
        .map_err(|_| AuthReject::BadSignature)
}

impl Key {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn allows(&self, alg: Alg) -> bool {
        self.algs & alg.bit() != 0
    }

    pub fn algs(&self) -> impl Iterator<Item = Alg> + '_ {
        Alg::ALL.into_iter().filter(|a| self.allows(*a))
    }

    pub(crate) fn material(&self) -> &[u8] {
        &self.material
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algs", &self.algs().collect::<Vec<_>>())
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The accepted keys of one JWKS document. Immutable, `Send + Sync`: built on a control thread
/// and shared with workers in an `Arc`. Each set gets a process-unique [`id`](KeySet::id) so
/// per-worker token caches notice a key change and empty themselves.
///
/// Lookup is a linear scan: JWKS documents hold a handful of keys, and a scan of short `kid`s
/// beats hashing at that size; it only runs on cache misses, next to a ≥ 20 µs verify.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    id: u64,
}

impl KeySet {
    pub fn new(keys: Vec<Key>) -> Self {
        KeySet {
            keys,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A process-unique generation number for this set.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(Key::kid)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// With a `kid`: the key with that `kid` that allows `alg` ([`AuthReject::UnknownKid`] if
    /// no key has the `kid`, [`AuthReject::AlgNotAllowed`] if none of those allows `alg`).
    /// Without: the key that allows `alg` if exactly one does, else `UnknownKid`.
    pub fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&Key, AuthReject> {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for k in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    if k.allows(alg) {
                        return Ok(k);
                    }
                    seen = true;
                }
                Err(if seen {
                    AuthReject::AlgNotAllowed
                } else {
                    AuthReject::UnknownKid
                })
            }
            None => {
                let mut fit = self.keys.iter().filter(|k| k.allows(alg));
                match (fit.next(), fit.next()) {
                    (Some(k), None) => Ok(k),
                    _ => Err(AuthReject::UnknownKid),
                }
            }
        }
    }
}

/// Parses a JWKS document. `Err` only if it is not a JSON object with a `keys` array; each
/// unusable key is skipped with a warning (`key[i] kid="…": reason`).
pub fn parse_jwks(json: &[u8]) -> Result<(KeySet, Vec<String>), String> {
    let doc: Value = serde_json::from_slice(json).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let Value::Object(mut doc) = doc else {
        return Err("JWKS is not a JSON object".into());
    };
    let Some(Value::Array(list)) = doc.remove("keys") else {
        return Err("JWKS has no \"keys\" array".into());
    };
    let mut keys: Vec<Key> = Vec::with_capacity(list.len());
    let mut warnings = Vec::new();
    for (i, jwk) in list.iter().enumerate() {
        let label = || {
            let kid = jwk.get("kid").and_then(Value::as_str);
            match kid {
                Some(k) => format!("key[{i}] kid={:?}", truncate(k, 64)),
                None => format!("key[{i}] (no kid)"),
            }
        };
        match jwk
            .as_object()
            .ok_or("not a JSON object")
            .and_then(parse_key)
        {
            Ok(key) => {
                if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) {
                    warnings.push(format!("{}: duplicate kid, both kept", label()));
                }
                keys.push(key);
            }
            Err(reason) => warnings.push(format!("{}: skipped: {reason}", label())),
        }
    }
    Ok((KeySet::new(keys), warnings))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

type Why = &'static str;

fn opt_str<'a>(o: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Why> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err("a member that must be a string is not"),
    }
}

fn b64_field(o: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Why> {
    let s = opt_str(o, name)?.ok_or("missing key material member")?;
    b64::decode(s.as_bytes()).map_err(|_| "key material is not canonical base64url")
}

fn parse_key(o: &Map<String, Value>) -> Result<Key, Why> {
    let kty = opt_str(o, "kty")?.ok_or("missing kty")?;
    let kid = opt_str(o, "kid")?.map(str::to_owned);
    if let Some(u) = opt_str(o, "use")? {
        if u != "sig" {
            return Err("use is not \"sig\"");
        }
    }
    if let Some(ops) = o.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|v| v.as_str() == Some("verify")) {
            return Err("key_ops does not include \"verify\"");
        }
    }
    let (family, material) = match kty {
        "RSA" => (
            Family::Rsa,
            rsa_der(&b64_field(o, "n")?, &b64_field(o, "e")?)?,
        ),
        "EC" => {
            let (family, len) = match opt_str(o, "crv")? {
                Some("P-256") => (Family::P256, 32),
                Some("P-384") => (Family::P384, 48),
                _ => return Err("unsupported EC curve (P-256 and P-384 only)"),
            };
            let (x, y) = (b64_field(o, "x")?, b64_field(o, "y")?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinate has the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (family, point)
        }
        "OKP" => {
            if opt_str(o, "crv")? != Some("Ed25519") {
                return Err("unsupported OKP curve (Ed25519 only)");
            }
            let x = b64_field(o, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key has the wrong length");
            }
            (Family::Ed25519, x)
        }
        "oct" => return Err("symmetric (oct) keys are never accepted"),
        _ => return Err("unsupported kty"),
    };
    let algs = match opt_str(o, "alg")? {
        Some(name) => match Alg::from_name(name.as_bytes()) {
            Some(a) if a.family() == family => a.bit(),
            _ => return Err("alg is not a supported signature algorithm for this key type"),
        },
        None => Alg::ALL
            .iter()
            .filter(|a| a.family() == family)
            .fold(0, |m, a| m | a.bit()),
    };
    Ok(Key {
        kid,
        family,
        algs,
        material: material.into_boxed_slice(),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

/// Checks an RSA public key and encodes it as DER `RSAPublicKey ::= SEQUENCE { n, e }`.
fn rsa_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>, Why> {
    let (n, e) = (strip_zeros(n), strip_zeros(e));
    let bits = match n.first() {
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if bits < 2048 {
        return Err("RSA modulus is under 2048 bits");
    }
    if bits > 8192 {
        return Err("RSA modulus is over 8192 bits");
    }
    if n[n.len() - 1] & 1 == 0 {
        return Err("RSA modulus is even");
    }
    // ring's verification bounds: 3 <= e < 2^33, odd.
    if e.len() > 5 {
        return Err("RSA exponent is out of range");
    }
    let ev = e.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
    if !(3..1 << 33).contains(&ev) || ev & 1 == 0 {
        return Err("RSA exponent is out of range");
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    der_uint(&mut body, n);
    der_uint(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    Ok(out)
}

fn der_uint(out: &mut Vec<u8>, v: &[u8]) {
    let pad = v[0] & 0x80 != 0;
    out.push(0x02);
    der_len(out, v.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}
