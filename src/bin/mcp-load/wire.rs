//! Sans-IO HTTP/1.1 body framing for the client and server: a chunked-encoding decoder and a
//! Server-Sent Events parser that yields each event's `data` (lines joined by `\n`).
//! Does not: read sockets, parse heads (httparse does) or interpret JSON.

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct Dechunker {
    st: St,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum St {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// A malformed chunked body.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk;

impl Dechunker {
    /// Decodes as much of `inp` as is complete, appending data to `out`; returns the number of
    /// bytes consumed (the rest must be offered again with more input).
    pub fn feed(&mut self, inp: &[u8], out: &mut Vec<u8>) -> Result<usize, BadChunk> {
        let mut i = 0;
        loop {
            match self.st {
                St::Size => {
                    let Some(nl) = memchr::memchr(b'\n', &inp[i..]) else {
                        return if inp.len() - i > 1024 {
                            Err(BadChunk)
                        } else {
                            Ok(i)
                        };
                    };
                    let line = &inp[i..i + nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let hex = std::str::from_utf8(hex).map_err(|_| BadChunk)?.trim();
                    if hex.is_empty() || hex.len() > 15 {
                        return Err(BadChunk);
                    }
                    let n = usize::from_str_radix(hex, 16).map_err(|_| BadChunk)?;
                    i += nl + 1;
                    self.st = if n == 0 { St::Trailer } else { St::Data(n) };
                }
                St::Data(n) => {
                    let take = n.min(inp.len() - i);
                    if take == 0 {
                        return Ok(i);
                    }
                    out.extend_from_slice(&inp[i..i + take]);
                    i += take;
                    self.st = if take == n {
                        St::DataEnd
                    } else {
                        St::Data(n - take)
                    };
                }
                St::DataEnd => {
                    if inp.len() - i < 2 {
                        return Ok(i);
                    }
                    if &inp[i..i + 2] != b"\r\n" {
                        return Err(BadChunk);
                    }
                    i += 2;
                    self.st = St::Size;
                }
                St::Trailer => {
                    let Some(nl) = memchr::memchr(b'\n', &inp[i..]) else {
                        return Ok(i);
                    };
                    let empty = nl == 0 || (nl == 1 && inp[i] == b'\r');
                    i += nl + 1;
                    if empty {
                        self.st = St::Done;
                    }
                }
                St::Done => return Ok(i),
            }
        }
    }

    pub fn done(&self) -> bool {
        self.st == St::Done
    }
}

/// Incremental SSE parser over a growing buffer of decoded body bytes.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Offset of the first unparsed byte in the caller's buffer.
    pub pos: usize,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// Parses complete lines from `buf[self.pos..]`; returns the data of the next complete
    /// event that has any `data` field, or `None` when more input is needed.
    pub fn next_event(&mut self, buf: &[u8]) -> Option<&[u8]> {
        loop {
            let nl = memchr::memchr(b'\n', &buf[self.pos..])?;
            let line = &buf[self.pos..self.pos + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.pos += nl + 1;
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Some(&self.data);
                }
                continue;
            }
            if let Some(v) = line.strip_prefix(b"data") {
                let v = match v {
                    [] => v,
                    [b':', b' ', rest @ ..] | [b':', rest @ ..] => rest,
                    _ => continue, // a field named e.g. "datax"
                };
                if self.has_data {
                    self.data.push(b'\n');
                } else {
                    self.data.clear();
                    self.has_data = true;
                }
                self.data.extend_from_slice(v);
            }
            // `event:`, `id:`, `retry:` and `:` comments are ignored.
        }
    }

    pub fn reset(&mut self) {
        self.pos = 0;
        self.has_data = false;
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_byte_by_byte() {
        let body = b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: a\r\n\r\nNEXT";
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for &b in body.iter() {
            buf.push(b);
            let n = d.feed(&buf, &mut out).unwrap();
            buf.drain(..n);
            if d.done() {
                break;
            }
        }
        assert!(d.done());
        assert_eq!(out, b"hello world");
        assert!(buf.is_empty());
        assert!(Dechunker::default().feed(b"zz\r\n", &mut out).is_err());
        let mut d = Dechunker::default();
        assert!(d.feed(b"1\r\nabc", &mut out).is_err());
    }

    #[test]
    fn sse_events() {
        let mut p = SseParser::default();
        let buf =
            b": comment\nevent: message\ndata: {\"a\":\ndata:1}\r\n\r\nid: 7\ndata:\n\ndata: x";
        assert_eq!(p.next_event(buf), Some(&b"{\"a\":\n1}"[..]));
        assert_eq!(p.next_event(buf), Some(&b""[..]));
        assert_eq!(p.next_event(buf), None);
        let mut more = buf.to_vec();
        more.extend_from_slice(b"y\n\n");
        assert_eq!(p.next_event(&more), Some(&b"xy"[..]));
    }
}
