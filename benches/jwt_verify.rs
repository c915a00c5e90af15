//! JWT validation cost, per algorithm, against its baselines.
//!
//! `check_token/miss/*` is the whole check on a cache miss (parse, select, verify, claims,
//! Principal); `ring_verify/raw/*` is ring alone with the key rebuilt from the JWK members,
//! as any JWT library must — the difference is our overhead. `check_token/hit` is the
//! per-worker cache (perf-notes: ≈ 0.2 µs). `parse` is everything outside the signature
//! (perf-notes: ≈ 0.8 µs for a hand pipeline). `json/*` reads the header and claims of an
//! RS256 access token with the three approaches compared for the parser choice: the hand
//! scanner in `mcp_auth` (what ships), `serde_json` into borrowed `Cow` structs, and
//! `simd-json` into the same structs.
//!
//! Tokens and keys come from the test corpus (`tests/data/jwt/`), checked at a fixed `now`.

use std::borrow::Cow;
use std::fmt;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis::fuzzing::mcp_auth::{
    b64url_decode, check_token, parse, parse_jwks, scan_claims_json, scan_header_json,
    verify_signature, Alg, KeySet, Scratch, TokenCache, Validation,
};
use ring::signature::{self as sig, UnparsedPublicKey};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

const NOW: i64 = 1_900_000_000;
const CORPUS: &str = include_str!("../tests/data/jwt/tokens.tsv");
const JWKS: &[u8] = include_bytes!("../tests/data/jwt/jwks.json");

fn token(name: &str) -> &'static str {
    CORPUS
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, '\t');
            (f.next() == Some(name)).then(|| f.nth(1).unwrap())
        })
        .unwrap_or_else(|| panic!("no corpus token {name}"))
}

fn validation() -> Validation {
    let mut v = Validation::new(
        "https://idp.example.test/realms/mcp",
        vec!["https://mcp.example.test/mcp".to_owned()],
    );
    v.require_typ = Some("at+jwt".to_owned());
    v
}

const CASES: [(&str, &str, Alg); 5] = [
    ("RS256", "rs256_ok", Alg::RS256),
    ("PS256", "ps256_ok", Alg::PS256),
    ("ES256", "es256_ok", Alg::ES256),
    ("ES384", "es384_ok", Alg::ES384),
    ("EdDSA", "eddsa_ok", Alg::EdDSA),
];

fn keys() -> KeySet {
    parse_jwks(JWKS).unwrap().0
}

fn b64(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    b64url_decode(s.as_bytes(), &mut v).unwrap();
    v
}

fn bench_check_token(c: &mut Criterion) {
    let keys = keys();
    let v = validation();
    let mut g = c.benchmark_group("check_token");
    g.throughput(Throughput::Elements(1));
    for (label, name, _) in CASES {
        let t = token(name).as_bytes();
        let mut scratch = Scratch::new();
        // Capacity 0: nothing is ever cached, every call is a miss.
        let mut cache = TokenCache::new(0);
        check_token(t, &keys, &v, &mut scratch, &mut cache, NOW).unwrap();
        g.bench_function(BenchmarkId::new("miss", label), |b| {
            b.iter(|| check_token(black_box(t), &keys, &v, &mut scratch, &mut cache, NOW).unwrap())
        });
    }
    let t = token("rs256_ok").as_bytes();
    let mut scratch = Scratch::new();
    let mut cache = TokenCache::new(10_000);
    check_token(t, &keys, &v, &mut scratch, &mut cache, NOW).unwrap();
    g.bench_function("hit", |b| {
        b.iter(|| check_token(black_box(t), &keys, &v, &mut scratch, &mut cache, NOW).unwrap())
    });
    // A bad signature: verified every time (the cache forgotten each call), and replayed (the
    // refusal answered from the cache: what a flood of one bad token costs).
    let bad = token("signature_bit_flip").as_bytes();
    g.bench_function("refused_fresh", |b| {
        b.iter(|| {
            cache.clear();
            check_token(black_box(bad), &keys, &v, &mut scratch, &mut cache, NOW).unwrap_err()
        })
    });
    g.bench_function("refused_replay", |b| {
        b.iter(|| {
            check_token(black_box(bad), &keys, &v, &mut scratch, &mut cache, NOW).unwrap_err()
        })
    });
    g.finish();
}

