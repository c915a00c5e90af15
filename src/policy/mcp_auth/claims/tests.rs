use super::*;
use crate::policy::mcp_auth::{Alg, Audience};

const NOW: i64 = 1_000_000;

fn v() -> Validation {
    Validation::new(
        "https://iss",
        vec!["https://aud".into(), "urn:second".into()],
    )
}

fn h(typ: Option<&'static str>) -> Header<'static> {
    Header {
        alg: Alg::RS256,
        kid: None,
        typ,
    }
}

fn c() -> Claims<'static> {
    Claims {
        iss: Some("https://iss"),
        sub: Some("s"),
        aud: Audience::One("https://aud"),
        exp: Some(NOW + 100),
        nbf: Some(NOW - 100),
        iat: Some(NOW - 100),
        scope: None,
        client_id: None,
    }
}

fn check(c: Claims<'static>) -> Result<(), AuthReject> {
    v().check(&h(None), &c, NOW)
}

#[test]
fn defaults() {
    let v = v();
    assert_eq!(v.leeway_secs, 60);
    assert_eq!(v.required_claims, ["exp"]);
    assert_eq!(v.require_typ, None);
    assert_eq!(check(c()), Ok(()));
}

#[test]
fn issuer() {
    assert_eq!(
        check(Claims { iss: None, ..c() }),
        Err(AuthReject::MissingClaim)
    );
    for bad in [
        "https://iss/",
        "https://ISS",
        "https://iss ",
        "",
        "http://iss",
    ] {
        assert_eq!(
            check(Claims {
                iss: Some(bad),
                ..c()
            }),
            Err(AuthReject::WrongIssuer),
            "{bad}"
        );
    }
}

#[test]
fn audience() {
    assert_eq!(
        check(Claims {
            aud: Audience::None,
            ..c()
        }),
        Err(AuthReject::MissingClaim)
    );
    assert_eq!(
        check(Claims {
            aud: Audience::One("https://aud/"),
            ..c()
        }),
        Err(AuthReject::WrongAudience)
    );
    assert_eq!(
        check(Claims {
            aud: Audience::One("urn:second"),
            ..c()
        }),
        Ok(())
    );
    let mut any = v();
    any.audiences.clear();
    assert_eq!(
        any.check(
            &h(None),
            &Claims {
                aud: Audience::None,
                ..c()
            },
            NOW
        ),
        Ok(())
    );
    assert_eq!(
        any.check(
            &h(None),
            &Claims {
                aud: Audience::One("x"),
                ..c()
            },
            NOW
        ),
        Ok(())
    );
}

#[test]
fn time_window_with_leeway() {
    use AuthReject::*;
    assert_eq!(check(Claims { exp: None, ..c() }), Err(MissingClaim));
    assert_eq!(
        check(Claims {
            exp: Some(NOW - 59),
            ..c()
        }),
        Ok(())
    );
    assert_eq!(
        check(Claims {
            exp: Some(NOW - 60),
            ..c()
        }),
        Err(Expired)
    );
    assert_eq!(
        check(Claims {
            exp: Some(i64::MIN),
            ..c()
        }),
        Err(Expired)
    );
    assert_eq!(
        check(Claims {
            exp: Some(i64::MAX),
            ..c()
        }),
        Ok(())
    );
    assert_eq!(
        check(Claims {
            nbf: Some(NOW + 60),
            ..c()
        }),
        Ok(())
    );
    assert_eq!(
        check(Claims {
            nbf: Some(NOW + 61),
            ..c()
        }),
        Err(NotYetValid)
    );
    assert_eq!(
        check(Claims {
            nbf: None,
            iat: None,
            ..c()
        }),
        Ok(())
    );
    assert_eq!(
        check(Claims {
            iat: Some(NOW + 60),
            ..c()
        }),
        Ok(())
    );
    assert_eq!(
        check(Claims {
            iat: Some(NOW + 61),
            ..c()
        }),
        Err(IssuedInFuture)
    );
    let mut strict = v();
    strict.leeway_secs = 0;
    assert_eq!(
        strict.check(
            &h(None),
            &Claims {
                exp: Some(NOW),
                ..c()
            },
            NOW
        ),
        Err(Expired)
    );
    assert_eq!(
        strict.check(
            &h(None),
            &Claims {
                exp: Some(NOW + 1),
                ..c()
            },
            NOW
        ),
        Ok(())
    );
    strict.leeway_secs = u64::MAX;
    assert_eq!(
        strict.check(
            &h(None),
            &Claims {
                exp: Some(0),
                ..c()
            },
            NOW
        ),
        Ok(())
    );
}

#[test]
fn exp_is_required_even_if_not_listed() {
    let mut v = v();
    v.required_claims.clear();
    assert_eq!(
        v.check(&h(None), &Claims { exp: None, ..c() }, NOW),
        Err(AuthReject::MissingClaim)
    );
}

#[test]
fn typ() {
    let mut v = v();
    v.require_typ = Some("at+jwt".into());
    for ok in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        assert_eq!(v.check(&h(Some(ok)), &c(), NOW), Ok(()), "{ok}");
    }
    for bad in [
        None,
        Some("JWT"),
        Some("at+jwt "),
        Some("application/jwt"),
        Some("x-application/at+jwt"),
        Some(""),
    ] {
        assert_eq!(
            v.check(&h(bad), &c(), NOW),
            Err(AuthReject::TypeMismatch),
            "{bad:?}"
        );
    }
    v.require_typ = Some("application/at+jwt".into());
    assert_eq!(v.check(&h(Some("at+jwt")), &c(), NOW), Ok(()));
}

#[test]
fn required_claims() {
    let mut v = v();
    v.required_claims = vec!["sub".into(), "scope".into()];
    assert_eq!(v.check(&h(None), &c(), NOW), Err(AuthReject::MissingClaim));
    assert_eq!(
        v.check(
            &h(None),
            &Claims {
                scope: Some("a"),
                ..c()
            },
            NOW
        ),
        Ok(())
    );
    assert_eq!(
        v.check(
            &h(None),
            &Claims {
                scope: Some("a"),
                sub: None,
                ..c()
            },
            NOW
        ),
        Err(AuthReject::MissingClaim)
    );
    v.required_claims = vec!["jti".into()];
    assert_eq!(
        v.check(&h(None), &c(), NOW),
        Err(AuthReject::MissingClaim),
        "unknown names fail closed"
    );
    for name in SUPPORTED_REQUIRED_CLAIMS {
        v.required_claims = vec![(*name).into()];
        let full = Claims {
            scope: Some("a"),
            client_id: Some("c"),
            ..c()
        };
        assert_eq!(v.check(&h(None), &full, NOW), Ok(()), "{name}");
    }
}

#[test]
fn order_of_checks() {
    let mut v = v();
    v.require_typ = Some("at+jwt".into());
    let bad = Claims {
        iss: Some("x"),
        aud: Audience::One("y"),
        exp: Some(0),
        ..c()
    };
    assert_eq!(v.check(&h(None), &bad, NOW), Err(AuthReject::TypeMismatch));
    assert_eq!(
        v.check(&h(Some("at+jwt")), &bad, NOW),
        Err(AuthReject::WrongIssuer)
    );
    let bad = Claims {
        aud: Audience::One("y"),
        exp: Some(0),
        ..c()
    };
    assert_eq!(
        v.check(&h(Some("at+jwt")), &bad, NOW),
        Err(AuthReject::WrongAudience)
    );
}
