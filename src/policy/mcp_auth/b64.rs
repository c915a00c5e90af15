//! Strict base64url (RFC 4648 §5) as JWS requires (RFC 7515 §2): URL alphabet only, no
//! padding, no whitespace, and canonical — the unused low bits of a final partial group must be
//! zero, so every byte string has exactly one accepted encoding.
//!
//! Owns: decoding into caller-owned buffers (and encoding, used by tests and the generator);
//! the standard padded alphabet too (RFC 4648 §4), for the PEM key files of `mint`.
//! Does not: allocate beyond growing the caller's buffer, or know what the bytes mean.

use super::AuthReject;

const BAD: u8 = 0xFF;

/// Maps an ASCII byte to its 6-bit value, or [`BAD`].
static DECODE: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

const ENCODE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The decoded length of `n` base64url characters, or `None` if no unpadded encoding has that
/// length (`n % 4 == 1`).
pub(crate) const fn decoded_len(n: usize) -> Option<usize> {
    match n % 4 {
        0 => Some(n / 4 * 3),
        2 => Some(n / 4 * 3 + 1),
        3 => Some(n / 4 * 3 + 2),
        _ => None,
    }
}

/// Decodes `input` into `out` (cleared first). Any deviation from canonical unpadded
/// base64url is [`AuthReject::Malformed`].
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthReject> {
    out.clear();
    let len = decoded_len(input.len()).ok_or(AuthReject::Malformed)?;
    out.resize(len, 0);
    let full = input.len() / 4;
    let (body, tail) = input.split_at(full * 4);
    let (out_body, out_tail) = out.split_at_mut(full * 3);
    for (i, o) in body.chunks_exact(4).zip(out_body.chunks_exact_mut(3)) {
        let a = DECODE[i[0] as usize];
        let b = DECODE[i[1] as usize];
        let c = DECODE[i[2] as usize];
        let d = DECODE[i[3] as usize];
        if (a | b | c | d) & 0xC0 != 0 {
            return Err(AuthReject::Malformed);
        }
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        o[0] = (n >> 16) as u8;
        o[1] = (n >> 8) as u8;
        o[2] = n as u8;
    }
    match *tail {
        [] => {}
        [x, y] => {
            let (a, b) = (DECODE[x as usize], DECODE[y as usize]);
            // Two characters carry 12 bits for 8: the low 4 bits of `b` must be zero.
            if (a | b) & 0xC0 != 0 || b & 0x0F != 0 {
                return Err(AuthReject::Malformed);
            }
            out_tail[0] = (a << 2) | (b >> 4);
        }
        [x, y, z] => {
            let (a, b, c) = (DECODE[x as usize], DECODE[y as usize], DECODE[z as usize]);
            // Three characters carry 18 bits for 16: the low 2 bits of `c` must be zero.
            if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 {
                return Err(AuthReject::Malformed);
            }
            out_tail[0] = (a << 2) | (b >> 4);
            out_tail[1] = (b << 4) | (c >> 2);
        }
        // `decoded_len` rejected a remainder of 1.
        _ => return Err(AuthReject::Malformed),
    }
    Ok(())
}

/// Decodes into a fresh vector (control plane: JWKS fields).
pub(crate) fn decode(input: &[u8]) -> Result<Vec<u8>, AuthReject> {
    let mut v = Vec::new();
    decode_into(input, &mut v)?;
    Ok(v)
}

/// Encodes without padding (tests, corpus generator, benches).
pub(crate) fn encode(input: &[u8]) -> String {
    let mut s = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let chars = c.len() + 1;
        for k in 0..chars {
            s.push(ENCODE[((n >> (18 - 6 * k)) & 0x3F) as usize] as char);
        }
    }
    s
}

const ENCODE_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (PEM bodies).
pub(crate) fn encode_std(input: &[u8]) -> String {
    let mut s = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(ENCODE_STD[((n >> (18 - 6 * k)) & 0x3F) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decodes standard base64 (PEM bodies, whitespace already removed; padding optional): mapped
/// to the URL alphabet, a canonical body is canonical base64url.
pub(crate) fn decode_std(input: &str) -> Option<Vec<u8>> {
    let url: Vec<u8> = input
        .trim_end_matches('=')
        .bytes()
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            b'-' | b'_' => b'!',
            b => b,
        })
        .collect();
    decode(&url).ok()
}

#[cfg(test)]
mod std_tests {
    use super::{decode, decode_std, encode, encode_std};

    #[test]
    fn both_alphabets_round_trip() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xfb, 0xff],
        ] {
            assert_eq!(decode(encode(data).as_bytes()).unwrap(), data);
            assert_eq!(decode_std(&encode_std(data)).unwrap(), data);
        }
        assert_eq!(encode_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_std(b"fo"), "Zm8=");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_std("-_8"), None);
    }
}
