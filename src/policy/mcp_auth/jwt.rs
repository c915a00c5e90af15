//! Compact JWS parsing (RFC 7515 §7.1) into borrowed views: split on the two dots, decode the
//! three segments into per-worker [`Scratch`] buffers, and read the header parameters and
//! claims that authorization needs.
//!
//! Owns: structure and syntax — segment count, size limit, strict base64url, JSON objects,
//! duplicate names among the members we read, integer NumericDates, `alg` parsing and `crit`.
//! Does not: verify the signature, select keys, compare claims with configuration, or
//! allocate once the scratch buffers have grown to the working-set size.
//!
//! Numeric dates: only JSON integers are accepted; `1.0`, `1e9`, `1.5` and strings are
//! [`AuthReject::BadClaim`]. `crit`: any `crit` parameter (empty or not) is
//! [`AuthReject::CritUnsupported`] — we implement no extensions, and RFC 7515 §4.1.11 forbids
//! the empty list anyway. Unknown members are skipped (validated, not interpreted).

#[cfg(test)]
mod tests;

use std::ops::Range;

use memchr::memchr;

use super::b64;
use super::json::{Num, Scanner};
use super::verify::Alg;
use super::AuthReject;

/// Tokens longer than this are [`AuthReject::TooLarge`] before any decoding.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Per-worker reusable decode buffers. One per worker thread; reusing it makes `parse`
/// allocation-free in the steady state. Its `Debug` shows capacities only: the buffers hold
/// the last decoded token.
#[derive(Default)]
pub struct Scratch {
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    aud: Vec<Range<usize>>,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            header: Vec::with_capacity(256),
            payload: Vec::with_capacity(1024),
            signature: Vec::with_capacity(512),
            aud: Vec::with_capacity(8),
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("header_capacity", &self.header.capacity())
            .field("payload_capacity", &self.payload.capacity())
            .field("signature_capacity", &self.signature.capacity())
            .finish()
    }
}

/// The JOSE header parameters we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub alg: Alg,
    pub kid: Option<&'a str>,
    pub typ: Option<&'a str>,
}

/// The `aud` claim: absent, a single string, or an array of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    None,
    One(&'a str),
    Many(AudList<'a>),
}

/// The elements of an `aud` array, borrowed from the decoded payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudList<'a> {
    payload: &'a str,
    /// Every range was checked to be a char-boundary range of `payload` when built.
    spans: &'a [Range<usize>],
}

impl<'a> AudList<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let p = self.payload;
        // Indexing cannot panic: `parse` checked each range with `str::get`.
        self.spans.iter().map(move |r| &p[r.clone()])
    }
}

