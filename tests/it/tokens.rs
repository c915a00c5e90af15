//! Test-only token minting: ES256 and EdDSA keys generated per test, JWKS documents for them,
//! and compact JWS tokens with chosen headers and claims — all through the library's minter
//! (`portcullis::mint`, the one `mcp-load` uses).
use portcullis::mint::{Alg, SignKey};

pub use portcullis::mint::b64url as b64;

pub struct TestKey {
    pub kid: String,
    key: SignKey,
}

impl TestKey {
    pub fn es256(kid: &str) -> TestKey {
        Self::generate(Alg::Es256, kid)
    }

    pub fn eddsa(kid: &str) -> TestKey {
        Self::generate(Alg::EdDsa, kid)
    }

    fn generate(alg: Alg, kid: &str) -> TestKey {
        let (key, _pem) = SignKey::generate(alg, Some(kid)).unwrap();
        TestKey {
            kid: kid.into(),
            key,
        }
    }

    pub fn alg(&self) -> &'static str {
        self.key.alg().as_str()
    }

    /// The public JWK (with `kid`, `alg` and `use`).
    pub fn jwk(&self) -> String {
        self.key.public_jwk().to_string()
    }

    /// Signs `claims` (a JSON object) with this key.
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
        self.key.sign_compact(header, claims).unwrap()
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
