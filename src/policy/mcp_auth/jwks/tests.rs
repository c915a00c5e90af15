use serde_json::json;

use super::*;
use crate::policy::mcp_auth::tests::{data_dir, sign};
use crate::policy::mcp_auth::verify::ALGS;
use crate::policy::mcp_auth::verify_signature;

fn corpus_jwks() -> Vec<Value> {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(data_dir().join("jwks.json")).unwrap()).unwrap();
    doc["keys"].as_array().unwrap().clone()
}

fn jwk(kid: &str) -> Value {
    corpus_jwks().into_iter().find(|k| k["kid"] == kid).unwrap()
}

fn set(keys: Vec<Value>) -> (KeySet, Vec<String>) {
    parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

fn strip(mut k: Value, drop: &[&str]) -> Value {
    for d in drop {
        k.as_object_mut().unwrap().remove(*d);
    }
    k
}

#[test]
fn alg_table_matches_enum_order() {
    for (i, a) in Alg::ALL.iter().enumerate() {
        assert_eq!(ALGS[i].alg, *a);
        assert_eq!(a.spec().name, a.as_str());
        assert_eq!(Alg::from_name(a.as_str().as_bytes()), Some(*a));
    }
    for bad in [
        "none", "None", "HS256", "HS384", "HS512", "ES512", "ES256K", "Ed25519", "rs256", "",
    ] {
        assert_eq!(Alg::from_name(bad.as_bytes()), None, "{bad}");
    }
}

#[test]
fn good_keys_of_every_type_load_and_verify() {
    let (ks, warnings) = set(vec![
        jwk("rsa-2048"),
        jwk("rsa-4096"),
        jwk("ec-p256"),
        jwk("ec-p384"),
        jwk("ed-25519"),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(ks.len(), 5);
    assert_eq!(
        ks.kids().collect::<Vec<_>>(),
        [
            Some("rsa-2048"),
            Some("rsa-4096"),
            Some("ec-p256"),
            Some("ec-p384"),
            Some("ed-25519")
        ]
    );
    for (kid, key_file, alg) in [
        ("rsa-2048", "rsa-2048", Alg::RS256),
        ("rsa-2048", "rsa-2048", Alg::PS512),
        ("rsa-4096", "rsa-4096", Alg::RS384),
        ("ec-p256", "ec-p256", Alg::ES256),
        ("ec-p384", "ec-p384", Alg::ES384),
        ("ed-25519", "ed-25519", Alg::EdDSA),
    ] {
        let key = ks.select(Some(kid), alg).unwrap();
        let s = sign(key_file, alg.as_str(), b"header.payload");
        assert_eq!(
            verify_signature(key, alg, b"header.payload", &s),
            Ok(()),
            "{kid} {alg}"
        );
        assert_eq!(
            verify_signature(key, alg, b"header.payloaD", &s),
            Err(AuthReject::BadSignature)
        );
    }
    let rsa = ks.select(Some("rsa-2048"), Alg::RS256).unwrap();
    assert_eq!(rsa.algs().count(), 6);
    assert_eq!(
        ks.select(Some("ec-p256"), Alg::ES256)
            .unwrap()
            .algs()
            .collect::<Vec<_>>(),
        [Alg::ES256]
    );
    assert_eq!(
        ks.select(Some("ed-25519"), Alg::EdDSA)
            .unwrap()
            .algs()
            .collect::<Vec<_>>(),
        [Alg::EdDSA]
    );
    // verify_signature itself refuses a family mismatch.
    let s = sign("ec-p256", "ES256", b"x");
    assert_eq!(
        verify_signature(rsa, Alg::ES256, b"x", &s),
        Err(AuthReject::AlgNotAllowed)
    );
}

#[test]
fn bad_keys_are_skipped_and_good_ones_still_load() {
    let rsa = jwk("rsa-2048");
    let ec = jwk("ec-p256");
    let short_n = b64::encode(&[0xC5; 128]); // 1024-bit modulus
    let cases = vec![
        (
            with(&rsa, json!({"kid": "bad-b64", "n": "not base64!"})),
            "base64url",
        ),
        (
            with(
                &rsa,
                json!({"kid": "padded", "n": format!("{}==", rsa["n"].as_str().unwrap())}),
            ),
            "base64url",
        ),
        (
            with(&rsa, json!({"kid": "short-rsa", "n": short_n})),
            "under 2048",
        ),
        (
            with(&rsa, json!({"kid": "even-e", "e": "AQAA"})),
            "exponent",
        ),
        (with(&rsa, json!({"kid": "e-one", "e": "AQ"})), "exponent"),
        (with(&rsa, json!({"kid": "enc", "use": "enc"})), "use"),
        (
            with(&rsa, json!({"kid": "ops", "key_ops": ["encrypt"]})),
            "key_ops",
        ),
        (with(&rsa, json!({"kid": "hs-alg", "alg": "HS256"})), "alg"),
        (
            with(&rsa, json!({"kid": "es-alg-on-rsa", "alg": "ES256"})),
            "alg",
        ),
        (
            with(&ec, json!({"kid": "ps-alg-on-ec", "alg": "PS256"})),
            "alg",
        ),
        (
            strip(with(&rsa, json!({"kid": "no-n"})), &["n"]),
            "missing key material",
        ),
        (
            strip(with(&ec, json!({"kid": "no-y"})), &["y"]),
            "missing key material",
        ),
        (with(&ec, json!({"kid": "p521", "crv": "P-521"})), "curve"),
        (
            with(&ec, json!({"kid": "short-x", "x": b64::encode(&[1; 31])})),
            "length",
        ),
        (
            json!({"kty": "OKP", "crv": "X25519", "x": b64::encode(&[9; 32]), "kid": "x25519"}),
            "OKP curve",
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&[9; 31]), "kid": "ed-short"}),
            "length",
        ),
        (
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "oct"}),
            "symmetric",
        ),
        (
            json!({"kty": "XYZ", "kid": "unknown-kty"}),
            "unsupported kty",
        ),
        (json!({"kid": "no-kty"}), "missing kty"),
        (json!({"kty": "RSA", "kid": 5}), "string"),
        (json!("not an object"), "object"),
    ];
    let n_bad = cases.len();
    let mut keys: Vec<Value> = cases.iter().map(|c| c.0.clone()).collect();
    keys.push(jwk("rsa-2048"));
    keys.push(jwk("ec-p384"));
    keys.push(jwk("ed-25519"));
    let (ks, warnings) = set(keys);
    assert_eq!(ks.len(), 3, "{warnings:?}");
    assert_eq!(warnings.len(), n_bad, "{warnings:?}");
    for (w, (_, why)) in warnings.iter().zip(&cases) {
        assert!(
            w.contains("skipped") && w.contains(why),
            "{w} should mention {why}"
        );
    }
    assert!(
        warnings[0].starts_with("key[0] kid=\"bad-b64\""),
        "{}",
        warnings[0]
    );
    assert!(warnings[n_bad - 1].contains("(no kid)"));
}