impl std::fmt::Debug for AudList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Audience<'a> {
    pub fn is_present(&self) -> bool {
        !matches!(self, Audience::None)
    }

    /// Byte-equal membership.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(a) => *a == aud,
            Audience::Many(l) => l.iter().any(|a| a == aud),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (one, many) = match *self {
            Audience::None => (None, None),
            Audience::One(a) => (Some(a), None),
            Audience::Many(l) => (None, Some(l.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// The registered and access-token claims we use (RFC 7519 §4.1, RFC 9068 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims<'a> {
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub aud: Audience<'a>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    /// `scope` (space-separated) if present, else `scp` (a string, or an array joined with
    /// single spaces in place).
    pub scope: Option<&'a str>,
    /// `client_id` if present, else `azp`.
    pub client_id: Option<&'a str>,
}

/// A syntactically valid compact JWS whose signature has not been checked yet. Its `Debug`
/// omits the signing input and the signature: together they are the bearer token.
#[derive(Clone, Copy)]
pub struct ParsedJwt<'t, 's> {
    pub header: Header<'s>,
    pub claims: Claims<'s>,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, the bytes the signature covers.
    pub signing_input: &'t [u8],
    pub signature: &'s [u8],
}

impl std::fmt::Debug for ParsedJwt<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedJwt")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .field("signing_input_len", &self.signing_input.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

/// Parses a compact JWS. See the module doc for the rules.
pub fn parse<'t, 's>(
    token: &'t [u8],
    scratch: &'s mut Scratch,
) -> Result<ParsedJwt<'t, 's>, AuthReject> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthReject::TooLarge);
    }
    let d1 = memchr(b'.', token).ok_or(AuthReject::Malformed)?;
    let d2 = d1 + 1 + memchr(b'.', &token[d1 + 1..]).ok_or(AuthReject::Malformed)?;
    let sig64 = &token[d2 + 1..];
    if memchr(b'.', sig64).is_some() {
        return Err(AuthReject::Malformed);
    }
    let Scratch {
        header,
        payload,
        signature,
        aud,
    } = scratch;

    b64::decode_into(&token[..d1], header)?;
    let hs = scan_header(header)?;
    b64::decode_into(&token[d1 + 1..d2], payload)?;
    let cs = scan_claims(payload, aud)?;
    if sig64.is_empty() {
        return Err(AuthReject::Malformed);
    }
    b64::decode_into(sig64, signature)?;

    let h = std::str::from_utf8(header).map_err(|_| AuthReject::Malformed)?;
    let p = std::str::from_utf8(payload).map_err(|_| AuthReject::Malformed)?;
    let hget =
        |r: Option<Range<usize>>| r.map(|r| h.get(r).ok_or(AuthReject::Malformed)).transpose();
    let pget =
        |r: Option<Range<usize>>| r.map(|r| p.get(r).ok_or(AuthReject::Malformed)).transpose();
    let aud_view = match cs.aud {
        AudSpan::None => Audience::None,
        AudSpan::One(r) => Audience::One(p.get(r).ok_or(AuthReject::Malformed)?),
        AudSpan::Many => {
            if aud.iter().any(|r| p.get(r.clone()).is_none()) {
                return Err(AuthReject::Malformed);
            }
            Audience::Many(AudList {
                payload: p,
                spans: aud,
            })
        }
    };
    Ok(ParsedJwt {
        header: Header {
            alg: hs.alg,
            kid: hget(hs.kid)?,
            typ: hget(hs.typ)?,
        },
        claims: Claims {
            iss: pget(cs.iss)?,
            sub: pget(cs.sub)?,
            aud: aud_view,
            exp: cs.exp,
            nbf: cs.nbf,
            iat: cs.iat,
            scope: pget(cs.scope.or(cs.scp))?,
            client_id: pget(cs.client_id.or(cs.azp))?,
        },
        signing_input: &token[..d2],
        signature,
    })
}

struct HeaderSpans {
    alg: Alg,
    kid: Option<Range<usize>>,
    typ: Option<Range<usize>>,
}

fn dup(seen: &mut u32, bit: u32) -> Result<(), AuthReject> {
    if *seen & bit != 0 {
        return Err(AuthReject::Malformed);
    }
    *seen |= bit;
    Ok(())
}

/// Reads `alg`, `kid`, `typ` and `crit` from the decoded header.
#[doc(hidden)]
pub fn scan_header_json(buf: &mut [u8]) -> Result<(), AuthReject> {
    scan_header(buf).map(drop)
}

fn scan_header(buf: &mut [u8]) -> Result<HeaderSpans, AuthReject> {
    const BAD: AuthReject = AuthReject::Malformed;
    let mut seen = 0u32;
    let mut alg = None;
    let (mut kid, mut typ) = (None, None);
    Scanner::new(buf).object(|s, name| {
        match &s.buf[name] {
            b"alg" => {
                dup(&mut seen, 1)?;
                let r = s.string_value(BAD)?;
                alg = Some(Alg::from_name(&s.buf[r]).ok_or(AuthReject::UnsupportedAlg)?);
            }
            b"kid" => {
                dup(&mut seen, 2)?;
                kid = Some(s.string_value(BAD)?);
            }
            b"typ" => {
                dup(&mut seen, 4)?;
                typ = Some(s.string_value(BAD)?);
            }
            b"crit" => return Err(AuthReject::CritUnsupported),
            _ => s.skip_value()?,
        }
        Ok(())
    })?;
    Ok(HeaderSpans {
        alg: alg.ok_or(BAD)?,
        kid,
        typ,
    })
}

