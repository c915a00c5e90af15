//! Base64: the URL-safe unpadded alphabet (JWS, JWK) and the standard padded one (PEM).
//! Sans-IO; not constant time (it only ever sees test keys and tokens the tool made).

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(alphabet[(n >> shift) as usize & 63] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = alphabet.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

pub fn encode_url(data: &[u8]) -> String {
    encode(data, URL, false)
}

pub fn encode_std(data: &[u8]) -> String {
    encode(data, STD, true)
}

pub fn decode_url(s: &str) -> Option<Vec<u8>> {
    decode(s, URL)
}

pub fn decode_std(s: &str) -> Option<Vec<u8>> {
    decode(s, STD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
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
            assert_eq!(decode_url(&encode_url(data)).unwrap(), data);
            assert_eq!(decode_std(&encode_std(data)).unwrap(), data);
        }
        assert_eq!(encode_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_std(b"fo"), "Zm8=");
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8");
    }
}
