use ring::signature::{
    UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};

use super::*;

fn data(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/load/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn claims() -> Claims {
    Claims {
        iss: "https://iss".into(),
        aud: "aud".into(),
        sub: "me".into(),
        scope: "openid".into(),
        ttl: 60,
    }
}

/// Verifies `token` against `key`'s public JWK with ring, independently of the signer.
fn verify(key: &SignKey, token: &str) -> Value {
    let jwk = key.public_jwk();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = b64::decode(sig.as_bytes()).unwrap();
    let field = |n: &str| b64::decode(jwk[n].as_str().unwrap().as_bytes()).unwrap();
    match jwk["kty"].as_str().unwrap() {
        "RSA" => PublicKeyComponents {
            n: field("n"),
            e: field("e"),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
        .unwrap(),
        "EC" => {
            let mut p = vec![4];
            p.extend(field("x"));
            p.extend(field("y"));
            let alg = if jwk["crv"] == "P-384" {
                &ECDSA_P384_SHA384_FIXED
            } else {
                &ECDSA_P256_SHA256_FIXED
            };
            UnparsedPublicKey::new(alg, p)
                .verify(input.as_bytes(), &sig)
                .unwrap()
        }
        _ => UnparsedPublicKey::new(&ED25519, field("x"))
            .verify(input.as_bytes(), &sig)
            .unwrap(),
    }
    let (header, payload) = input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&b64::decode(header.as_bytes()).unwrap()).unwrap();
    assert_eq!(header["alg"], key.alg().as_str());
    assert_eq!(header["kid"], key.kid.as_str());
    serde_json::from_slice(&b64::decode(payload.as_bytes()).unwrap()).unwrap()
}

#[test]
fn pem_keys_mint_verifiable_tokens() {
    for (file, alg) in [
        ("rsa-2048.pem", Alg::Rs256),
        ("ec-p256.pem", Alg::Es256),
        ("ed-25519.pem", Alg::EdDsa),
    ] {
        let key = SignKey::parse(&data(file), None).unwrap();
        assert_eq!(key.alg(), alg);
        assert_eq!(
            key.kid,
            format!("mcp-load-{}", alg.as_str().to_ascii_lowercase())
        );
        let claims = verify(&key, &key.mint(&claims(), 1_000, "j1").unwrap());
        assert_eq!(claims["exp"], 1_060);
        assert_eq!(claims["iss"], "https://iss");
        assert_eq!(claims["aud"], "aud");
        assert_eq!(claims["jti"], "j1");
    }
    let key = SignKey::parse(&data("ec-p256.pem"), Some("k9")).unwrap();
    assert_eq!(key.kid, "k9");
    let expired = Claims {
        ttl: -3600,
        ..claims()
    };
    let c = verify(&key, &key.mint(&expired, 10_000, "x").unwrap());
    assert!(c["exp"].as_i64() < c["iat"].as_i64() && c["nbf"].as_i64() < c["exp"].as_i64());
}

/// Reads the DER INTEGERs of a PKCS#8-wrapped RSAPrivateKey (test helper, no validation).
fn rsa_ints(der: &[u8]) -> Vec<Vec<u8>> {
    fn len(d: &[u8], i: &mut usize) -> usize {
        let b = d[*i];
        *i += 1;
        if b < 0x80 {
            return b as usize;
        }
        let mut n = 0;
        for _ in 0..(b & 0x7f) {
            n = (n << 8) | d[*i] as usize;
            *i += 1;
        }
        n
    }
    // The inner RSAPrivateKey starts after the OCTET STRING that follows the AlgorithmIdentifier.
    let mut i = der.windows(2).position(|w| w == [0x05, 0x00]).unwrap() + 2;
    assert_eq!(der[i], 0x04);
    i += 1;
    len(der, &mut i);
    assert_eq!(der[i], 0x30);
    i += 1;
    len(der, &mut i);
    let mut out = Vec::new();
    while i < der.len() && der[i] == 0x02 {
        i += 1;
        let n = len(der, &mut i);
        let mut v = der[i..i + n].to_vec();
        while v.len() > 1 && v[0] == 0 {
            v.remove(0);
        }
        out.push(v);
        i += n;
    }
    out
}

#[test]
fn private_jwks_load_for_every_kty() {
    let u = |b: &[u8]| b64::encode(b);
    // RSA: n e d p q dp dq qi from the PEM's integers.
    let (_, der) = pem_decode(&data("rsa-2048.pem")).unwrap();
    let v = rsa_ints(&der);
    let jwk = serde_json::json!({"kty":"RSA","kid":"r1","n":u(&v[1]),"e":u(&v[2]),"d":u(&v[3]),
        "p":u(&v[4]),"q":u(&v[5]),"dp":u(&v[6]),"dq":u(&v[7]),"qi":u(&v[8])});
    let key = SignKey::parse(&jwk.to_string(), None).unwrap();
    assert_eq!((key.alg(), key.kid.as_str()), (Alg::Rs256, "r1"));
    verify(&key, &key.mint(&claims(), 1, "a").unwrap());
    // EC: d follows `02 01 01 04 20` in the ECPrivateKey; the public point is the PEM key's.
    let (_, der) = pem_decode(&data("ec-p256.pem")).unwrap();
    let at = der.windows(5).position(|w| w == [2, 1, 1, 4, 32]).unwrap() + 5;
    let pem_key = SignKey::parse(&data("ec-p256.pem"), None).unwrap();
    let pubj = pem_key.public_jwk();
    let jwk = serde_json::json!({"kty":"EC","crv":"P-256","d":u(&der[at..at + 32]),"x":pubj["x"],"y":pubj["y"]});
    let key = SignKey::parse(&jwk.to_string(), None).unwrap();
    verify(&key, &key.mint(&claims(), 1, "a").unwrap());
    // Ed25519: the seed is the last 32 bytes of the PKCS#8 v1 document.
    let (_, der) = pem_decode(&data("ed-25519.pem")).unwrap();
    let pem_key = SignKey::parse(&data("ed-25519.pem"), None).unwrap();
    let jwk = serde_json::json!({"kty":"OKP","crv":"Ed25519","d":u(&der[der.len() - 32..]),"x":pem_key.public_jwk()["x"]});
    let key = SignKey::parse(&jwk.to_string(), None).unwrap();
    verify(&key, &key.mint(&claims(), 1, "a").unwrap());
}

#[test]
fn bad_keys_say_why() {
    let e = |t: &str| format!("{:#}", SignKey::parse(t, None).err().unwrap());
    assert!(e("hello").contains("neither a PEM block nor a JSON JWK"));
    assert!(
        e("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n").contains("pkcs8")
    );
    assert!(
        e("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").contains("not RSA")
    );
    assert!(e(r#"{"kty":"EC","crv":"P-521","d":"AA","x":"AA","y":"AA"}"#).contains("P-256"));
    assert!(e(r#"{"kty":"EC","crv":"P-384","d":"AA","x":"AA","y":"AA"}"#).contains("bad EC JWK"));
    assert!(e(r#"{"kty":"RSA","n":"AQAB"}"#).contains("\"e\""));
    assert!(e(r#"{"kty":"oct","k":"AA"}"#).contains("kty"));
}

#[test]
fn corrupt_keeps_the_shape_and_changes_the_signature() {
    let key = SignKey::parse(&data("ed-25519.pem"), None).unwrap();
    let t = key.mint(&claims(), 1, "a").unwrap();
    let c = corrupt(&t);
    assert_eq!(c.len(), t.len());
    assert_eq!(c.split('.').count(), 3);
    assert_ne!(c, t);
    assert_eq!(c.rsplit_once('.').unwrap().0, t.rsplit_once('.').unwrap().0);
}

#[test]
fn generated_keys_mint_verifiable_tokens() {
    for alg in [Alg::Es256, Alg::Es384, Alg::EdDsa] {
        let (key, pem) = SignKey::generate(alg, Some("g")).unwrap();
        assert_eq!(key.alg(), alg);
        let again = SignKey::parse(&pem, Some("g")).unwrap();
        assert_eq!(again.alg(), alg);
        let c = verify(&again, &key.mint(&claims(), 1_000, "j").unwrap());
        assert_eq!(c["jti"], "j");
    }
    let (key, _) = SignKey::generate(Alg::Es384, None).unwrap();
    assert_eq!(key.public_jwk()["crv"], "P-384");
}