enum AudSpan {
    None,
    One(Range<usize>),
    /// The ranges are in the scratch `aud` vector.
    Many,
}

struct ClaimSpans {
    iss: Option<Range<usize>>,
    sub: Option<Range<usize>>,
    aud: AudSpan,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    scope: Option<Range<usize>>,
    scp: Option<Range<usize>>,
    client_id: Option<Range<usize>>,
    azp: Option<Range<usize>>,
}

/// Reads the claims we use from a decoded payload (for benches and fuzzing).
#[doc(hidden)]
pub fn scan_claims_json(buf: &mut [u8], scratch: &mut Scratch) -> Result<(), AuthReject> {
    scan_claims(buf, &mut scratch.aud).map(drop)
}

fn int(s: &mut Scanner<'_>) -> Result<Option<i64>, AuthReject> {
    match s.number_value(AuthReject::BadClaim)? {
        Num::Int(v) => Ok(Some(v)),
        Num::NotInt => Err(AuthReject::BadClaim),
    }
}

fn scan_claims(buf: &mut [u8], aud: &mut Vec<Range<usize>>) -> Result<ClaimSpans, AuthReject> {
    const WT: AuthReject = AuthReject::BadClaim;
    aud.clear();
    let mut c = ClaimSpans {
        iss: None,
        sub: None,
        aud: AudSpan::None,
        exp: None,
        nbf: None,
        iat: None,
        scope: None,
        scp: None,
        client_id: None,
        azp: None,
    };
    let mut seen = 0u32;
    Scanner::new(buf).object(|s, name| {
        match &s.buf[name] {
            b"iss" => {
                dup(&mut seen, 1 << 0)?;
                c.iss = Some(s.string_value(WT)?);
            }
            b"sub" => {
                dup(&mut seen, 1 << 1)?;
                c.sub = Some(s.string_value(WT)?);
            }
            b"aud" => {
                dup(&mut seen, 1 << 2)?;
                c.aud = match s.peek() {
                    Some(b'[') => {
                        s.string_array(WT, |_, r| {
                            aud.push(r);
                            Ok(())
                        })?;
                        AudSpan::Many
                    }
                    _ => AudSpan::One(s.string_value(WT)?),
                };
            }
            b"exp" => {
                dup(&mut seen, 1 << 3)?;
                c.exp = int(s)?;
            }
            b"nbf" => {
                dup(&mut seen, 1 << 4)?;
                c.nbf = int(s)?;
            }
            b"iat" => {
                dup(&mut seen, 1 << 5)?;
                c.iat = int(s)?;
            }
            b"scope" => {
                dup(&mut seen, 1 << 6)?;
                c.scope = Some(s.string_value(WT)?);
            }
            b"scp" => {
                dup(&mut seen, 1 << 7)?;
                c.scp = Some(match s.peek() {
                    Some(b'[') => join_in_place(s)?,
                    _ => s.string_value(WT)?,
                });
            }
            b"client_id" => {
                dup(&mut seen, 1 << 8)?;
                c.client_id = Some(s.string_value(WT)?);
            }
            b"azp" => {
                dup(&mut seen, 1 << 9)?;
                c.azp = Some(s.string_value(WT)?);
            }
            _ => s.skip_value()?,
        }
        Ok(())
    })?;
    Ok(c)
}

/// Rewrites a string array such as `["a", "b\u0063"]` in place into `a bc`, returning its
/// range. The write cursor starts at `[` and never passes the read cursor: each element
/// costs at least three source bytes (two quotes and a separator) and at most one output
/// byte (a space) beyond its content. The leftover bytes are blanked with spaces.
fn join_in_place(s: &mut Scanner<'_>) -> Result<Range<usize>, AuthReject> {
    let start = s.pos;
    let mut w = start;
    let mut first = true;
    s.string_array(AuthReject::BadClaim, |buf, r| {
        if !first {
            buf[w] = b' ';
            w += 1;
        }
        first = false;
        let len = r.len();
        buf.copy_within(r, w);
        w += len;
        Ok(())
    })?;
    let end = s.pos;
    s.buf[w..end].fill(b' ');
    Ok(start..w)
}
