//! Log lines written off the request path.
//!
//! Writing each log line straight to stdout costs a system call on the thread that logged it —
//! an HTTP worker, for the access log of every request. [`LogWriter`] hands each formatted line
//! to a dedicated thread through a bounded queue instead; that thread writes them through one
//! buffer and flushes whenever the queue runs dry, so lines still appear at once when the
//! gateway is quiet and in large writes when it is busy. A full queue (the output cannot keep
//! up) drops the line and counts it (`gateway_log_lines_dropped_total`, and a note in the log
//! once the queue drains) rather than slow requests down. [`LogWriter::flush`] waits for
//! everything queued to be written (call it before the process exits).

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting for the writer thread; beyond it lines are dropped (and counted).
pub const QUEUE_LINES: usize = 16_384;

enum Item {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// A cloneable handle to the writer thread; a [`MakeWriter`] for `tracing_subscriber::fmt`.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

impl LogWriter {
    /// Starts a writer thread writing to `out`, with a queue of `capacity` lines.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn<W: Write + Send + 'static>(out: W, capacity: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("gateway-log".into())
            .spawn(move || write_lines(rx, out, &counter))?;
        Ok(Self { tx, dropped })
    }

    /// A writer to standard output.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn stdout() -> io::Result<Self> {
        Self::spawn(io::stdout(), QUEUE_LINES)
    }

    /// Waits (at most `timeout`) until every line queued so far is written and flushed.
    pub fn flush(&self, timeout: Duration) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Item::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(timeout);
        }
    }

    /// Lines dropped so far because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(Item::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("gateway_log_lines_dropped_total").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// One event's bytes, sent as one line when the formatter is done with it.
#[derive(Debug)]
pub struct LineWriter<'a> {
    owner: &'a LogWriter,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.owner.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            owner: self,
            buf: Vec::new(),
        }
    }
}

fn write_lines<W: Write>(rx: Receiver<Item>, out: W, dropped: &AtomicU64) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let mut reported = 0u64;
    while let Ok(item) = rx.recv() {
        // Let a few lines gather: a thread woken for every line is a thread switch per
        // request under load; one nap per batch costs at most a few milliseconds of delay.
        if matches!(item, Item::Line(_)) {
            nap();
        }
        let mut next = Some(item);
        // Drain what is queued, then flush once.
        while let Some(item) = next.take() {
            match item {
                Item::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Item::Flush(ack) => {
                    report_drops(&mut out, dropped, &mut reported);
                    let _ = out.flush();
                    let _ = ack.try_send(());
                }
            }
            next = rx.try_recv().ok();
        }
        report_drops(&mut out, dropped, &mut reported);
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// How long the writer waits after the first line of a batch for more to arrive.
const GATHER: Duration = Duration::from_millis(5);

#[expect(
    clippy::disallowed_methods,
    reason = "the log writer's own thread, never a runtime thread"
)]
fn nap() {
    std::thread::sleep(GATHER);
}

/// Notes in the log how many lines were dropped since the last note.
fn report_drops<W: Write>(out: &mut W, dropped: &AtomicU64, reported: &mut u64) {
    let now = dropped.load(Ordering::Relaxed);
    if now > *reported {
        let _ = writeln!(
            out,
            "gateway-log: {} log line(s) dropped: the log output could not keep up",
            now - *reported
        );
        *reported = now;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order() {
        let out = Shared::default();
        let writer = LogWriter::spawn(out.clone(), 1024).unwrap();
        for i in 0..100 {
            let mut w = writer.make_writer();
            write!(w, "line ").unwrap();
            writeln!(w, "{i}").unwrap();
        }
        writer.flush(Duration::from_secs(5));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100, "{text}");
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("line {i}"));
        }
        assert_eq!(writer.dropped(), 0);
    }

    /// A blocked output fills the queue: lines are dropped and counted, the caller never waits,
    /// and once the output moves again the drop is reported in the log.
    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        struct Gate(Arc<Mutex<()>>, Shared);
        impl Write for Gate {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                let _open = self.0.lock().unwrap();
                self.1.write(bytes)
            }
            fn flush(&mut self) -> io::Result<()> {
                let _open = self.0.lock().unwrap();
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let out = Shared::default();
        let closed = gate.lock().unwrap();
        let writer = LogWriter::spawn(Gate(Arc::clone(&gate), out.clone()), 4).unwrap();
        for i in 0..50 {
            // Big lines: the BufWriter must hit the blocked output.
            let mut w = writer.make_writer();
            w.write_all(&vec![b'x'; 70 * 1024]).unwrap();
            writeln!(w, " {i}").unwrap();
        }
        assert!(writer.dropped() > 0, "nothing was dropped");
        drop(closed);
        writer.flush(Duration::from_secs(5));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("log line(s) dropped"), "the drop is not reported");
    }
}
