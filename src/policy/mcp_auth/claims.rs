//! Claim and header checks against configuration (RFC 9068 §4, RFC 7519 §4.1), run only
//! after the signature verified.
//!
//! Owns: [`Validation`] — issuer, audience, time window with leeway, `typ`, required claims.
//! Does not: parse (`jwt`), verify signatures (`verify`), or normalise URIs: `iss` and `aud`
//! are compared byte for byte, so scheme/host case variants must be configured as audiences
//! by the config lowering if they are to be accepted.
//!
//! Order of checks (first failure wins): `typ`, `iss`, `aud`, `exp`, `nbf`, `iat`,
//! `required_claims`. `exp` is always required, whatever `required_claims` says: the cache
//! bounds entries by it.

#[cfg(test)]
mod tests;

use super::{AuthReject, Claims, Header};

/// Claim names `required_claims` may list; [`Validation::check`] treats any other name as
/// absent (fail closed), so config validation rejects it up front.
pub(crate) const SUPPORTED_REQUIRED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "scope",
    "scp",
    "client_id",
    "azp",
];

/// What a token must satisfy beyond its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// `iss` must be byte-equal to this.
    pub issuer: String,
    /// If non-empty, `aud` (string or array) must contain at least one of these.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default 60.
    pub leeway_secs: u64,
    /// If set, the `typ` header must equal it case-insensitively, with or without an
    /// `application/` prefix (RFC 7515 §4.1.9, RFC 9068 §2.1: `at+jwt`).
    pub require_typ: Option<String>,
    /// Claims that must be present (see [`SUPPORTED_REQUIRED_CLAIMS`]). Default `["exp"]`.
    pub required_claims: Vec<String>,
}

impl Validation {
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audiences,
            leeway_secs: 60,
            require_typ: None,
            required_claims: vec!["exp".to_owned()],
        }
    }

    pub fn check(
        &self,
        header: &Header<'_>,
        claims: &Claims<'_>,
        now: i64,
    ) -> Result<(), AuthReject> {
        if let Some(want) = &self.require_typ {
            let got = header.typ.ok_or(AuthReject::TypeMismatch)?;
            if !typ_matches(got, want) {
                return Err(AuthReject::TypeMismatch);
            }
        }
        match claims.iss {
            None => return Err(AuthReject::MissingClaim),
            Some(iss) if iss != self.issuer => return Err(AuthReject::WrongIssuer),
            Some(_) => {}
        }
        if !self.audiences.is_empty() {
            if !claims.aud.is_present() {
                return Err(AuthReject::MissingClaim);
            }
            if !self.audiences.iter().any(|a| claims.aud.contains(a)) {
                return Err(AuthReject::WrongAudience);
            }
        }
        let leeway = i64::try_from(self.leeway_secs).unwrap_or(i64::MAX);
        let exp = claims.exp.ok_or(AuthReject::MissingClaim)?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthReject::Expired);
        }
        let horizon = now.saturating_add(leeway);
        if claims.nbf.is_some_and(|nbf| nbf > horizon) {
            return Err(AuthReject::NotYetValid);
        }
        if claims.iat.is_some_and(|iat| iat > horizon) {
            return Err(AuthReject::IssuedInFuture);
        }
        for name in &self.required_claims {
            if !has_claim(claims, name) {
                return Err(AuthReject::MissingClaim);
            }
        }
        Ok(())
    }
}

fn typ_matches(got: &str, want: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    strip(got).eq_ignore_ascii_case(strip(want))
}

fn has_claim(c: &Claims<'_>, name: &str) -> bool {
    match name {
        "iss" => c.iss.is_some(),
        "sub" => c.sub.is_some(),
        "aud" => c.aud.is_present(),
        "exp" => c.exp.is_some(),
        "nbf" => c.nbf.is_some(),
        "iat" => c.iat.is_some(),
        "scope" | "scp" => c.scope.is_some(),
        "client_id" | "azp" => c.client_id.is_some(),
        _ => false,
    }
}
