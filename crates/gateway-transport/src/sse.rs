//! Server-sent events: an incremental parser (for upstream streams) and the encoder (for
//! client streams), per the WHATWG event-stream format that MCP's HTTP transports use.

use bytes::{Bytes, BytesMut};

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// The data lines joined by `\n`.
    pub data: String,
    /// The `id:` field, if this event carried one.
    pub id: Option<String>,
    /// The `retry:` field in milliseconds, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// Whether this is a `message` event (the type MCP messages travel in).
    #[must_use]
    pub fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// Incremental event-stream parser: feed it chunks as they arrive, take complete events.
///
/// Limits: one event larger than `max_event_bytes` is an error (a stream that never ends an
/// event must not grow memory without bound).
#[derive(Debug)]
pub struct SseParser {
    buf: BytesMut,
    current: SseEvent,
    has_data: bool,
    max_event_bytes: usize,
    /// The last `id:` seen, kept across events as the spec says (for `Last-Event-ID`).
    last_id: Option<String>,
}

/// The stream broke the size limit.
#[derive(Debug, thiserror::Error)]
#[error("server-sent event larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

impl SseParser {
    /// A parser accepting events up to `max_event_bytes`.
    #[must_use]
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            current: SseEvent::default(),
            has_data: false,
            max_event_bytes,
            last_id: None,
        }
    }

    /// The last event id the stream set (for resumption).
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds a chunk; appends every completed event to `out`.
    ///
    /// # Errors
    /// An event exceeds the size limit.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A lone `\r` at the end of the buffer may be the first half of `\r\n`.
            let is_cr = self.buf[pos] == b'\r';
            if is_cr && pos + 1 == self.buf.len() {
                break;
            }
            let line = self.buf.split_to(pos);
            let skip = if is_cr && self.buf.get(1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let _ = self.buf.split_to(skip);
            self.line(&line, out);
        }
        if self.buf.len() + self.current.data.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.current.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => {
                self.current.id = Some(value.clone().into_owned());
                self.last_id = Some(value.into_owned());
            }
            b"retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.current);
        let had_data = std::mem::replace(&mut self.has_data, false);
        // Events without data are not dispatched (they may still have set the id).
        if had_data {
            out.push(event);
        }
    }
}

/// Encodes one event: optional id and type, the data (one `data:` line per line of it).
#[must_use]
pub fn encode(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A comment line, used as a keep-alive.
#[must_use]
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn parses_events_split_anywhere() {
        let text = b"id: 7\nevent: message\ndata: {\"a\":1}\n\n: comment\ndata: x\r\ndata: y\r\n\r\nevent: endpoint\ndata: /m?s=1\n\n";
        let whole = parse_all(&[text]);
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(parse_all(&[a, b]), whole, "split at {split}");
        }
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[0].data, "{\"a\":1}");
        assert!(whole[0].is_message());
        assert_eq!(whole[1].data, "x\ny");
        assert_eq!(whole[2].event.as_deref(), Some("endpoint"));
        assert!(!whole[2].is_message());
    }

    #[test]
    fn id_only_events_set_last_id_without_dispatch() {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        p.feed(b"id: 42\ndata:\n\nid: 43\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(p.last_event_id(), Some("43"));
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789abcdef0123", &mut out).is_err());
    }

    #[test]
    fn encoder_round_trips() {
        let bytes = encode(Some("3"), Some("message"), "line1\nline2");
        let out = parse_all(&[&bytes]);
        assert_eq!(out[0].data, "line1\nline2");
        assert_eq!(out[0].id.as_deref(), Some("3"));
    }
}
