use super::*;
use crate::policy::mcp_auth::b64::{decode, encode};

fn t(header: &str, claims: &str) -> String {
    format!(
        "{}.{}.AAAA",
        encode(header.as_bytes()),
        encode(claims.as_bytes())
    )
}

const H: &str = r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#;

/// (exp, scope, client_id, aud)
type Seen = (Option<i64>, Option<String>, Option<String>, Vec<String>);

fn claims_of(c: &str) -> Result<Seen, AuthReject> {
    let tok = t(H, c);
    let mut s = Scratch::new();
    let j = parse(tok.as_bytes(), &mut s)?;
    Ok((
        j.claims.exp,
        j.claims.scope.map(str::to_owned),
        j.claims.client_id.map(str::to_owned),
        j.claims.aud.iter().map(str::to_owned).collect(),
    ))
}

fn err(c: &str) -> AuthReject {
    claims_of(c).unwrap_err()
}

fn header_err(h: &str) -> AuthReject {
    let tok = t(h, r#"{"exp":1}"#);
    parse(tok.as_bytes(), &mut Scratch::new()).unwrap_err()
}

#[test]
fn base64url_is_strict_and_canonical() {
    for n in 0..40u8 {
        let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let e = encode(&data);
        assert_eq!(decode(e.as_bytes()).unwrap(), data);
        assert!(!e.contains('='));
    }
    assert_eq!(decode(b"").unwrap(), b"");
    assert_eq!(decode(b"QQ").unwrap(), b"A");
    assert_eq!(decode(b"QUI").unwrap(), b"AB");
    assert_eq!(decode(b"-_-_").unwrap(), [0xFB, 0xFF, 0xBF]);
    for bad in [
        &b"QQ=="[..],
        b"QQ=",
        b"Q",
        b"QUJDR",
        b"QR",
        b"QUJ",
        b"QU+D",
        b"QU/D",
        b"QU D",
        b"QU\nD",
        b"QU.D",
    ] {
        assert_eq!(
            decode(bad),
            Err(AuthReject::Malformed),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn splits_into_exactly_three_segments() {
    let ok = t(H, r#"{"exp":1}"#);
    let mut s = Scratch::new();
    let j = parse(ok.as_bytes(), &mut s).unwrap();
    assert_eq!(j.signing_input, ok.rsplit_once('.').unwrap().0.as_bytes());
    assert_eq!(j.signature, [0, 0, 0]);
    let two = ok.rsplit_once('.').unwrap().0.to_owned();
    for bad in [
        two.clone(),
        format!("{ok}.AAAA"),
        format!("{two}."),
        String::new(),
        "..".into(),
        "a.b".into(),
    ] {
        assert_eq!(
            parse(bad.as_bytes(), &mut s).unwrap_err(),
            AuthReject::Malformed,
            "{bad}"
        );
    }
}

#[test]
fn size_limit() {
    let big = t(
        H,
        &format!(r#"{{"exp":1,"pad":"{}"}}"#, "a".repeat(MAX_TOKEN_LEN)),
    );
    assert_eq!(
        parse(big.as_bytes(), &mut Scratch::new()).unwrap_err(),
        AuthReject::TooLarge
    );
    let edge = vec![b'.'; MAX_TOKEN_LEN];
    assert_eq!(
        parse(&edge, &mut Scratch::new()).unwrap_err(),
        AuthReject::Malformed
    );
}

#[test]
fn header_fields() {
    let tok = t(
        r#" { "typ" : "at+jwt" , "alg":"ES384", "kid":"a\u00e9b", "jku":"https://x", "x5c":["a"] } "#,
        r#"{"exp":1}"#,
    );
    let mut s = Scratch::new();
    let h = parse(tok.as_bytes(), &mut s).unwrap().header;
    assert_eq!(
        h,
        Header {
            alg: Alg::ES384,
            kid: Some("aéb"),
            typ: Some("at+jwt")
        }
    );
    let tok = t(r#"{"alg":"EdDSA"}"#, "{}");
    assert_eq!(
        parse(tok.as_bytes(), &mut s).unwrap().header,
        Header {
            alg: Alg::EdDSA,
            kid: None,
            typ: None
        }
    );
}

#[test]
fn header_rejections() {
    use AuthReject::*;
    for (h, want) in [
        (r#"{"alg":"none"}"#, UnsupportedAlg),
        (r#"{"alg":"HS256"}"#, UnsupportedAlg),
        (r#"{"alg":"rs256"}"#, UnsupportedAlg),
        (r#"{"alg":"ES512"}"#, UnsupportedAlg),
        (r#"{"alg":""}"#, UnsupportedAlg),
        (r#"{"alg":1}"#, Malformed),
        (r#"{"kid":"k"}"#, Malformed),
        (r#"{"alg":"RS256","alg":"RS256"}"#, Malformed),
        (r#"{"alg":"RS256","kid":"a","kid":"b"}"#, Malformed),
        (r#"{"alg":"RS256","typ":"a","typ":"a"}"#, Malformed),
        (r#"{"alg":"RS256","kid":null}"#, Malformed),
        (
            r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
            CritUnsupported,
        ),
        (r#"{"alg":"RS256","crit":[]}"#, CritUnsupported),
        (r#"["alg","RS256"]"#, Malformed),
        (r#""RS256""#, Malformed),
        (r#"{"alg":"RS256"}{}"#, Malformed),
        (r#"{"alg":"RS256",}"#, Malformed),
        ("", Malformed),
        ("\u{feff}{\"alg\":\"RS256\"}", Malformed),
    ] {
        assert_eq!(header_err(h), want, "{h}");
    }
    // Non-UTF-8 inside a header string.
    let mut h = br#"{"alg":"RS256","kid":"xx"}"#.to_vec();
    h[22] = 0xC3;
    let tok = format!("{}.{}.AAAA", encode(&h), encode(b"{}"));
    assert_eq!(
        parse(tok.as_bytes(), &mut Scratch::new()).unwrap_err(),
        Malformed
    );
}

#[test]
fn claims_fields() {
    let tok = t(
        H,
        r#"{"iss":"https://i","sub":"s","aud":["a","b\/c",""],"exp":4102444800,"nbf":-5,"iat":0,
        "scope":"x y","scp":["ignored"],"azp":"az","client_id":"cid","other":{"deep":[[{}]]}}"#,
    );
    let mut s = Scratch::new();
    let c = parse(tok.as_bytes(), &mut s).unwrap().claims;
    assert_eq!(c.iss, Some("https://i"));
    assert_eq!(c.sub, Some("s"));
    assert_eq!(c.exp, Some(4_102_444_800));
    assert_eq!(c.nbf, Some(-5));
    assert_eq!(c.iat, Some(0));
    assert_eq!(c.scope, Some("x y"), "scope wins over scp");
    assert_eq!(c.client_id, Some("cid"), "client_id wins over azp");
    assert_eq!(c.aud.iter().collect::<Vec<_>>(), ["a", "b/c", ""]);
    assert!(c.aud.contains("b/c") && !c.aud.contains("b"));
    match c.aud {
        Audience::Many(l) => assert_eq!(l.len(), 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scp_and_azp_fallbacks() {
    let (_, scope, cid, aud) =
        claims_of(r#"{"scp":["a", "b\u0062" ,"c"],"azp":"z","aud":"one"}"#).unwrap();
    assert_eq!(scope.as_deref(), Some("a bb c"));
    assert_eq!(cid.as_deref(), Some("z"));
    assert_eq!(aud, ["one"]);
    let (_, scope, cid, aud) = claims_of(r#"{"scp":"p q"}"#).unwrap();
    assert_eq!(scope.as_deref(), Some("p q"));
    assert_eq!(cid, None);
    assert!(aud.is_empty());
    let (_, scope, ..) = claims_of(r#"{"scp":[]}"#).unwrap();
    assert_eq!(scope.as_deref(), Some(""));
    let (_, scope, ..) = claims_of(r#"{"scp":["","x"]}"#).unwrap();
    assert_eq!(scope.as_deref(), Some(" x"));
    assert_eq!(err(r#"{"scp":["a",1]}"#), AuthReject::BadClaim);
    assert_eq!(err(r#"{"scp":{"a":1}}"#), AuthReject::BadClaim);
}

#[test]
fn escapes_are_decoded_in_place() {
    let tok = t(
        H,
        r#"{"sub":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00 end","iss":"plain"}"#,
    );
    let mut s = Scratch::new();
    let c = parse(tok.as_bytes(), &mut s).unwrap().claims;
    assert_eq!(c.sub, Some("\"\\/\u{8}\u{c}\n\r\tAé€😀 end"));
    assert_eq!(c.iss, Some("plain"));
    for bad in [
        r#"{"sub":"\ud800"}"#,
        r#"{"sub":"\udc00"}"#,
        r#"{"sub":"\ud800\u0041"}"#,
        r#"{"sub":"\x"}"#,
        r#"{"sub":"\u12"}"#,
        r#"{"sub":"\u12g4"}"#,
        "{\"sub\":\"a\u{1}b\"}",
        "{\"sub\":\"a\nb\"}",
        r#"{"sub":"abc}"#,
    ] {
        assert_eq!(err(bad), AuthReject::Malformed, "{bad}");
    }
}

#[test]
fn numeric_dates_must_be_integers() {
    assert_eq!(claims_of(r#"{"exp":0}"#).unwrap().0, Some(0));
    assert_eq!(claims_of(r#"{"exp":-1}"#).unwrap().0, Some(-1));
    assert_eq!(
        claims_of(r#"{"exp":9223372036854775807}"#).unwrap().0,
        Some(i64::MAX)
    );
    assert_eq!(
        claims_of(r#"{"exp":-9223372036854775808}"#).unwrap().0,
        Some(i64::MIN)
    );
    for bad in [
        r#"{"exp":1.5}"#,
        r#"{"exp":1.0}"#,
        r#"{"exp":1e3}"#,
        r#"{"exp":1E+3}"#,
        r#"{"exp":"1"}"#,
        r#"{"exp":null}"#,
        r#"{"exp":true}"#,
        r#"{"exp":[1]}"#,
        r#"{"nbf":{}}"#,
        r#"{"iat":0.0}"#,
        r#"{"exp":9223372036854775808}"#,
    ] {
        assert_eq!(err(bad), AuthReject::BadClaim, "{bad}");
    }
    for bad in [
        r#"{"exp":01}"#,
        r#"{"exp":-}"#,
        r#"{"exp":1.}"#,
        r#"{"exp":.5}"#,
        r#"{"exp":+1}"#,
        r#"{"exp":1e}"#,
    ] {
        assert_eq!(err(bad), AuthReject::Malformed, "{bad}");
    }
}

#[test]
fn claim_types_and_duplicates() {
    use AuthReject::*;
    for (c, want) in [
        (r#"{"iss":1}"#, BadClaim),
        (r#"{"sub":null}"#, BadClaim),
        (r#"{"aud":5}"#, BadClaim),
        (r#"{"aud":[1]}"#, BadClaim),
        (r#"{"aud":{"a":"b"}}"#, BadClaim),
        (r#"{"client_id":["a"]}"#, BadClaim),
        (r#"{"scope":["a"]}"#, BadClaim),
        (r#"{"exp":1,"exp":1}"#, Malformed),
        (r#"{"aud":"a","aud":"a"}"#, Malformed),
        (r#"{"scp":"a","scp":"a"}"#, Malformed),
        (r#"{"azp":"a","\u0061zp":"b"}"#, Malformed),
        (r#"[{"exp":1}]"#, Malformed),
        (r#"{"exp":1"#, Malformed),
        (r#"{"exp" 1}"#, Malformed),
        (r#"{exp:1}"#, Malformed),
        (r#"{"x":tru}"#, Malformed),
        (r#"{"x":[1,]}"#, Malformed),
        (r#"{"x":{"a":1,}}"#, Malformed),
        (r#"{"x":{1:1}}"#, Malformed),
        ("", Malformed),
        ("null", Malformed),
    ] {
        assert_eq!(err(c), want, "{c}");
    }
    // Duplicates among members we do not read are allowed.
    assert!(claims_of(r#"{"jti":"a","jti":"b","exp":1}"#).is_ok());
    assert!(claims_of(" {}\t\r\n").is_ok());
}

#[test]
fn nesting_limit_in_skipped_values() {
    let ok = format!(r#"{{"x":{}{}}}"#, "[".repeat(32), "]".repeat(32));
    assert!(claims_of(&ok).is_ok());
    let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(33), "]".repeat(33));
    assert_eq!(err(&deep), AuthReject::Malformed);
    let deep_obj = format!(r#"{{"x":{}1{}}}"#, r#"{"a":"#.repeat(40), "}".repeat(40));
    assert_eq!(err(&deep_obj), AuthReject::Malformed);
}

#[test]
fn empty_signature_and_order_of_errors() {
    let tok = format!("{}.{}.", encode(H.as_bytes()), encode(b"{}"));
    assert_eq!(
        parse(tok.as_bytes(), &mut Scratch::new()).unwrap_err(),
        AuthReject::Malformed
    );
    // alg is judged before the payload and the signature.
    let tok = format!("{}.!!.", encode(br#"{"alg":"none"}"#));
    assert_eq!(
        parse(tok.as_bytes(), &mut Scratch::new()).unwrap_err(),
        AuthReject::UnsupportedAlg
    );
    let tok = format!("{}.{}.A", encode(H.as_bytes()), encode(b"{}"));
    assert_eq!(
        parse(tok.as_bytes(), &mut Scratch::new()).unwrap_err(),
        AuthReject::Malformed
    );
}

#[test]
fn scratch_is_reused() {
    let mut s = Scratch::new();
    let a = t(H, r#"{"aud":["a","b","c","d"],"sub":"first-subject-long"}"#);
    let b = t(r#"{"alg":"PS512"}"#, r#"{"aud":["z"],"sub":"x"}"#);
    assert_eq!(
        parse(a.as_bytes(), &mut s)
            .unwrap()
            .claims
            .aud
            .iter()
            .count(),
        4
    );
    let j = parse(b.as_bytes(), &mut s).unwrap();
    assert_eq!(j.claims.aud.iter().collect::<Vec<_>>(), ["z"]);
    assert_eq!(j.claims.sub, Some("x"));
    assert_eq!(j.header.alg, Alg::PS512);
}

#[test]
fn debug_never_prints_the_token() {
    let tok = t(H, r#"{"exp":1,"sub":"someone"}"#);
    let mut s = Scratch::new();
    let j = parse(tok.as_bytes(), &mut s).unwrap();
    let d = format!("{j:?}");
    assert!(d.contains("someone") && !d.contains(&tok[..20]), "{d}");
    assert!(!format!("{s:?}").contains("someone"));
}
