//! `check_token`, `bearer_token`, and the adversarial corpus in `tests/data/jwt/`.

use std::path::PathBuf;
use std::rc::Rc;

use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::*;

/// The corpus clock: 2030-03-17. Tokens that should pass expire in 2100.
pub(crate) const NOW: i64 = 1_900_000_000;
pub(crate) const FAR: i64 = 4_102_444_800;
pub(crate) const ISS: &str = "https://idp.example.test/realms/mcp";
pub(crate) const AUD: &str = "https://mcp.example.test/mcp";

pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt")
}

pub(crate) fn corpus_validation() -> Validation {
    let mut v = Validation::new(ISS, vec![AUD.to_owned(), "urn:other-resource".to_owned()]);
    v.require_typ = Some("at+jwt".to_owned());
    v
}

/// PKCS#8 DER from a PEM file (standard base64 body).
pub(crate) fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(data_dir().join("keys").join(format!("{name}.pem")))
        .expect("key file");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    // The PEM body is standard base64; mapped to the URL alphabet it is canonical base64url.
    b64::decode(body.as_bytes()).expect("PEM body")
}

/// Signs `input` with the named test key under `alg` (`ES256-DER` = ASN.1 ECDSA).
pub(crate) fn sign(key: &str, alg: &str, input: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    let der = pem_der(key);
    let rsa = |pad: &'static dyn sig::RsaEncoding| {
        let kp = RsaKeyPair::from_pkcs8(&der).expect("rsa key");
        let mut out = vec![0; kp.public().modulus_len()];
        kp.sign(pad, &rng, input, &mut out).expect("rsa sign");
        out
    };
    let ec = |a: &'static sig::EcdsaSigningAlgorithm| {
        let kp = EcdsaKeyPair::from_pkcs8(a, &der, &rng).expect("ec key");
        kp.sign(&rng, input).expect("ec sign").as_ref().to_vec()
    };
    match alg {
        "RS256" => rsa(&sig::RSA_PKCS1_SHA256),
        "RS384" => rsa(&sig::RSA_PKCS1_SHA384),
        "RS512" => rsa(&sig::RSA_PKCS1_SHA512),
        "PS256" => rsa(&sig::RSA_PSS_SHA256),
        "PS384" => rsa(&sig::RSA_PSS_SHA384),
        "PS512" => rsa(&sig::RSA_PSS_SHA512),
        "ES256" => ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        "ES256-DER" => ec(&sig::ECDSA_P256_SHA256_ASN1_SIGNING),
        "ES384" => ec(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        "EdDSA" => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .expect("ed key")
            .sign(input)
            .as_ref()
            .to_vec(),
        _ => panic!("no signer for {alg}"),
    }
}

