//! Server-Sent Events: a streaming parser for upstream `text/event-stream` bodies and the
//! writers the proxy answers with.
//!
//! The parser follows the WHATWG `EventSource` interpretation rules (UTF-8 BOM skipped once,
//! CRLF / LF / CR line ends, `:` comments, a field without a colon has an empty value, one
//! leading space stripped from values, `retry` only when all digits, `id` containing NUL
//! ignored) for input split at any byte. One deliberate difference: an event block with no
//! `data` line is still delivered (with empty `data`) when it carried `id`, `event` or `retry`,
//! because a proxy must see priming ids; callers forward only events whose `data` is non-empty.
//! Bytes are decoded as lossy UTF-8 per line. Each event is bounded by `max_event` bytes.
//!
//! Not here: any I/O, reconnection, JSON-RPC parsing of `data`.

#[cfg(test)]
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

/// One event, borrowed (see [`OwnedEvent::as_event`]); the parser's tests compare with it.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event<'a> {
    pub id: Option<&'a str>,
    pub event: Option<&'a str>,
    /// Multi-line data joined with `\n`.
    pub data: Cow<'a, str>,
    pub retry: Option<u64>,
}

/// One event as the parser yields it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OwnedEvent {
    /// This event's own `id` field, if it had one (`Some("")` resets the last event id).
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl OwnedEvent {
    #[cfg(test)]
    pub(crate) fn as_event(&self) -> Event<'_> {
        Event {
            id: self.id.as_deref(),
            event: self.event.as_deref(),
            data: Cow::Borrowed(&self.data),
            retry: self.retry,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SseError {
    /// An event (or one line) grew past the parser's `max_event`; it was dropped and parsing
    /// resumed after the blank line ending it. Events before and after it are kept.
    EventTooLarge,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SSE event exceeds the size limit")
    }
}

impl std::error::Error for SseError {}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Streaming SSE parser: [`feed`](Self::feed) bytes as they arrive, then drain
/// [`next_event`](Self::next_event).
#[derive(Debug)]
pub(crate) struct SseParser {
    max_event: usize,
    /// Up to three leading bytes held until the BOM question is settled.
    head: Vec<u8>,
    head_done: bool,
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    /// Dropping an oversized event until its blank line.
    discarding: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    last_event_id: String,
    ready: VecDeque<OwnedEvent>,
}

impl SseParser {
    /// `max_event` bounds the bytes buffered for one event (data, id, event, pending line).
    pub(crate) fn new(max_event: usize) -> Self {
        Self {
            max_event,
            head: Vec::new(),
            head_done: false,
            line: Vec::new(),
            after_cr: false,
            discarding: false,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            retry: None,
            last_event_id: String::new(),
            ready: VecDeque::new(),
        }
    }

    /// Consumes all of `input`. An error reports that an event in it was too large (and
    /// dropped); the parser stays usable and events completed in `input` are queued.
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> Result<(), SseError> {
        let mut too_large = false;
        if !self.head_done {
            let take = (BOM.len() - self.head.len()).min(input.len());
            self.head.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
                return Ok(());
            }
            self.head_done = true;
            let head = std::mem::take(&mut self.head);
            too_large |= self.lines(head.strip_prefix(BOM).unwrap_or(&head));
        }
        too_large |= self.lines(input);
        if too_large {
            Err(SseError::EventTooLarge)
        } else {
            Ok(())
        }
    }

    /// The next complete event, oldest first.
    pub(crate) fn next_event(&mut self) -> Option<OwnedEvent> {
        self.ready.pop_front()
    }

    /// The last event id seen (WHATWG semantics: persists across events), for `Last-Event-ID`.
    #[cfg(test)]
    pub(crate) fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Splits `input` into lines; returns whether an event overflowed.
    fn lines(&mut self, mut input: &[u8]) -> bool {
        let mut too_large = false;
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        while let Some(at) = memchr::memchr2(b'\r', b'\n', input) {
            too_large |= self.push_partial(&input[..at]);
            too_large |= self.end_line();
            if input[at] == b'\r' {
                match input.get(at + 1) {
                    Some(b'\n') => input = &input[at + 2..],
                    Some(_) => input = &input[at + 1..],
                    None => {
                        self.after_cr = true;
                        input = &[];
                    }
                }
            } else {
                input = &input[at + 1..];
            }
        }
        too_large | self.push_partial(input)
    }

    fn buffered(&self) -> usize {
        self.line.len()
            + self.data.len()
            + self.event.as_ref().map_or(0, String::len)
            + self.id.as_ref().map_or(0, String::len)
    }

    /// Adds bytes of the current line; returns true when this starts an overflow.
    fn push_partial(&mut self, bytes: &[u8]) -> bool {
        if self.discarding {
            // Remember only that the line is not blank.
            if !bytes.is_empty() && self.line.is_empty() {
                self.line.push(b'x');
            }
            return false;
        }
        if self.buffered() + bytes.len() > self.max_event {
            self.start_discarding();
            if !bytes.is_empty() {
                self.line.push(b'x');
            }
            return true;
        }
        self.line.extend_from_slice(bytes);
        false
    }

    fn start_discarding(&mut self) {
        self.discarding = true;
        self.line.clear();
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.id = None;
        self.retry = None;
    }

    /// Interprets the finished line; returns true when it starts an overflow.
    fn end_line(&mut self) -> bool {
        let mut line = std::mem::take(&mut self.line);
        let mut too_large = false;
        if line.is_empty() {
            if self.discarding {
                self.discarding = false;
            } else {
                self.dispatch();
            }
        } else if !self.discarding {
            self.field(&line);
            // The line fitted; the `\n` appended to `data` may not.
            if self.buffered() > self.max_event {
                self.start_discarding();
                too_large = true;
            }
        }
        // Reuse the allocation.
        line.clear();
        self.line = line;
        too_large
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value).into_owned();
                self.last_event_id.clone_from(&id);
                self.id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Too many digits to fit: ignored, as an invalid value would be.
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        if !self.has_data && self.id.is_none() && self.event.is_none() && self.retry.is_none() {
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let ev = OwnedEvent {
            id: self.id.take(),
            event: self.event.take(),
            data: std::mem::take(&mut self.data),
            retry: self.retry.take(),
        };
        self.has_data = false;
        self.ready.push_back(ev);
    }
}

/// Appends one event. `data` lines are split at CRLF, LF and CR into several `data:` lines;
/// CR and LF in `id` or `event` are dropped (they would start a new field).
pub(crate) fn write_event(out: &mut Vec<u8>, id: Option<&str>, event: Option<&str>, data: &[u8]) {
    if let Some(id) = id {
        write_field(out, b"id", id.as_bytes());
    }
    if let Some(event) = event {
        write_field(out, b"event", event.as_bytes());
    }
    let mut rest = data;
    loop {
        let end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        out.extend_from_slice(b"data:");
        if end > 0 {
            out.push(b' ');
            out.extend_from_slice(&rest[..end]);
        }
        out.push(b'\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend(value.iter().filter(|b| !matches!(b, b'\r' | b'\n')));
    out.push(b'\n');
}

/// Appends a comment block, e.g. `:keep-alive\n\n`; lines of `text` become separate comments.
pub(crate) fn write_comment(out: &mut Vec<u8>, text: &str) {
    for line in text.split(['\r', '\n']) {
        out.push(b':');
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Appends `retry: <ms>` followed by a blank line.
#[cfg(test)]
pub(crate) fn write_retry(out: &mut Vec<u8>, ms: u64) {
    out.extend_from_slice(b"retry: ");
    out.extend_from_slice(ms.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests;