/// Baseline: ring alone, key material rebuilt from the JWK members per call.
fn bench_ring(c: &mut Criterion) {
    let doc: serde_json::Value = serde_json::from_slice(JWKS).unwrap();
    let jwk = |kid: &str| {
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
            .clone()
    };
    let keys = keys();
    let mut g = c.benchmark_group("ring_verify");
    g.throughput(Throughput::Elements(1));
    for (label, name, alg) in CASES {
        let t = token(name);
        let (input, s) = t.rsplit_once('.').unwrap();
        let signature = b64(s);
        let kid = match alg {
            Alg::RS256 => "rsa-2048",
            Alg::PS256 => "rsa-ps256",
            Alg::ES256 => "ec-p256",
            Alg::ES384 => "ec-p384",
            _ => "ed-25519",
        };
        let k = jwk(kid);
        let f = |m: &str| b64(k[m].as_str().unwrap());
        match alg {
            Alg::RS256 | Alg::PS256 => {
                let comps = sig::RsaPublicKeyComponents {
                    n: f("n"),
                    e: f("e"),
                };
                let params = if alg == Alg::RS256 {
                    &sig::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &sig::RSA_PSS_2048_8192_SHA256
                };
                g.bench_function(BenchmarkId::new("raw", label), |b| {
                    b.iter(|| {
                        comps
                            .verify(params, black_box(input.as_bytes()), &signature)
                            .unwrap()
                    })
                });
            }
            Alg::ES256 | Alg::ES384 => {
                let mut point = vec![4];
                point.extend(f("x"));
                point.extend(f("y"));
                let a: &'static dyn sig::VerificationAlgorithm = if alg == Alg::ES256 {
                    &sig::ECDSA_P256_SHA256_FIXED
                } else {
                    &sig::ECDSA_P384_SHA384_FIXED
                };
                let pk = UnparsedPublicKey::new(a, point);
                g.bench_function(BenchmarkId::new("raw", label), |b| {
                    b.iter(|| pk.verify(black_box(input.as_bytes()), &signature).unwrap())
                });
            }
            _ => {
                let pk = UnparsedPublicKey::new(&sig::ED25519, f("x"));
                g.bench_function(BenchmarkId::new("raw", label), |b| {
                    b.iter(|| pk.verify(black_box(input.as_bytes()), &signature).unwrap())
                });
            }
        }
        let key = keys.select(Some(kid), alg).unwrap();
        g.bench_function(BenchmarkId::new("verify_signature", label), |b| {
            b.iter(|| verify_signature(key, alg, black_box(input.as_bytes()), &signature).unwrap())
        });
    }
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let t = token("rs256_ok").as_bytes();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let mut scratch = Scratch::new();
    g.bench_function("rs256_token", |b| {
        b.iter(|| {
            let j = parse(black_box(t), &mut scratch).unwrap();
            black_box((j.claims.exp, j.header.kid));
        })
    });
    g.finish();
}

// --- The serde structs used for the JSON comparison (borrowed where possible). ---

#[derive(Deserialize)]
#[allow(dead_code)]
struct SHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SClaims<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<OneOrMany<'a>>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(borrow, default)]
    scope: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    scp: Option<OneOrMany<'a>>,
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    azp: Option<Cow<'a, str>>,
}

/// A string or an array of strings, borrowing when unescaped (`#[serde(untagged)]` would
/// buffer and never borrow).
#[allow(dead_code)]
enum OneOrMany<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for OneOrMany<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                #[derive(Deserialize)]
                struct S<'a>(#[serde(borrow)] Cow<'a, str>);
                let mut v = Vec::new();
                while let Some(S(x)) = s.next_element()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn bench_json(c: &mut Criterion) {
    let t = token("rs256_ok");
    let mut segs = t.split('.');
    let header = b64(segs.next().unwrap());
    let claims = b64(segs.next().unwrap());
    println!(
        "json input: header {} B, claims {} B",
        header.len(),
        claims.len()
    );
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    let (mut hb, mut cb) = (Vec::new(), Vec::new());
    let mut scratch = Scratch::new();
    g.bench_function("hand_scanner", |b| {
        b.iter(|| {
            // The scanner works in place, so it gets a fresh copy (as does simd-json).
            hb.clear();
            hb.extend_from_slice(black_box(&header));
            cb.clear();
            cb.extend_from_slice(black_box(&claims));
            scan_header_json(&mut hb).unwrap();
            scan_claims_json(&mut cb, &mut scratch).unwrap();
        })
    });
    g.bench_function("serde_json_borrowed", |b| {
        b.iter(|| {
            let h: SHeader<'_> = serde_json::from_slice(black_box(&header)).unwrap();
            let c: SClaims<'_> = serde_json::from_slice(black_box(&claims)).unwrap();
            black_box((h, c));
        })
    });
    g.bench_function("simd_json_borrowed", |b| {
        b.iter(|| {
            hb.clear();
            hb.extend_from_slice(black_box(&header));
            cb.clear();
            cb.extend_from_slice(black_box(&claims));
            let h: SHeader<'_> = simd_json::serde::from_slice(&mut hb).unwrap();
            let c: SClaims<'_> = simd_json::serde::from_slice(&mut cb).unwrap();
            black_box((h, c));
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_check_token,
    bench_ring,
    bench_parse,
    bench_json
);
criterion_main!(benches);
