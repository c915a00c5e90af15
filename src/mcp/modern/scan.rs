//! The fields of a 2026-07-28 request that the mirrored-header check reads (`id`, `method`,
//! `params.name`, `params.uri`, and in `params._meta` the protocol version and whether client
//! capabilities are there), found in one pass over the body that validates all of it as JSON
//! (RFC 8259) and builds nothing: strings are borrowed unless they hold escapes, everything
//! else is stepped over.
//!
//! Stricter than a generic parse where that matters to a check that guards routing: the body
//! must be UTF-8 as a whole, the message, its `params` and `_meta` must be objects (a
//! positional array is refused, never read by position), and a field the check reads may
//! appear once per object (a server that kept the last of two `method`s would run something
//! else than what was checked). Nesting inside values the check does not read is unbounded and
//! costs no recursion.
//!
//! Sans-IO. The reference it is tested against (`super::reference`, serde) and the fuzz target
//! `jsonrpc` compare the two on every input.

use std::borrow::Cow;

/// What the check reads of a request. A string field holds `None` when the value is absent,
/// `null`, or not a string.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Fields<'a> {
    /// The id's JSON text; `None` when absent or `null`.
    pub id: Option<&'a str>,
    // Strings, unescaped, as UTF-8 bytes (checked, and compared as bytes).
    pub method: Option<Cow<'a, [u8]>>,
    pub name: Option<Cow<'a, [u8]>>,
    pub uri: Option<Cow<'a, [u8]>>,
    /// `params._meta` is an object.
    pub meta: bool,
    pub version: Option<Cow<'a, [u8]>>,
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]` is there and not `null`.
    pub capabilities: bool,
}

/// The body is not one JSON object as the check reads it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed;

type Res<T> = Result<T, Malformed>;

/// Reads `body`'s fields, validating all of it.
pub(super) fn fields(body: &[u8]) -> Res<Fields<'_>> {
    // UTF-8 is checked as it is read: in strings (`Cursor::string`); a byte over 0x7f anywhere
    // else is no JSON.
    let mut c = Cursor { s: body, i: 0 };
    let mut f = Fields::default();
    let (mut id, mut method, mut params) = (false, false, false);
    c.ws();
    c.object(|c, key| {
        match &*key {
            b"id" => {
                once(&mut id)?;
                let start = c.i;
                let null = c.null_ahead();
                c.skip()?;
                if !null {
                    f.id = Some(str(&c.s[start..c.i])?);
                }
            }
            b"method" => {
                once(&mut method)?;
                // Not a string (and not null): no method can be read, the message is refused.
                f.method = c.text_or_null()?;
            }
            b"params" => {
                once(&mut params)?;
                if !c.null_ahead() {
                    c.params(&mut f)?;
                } else {
                    c.skip()?;
                }
            }
            _ => c.skip()?,
        }
        Ok(())
    })?;
    c.ws();
    if c.i != c.s.len() {
        return Err(Malformed);
    }
    Ok(f)
}

/// In a little-endian word of string bytes, a high bit set in each byte that is a quote, a
/// backslash, a control character or not ASCII — exact for the lowest such byte (the borrows
/// of the subtractions only run upward, so flags above it may be spurious; no flag means
/// none).
fn needs_look(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    (zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space | w)
        & HIGH
}

/// Bytes read as UTF-8 (a string's raw contents, an id's JSON text): checked already, so this
/// only makes them a `str`.
fn str(b: &[u8]) -> Res<&str> {
    std::str::from_utf8(b).map_err(|_| Malformed)
}

/// A field the check reads, seen once in its object.
fn once(seen: &mut bool) -> Res<()> {
    if std::mem::replace(seen, true) {
        return Err(Malformed);
    }
    Ok(())
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

/// Containers open while stepping over a value: a bit per level (set: object), the first 128
/// levels inline, deeper ones spilled.
struct Stack {
    depth: usize,
    inline: u128,
    spill: Vec<bool>,
}

impl Stack {
    fn push(&mut self, object: bool) {
        if self.depth < 128 {
            let bit = 1u128 << self.depth;
            if object {
                self.inline |= bit;
            } else {
                self.inline &= !bit;
            }
        } else {
            self.spill.push(object);
        }
        self.depth += 1;
    }

    /// The innermost open container: `Some(true)` for an object.
    fn top(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            d if d <= 128 => Some(self.inline & (1u128 << (d - 1)) != 0),
            _ => self.spill.last().copied(),
        }
    }

    fn pop(&mut self) {
        if self.depth > 128 {
            self.spill.pop();
        }
        self.depth -= 1;
    }
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Res<()> {
        if self.peek() != Some(b) {
            return Err(Malformed);
        }
        self.i += 1;
        Ok(())
    }

    fn null_ahead(&self) -> bool {
        self.bytes()[self.i..].starts_with(b"null")
    }

    /// The members of an object (the cursor at its `{`): `member` is called with each key
    /// (unescaped) and the cursor at its value, which it must consume.
    fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Res<()>) -> Res<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.text()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// `params` (not null): an object whose `name`, `uri` and `_meta` are read.
    fn params(&mut self, f: &mut Fields<'a>) -> Res<()> {
        let (mut name, mut uri, mut meta) = (false, false, false);
        self.object(|c, key| {
            match &*key {
                b"name" => {
                    once(&mut name)?;
                    f.name = c.text_if_string()?;
                }
                b"uri" => {
                    once(&mut uri)?;
                    f.uri = c.text_if_string()?;
                }
                b"_meta" => {
                    once(&mut meta)?;
                    if c.null_ahead() {
                        c.skip()?;
                    } else {
                        f.meta = true;
                        c.meta(f)?;
                    }
                }
                _ => c.skip()?,
            }
            Ok(())
        })
    }

    /// `_meta` (not null): an object whose protocol version and client capabilities are read.
    fn meta(&mut self, f: &mut Fields<'a>) -> Res<()> {
        let (mut version, mut capabilities) = (false, false);
        self.object(|c, key| {
            match &*key {
                b"io.modelcontextprotocol/protocolVersion" => {
                    once(&mut version)?;
                    f.version = c.text_if_string()?;
                }
                b"io.modelcontextprotocol/clientCapabilities" => {
                    once(&mut capabilities)?;
                    f.capabilities = !c.null_ahead();
                    c.skip()?;
                }
                _ => c.skip()?,
            }
            Ok(())
        })
    }

    /// A string value, or `None` for `null`; anything else is malformed.
    fn text_or_null(&mut self) -> Res<Option<Cow<'a, [u8]>>> {
        match self.peek() {
            Some(b'"') => self.text().map(Some),
            _ if self.null_ahead() => {
                self.i += 4;
                Ok(None)
            }
            _ => Err(Malformed),
        }
    }

    /// A string value, or `None` for any other value (stepped over; an object's own keys are
    /// read as strings, a lone surrogate in one malformed, as serde reads them).
    fn text_if_string(&mut self) -> Res<Option<Cow<'a, [u8]>>> {
        match self.peek() {
            Some(b'"') => return self.text().map(Some),
            Some(b'{') => self.object(|c, _| c.skip())?,
            _ => self.skip()?,
        }
        Ok(None)
    }

    /// A string (the cursor at its opening quote), unescaped.
    fn text(&mut self) -> Res<Cow<'a, [u8]>> {
        let (raw, escaped) = self.string()?;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(str(raw)?).map(|s| Cow::Owned(s.into_bytes()))
    }

    /// Steps over a string (the cursor at its opening quote): its raw contents, and whether
    /// they hold escapes. Escapes are checked for form, other bytes for UTF-8; control
    /// characters are refused.
    fn string(&mut self) -> Res<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        let mut escaped = false;
        loop {
            // Plain ASCII eight bytes at a time, up to the next byte that needs a look.
            while let Some(word) = b.get(self.i..self.i + 8) {
                let hit = needs_look(u64::from_le_bytes(word.try_into().unwrap_or_default()));
                if hit != 0 {
                    self.i += (hit.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match b.get(self.i) {
                Some(b'"') => {
                    let raw = &b[start..self.i];
                    self.i += 1;
                    return Ok((raw, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            let hex = b.get(self.i + 2..self.i + 6).ok_or(Malformed)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Malformed);
                            }
                            self.i += 6;
                        }
                        _ => return Err(Malformed),
                    }
                }
                Some(&c) if c < 0x20 => return Err(Malformed),
                // One character of two to four bytes, as its first byte says.
                Some(&c) if c >= 0x80 => {
                    let width = match c {
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => return Err(Malformed),
                    };
                    str(b.get(self.i..self.i + width).ok_or(Malformed)?)?;
                    self.i += width;
                }
                Some(_) => self.i += 1,
                None => return Err(Malformed),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if !self.bytes()[self.i..].starts_with(word) {
            return Err(Malformed);
        }
        self.i += word.len();
        Ok(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Res<()> {
        let b = self.bytes();
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Malformed),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(Malformed);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Malformed);
            }
        }
        self.i = i;
        Ok(())
    }

    /// Steps over one value (the cursor at its first byte), however deep, without recursion.
    fn skip(&mut self) -> Res<()> {
        let mut open = Stack {
            depth: 0,
            inline: 0,
            spill: Vec::new(),
        };
        loop {
            // A value.
            self.ws();
            match self.peek().ok_or(Malformed)? {
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        open.push(true);
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        open.push(false);
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Malformed),
            }
            // After a value: the containers it closes, up to the next value.
            loop {
                let Some(object) = open.top() else {
                    return Ok(());
                };
                self.ws();
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return Err(Malformed),
                }
            }
        }
    }

    /// A member's key and its colon, stepped over.
    fn key(&mut self) -> Res<()> {
        self.string()?;
        self.ws();
        self.eat(b':')
    }
}

/// The text of a string's raw contents (escapes checked for form by [`Cursor::string`]);
/// a lone surrogate is malformed.
fn unescape(raw: &str) -> Res<String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let hex = |i: usize| -> Res<u32> {
        let h = raw.get(i..i + 4).ok_or(Malformed)?;
        u32::from_str_radix(h, 16).map_err(|_| Malformed)
    };
    while i < b.len() {
        let Some(at) = memchr::memchr(b'\\', &b[i..]) else {
            out.push_str(&raw[i..]);
            break;
        };
        out.push_str(&raw[i..i + at]);
        i += at + 1;
        let c = match b.get(i).ok_or(Malformed)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex(i + 1)?;
                i += 4;
                match hi {
                    0xD800..=0xDBFF => {
                        if b.get(i + 1..i + 3) != Some(b"\\u") {
                            return Err(Malformed);
                        }
                        let lo = hex(i + 3)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(Malformed);
                        }
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            .ok_or(Malformed)?
                    }
                    0xDC00..=0xDFFF => return Err(Malformed),
                    n => char::from_u32(n).ok_or(Malformed)?,
                }
            }
            _ => return Err(Malformed),
        };
        out.push(c);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_the_check_needs() {
        let body = br#" {"jsonrpc":"2.0","id": "a\"b" ,"method":"tools/call","params":{"name":"get_\u0077eather","arguments":{"deep":[[{"x":[1,-2.5e+3,true,null]}]]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}} "#;
        let f = fields(body).unwrap();
        assert_eq!(f.id, Some(r#""a\"b""#));
        assert_eq!(f.method.as_deref(), Some(&b"tools/call"[..]));
        assert_eq!(f.name.as_deref(), Some(&b"get_weather"[..]));
        assert!(matches!(f.name, Some(Cow::Owned(_))));
        assert_eq!(f.uri, None);
        assert!(f.meta && f.capabilities);
        assert_eq!(f.version.as_deref(), Some(&b"2026-07-28"[..]));
    }

    #[test]
    fn nulls_and_other_values_read_as_absent() {
        let f = fields(br#"{"id":null,"method":"m","params":{"name":5,"uri":null,"_meta":{"io.modelcontextprotocol/clientCapabilities":null}}}"#).unwrap();
        assert_eq!((f.id, f.name, f.uri), (None, None, None));
        assert!(f.meta && !f.capabilities);
        let f = fields(br#"{"method":null,"params":null}"#).unwrap();
        assert_eq!(f, Fields::default());
        let f = fields(br#"{"method":"m","params":{"_meta":null}}"#).unwrap();
        assert!(!f.meta);
    }

    #[test]
    fn refuses_what_a_check_must_not_guess_at() {
        for bad in [
            &br#"{"method":"a","method":"b"}"#[..],
            br#"{"method":"a","params":{"name":"x","n\u0061me":"y"}}"#,
            br#"{"method":"a","params":{"_meta":{},"_meta":{}}}"#,
            br#"{"method":1}"#,
            br#"[{"method":"a"}]"#,
            br#"{"method":"a","params":["x"]}"#,
            br#"{"method":"a","params":{"_meta":["2026-07-28"]}}"#,
            br#"{"method":"a"} x"#,
            br#"{"method":"a",}"#,
            br#"{"method":"\ud800"}"#,
            br#"{"method":"\udc00x"}"#,
            br#"{"method":"a","params":{"name":{"\ud800":1}}}"#,
            br#"{"method":"a","x":01}"#,
            br#"{"method":"a","x":1.}"#,
            br#"{"method":"a","x":-}"#,
            br#"{"method":"a","x":[1,]}"#,
            br#"{"method":"a","x":{"k" 1}}"#,
            br#"{"method":"a","x":"\x"}"#,
            br#"{"method":"a","x":"\u12"}"#,
            br#"{"method":"a","x":tru}"#,
            b"{\"method\":\"a\",\"x\":\"\x01\"}",
            b"{\"method\":\"a\",\"x\":\"\xff\"}",
            b"",
            b"{",
        ] {
            assert_eq!(
                fields(bad),
                Err(Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nesting_is_unbounded_and_takes_no_recursion() {
        let n = 100_000;
        let body = format!(
            r#"{{"method":"m","params":{{"arguments":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        );
        assert_eq!(
            fields(body.as_bytes()).unwrap().method.as_deref(),
            Some(&b"m"[..])
        );
        let mixed = format!(
            r#"{{"method":"m","x":{}{}}}"#,
            r#"{"a":["#.repeat(300),
            "]}".repeat(300)
        );
        assert!(fields(mixed.as_bytes()).is_ok());
        let unbalanced = format!(
            r#"{{"method":"m","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(199)
        );
        assert_eq!(fields(unbalanced.as_bytes()), Err(Malformed));
    }

    #[test]
    fn a_word_flags_its_first_quote_backslash_or_control_byte() {
        let look = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
        // Every byte value at every place, in words of plain ASCII and of UTF-8 continuation
        // bytes (high bits set, as the borrows see them).
        for fill in [b'a', 0x80, 0xa2, 0xdc, 0xff, 0x20, 0x21, 0x5d] {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut w = [fill; 8];
                    w[at] = b;
                    let hit = needs_look(u64::from_le_bytes(w));
                    let first = w.iter().position(|&x| look(x));
                    let got = (hit != 0).then(|| (hit.trailing_zeros() / 8) as usize);
                    assert_eq!(got, first, "{w:02x?}");
                }
            }
        }
    }

    #[test]
    fn strings_read_the_same_at_every_length_and_offset() {
        for len in 0..40 {
            for at in 0..len {
                for special in [
                    &b"\\n"[..],
                    b"\\u00e9",
                    b"\\\"",
                    "é".as_bytes(),
                    "€".as_bytes(),
                    "😀".as_bytes(),
                    "\u{7f}".as_bytes(),
                    "\u{10ffff}".as_bytes(),
                ] {
                    let mut s = vec![b'x'; len];
                    s.splice(at..at + 1, special.iter().copied());
                    let body = [&br#"{"method":""#[..], &s, br#"","id":1}"#].concat();
                    let f = fields(&body).unwrap_or_else(|_| panic!("{len} {at}"));
                    let want: String =
                        serde_json::from_slice(&[&b"\""[..], &s, b"\""].concat()).unwrap();
                    assert_eq!(f.method.as_deref(), Some(want.as_bytes()));
                    assert_eq!(f.id, Some("1"));
                }
                // A control byte, and bytes that are no UTF-8: a stray continuation byte, a
                // truncated sequence, overlong forms, a surrogate, past U+10FFFF, 0xff.
                for bad in [
                    &[0x1f][..],
                    &[0x80],
                    &[0xe2, 0x82],
                    &[0xc0, 0xaf],
                    &[0xe0, 0x80, 0xaf],
                    &[0xed, 0xa0, 0x80],
                    &[0xf4, 0x90, 0x80, 0x80],
                    &[0xf5, 0x80, 0x80, 0x80],
                    &[0xff],
                ] {
                    let mut s = vec![b'x'; len];
                    s.splice(at..at + 1, bad.iter().copied());
                    let body = [&br#"{"method":""#[..], &s, br#""}"#].concat();
                    assert_eq!(fields(&body), Err(Malformed), "{len} {at} {bad:02x?}");
                    // Outside a string too.
                    let body = [&br#"{"method":"m","x":"#[..], bad, b"1}"].concat();
                    assert_eq!(fields(&body), Err(Malformed), "{bad:02x?}");
                }
            }
        }
    }

    #[test]
    fn surrogate_pairs_unescape() {
        let f = fields(br#"{"method":"\ud83d\ude00 \u00e9"}"#).unwrap();
        assert_eq!(f.method.as_deref(), Some("\u{1F600} é".as_bytes()));
    }
}
