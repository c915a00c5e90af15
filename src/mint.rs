//! Token minting for `mcp-load` and the integration tests (not an API, and not used by the
//! proxy): loads a private signing key (PKCS#8/PKCS#1 PEM or a private JWK) or generates one,
//! signs compact JWS access tokens with ring (RS256, ES256, ES384, EdDSA) and renders the
//! matching public JWKS. Sans-IO apart from [`SignKey::load`] reading the key file.
//! Does not: verify tokens (`policy::mcp_auth` does), fetch keys, or generate RSA keys (ring
//! cannot; see `mcp-load keygen`).

use anyhow::{anyhow, bail, Context, Result};
use ring::rand::SystemRandom;
use ring::rsa::{KeyPairComponents, PublicKeyComponents};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::Value;

use crate::policy::mcp_auth::b64;

#[cfg(test)]
mod tests;

/// The algorithms `mcp-load` can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    /// P-384: the most expensive verification a JWKS can ask of Portcullis (flood benchmarks).
    Es384,
    EdDsa,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Result<Alg> {
        match s.to_ascii_uppercase().as_str() {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "ES384" => Ok(Alg::Es384),
            "EDDSA" | "ED25519" => Ok(Alg::EdDsa),
            _ => bail!("unsupported algorithm {s:?} (expected RS256, ES256, ES384 or EdDSA)"),
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ec384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key that signs tokens, with the `kid` put in their header and in the JWKS.
pub struct SignKey {
    pub kid: String,
    inner: Inner,
    rng: SystemRandom,
}

/// What goes into a minted token's claims.
#[derive(Debug, Clone)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub scope: String,
    /// Seconds from now until `exp`; negative for an already expired token.
    pub ttl: i64,
}

impl SignKey {
    /// Reads a key file: a PEM (`PRIVATE KEY` = PKCS#8, `RSA PRIVATE KEY` = PKCS#1) or a JSON
    /// private JWK (RSA with CRT parameters, EC P-256, OKP Ed25519).
    pub fn load(path: &str, kid: Option<&str>) -> Result<SignKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the signing key {path}"))?;
        Self::parse(&text, kid).with_context(|| format!("loading the signing key {path}"))
    }

    pub fn parse(text: &str, kid: Option<&str>) -> Result<SignKey> {
        let t = text.trim_start();
        if t.starts_with('{') {
            return Self::from_jwk(t, kid);
        }
        let (label, der) = pem_decode(t)?;
        let inner = match label.as_str() {
            "PRIVATE KEY" => from_pkcs8(&der)?,
            "RSA PRIVATE KEY" => Inner::Rsa(
                RsaKeyPair::from_der(&der).map_err(|e| anyhow!("bad PKCS#1 RSA key: {e}"))?,
            ),
            "EC PRIVATE KEY" => bail!(
                "SEC1 EC keys are not supported; convert with `openssl pkcs8 -topk8 -nocrypt`"
            ),
            "ENCRYPTED PRIVATE KEY" => bail!("encrypted keys are not supported"),
            other => bail!("unexpected PEM block {other:?} (expected PRIVATE KEY)"),
        };
        Ok(SignKey::new(inner, kid))
    }

    /// Without an explicit `kid`, keys are named after their algorithm (`mcp-load-rs256`), so
    /// one JWKS can hold one key of each kind.
    fn new(inner: Inner, kid: Option<&str>) -> SignKey {
        let mut k = SignKey {
            kid: String::new(),
            inner,
            rng: SystemRandom::new(),
        };
        k.kid = match kid {
            Some(kid) => kid.to_owned(),
            None => format!("mcp-load-{}", k.alg().as_str().to_ascii_lowercase()),
        };
        k
    }

    fn from_jwk(text: &str, kid: Option<&str>) -> Result<SignKey> {
        let v: Value = serde_json::from_str(text).context("the key file is not valid JSON")?;
        let field = |name: &str| -> Result<Vec<u8>> {
            let s = v[name].as_str().ok_or_else(|| {
                anyhow!("JWK member {name:?} is missing (a private JWK is needed)")
            })?;
            b64::decode(s.as_bytes())
                .ok()
                .ok_or_else(|| anyhow!("JWK member {name:?} is not base64url"))
        };
        let inner = match v["kty"].as_str() {
            Some("RSA") => {
                let c = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: field("n")?,
                        e: field("e")?,
                    },
                    d: field("d")?,
                    p: field("p")?,
                    q: field("q")?,
                    dP: field("dp")?,
                    dQ: field("dq")?,
                    qInv: field("qi")?,
                };
                Inner::Rsa(
                    RsaKeyPair::from_components(&c).map_err(|e| anyhow!("bad RSA JWK: {e}"))?,
                )
            }
            Some("EC") => {
                let alg = match v["crv"].as_str() {
                    Some("P-256") => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Some("P-384") => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    _ => bail!("only P-256 and P-384 EC keys are supported"),
                };
                let mut public = vec![4u8];
                public.extend(field("x")?);
                public.extend(field("y")?);
                let kp = EcdsaKeyPair::from_private_key_and_public_key(
                    alg,
                    &field("d")?,
                    &public,
                    &SystemRandom::new(),
                )
                .map_err(|e| anyhow!("bad EC JWK: {e}"))?;
                if v["crv"].as_str() == Some("P-384") {
                    Inner::Ec384(kp)
                } else {
                    Inner::Ec(kp)
                }
            }
            Some("OKP") => {
                if v["crv"].as_str() != Some("Ed25519") {
                    bail!("only Ed25519 OKP keys are supported");
                }
                Inner::Ed(
                    Ed25519KeyPair::from_seed_and_public_key(&field("d")?, &field("x")?)
                        .map_err(|e| anyhow!("bad Ed25519 JWK: {e}"))?,
                )
            }
            other => bail!("unsupported JWK kty {other:?}"),
        };
        Ok(SignKey::new(inner, kid.or(v["kid"].as_str())))
    }

    /// Generates a fresh ES256 or EdDSA key and returns it with its PKCS#8 PEM.
    pub fn generate(alg: Alg, kid: Option<&str>) -> Result<(SignKey, String)> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Alg::Es384 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            }
            Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
            Alg::Rs256 => {
                bail!("ring cannot generate RSA keys; use `openssl genpkey -algorithm RSA`")
            }
        }
        .map_err(|_| anyhow!("key generation failed"))?;
        let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
        Ok((SignKey::new(from_pkcs8(pkcs8.as_ref())?, kid), pem))
    }

    pub fn alg(&self) -> Alg {
        match self.inner {
            Inner::Rsa(_) => Alg::Rs256,
            Inner::Ec(_) => Alg::Es256,
            Inner::Ec384(_) => Alg::Es384,
            Inner::Ed(_) => Alg::EdDsa,
        }
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Value {
        let (kid, alg) = (self.kid.as_str(), self.alg().as_str());
        match &self.inner {
            Inner::Rsa(kp) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(kp.public());
                serde_json::json!({"kty":"RSA","kid":kid,"alg":alg,"use":"sig",
                    "n":b64::encode(&c.n),"e":b64::encode(&c.e)})
            }
            Inner::Ec(kp) => {
                let p = kp.public_key().as_ref();
                serde_json::json!({"kty":"EC","crv":"P-256","kid":kid,"alg":alg,"use":"sig",
                    "x":b64::encode(&p[1..33]),"y":b64::encode(&p[33..65])})
            }
            Inner::Ec384(kp) => {
                let p = kp.public_key().as_ref();
                serde_json::json!({"kty":"EC","crv":"P-384","kid":kid,"alg":alg,"use":"sig",
                    "x":b64::encode(&p[1..49]),"y":b64::encode(&p[49..97])})
            }
            Inner::Ed(kp) => serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":kid,"alg":alg,
                "use":"sig","x":b64::encode(kp.public_key().as_ref())}),
        }
    }

    /// `{"keys":[<public JWK>, …]}` for `keys`.
    pub fn jwks(keys: &[SignKey]) -> String {
        let keys: Vec<Value> = keys.iter().map(SignKey::public_jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Signs a token for `c` issued at `now` (unix seconds); `jti` makes it unique.
    pub fn mint(&self, c: &Claims, now: i64, jti: &str) -> Result<String> {
        let header =
            serde_json::json!({"alg": self.alg().as_str(), "typ": "at+jwt", "kid": self.kid});
        let mut claims = serde_json::json!({
            "iss": c.iss, "sub": c.sub, "aud": c.aud,
            "iat": now, "nbf": now.min(now + c.ttl) - 1, "exp": now + c.ttl,
            "client_id": "mcp-load", "jti": jti,
        });
        if !c.scope.is_empty() {
            claims["scope"] = Value::String(c.scope.clone());
        }
        self.sign_compact(&header.to_string(), &claims.to_string())
    }

    /// A compact JWS of `header` and `claims` (JSON texts, signed as given: tests craft odd
    /// headers with it).
    pub fn sign_compact(&self, header: &str, claims: &str) -> Result<String> {
        let input = format!(
            "{}.{}",
            b64::encode(header.as_bytes()),
            b64::encode(claims.as_bytes())
        );
        let sig = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64::encode(&sig)))
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let fail = |_| anyhow!("signing failed");
        Ok(match &self.inner {
            Inner::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(fail)?;
                sig
            }
            Inner::Ec(kp) | Inner::Ec384(kp) => {
                kp.sign(&self.rng, msg).map_err(fail)?.as_ref().to_vec()
            }
            Inner::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
        })
    }
}

