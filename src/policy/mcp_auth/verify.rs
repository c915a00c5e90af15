//! The JWS algorithm allow-list and signature verification with ring.
//!
//! Owns: [`Alg`] (the only algorithms that can ever be accepted), the static table mapping
//! each to its ring verification algorithm and key family. The check itself,
//! [`verify_signature`](super::verify_signature), lives with the keys (`jwks`).
//! Does not: choose keys (`jwks`), or accept `none`/`HS*` — they have no `Alg` value, so no
//! configuration can turn them on by accident.
//!
//! Cost (perf-notes §2.1, ring 0.17 on this VM): RS256 ≈ 21 µs, ES256 ≈ 53 µs, EdDSA ≈ 46 µs.
//! RSA keys are kept as DER `RSAPublicKey` so every family goes through `UnparsedPublicKey`
//! (≈ 0.3 µs cheaper than `RsaPublicKeyComponents` for RS256).

use ring::signature::{self, VerificationAlgorithm};

/// A JWS signature algorithm we verify (RFC 7518 §3.1, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The key type an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

pub(crate) struct AlgSpec {
    pub(crate) alg: Alg,
    pub(crate) name: &'static str,
    pub(crate) family: Family,
    pub(crate) ring: &'static dyn VerificationAlgorithm,
}

/// The allow-list. Order = `Alg` discriminant order (checked by a test), so `spec` indexes.
/// RSA uses the `_2048_8192` parameter sets: ring itself refuses moduli under 2048 bits.
/// ECDSA uses the `_FIXED` (r‖s) encodings that JWS mandates (RFC 7518 §3.4), never ASN.1.
#[rustfmt::skip]
pub(crate) static ALGS: [AlgSpec; 9] = [
    AlgSpec { alg: Alg::RS256, name: "RS256", family: Family::Rsa, ring: &signature::RSA_PKCS1_2048_8192_SHA256 },
    AlgSpec { alg: Alg::RS384, name: "RS384", family: Family::Rsa, ring: &signature::RSA_PKCS1_2048_8192_SHA384 },
    AlgSpec { alg: Alg::RS512, name: "RS512", family: Family::Rsa, ring: &signature::RSA_PKCS1_2048_8192_SHA512 },
    AlgSpec { alg: Alg::PS256, name: "PS256", family: Family::Rsa, ring: &signature::RSA_PSS_2048_8192_SHA256 },
    AlgSpec { alg: Alg::PS384, name: "PS384", family: Family::Rsa, ring: &signature::RSA_PSS_2048_8192_SHA384 },
    AlgSpec { alg: Alg::PS512, name: "PS512", family: Family::Rsa, ring: &signature::RSA_PSS_2048_8192_SHA512 },
    AlgSpec { alg: Alg::ES256, name: "ES256", family: Family::P256, ring: &signature::ECDSA_P256_SHA256_FIXED },
    AlgSpec { alg: Alg::ES384, name: "ES384", family: Family::P384, ring: &signature::ECDSA_P384_SHA384_FIXED },
    AlgSpec { alg: Alg::EdDSA, name: "EdDSA", family: Family::Ed25519, ring: &signature::ED25519 },
];

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    pub(crate) fn spec(self) -> &'static AlgSpec {
        &ALGS[self as usize]
    }

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Exact, case-sensitive match on the JWS name; `none`, `HS*` and anything else → `None`.
    pub fn from_name(name: &[u8]) -> Option<Alg> {
        ALGS.iter()
            .find(|s| s.name.as_bytes() == name)
            .map(|s| s.alg)
    }

    pub(crate) fn family(self) -> Family {
        self.spec().family
    }

    /// This algorithm's bit in a key's allowed-algorithm mask.
    pub(crate) const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
