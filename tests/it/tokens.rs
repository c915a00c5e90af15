//! Test-only token minting: ES256 and EdDSA keys generated per test with ring, JWKS documents
//! for them, and compact JWS tokens with chosen headers and claims.
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

pub fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len() * 4 / 3 + 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        if c.len() > 1 {
            out.push(A[(n >> 6) as usize & 63] as char);
        }
        if c.len() > 2 {
            out.push(A[n as usize & 63] as char);
        }
    }
    out
}

pub enum Key {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    key: Key,
}

impl TestKey {
    pub fn es256(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        TestKey {
            kid: kid.into(),
            key: Key::Es256(kp),
        }
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        TestKey {
            kid: kid.into(),
            key: Key::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Es256(_) => "ES256",
            Key::EdDsa(_) => "EdDSA",
        }
    }

    /// The public JWK (with `kid`).
    pub fn jwk(&self) -> String {
        match &self.key {
            Key::Es256(kp) => {
                let p = kp.public_key().as_ref();
                format!(
                    r#"{{"kty":"EC","crv":"P-256","kid":"{}","use":"sig","alg":"ES256","x":"{}","y":"{}"}}"#,
                    self.kid,
                    b64(&p[1..33]),
                    b64(&p[33..65])
                )
            }
            Key::EdDsa(kp) => format!(
                r#"{{"kty":"OKP","crv":"Ed25519","kid":"{}","x":"{}"}}"#,
                self.kid,
                b64(kp.public_key().as_ref())
            ),
        }
    }

    /// Signs `claims` (a JSON object) with this key; `header_extra` is spliced into the header.
    pub fn sign(&self, claims: &str) -> String {
        self.sign_with_header(
            &format!(
                r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#,
                self.alg(),
                self.kid
            ),
            claims,
        )
    }

    pub fn sign_with_header(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = match &self.key {
            Key::Es256(kp) => kp
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Key::EdDsa(kp) => kp.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }
}

pub fn jwks(keys: &[&TestKey]) -> String {
    format!(
        r#"{{"keys":[{}]}}"#,
        keys.iter().map(|k| k.jwk()).collect::<Vec<_>>().join(",")
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims for `iss`/`aud` valid for an hour.
pub fn claims(iss: &str, aud: &str, sub: &str) -> String {
    let n = now();
    format!(
        r#"{{"iss":"{iss}","aud":"{aud}","sub":"{sub}","exp":{},"iat":{n},"scope":"openid profile","client_id":"test-client"}}"#,
        n + 3600
    )
}