fn with(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn not_a_jwks_is_an_error() {
    for bad in [
        &b"[]"[..],
        b"{}",
        b"{\"keys\":{}}",
        b"{\"keys\":null}",
        b"not json",
        b"",
    ] {
        assert!(parse_jwks(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let (ks, w) = parse_jwks(b"{\"keys\":[]}").unwrap();
    assert!(ks.is_empty() && w.is_empty());
}

#[test]
fn select_rules() {
    let mut ps = jwk("rsa-ps256");
    ps["kid"] = json!("dup");
    let mut rs = jwk("rsa-4096");
    rs["kid"] = json!("dup");
    let nokid = strip(jwk("ec-p256"), &["kid"]);
    let (ks, warnings) = set(vec![ps, rs, nokid, jwk("rsa-2048")]);
    assert_eq!(warnings.len(), 1, "duplicate kid warned: {warnings:?}");
    use AuthReject::*;
    // Duplicate kid: the key that allows the alg is chosen.
    assert!(ks.select(Some("dup"), Alg::PS256).is_ok());
    assert_eq!(
        ks.select(Some("dup"), Alg::RS256).unwrap().algs().count(),
        6
    );
    assert_eq!(
        ks.select(Some("dup"), Alg::ES256).unwrap_err(),
        AlgNotAllowed
    );
    assert_eq!(ks.select(Some("nope"), Alg::RS256).unwrap_err(), UnknownKid);
    assert_eq!(
        ks.select(Some("rsa-2048"), Alg::EdDSA).unwrap_err(),
        AlgNotAllowed
    );
    // Without kid: exactly one key must fit.
    assert!(ks.select(None, Alg::ES256).unwrap().kid().is_none());
    assert_eq!(ks.select(None, Alg::RS256).unwrap_err(), UnknownKid);
    assert_eq!(ks.select(None, Alg::EdDSA).unwrap_err(), UnknownKid);
    // A kid-less key is not found by kid.
    assert_eq!(ks.select(Some(""), Alg::ES256).unwrap_err(), UnknownKid);
}

#[test]
fn keyset_ids_are_unique() {
    let a = KeySet::new(vec![]);
    let b = KeySet::new(vec![]);
    assert_ne!(a.id(), b.id());
}

#[test]
fn rsa_der_encoding() {
    // n with the high bit set gets a 0x00 pad; lengths use the long form.
    let n = [0xFF; 256];
    let der = rsa_der(&n, &[1, 0, 1]).unwrap();
    assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0A]);
    assert_eq!(&der[4..9], &[0x02, 0x82, 0x01, 0x01, 0x00]);
    assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 1, 0, 1]);
    // Leading zeros are stripped before the bit count.
    let mut padded = vec![0, 0, 0x80];
    padded.extend_from_slice(&[0x7F; 254]);
    padded.push(0x01);
    assert!(rsa_der(&padded, &[3]).is_ok());
    assert!(rsa_der(&[0x7F; 256], &[3]).is_err(), "2047 bits, and even");
    assert!(rsa_der(&[0xFF; 1025], &[3]).is_err(), "over 8192 bits");
}
