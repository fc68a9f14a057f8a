//! The per-session event log behind client-facing SSE streams and their resumption.
//!
//! Every message a session sends on an SSE stream is appended here with a sequence number
//! (its SSE `id`) and the stream it belongs to (the GET stream, or one POST's stream). A stream
//! is a cursor over its own events; a client that lost a stream reconnects with
//! `Last-Event-ID` and its cursor continues after that event. The log is bounded by events and
//! bytes: a client too slow to keep up loses its oldest events, and a cursor that finds its next
//! event gone ends the stream (the client re-syncs) instead of growing memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Which stream an event belongs to.
pub type StreamKey = u64;

/// Evicted-stream marks kept at most (then forgotten: a cursor may then miss a loss).
const MAX_TRACKED_STREAMS: usize = 1024;

/// The GET stream's key.
pub const GET_STREAM: StreamKey = 0;

#[derive(Debug)]
struct Entry {
    seq: u64,
    stream: StreamKey,
    data: Arc<str>,
    last: bool,
}

#[derive(Debug)]
struct Log {
    entries: VecDeque<Entry>,
    bytes: usize,
    next_seq: u64,
    next_stream: StreamKey,
    /// Per stream, the highest evicted event (bounded: finished streams are forgotten).
    evicted: std::collections::HashMap<StreamKey, u64>,
}

/// A bounded, shared event log.
#[derive(Debug)]
pub struct EventLog {
    log: Mutex<Log>,
    max_events: usize,
    max_bytes: usize,
    latest: watch::Sender<u64>,
}

/// What a cursor found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// An event: its id, its data, and whether it ends its stream.
    Event(u64, Arc<str>, bool),
    /// The next event was evicted: the stream cannot continue.
    Lost,
}

impl EventLog {
    /// A log of at most `max_events` events and `max_bytes` bytes of data.
    #[must_use]
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        let (latest, _) = watch::channel(0);
        Self {
            log: Mutex::new(Log {
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                next_stream: GET_STREAM + 1,
                evicted: std::collections::HashMap::new(),
            }),
            max_events: max_events.max(1),
            max_bytes,
            latest,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of the newest event (0 before the first).
    #[must_use]
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A new stream key for a POST's stream.
    pub fn new_stream(&self) -> StreamKey {
        let mut log = self.lock();
        let key = log.next_stream;
        log.next_stream += 1;
        key
    }

    /// Appends an event; `last` marks the final event of its stream. Returns its id.
    pub fn push(&self, stream: StreamKey, data: Arc<str>, last: bool) -> u64 {
        let seq = {
            let mut log = self.lock();
            let seq = log.next_seq;
            log.next_seq += 1;
            log.bytes += data.len();
            log.entries.push_back(Entry {
                seq,
                stream,
                data,
                last,
            });
            while log.entries.len() > self.max_events || (log.bytes > self.max_bytes && log.entries.len() > 1)
            {
                if let Some(old) = log.entries.pop_front() {
                    log.bytes -= old.data.len();
                    if old.last {
                        log.evicted.remove(&old.stream);
                    } else {
                        if log.evicted.len() >= MAX_TRACKED_STREAMS {
                            log.evicted.clear();
                        }
                        log.evicted.insert(old.stream, old.seq);
                    }
                }
            }
            seq
        };
        self.latest.send_replace(seq);
        seq
    }

    /// The stream an event belonged to, if the event is still in the log (or was the last
    /// one evicted: a resumption may start from a gap-free point only).
    #[must_use]
    pub fn stream_of(&self, seq: u64) -> Option<StreamKey> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.seq == seq)
            .map(|e| e.stream)
    }

    /// The first event of `stream` after `after`, waiting for one.
    pub async fn next(&self, stream: StreamKey, after: u64) -> Next {
        let mut rx = self.latest.subscribe();
        loop {
            {
                let log = self.lock();
                if log.evicted.get(&stream).is_some_and(|max| *max > after) {
                    return Next::Lost;
                }
                if let Some(e) = log.entries.iter().find(|e| e.stream == stream && e.seq > after) {
                    return Next::Event(e.seq, Arc::clone(&e.data), e.last);
                }
            }
            if rx.changed().await.is_err() {
                return Next::Lost;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cursors_follow_their_stream_and_detect_loss() {
        let log = EventLog::new(3, 1 << 20);
        let a = log.new_stream();
        let s1 = log.push(a, "a1".into(), false);
        log.push(GET_STREAM, "g1".into(), false);
        let s3 = log.push(a, "a2".into(), true);
        assert_eq!(log.next(a, 0).await, Next::Event(s1, "a1".into(), false));
        assert_eq!(log.next(a, s1).await, Next::Event(s3, "a2".into(), true));
        assert_eq!(log.stream_of(s3), Some(a));
        // Two more GET events evict a1 and g1.
        log.push(GET_STREAM, "g2".into(), false);
        log.push(GET_STREAM, "g3".into(), false);
        assert_eq!(log.next(a, 0).await, Next::Lost);
        assert_eq!(log.next(a, s1).await, Next::Event(s3, "a2".into(), true));
    }
}