/// The public JWK members of a test key.
fn public_jwk(key: &str) -> serde_json::Value {
    let der = pem_der(key);
    let rng = SystemRandom::new();
    let e = |b: &[u8]| serde_json::Value::String(b64::encode(b));
    if key.starts_with("rsa") || key == "attacker-rsa" {
        let kp = RsaKeyPair::from_pkcs8(&der).unwrap();
        let c: sig::RsaPublicKeyComponents<Vec<u8>> = kp.public().into();
        serde_json::json!({"kty": "RSA", "n": e(&c.n), "e": e(&c.e)})
    } else if key.starts_with("ec") || key == "attacker-p256" {
        let (a, crv, len): (&'static sig::EcdsaSigningAlgorithm, _, _) = if key == "ec-p384" {
            (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
        } else {
            (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
        };
        let kp = EcdsaKeyPair::from_pkcs8(a, &der, &rng).unwrap();
        let p = kp.public_key().as_ref();
        serde_json::json!({"kty": "EC", "crv": crv, "x": e(&p[1..1 + len]), "y": e(&p[1 + len..])})
    } else {
        let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": e(kp.public_key().as_ref())})
    }
}

fn with(mut v: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn jwks_doc() -> serde_json::Value {
    use serde_json::json;
    json!({"keys": [
        with(public_jwk("rsa-2048"), json!({"kid": "rsa-2048", "use": "sig"})),
        with(public_jwk("rsa-4096"), json!({"kid": "rsa-4096"})),
        with(public_jwk("rsa-ps256"), json!({"kid": "rsa-ps256", "alg": "PS256"})),
        with(public_jwk("rsa-enc"), json!({"kid": "rsa-enc", "use": "enc", "alg": "RSA-OAEP"})),
        with(public_jwk("ec-p256"), json!({"kid": "ec-p256", "alg": "ES256", "use": "sig"})),
        with(public_jwk("ec-p384"), json!({"kid": "ec-p384"})),
        with(public_jwk("ed-25519"), json!({"kid": "ed-25519"})),
        {"kty": "oct", "kid": "hmac-oct", "k": b64::encode(b"a shared secret that must never be accepted")},
    ]})
}

fn enc(s: &[u8]) -> String {
    b64::encode(s)
}

/// A signed compact token from raw header and claims bytes.
fn raw_token(header: &[u8], claims: &[u8], key: &str, alg: &str) -> String {
    let input = format!("{}.{}", enc(header), enc(claims));
    let s = sign(key, alg, input.as_bytes());
    format!("{input}.{}", enc(&s))
}

fn std_header(alg: &str, kid: &str) -> serde_json::Value {
    serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

fn std_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "exp": FAR, "iat": NOW - 100, "nbf": NOW - 100,
        "scope": "tools:read tools:call", "client_id": "mcp-client", "jti": "j-1"
    })
}

fn tok(h: &serde_json::Value, c: &serde_json::Value, key: &str, alg: &str) -> String {
    raw_token(h.to_string().as_bytes(), c.to_string().as_bytes(), key, alg)
}

fn segs(t: &str) -> Vec<String> {
    t.split('.').map(str::to_owned).collect()
}

fn corpus_cases() -> Vec<(&'static str, &'static str, String)> {
    use serde_json::json;
    let c = std_claims;
    let h = std_header;
    let rs = |claims: serde_json::Value| tok(&h("RS256", "rsa-2048"), &claims, "rsa-2048", "RS256");
    let rs_raw = |claims: &str| {
        raw_token(
            h("RS256", "rsa-2048").to_string().as_bytes(),
            claims.as_bytes(),
            "rsa-2048",
            "RS256",
        )
    };
    let ok = rs(c());
    let mut v: Vec<(&'static str, &'static str, String)> = vec![
        ("rs256_ok", "ok", ok.clone()),
        (
            "rs384_ok",
            "ok",
            tok(&h("RS384", "rsa-2048"), &c(), "rsa-2048", "RS384"),
        ),
        (
            "rs512_rsa4096_ok",
            "ok",
            tok(&h("RS512", "rsa-4096"), &c(), "rsa-4096", "RS512"),
        ),
        (
            "ps256_ok",
            "ok",
            tok(&h("PS256", "rsa-ps256"), &c(), "rsa-ps256", "PS256"),
        ),
        (
            "ps384_family_ok",
            "ok",
            tok(&h("PS384", "rsa-2048"), &c(), "rsa-2048", "PS384"),
        ),
        (
            "ps512_family_ok",
            "ok",
            tok(&h("PS512", "rsa-4096"), &c(), "rsa-4096", "PS512"),
        ),
        (
            "es256_ok",
            "ok",
            tok(&h("ES256", "ec-p256"), &c(), "ec-p256", "ES256"),
        ),
        (
            "es384_ok",
            "ok",
            tok(&h("ES384", "ec-p384"), &c(), "ec-p384", "ES384"),
        ),
        (
            "eddsa_ok",
            "ok",
            tok(&h("EdDSA", "ed-25519"), &c(), "ed-25519", "EdDSA"),
        ),
        (
            "typ_application_at_jwt_ok",
            "ok",
            tok(
                &json!({"alg": "RS256", "kid": "rsa-2048", "typ": "application/at+jwt"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "typ_uppercase_ok",
            "ok",
            tok(
                &json!({"alg": "RS256", "kid": "rsa-2048", "typ": "AT+JWT"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "typ_jwt",
            "type_mismatch",
            tok(
                &json!({"alg": "RS256", "kid": "rsa-2048", "typ": "JWT"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "typ_missing",
            "type_mismatch",
            tok(
                &json!({"alg": "RS256", "kid": "rsa-2048"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "no_kid_single_eddsa_key_ok",
            "ok",
            tok(
                &json!({"alg": "EdDSA", "typ": "at+jwt"}),
                &c(),
                "ed-25519",
                "EdDSA",
            ),
        ),
        (
            "no_kid_single_es384_key_ok",
            "ok",
            tok(
                &json!({"alg": "ES384", "typ": "at+jwt"}),
                &c(),
                "ec-p384",
                "ES384",
            ),
        ),
        (
            "no_kid_several_rsa_keys",
            "unknown_kid",
            tok(
                &json!({"alg": "RS256", "typ": "at+jwt"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "aud_array_with_ours_ok",
            "ok",
            rs(with(c(), json!({"aud": ["urn:a", AUD, "urn:b"]}))),
        ),
        (
            "second_configured_audience_ok",
            "ok",
            rs(with(c(), json!({"aud": "urn:other-resource"}))),
        ),
        (
            "scp_array_ok",
            "ok",
            rs(with(c(), json!({"scope": null}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("scope");
                    o.insert("scp".into(), json!(["tools:read", "tools:call"]));
                    serde_json::Value::Object(o)
                })
                .unwrap()),
        ),
        (
            "escaped_strings_ok",
            "ok",
            rs_raw(&format!(
                r#"{{"iss":"{}","sub":"us\u0065r-\"1\"","aud":"{}","exp":{FAR},"scope":"a\/b"}}"#,
                ISS.replace('/', "\\/"),
                AUD
            )),
        ),
        (
            "pretty_printed_json_ok",
            "ok",
            raw_token(
                b"{\n  \"alg\" : \"RS256\",\r\n\t\"kid\":\"rsa-2048\", \"typ\":\"at+jwt\"\n}\n",
                serde_json::to_string_pretty(&c()).unwrap().as_bytes(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "unknown_nested_members_ok",
            "ok",
            rs(with(
                c(),
                json!({"x": {"y": [1, 2.5e3, true, null, {"z": "\u{1F600}"}]}, "realm_access": {"roles": ["a"]}}),
            )),
        ),
        (
            "expired_within_leeway_ok",
            "ok",
            rs(with(c(), json!({"exp": NOW - 30}))),
        ),
        (
            "nbf_within_leeway_ok",
            "ok",
            rs(with(c(), json!({"nbf": NOW + 30}))),
        ),
        // Algorithm attacks.
        (
            "alg_none",
            "unsupported_alg",
            format!(
                "{}.{}.",
                enc(br#"{"alg":"none","typ":"at+jwt"}"#),
                enc(c().to_string().as_bytes())
            ),
        ),
        (
            "alg_none_capitalised",
            "unsupported_alg",
            format!(
                "{}.{}.",
                enc(br#"{"alg":"None","typ":"at+jwt"}"#),
                enc(c().to_string().as_bytes())
            ),
        ),
        ("hs256_keyed_with_rsa_public_key", "unsupported_alg", {
            let input = format!(
                "{}.{}",
                enc(h("HS256", "rsa-2048").to_string().as_bytes()),
                enc(c().to_string().as_bytes())
            );
            let pubkey = jwks_doc()["keys"][0]["n"].as_str().unwrap().to_owned();
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pubkey.as_bytes());
            format!(
                "{input}.{}",
                enc(ring::hmac::sign(&k, input.as_bytes()).as_ref())
            )
        }),
        ("hs256_with_oct_kid", "unsupported_alg", {
            let input = format!(
                "{}.{}",
                enc(h("HS256", "hmac-oct").to_string().as_bytes()),
                enc(c().to_string().as_bytes())
            );
            let k = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                b"a shared secret that must never be accepted",
            );
            format!(
                "{input}.{}",
                enc(ring::hmac::sign(&k, input.as_bytes()).as_ref())
            )
        }),
        (
            "alg_with_trailing_space",
            "unsupported_alg",
            tok(&h("RS256 ", "rsa-2048"), &c(), "rsa-2048", "RS256"),
        ),
        (
            "alg_missing",
            "malformed",
            tok(
                &json!({"kid": "rsa-2048", "typ": "at+jwt"}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "rs256_on_key_whose_jwk_alg_is_ps256",
            "alg_not_allowed",
            tok(&h("RS256", "rsa-ps256"), &c(), "rsa-ps256", "RS256"),
        ),
        (
            "es256_with_rsa_kid",
            "alg_not_allowed",
            tok(&h("ES256", "rsa-2048"), &c(), "ec-p256", "ES256"),
        ),
        (
            "es384_on_p256_key",
            "alg_not_allowed",
            tok(&h("ES384", "ec-p256"), &c(), "ec-p384", "ES384"),
        ),
        (
            "kid_of_another_rsa_key",
            "bad_signature",
            tok(&h("RS256", "rsa-4096"), &c(), "rsa-2048", "RS256"),
        ),
        (
            "kid_unknown",
            "unknown_kid",
            tok(&h("RS256", "rsa-9999"), &c(), "rsa-2048", "RS256"),
        ),
        (
            "kid_of_enc_key",
            "unknown_kid",
            tok(&h("RS256", "rsa-enc"), &c(), "rsa-enc", "RS256"),
        ),
        (
            "signed_by_another_rsa_key",
            "bad_signature",
            tok(&h("RS256", "rsa-2048"), &c(), "attacker-rsa", "RS256"),
        ),
        (
            "signed_by_another_ec_key",
            "bad_signature",
            tok(&h("ES256", "ec-p256"), &c(), "attacker-p256", "ES256"),
        ),
        (
            "es256_der_signature",
            "bad_signature",
            tok(&h("ES256", "ec-p256"), &c(), "ec-p256", "ES256-DER"),
        ),
        // Claims.
        (
            "expired",
            "expired",
            rs(with(c(), json!({"exp": NOW - 3600}))),
        ),
        (
            "nbf_in_future",
            "not_yet_valid",
            rs(with(c(), json!({"nbf": NOW + 3600}))),
        ),
        (
            "iat_in_future",
            "issued_in_future",
            rs(with(c(), json!({"iat": NOW + 3600}))),
        ),
        (
            "wrong_iss",
            "wrong_issuer",
            rs(with(
                c(),
                json!({"iss": "https://evil.example.test/realms/mcp"}),
            )),
        ),
        (
            "iss_trailing_slash",
            "wrong_issuer",
            rs(with(c(), json!({"iss": format!("{ISS}/")}))),
        ),
        (
            "iss_missing",
            "missing_claim",
            rs(c()
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("iss");
                    serde_json::Value::Object(o)
                })
                .unwrap()),
        ),
        (
            "aud_missing",
            "missing_claim",
            rs(c()
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("aud");
                    serde_json::Value::Object(o)
                })
                .unwrap()),
        ),
        (
            "aud_other",
            "wrong_audience",
            rs(with(c(), json!({"aud": "https://other.example.test/mcp"}))),
        ),
        (
            "aud_trailing_slash",
            "wrong_audience",
            rs(with(c(), json!({"aud": format!("{AUD}/")}))),
        ),
        (
            "aud_array_without_ours",
            "wrong_audience",
            rs(with(c(), json!({"aud": ["urn:a", "urn:b"]}))),
        ),
        (
            "aud_empty_array",
            "wrong_audience",
            rs(with(c(), json!({"aud": []}))),
        ),
        ("aud_number", "bad_claim", rs(with(c(), json!({"aud": 42})))),
        (
            "exp_missing",
            "missing_claim",
            rs(c()
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("exp");
                    serde_json::Value::Object(o)
                })
                .unwrap()),
        ),
        (
            "exp_string",
            "bad_claim",
            rs(with(c(), json!({"exp": FAR.to_string()}))),
        ),
        (
            "exp_float",
            "bad_claim",
            rs_raw(&format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{FAR}.5}}"#)),
        ),
        (
            "exp_float_integral",
            "bad_claim",
            rs_raw(&format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{FAR}.0}}"#)),
        ),
        (
            "exp_exponent",
            "bad_claim",
            rs_raw(&format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":4.1e9}}"#)),
        ),
        ("exp_null", "bad_claim", rs(with(c(), json!({"exp": null})))),
        (
            "exp_overflow",
            "bad_claim",
            rs_raw(&format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","exp":99999999999999999999}}"#
            )),
        ),
        (
            "sub_lone_surrogate",
            "malformed",
            rs_raw(&format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{FAR},"sub":"\ud800"}}"#
            )),
        ),
        (
            "duplicate_claim_exp",
            "malformed",
            rs_raw(&format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{FAR},"exp":{FAR}}}"#
            )),
        ),
        (
            "duplicate_claim_iss_escaped_name",
            "malformed",
            rs_raw(&format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{FAR},"i\u0073s":"https://evil.example.test"}}"#
            )),
        ),
        (
            "duplicate_header_alg",
            "malformed",
            raw_token(
                br#"{"alg":"RS256","kid":"rsa-2048","typ":"at+jwt","alg":"RS256"}"#,
                c().to_string().as_bytes(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "duplicate_header_kid",
            "malformed",
            raw_token(
                br#"{"alg":"RS256","kid":"rsa-4096","typ":"at+jwt","kid":"rsa-2048"}"#,
                c().to_string().as_bytes(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "crit_unknown",
            "crit_unsupported",
            tok(
                &json!({"alg": "RS256", "kid": "rsa-2048", "typ": "at+jwt", "crit": ["urn:example:ext"], "urn:example:ext": 1}),
                &c(),
                "rsa-2048",
                "RS256",
            ),
        ),
        ("non_utf8_payload", "malformed", {
            let mut p = c().to_string().into_bytes();
            let i = p.windows(6).position(|w| w == b"user-1").unwrap();
            p[i + 4] = 0xFF;
            raw_token(
                h("RS256", "rsa-2048").to_string().as_bytes(),
                &p,
                "rsa-2048",
                "RS256",
            )
        }),
        (
            "header_not_object",
            "malformed",
            raw_token(
                br#""RS256""#,
                c().to_string().as_bytes(),
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "payload_array",
            "malformed",
            raw_token(
                h("RS256", "rsa-2048").to_string().as_bytes(),
                br#"[{"iss":"x"}]"#,
                "rsa-2048",
                "RS256",
            ),
        ),
        (
            "payload_trailing_garbage",
            "malformed",
            rs_raw(&format!("{}x", c())),
        ),
        (
            "deeply_nested_unknown_member",
            "malformed",
            rs_raw(&format!(
                r#"{{"x":{}{},"exp":{FAR}}}"#,
                "[".repeat(40),
                "]".repeat(40)
            )),
        ),
        // Structure and encoding.
        ("empty_token", "malformed", String::new()),
        ("two_segments", "malformed", segs(&ok)[..2].join(".")),
        (
            "four_segments",
            "malformed",
            format!("{ok}.{}", segs(&ok)[2]),
        ),
        (
            "empty_signature",
            "malformed",
            format!("{}.{}.", segs(&ok)[0], segs(&ok)[1]),
        ),
        ("padded_signature", "malformed", format!("{ok}==")),
        ("padded_payload", "malformed", {
            let s = segs(&ok);
            let pad = match s[1].len() % 4 {
                2 => "==",
                3 => "=",
                _ => "====",
            };
            format!("{}.{}{pad}.{}", s[0], s[1], s[2])
        }),
        ("signature_noncanonical_trailing_bits", "malformed", {
            // 256 signature bytes = 342 characters; the last carries 2 bits and 4 zero bits.
            let mut t = ok.clone().into_bytes();
            let last = t.last_mut().unwrap();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let v = alphabet.iter().position(|c| c == last).unwrap();
            *last = alphabet[v | 1];
            String::from_utf8(t).unwrap()
        }),
        ("standard_alphabet_in_payload", "malformed", {
            let s = segs(&ok);
            format!(
                "{}.{}.{}",
                s[0],
                s[1].replacen(|ch: char| ch.is_ascii_lowercase(), "+", 1),
                s[2]
            )
        }),
        (
            "token_20_kib",
            "too_large",
            rs(with(c(), json!({"pad": "A".repeat(20 * 1024)}))),
        ),
        ("truncated_signature", "bad_signature", {
            let s = segs(&ok);
            let mut sig = b64::decode(s[2].as_bytes()).unwrap();
            sig.truncate(200);
            format!("{}.{}.{}", s[0], s[1], enc(&sig))
        }),
        ("signature_bit_flip", "bad_signature", {
            let s = segs(&ok);
            let mut sig = b64::decode(s[2].as_bytes()).unwrap();
            sig[100] ^= 0x01;
            format!("{}.{}.{}", s[0], s[1], enc(&sig))
        }),
        ("header_alg_swapped_after_signing", "bad_signature", {
            let s = segs(&ok);
            format!(
                "{}.{}.{}",
                enc(h("RS384", "rsa-2048").to_string().as_bytes()),
                s[1],
                s[2]
            )
        }),
        ("header_alg_swapped_to_ps256", "bad_signature", {
            let s = segs(&ok);
            format!(
                "{}.{}.{}",
                enc(h("PS256", "rsa-2048").to_string().as_bytes()),
                s[1],
                s[2]
            )
        }),
        ("payload_swapped_after_signing", "bad_signature", {
            let s = segs(&ok);
            let other = with(c(), json!({"sub": "admin"}));
            format!("{}.{}.{}", s[0], enc(other.to_string().as_bytes()), s[2])
        }),
        ("eddsa_signature_on_es256_header", "bad_signature", {
            let e = tok(&h("EdDSA", "ed-25519"), &c(), "ed-25519", "EdDSA");
            let s = segs(&e);
            let input = format!(
                "{}.{}",
                enc(h("ES256", "ec-p256").to_string().as_bytes()),
                s[1]
            );
            format!("{input}.{}", s[2])
        }),
    ];
    v.sort_by_key(|(n, _, _)| *n);
    v
}

/// Rewrites `tests/data/jwt/{jwks.json,tokens.tsv}` from the committed keys.
/// `cargo test --lib mcp_auth::tests::regenerate_corpus -- --ignored`
#[test]
#[ignore = "writes tests/data/jwt; run by hand after changing keys or cases"]
fn regenerate_corpus() {
    let dir = data_dir();
    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string_pretty(&jwks_doc()).unwrap() + "\n",
    )
    .unwrap();
    let mut out = String::from(
        "# name\texpected (ok or AuthReject::as_str)\ttoken — generated by \
         mcp_auth::tests::regenerate_corpus; check with now = 1900000000\n",
    );
    for (name, expected, token) in corpus_cases() {
        out.push_str(&format!("{name}\t{expected}\t{token}\n"));
    }
    std::fs::write(dir.join("tokens.tsv"), out).unwrap();
}

pub(crate) fn load_keys() -> KeySet {
    let json = std::fs::read(data_dir().join("jwks.json")).unwrap();
    parse_jwks(&json).unwrap().0
}

pub(crate) fn load_corpus() -> Vec<(String, String, String)> {
    std::fs::read_to_string(data_dir().join("tokens.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let t = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
            (t.0.to_owned(), t.1.to_owned(), t.2.to_owned())
        })
        .collect()
}

#[test]
fn corpus_outcomes() {
    let keys = load_keys();
    let (_, warnings) = parse_jwks(&std::fs::read(data_dir().join("jwks.json")).unwrap()).unwrap();
    assert_eq!(keys.len(), 6, "{warnings:?}");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let v = corpus_validation();
    let corpus = load_corpus();
    assert!(corpus.len() >= 40, "corpus has {} tokens", corpus.len());
    let mut scratch = Scratch::new();
    let mut cache = TokenCache::new(100);
    let mut failures = Vec::new();
    // Twice: the second pass answers the `ok` tokens from the cache.
    for pass in 0..2 {
        for (name, expected, token) in &corpus {
            let got = match check_token(token.as_bytes(), &keys, &v, &mut scratch, &mut cache, NOW)
            {
                Ok(_) => "ok",
                Err(r) => r.as_str(),
            };
            if got != expected {
                failures.push(format!(
                    "pass {pass}: {name}: expected {expected}, got {got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let oks = corpus.iter().filter(|c| c.1 == "ok").count();
    // Every `ok` token is cached except `expired_within_leeway_ok`: its `exp` has passed, so
    // it is accepted (leeway) but never cached.
    assert_eq!(cache.len(), oks - 1);
}

#[test]
fn corpus_names_and_codes_are_valid() {
    let codes: Vec<&str> = AuthReject::ALL.iter().map(|r| r.as_str()).collect();
    let corpus = load_corpus();
    let mut names: Vec<&str> = corpus.iter().map(|c| c.0.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), corpus.len(), "duplicate case names");
    for (name, expected, _) in &corpus {
        assert!(
            expected == "ok" || codes.contains(&expected.as_str()),
            "{name}: {expected}"
        );
    }
}

/// Refusals that a later check would repeat are remembered (a replay costs a lookup, not a
/// verify) and answered the same; those a refetch or the clock may change are not; a key
/// change forgets them.
#[test]
fn check_token_remembers_lasting_refusals() {
    let keys = load_keys();
    let v = corpus_validation();
    let corpus = load_corpus();
    let mut scratch = Scratch::new();
    let mut cache = TokenCache::new(100);
    let transient = [
        "unknown_kid",
        "not_yet_valid",
        "issued_in_future",
        "too_large",
    ];
    let mut lasting = std::collections::HashSet::new();
    for (_, expected, token) in &corpus {
        let _ = check_token(token.as_bytes(), &keys, &v, &mut scratch, &mut cache, NOW);
        if *expected != "ok" && !transient.contains(&expected.as_str()) {
            lasting.insert(token.clone());
        }
    }
    assert!(lasting.len() >= 20, "{}", lasting.len());
    assert_eq!(cache.refused_len(), lasting.len());
    // A replayed refusal is the same refusal, from the cache.
    for (name, expected, token) in &corpus {
        if lasting.contains(token) {
            let d = cache.digest(token.as_bytes());
            assert_eq!(
                cache.refused(d, NOW).map(|r| r.as_str()),
                Some(expected.as_str()),
                "{name}"
            );
        }
    }
    // Remembered for REJECT_TTL_SECS only.
    let some = cache.digest(lasting.iter().next().unwrap().as_bytes());
    assert!(cache.refused(some, NOW + cache::REJECT_TTL_SECS).is_none());
    // New keys: every refusal is forgotten (a bad signature may verify under them).
    let json = std::fs::read(data_dir().join("jwks.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    doc["keys"].as_array_mut().unwrap().remove(0);
    let (rotated, _) = parse_jwks(doc.to_string().as_bytes()).unwrap();
    let ok = &corpus
        .iter()
        .find(|c| c.0 == "es256_ok")
        .map(|c| c.2.clone());
    if let Some(ok) = ok {
        let _ = check_token(ok.as_bytes(), &rotated, &v, &mut scratch, &mut cache, NOW);
    }
    assert_eq!(cache.refused_len(), 0);
    // Bounded: unique bad tokens never grow it past REJECT_CAPACITY.
    let base = &corpus.iter().find(|c| c.1 == "bad_signature").unwrap().2;
    for i in 0..cache::REJECT_CAPACITY + 10 {
        let t = format!("{base}{}", ["A", "B", "C", "D"][i % 4].repeat(1 + i / 4));
        let _ = check_token(t.as_bytes(), &keys, &v, &mut scratch, &mut cache, NOW);
        assert!(cache.refused_len() <= cache::REJECT_CAPACITY);
    }
}

#[test]
fn check_token_caches_and_clears_on_key_change() {
    let keys = load_keys();
    let v = corpus_validation();
    let corpus = load_corpus();
    let tok = &corpus.iter().find(|c| c.0 == "rs256_ok").unwrap().2;
    let mut scratch = Scratch::new();
    let mut cache = TokenCache::new(10);
    let p = check_token(tok.as_bytes(), &keys, &v, &mut scratch, &mut cache, NOW).unwrap();
    assert_eq!(p.iss, ISS);
    assert_eq!(p.sub.as_deref(), Some("user-1"));
    assert_eq!(p.scopes, "tools:read tools:call");
    assert_eq!(p.client_id.as_deref(), Some("mcp-client"));
    assert_eq!(p.kid.as_deref(), Some("rsa-2048"));
    assert_eq!(p.exp, FAR);
    assert!(p.has_scope("tools:call") && !p.has_scope("tools"));
    let again = check_token(tok.as_bytes(), &keys, &v, &mut scratch, &mut cache, NOW).unwrap();
    assert!(Rc::ptr_eq(&p, &again), "second check must be a cache hit");
    // A new key set without rsa-2048: the cache is emptied and the token refused.
    let json = std::fs::read(data_dir().join("jwks.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    doc["keys"].as_array_mut().unwrap().remove(0);
    let (rotated, _) = parse_jwks(doc.to_string().as_bytes()).unwrap();
    let r = check_token(tok.as_bytes(), &rotated, &v, &mut scratch, &mut cache, NOW);
    assert_eq!(r, Err(AuthReject::UnknownKid));
    assert_eq!(cache.len(), 0);
}

#[test]
fn check_token_scp_array_and_escapes() {
    let keys = load_keys();
    let v = corpus_validation();
    let corpus = load_corpus();
    let mut scratch = Scratch::new();
    let mut cache = TokenCache::new(10);
    let get = |n: &str| corpus.iter().find(|c| c.0 == n).unwrap().2.clone();
    let p = check_token(
        get("scp_array_ok").as_bytes(),
        &keys,
        &v,
        &mut scratch,
        &mut cache,
        NOW,
    )
    .unwrap();
    assert_eq!(p.scopes, "tools:read tools:call");
    let p = check_token(
        get("escaped_strings_ok").as_bytes(),
        &keys,
        &v,
        &mut scratch,
        &mut cache,
        NOW,
    )
    .unwrap();
    assert_eq!(p.sub.as_deref(), Some("user-\"1\""));
    assert_eq!(p.scopes, "a/b");
}

#[test]
fn check_token_too_large_before_anything() {
    let keys = load_keys();
    let big = vec![b'a'; MAX_TOKEN_LEN + 1];
    let r = check_token(
        &big,
        &keys,
        &corpus_validation(),
        &mut Scratch::new(),
        &mut TokenCache::new(1),
        NOW,
    );
    assert_eq!(r, Err(AuthReject::TooLarge));
}

#[test]
fn bearer_extraction() {
    assert_eq!(
        bearer_token(b"Bearer abc.def.ghi"),
        Some(&b"abc.def.ghi"[..])
    );
    assert_eq!(bearer_token(b"bEaReR   abc"), Some(&b"abc"[..]));
    assert_eq!(bearer_token(b"Bearer abc== \t"), Some(&b"abc=="[..]));
    assert_eq!(bearer_token(b"Bearer a-._~+/9"), Some(&b"a-._~+/9"[..]));
    assert_eq!(bearer_token(b"Bearer"), None);
    assert_eq!(bearer_token(b"Bearer "), None);
    assert_eq!(bearer_token(b"Bearerabc"), None);
    assert_eq!(bearer_token(b"Bearer\tabc"), None);
    assert_eq!(bearer_token(b"Basic abc"), None);
    assert_eq!(bearer_token(b"Bearer a=b"), None);
    assert_eq!(bearer_token(b"Bearer abc def"), None);
    assert_eq!(bearer_token(b"Bearer =abc"), None);
    assert_eq!(bearer_token(b"Bearer ab,c"), None);
    assert_eq!(bearer_token(b""), None);
    assert_eq!(bearer_token(b"Bearer ==="), None);
    assert_eq!(bearer_token(b"Bearer abc=def"), None);
    assert_eq!(bearer_token(b"Bearer ab\xffc"), None);
    assert_eq!(bearer_token(b"Bearer ab\0c"), None);
    // Every byte value, in the middle of a token: exactly the b64token alphabet is accepted.
    for b in 0..=255u8 {
        let v = [b"Bearer ab".as_slice(), &[b], b"cd"].concat();
        let want = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        assert_eq!(bearer_token(&v).is_some(), want, "byte {b:#04x}");
    }
}

/// A `Bearer` credential that is not a token is invalid, never missing; other schemes are.
#[test]
fn bearer_classification() {
    assert_eq!(bearer(None), Bearer::Absent);
    assert_eq!(bearer(Some(b"Basic abc")), Bearer::Absent);
    assert_eq!(bearer(Some(b"Bearerabc")), Bearer::Absent);
    assert_eq!(bearer(Some(b"Bearer abc")), Bearer::Token(b"abc"));
    for bad in [
        &b"Bearer abc def"[..],
        b"Bearer ab%20c",
        b"Bearer\tabc",
        b"bearer ab\tc",
        b"Bearer",
        b"Bearer ",
        b"Bearer a=b",
    ] {
        assert_eq!(
            bearer(Some(bad)),
            Bearer::Malformed,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn reject_codes_are_distinct_and_generic() {
    let mut codes: Vec<&str> = AuthReject::ALL.iter().map(|r| r.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), AuthReject::ALL.len());
    for r in AuthReject::ALL {
        assert!(r
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert!(!r.description().is_empty());
        assert_eq!(r.to_string(), r.as_str());
    }
}

#[test]
fn keyset_is_send_sync_and_fuzz_entries_survive_the_corpus() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeySet>();
    assert_send_sync::<Key>();
    assert_send_sync::<Validation>();
    for (_, _, t) in load_corpus() {
        fuzz_jwt(t.as_bytes());
    }
    fuzz_jwks(&std::fs::read(data_dir().join("jwks.json")).unwrap());
    fuzz_jwks(b"{\"keys\":[{}]}");
    fuzz_jwt(br#"{"iss":"a","aud":["x","y"],"scp":["p","q"],"exp":1}"#);
}
