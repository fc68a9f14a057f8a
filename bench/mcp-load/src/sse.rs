//! An incremental `text/event-stream` parser (the WHATWG "event stream interpretation" rules that
//! matter for MCP): feed body chunks as they arrive, take whole events as they complete.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, when one was given (MCP servers send `message` or nothing).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`. May be empty (a priming event that carries only an id).
    pub data: String,
    /// The last event id seen on the stream so far.
    pub id: Option<String>,
}

/// Parser state; one per response body.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF of the next chunk belongs to that line end.
    skip_lf: bool,
    /// Nothing consumed yet (a leading byte-order mark is dropped).
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk, appending every event it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if !self.started {
            // Hold the first bytes until it is clear whether they are a byte-order mark.
            self.line.extend_from_slice(chunk);
            if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
                return;
            }
            self.started = true;
            let head = std::mem::take(&mut self.line);
            self.feed(head.strip_prefix(BOM).unwrap_or(&head), out);
            return;
        }
        if self.skip_lf {
            self.skip_lf = false;
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = chunk.split_at(end);
            if self.line.is_empty() {
                self.process_line(line, out);
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.process_line(&whole, out);
                whole.clear();
                self.line = whole;
            }
            chunk = match rest {
                [b'\r', b'\n', tail @ ..] => tail,
                [b'\r'] => {
                    self.skip_lf = true;
                    &[]
                }
                [_, tail @ ..] => tail,
                [] => &[],
            };
        }
        self.line.extend_from_slice(chunk);
    }

    /// True when the stream could end here without losing a started event.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            _ => {} // retry and unknown fields
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(Event {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    fn datas(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn events_with_every_line_ending() {
        let body = b"event: message\ndata: {\"a\":1}\n\nevent: message\r\ndata: {\"b\":2}\r\n\r\ndata: c\r\rdata: d\n\n";
        let events = parse_chunks(&[body]);
        assert_eq!(datas(&events), ["{\"a\":1}", "{\"b\":2}", "c", "d"]);
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(events[2].event, None);
    }

    #[test]
    fn split_anywhere_gives_the_same_events() {
        let body: &[u8] =
            b"\xEF\xBB\xBFid: 7\r\ndata:\r\n\r\n: keep-alive\r\nevent: message\r\ndata: line1\r\ndata:line2\r\n\r\n";
        let whole = parse_chunks(&[body]);
        assert_eq!(datas(&whole), ["", "line1\nline2"]);
        assert_eq!(whole[1].id.as_deref(), Some("7"));
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(parse_chunks(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole);
    }

    #[test]
    fn unfinished_events_are_not_dispatched() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"data: partial\n", &mut out);
        assert!(out.is_empty());
        assert!(!p.is_idle());
        p.feed(b"\n", &mut out);
        assert_eq!(datas(&out), ["partial"]);
        assert!(p.is_idle());
    }

    #[test]
    fn fields_without_colon_and_unknown_fields() {
        let events = parse_chunks(&[b"data\nretry: 10\nfoo: bar\n\n"]);
        // `data` alone appends an empty line: the event is dispatched with empty data.
        assert_eq!(datas(&events), [""]);
    }
}
