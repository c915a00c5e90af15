//! The rejection vocabulary of bearer-token checking.
//!
//! Owns: [`AuthReject`], its stable log codes and generic descriptions.
//! Does not: choose HTTP status codes or render `WWW-Authenticate` challenges (the caller maps
//! every variant to a prebuilt 401 in one place), or carry any token data.

/// Why a bearer token was refused. `Copy`, no payload: nothing here can echo attacker bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthReject {
    /// No `Authorization: Bearer` credential at all.
    Missing,
    /// Not a compact JWS: wrong segment count, bad base64url, bad JSON, duplicate member,
    /// non-UTF-8, header or payload not an object, empty signature segment.
    Malformed,
    /// The token is longer than [`crate::policy::mcp_auth::MAX_TOKEN_LEN`].
    TooLarge,
    /// The header `alg` is not one we implement (`none`, `HS*`, unknown names).
    UnsupportedAlg,
    /// The selected key does not allow the header `alg`.
    AlgNotAllowed,
    /// No key matches the header `kid` (or, without `kid`, not exactly one key fits the alg).
    UnknownKid,
    /// The signature does not verify (includes wrong-length and DER-encoded ECDSA signatures).
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is not byte-equal to the configured issuer.
    WrongIssuer,
    /// `aud` contains none of the configured audiences.
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud` when audiences are configured, or one listed in
    /// `required_claims`) is absent.
    MissingClaim,
    /// A claim we read has the wrong JSON type or range (e.g. `exp` as a string or `1.5`).
    BadClaim,
    /// The `typ` header is absent or not the required token type (e.g. `at+jwt`).
    TypeMismatch,
    /// The header has `crit`: we implement no JWS extensions, so any `crit` is refused.
    CritUnsupported,
    /// Not checked: the client's address spent its budget of failed verifications.
    Throttled,
}

impl AuthReject {
    /// A stable snake_case code, safe to log and to use as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthReject::Missing => "missing",
            AuthReject::Malformed => "malformed",
            AuthReject::TooLarge => "too_large",
            AuthReject::UnsupportedAlg => "unsupported_alg",
            AuthReject::AlgNotAllowed => "alg_not_allowed",
            AuthReject::UnknownKid => "unknown_kid",
            AuthReject::BadSignature => "bad_signature",
            AuthReject::Expired => "expired",
            AuthReject::NotYetValid => "not_yet_valid",
            AuthReject::IssuedInFuture => "issued_in_future",
            AuthReject::WrongIssuer => "wrong_issuer",
            AuthReject::WrongAudience => "wrong_audience",
            AuthReject::MissingClaim => "missing_claim",
            AuthReject::BadClaim => "bad_claim",
            AuthReject::TypeMismatch => "type_mismatch",
            AuthReject::CritUnsupported => "crit_unsupported",
            AuthReject::Throttled => "throttled",
        }
    }

    /// A generic sentence suitable for an `error_description`; never contains token data.
    pub const fn description(self) -> &'static str {
        match self {
            AuthReject::Missing => "no bearer token",
            AuthReject::Malformed => "the token is malformed",
            AuthReject::TooLarge => "the token is too large",
            AuthReject::UnsupportedAlg => "the token algorithm is not supported",
            AuthReject::AlgNotAllowed => "the token algorithm is not allowed for this key",
            AuthReject::UnknownKid => "the signing key is unknown",
            AuthReject::BadSignature => "the token signature is invalid",
            AuthReject::Expired => "the token has expired",
            AuthReject::NotYetValid => "the token is not yet valid",
            AuthReject::IssuedInFuture => "the token was issued in the future",
            AuthReject::WrongIssuer => "the token issuer is not accepted",
            AuthReject::WrongAudience => "the token audience is not accepted",
            AuthReject::MissingClaim => "a required claim is missing",
            AuthReject::BadClaim => "a claim has an invalid value",
            AuthReject::TypeMismatch => "the token type is not accepted",
            AuthReject::CritUnsupported => "the token uses an unsupported critical extension",
            AuthReject::Throttled => "too many invalid tokens from this address; retry later",
        }
    }

    /// Every variant, for exhaustive tests and metric registration.
    pub const ALL: [AuthReject; 17] = [
        AuthReject::Missing,
        AuthReject::Malformed,
        AuthReject::TooLarge,
        AuthReject::UnsupportedAlg,
        AuthReject::AlgNotAllowed,
        AuthReject::UnknownKid,
        AuthReject::BadSignature,
        AuthReject::Expired,
        AuthReject::NotYetValid,
        AuthReject::IssuedInFuture,
        AuthReject::WrongIssuer,
        AuthReject::WrongAudience,
        AuthReject::MissingClaim,
        AuthReject::BadClaim,
        AuthReject::TypeMismatch,
        AuthReject::CritUnsupported,
        AuthReject::Throttled,
    ];
}

impl std::fmt::Display for AuthReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
