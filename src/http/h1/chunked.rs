//! Streaming decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1), sans-IO.
//!
//! Accepts input split anywhere (one byte at a time included) and returns chunk data as slices
//! of the caller's input, so relaying a chunked body copies nothing. Strict where laxness enables
//! smuggling: CRLF only, at most 16 hex digits, bounded extensions and trailers. Trailers are
//! validated then discarded. Not here: re-encoding (see `encode`) or any I/O.

use super::syntax::is_tchar;
use super::H1Error;

/// Longest accepted chunk-size line (size, whitespace and extensions, without CRLF).
pub(crate) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest accepted trailer section, including its line endings and the final CRLF.
pub(crate) const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the digits: optional SP/HTAB before `;` or CR.
    SizeWs,
    /// Inside chunk extensions, until CR.
    Ext,
    /// Size line's CR seen, LF expected.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen, LF expected.
    EndLf,
    Done,
    Failed(H1Error),
}

/// Streaming chunked-body decoder. Feed it bytes with [`decode`](Self::decode) until
/// [`Chunk::done`].
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_body: u64,
    /// Decoded body bytes announced so far (sum of chunk sizes).
    total: u64,
    /// Chunk size being read.
    size: u64,
    digits: u8,
    /// Length of the current size line.
    line_len: usize,
    /// Bytes of the current chunk not yet returned.
    remaining: u64,
    trailer_len: usize,
}

/// One step of decoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Bytes of input used by this step; the rest must be passed to the next call.
    pub consumed: usize,
    /// Body bytes, borrowed from the input. Empty when only framing was consumed.
    pub data: &'a [u8],
    /// The last chunk and trailers are complete; `input[consumed..]` is the next message.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A decoder that fails with [`H1Error::BodyTooLarge`] once the chunk sizes add up to more
    /// than `max_body`. The check happens on each size line, before its data arrives.
    pub fn new(max_body: u64) -> Self {
        ChunkedDecoder {
            state: State::Size,
            max_body,
            total: 0,
            size: 0,
            digits: 0,
            line_len: 0,
            remaining: 0,
            trailer_len: 0,
        }
    }

    /// Whether the terminating chunk and trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes announced so far.
    pub fn body_len(&self) -> u64 {
        self.total
    }

    /// Decodes from `input`. Each call returns at least one of: non-empty `data`,
    /// `done == true`, or `consumed == input.len()` (all framing used; feed more bytes).
    /// After an error, every later call returns the same error.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Chunk<'a>, H1Error> {
        match self.step(input) {
            Ok(c) => Ok(c),
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Result<Chunk<'a>, H1Error> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    // `n <= avail`, which is a usize, so the cast back cannot truncate.
                    let n = self.remaining.min(avail) as usize;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Chunk {
                        consumed: i + n,
                        data: &input[i..i + n],
                        done: false,
                    });
                }
                State::Size | State::SizeWs | State::Ext => self.size_line_byte(b)?,
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(H1Error::ChunkMissingCrlf);
                    }
                    self.end_size_line()?;
                }
                State::DataCr => {
                    self.state = match b {
                        b'\r' => State::DataLf,
                        b'\n' => return Err(H1Error::ChunkBareLf),
                        _ => return Err(H1Error::ChunkMissingCrlf),
                    }
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(H1Error::ChunkMissingCrlf);
                    }
                    self.state = State::Size;
                    self.size = 0;
                    self.digits = 0;
                    self.line_len = 0;
                }
                State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf => {
                    self.trailer_len += 1;
                    if self.trailer_len > MAX_TRAILER_BYTES {
                        return Err(H1Error::TrailersTooLarge);
                    }
                    if self.trailer_byte(b)? {
                        return Ok(Chunk {
                            consumed: i + 1,
                            data: &[],
                            done: true,
                        });
                    }
                }
                State::Done => break,
                State::Failed(e) => return Err(e),
            }
            i += 1;
        }
        match self.state {
            State::Failed(e) => Err(e),
            State::Done => Ok(Chunk {
                consumed: 0,
                data: &[],
                done: true,
            }),
            _ => Ok(Chunk {
                consumed: input.len(),
                data: &[],
                done: false,
            }),
        }
    }

    /// One byte of `chunk-size [ chunk-ext ] CRLF`, up to the CR.
    fn size_line_byte(&mut self, b: u8) -> Result<(), H1Error> {
        self.line_len += usize::from(b != b'\r');
        if self.line_len > MAX_CHUNK_LINE {
            return Err(H1Error::ChunkExtensionTooLong);
        }
        match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(H1Error::ChunkSizeOverflow);
                }
                self.digits += 1;
                // 16 digits of 4 bits fill a u64 exactly; checked above, so no overflow.
                self.size = (self.size << 4) | u64::from(hex_val(b));
            }
            (_, b'\n') => return Err(H1Error::ChunkBareLf),
            (State::Size, _) if self.digits == 0 => return Err(H1Error::InvalidChunkSize),
            (State::Size | State::SizeWs, b' ' | b'\t') => self.state = State::SizeWs,
            (State::Size | State::SizeWs, b';') => self.state = State::Ext,
            (_, b'\r') => self.state = State::SizeLf,
            (State::Size | State::SizeWs, _) => return Err(H1Error::InvalidChunkSize),
            // Extensions are opaque to a proxy: accept any visible byte, SP, HTAB, obs-text.
            (_, b'\t' | b' '..=b'~' | 0x80..=0xff) => {}
            (_, _) => return Err(H1Error::InvalidChunkExtension),
        }
        Ok(())
    }

    fn end_size_line(&mut self) -> Result<(), H1Error> {
        if self.size == 0 {
            self.state = State::TrailerStart;
            return Ok(());
        }
        self.total = self
            .total
            .checked_add(self.size)
            .ok_or(H1Error::BodyTooLarge)?;
        if self.total > self.max_body {
            return Err(H1Error::BodyTooLarge);
        }
        self.remaining = self.size;
        self.state = State::Data;
        Ok(())
    }

    /// One byte of the trailer section; returns true when the section is complete.
    fn trailer_byte(&mut self, b: u8) -> Result<bool, H1Error> {
        self.state = match (self.state, b) {
            (State::EndLf, b'\n') => {
                self.state = State::Done;
                return Ok(true);
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf | State::TrailerLf, _) => return Err(H1Error::ChunkMissingCrlf),
            (_, b'\n') => return Err(H1Error::ChunkBareLf),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\t' | b' '..=b'~' | 0x80..=0xff) => State::TrailerValue,
            // obs-fold, empty names, whitespace before the colon, control bytes.
            _ => return Err(H1Error::InvalidTrailer),
        };
        Ok(false)
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests;