/// Corrupts a token's signature (one base64url character in its middle), keeping its shape:
/// the result still parses as a JWS but never verifies.
pub fn corrupt(token: &str) -> String {
    let Some(dot) = token.rfind('.') else {
        return format!("{token}x");
    };
    let mut bytes = token.as_bytes().to_vec();
    let sig_len = bytes.len() - dot - 1;
    if sig_len < 2 {
        bytes.extend_from_slice(b"AAAA");
        return String::from_utf8(bytes).unwrap_or_default();
    }
    let i = dot + 1 + sig_len / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    // Only ASCII was written over ASCII, so this cannot fail.
    String::from_utf8(bytes).unwrap_or_default()
}

fn from_pkcs8(der: &[u8]) -> Result<Inner> {
    if let Ok(kp) = RsaKeyPair::from_pkcs8(der) {
        return Ok(Inner::Rsa(kp));
    }
    let rng = SystemRandom::new();
    if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
    {
        return Ok(Inner::Ec(kp));
    }
    if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
    {
        return Ok(Inner::Ec384(kp));
    }
    // OpenSSL writes PKCS#8 v1 Ed25519 keys (no public key); ring's checked parser wants v2.
    if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        return Ok(Inner::Ed(kp));
    }
    bail!("the PKCS#8 key is not RSA (≥ 2048 bits), EC P-256, EC P-384 or Ed25519")
}

fn pem_decode(text: &str) -> Result<(String, Vec<u8>)> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| anyhow!("neither a PEM block nor a JSON JWK"))?;
    let rest = &text[begin + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| anyhow!("malformed PEM header"))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| anyhow!("PEM block without an END line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = b64::decode_std(&b64).ok_or_else(|| anyhow!("PEM body is not base64"))?;
    Ok((label, der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = b64::encode_std(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Padded standard base64 (PEM bodies; 2026-07-28's `=?base64?…?=` header values).
pub fn b64std(data: &[u8]) -> String {
    b64::encode_std(data)
}

/// Unpadded base64url, as JWS segments and JWK members use.
pub fn b64url(data: &[u8]) -> String {
    b64::encode(data)
}
