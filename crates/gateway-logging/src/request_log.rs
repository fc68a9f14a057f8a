//! The request log: one [`LogRecord`] per REST request and per MCP exchange, written off the
//! request path.
//!
//! [`RequestLogger::log`] puts the record (and, when bodies are kept for it, the raw body
//! parts) in a bounded queue with `try_send` and returns: it never awaits, never touches the
//! database, and when the queue is full the record is dropped and counted in
//! `gateway_request_log_dropped_total{reason="queue_full"}`. One writer task on the shared
//! runtime drains the queue in batches (`batch_size` records, or whatever arrived within
//! `flush_interval_ms` of the batch's first record), redacts and hands bodies to the
//! [`LogSink`], then inserts the index rows through [`LogStore::insert_batch`].
//!
//! Failures never reach a request: a store outage is retried with backoff, then the batch is
//! counted as dropped (`store_unavailable`, `store_error`); a sink outage is retried, then
//! reported (`gateway_log_sink_failures_total{sink}` and a warning) and the index rows are
//! written without body references.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_types::config::RequestLogConfig;
use gateway_types::error::error_chain;
use gateway_types::model::LogRecord;
use gateway_types::store::{LogStore, StoreError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::LoggingError;
use crate::redact::Redactor;
use crate::sink::{BodyItem, LogSink};

/// Records that were never written, by `reason`.
pub const REQUEST_LOG_DROPPED_TOTAL: &str = "gateway_request_log_dropped_total";
/// Records written to `log_index`.
pub const REQUEST_LOG_WRITTEN_TOTAL: &str = "gateway_request_log_written_total";
/// Body batches a sink failed to take after its retries, by `sink`.
pub const LOG_SINK_FAILURES_TOTAL: &str = "gateway_log_sink_failures_total";
/// Bodies written to a sink, by `sink`.
pub const LOG_SINK_WRITTEN_TOTAL: &str = "gateway_log_sink_written_total";

/// The raw parts of an exchange's body, redacted by the writer (not on the request path).
#[derive(Clone, Debug, Default)]
pub struct BodyParts {
    /// Request headers (the session-opening request's, for MCP), as `name → value`.
    pub headers: Option<Arc<Vec<(String, String)>>>,
    /// The JSON-RPC request's `params` (MCP) or the JSON request body (REST).
    pub request: Option<Value>,
    /// The JSON-RPC `result`.
    pub result: Option<Value>,
    /// The JSON-RPC `error`.
    pub error: Option<Value>,
}

impl BodyParts {
    /// The redacted document a sink keeps: `{"method", "name", "headers", "request", "result",
    /// "error"}`.
    #[must_use]
    pub fn into_document(self, record: &LogRecord, redactor: &Redactor) -> Value {
        let headers = self
            .headers
            .map(|h| redactor.headers(h.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        let request = self.request.map(|mut p| {
            redactor.request_params(&mut p);
            p
        });
        let result = self.result.map(|mut r| {
            redactor.result(&mut r);
            r
        });
        let error = self.error.map(|mut e| {
            redactor.document(&mut e);
            e
        });
        serde_json::json!({
            "method": record.method,
            "name": record.name,
            "headers": headers,
            "request": request,
            "result": result,
            "error": error,
        })
    }
}

/// How long the writer naps between looks at the queue while a batch fills.
const COLLECT_NAP: Duration = Duration::from_millis(10);

enum Job {
    Log(Box<LogRecord>, Option<Box<BodyParts>>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    dropped: AtomicU64,
    last_overflow_report: AtomicU64,
    epoch: Instant,
}

/// Tuning of the writer (from `logging.request_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLoggerOptions {
    /// Records waiting; more are dropped.
    pub queue_capacity: usize,
    /// Records per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub flush_interval: Duration,
    /// Store retries after `Unavailable`.
    pub max_retries: u32,
    /// Sink retries after a failure.
    pub sink_retries: u32,
    /// First backoff (doubles).
    pub initial_backoff: Duration,
}

impl Default for RequestLoggerOptions {
    fn default() -> Self {
        Self::from_config(&RequestLogConfig::default())
    }
}

impl RequestLoggerOptions {
    /// From the configuration section.
    #[must_use]
    pub fn from_config(cfg: &RequestLogConfig) -> Self {
        Self {
            queue_capacity: cfg.queue_capacity.max(1),
            batch_size: cfg.batch_size.max(1),
            flush_interval: Duration::from_millis(cfg.flush_interval_ms.max(1)),
            max_retries: 4,
            sink_retries: cfg.bodies.max_retries,
            initial_backoff: Duration::from_millis(cfg.bodies.retry_backoff_ms.max(1)),
        }
    }
}

/// A handle for logging requests. Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct RequestLogger {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    sink: Option<Arc<dyn LogSink>>,
}

impl std::fmt::Debug for RequestLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLogger")
            .field("sink", &self.sink.as_ref().map(|s| s.name()))
            .finish_non_exhaustive()
    }
}

impl RequestLogger {
    /// Starts the writer on `runtime` (the shared runtime) and returns the first handle.
    /// `sink` keeps bodies (none: bodies are never collected).
    #[must_use]
    pub fn spawn(
        store: Arc<dyn LogStore>,
        sink: Option<Arc<dyn LogSink>>,
        redactor: Arc<Redactor>,
        runtime: &tokio::runtime::Handle,
        options: RequestLoggerOptions,
    ) -> Self {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            last_overflow_report: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let writer = Writer {
            store,
            sink: sink.clone(),
            redactor,
            options,
            shared: Arc::clone(&shared),
        };
        runtime.spawn(writer.run(rx));
        Self { tx, shared, sink }
    }

    /// Whether a sink keeps bodies (callers skip collecting bodies otherwise).
    #[must_use]
    pub fn keeps_bodies(&self) -> bool {
        self.sink.is_some()
    }

    /// The body sink, to read bodies back and apply retention.
    #[must_use]
    pub fn sink(&self) -> Option<&Arc<dyn LogSink>> {
        self.sink.as_ref()
    }

    /// Queues a record (with its body parts, if kept) and returns at once: `false` when it was
    /// dropped (queue full or writer stopped), which is counted here.
    pub fn log(&self, record: LogRecord, body: Option<BodyParts>) -> bool {
        let body = body.filter(|_| self.sink.is_some()).map(Box::new);
        match self.tx.try_send(Job::Log(Box::new(record), body)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(REQUEST_LOG_DROPPED_TOTAL, "reason" => "queue_full").increment(1);
                if self.shared.should_report_overflow() {
                    tracing::warn!(
                        dropped_total = self.shared.dropped.load(Ordering::Relaxed),
                        "request log queue full: records dropped"
                    );
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(REQUEST_LOG_DROPPED_TOTAL, "reason" => "closed").increment(1);
                false
            }
        }
    }

    /// Waits until every record queued before this call was written or given up on. For
    /// shutdown and tests.
    ///
    /// # Errors
    /// [`LoggingError::RequestLogWriterStopped`] when the writer is gone.
    pub async fn flush(&self) -> Result<(), LoggingError> {
        let (done, finished) = oneshot::channel();
        self.tx
            .send(Job::Flush(done))
            .await
            .map_err(|_| LoggingError::RequestLogWriterStopped)?;
        finished.await.map_err(|_| LoggingError::RequestLogWriterStopped)
    }

    /// Records lost since the writer started.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn should_report_overflow(&self) -> bool {
        let second = self.epoch.elapsed().as_secs().saturating_add(1);
        self.last_overflow_report.swap(second, Ordering::Relaxed) != second
    }
}

struct Writer {
    store: Arc<dyn LogStore>,
    sink: Option<Arc<dyn LogSink>>,
    redactor: Arc<Redactor>,
    options: RequestLoggerOptions,
    shared: Arc<Shared>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut batch: Vec<(LogRecord, Option<Box<BodyParts>>)> = Vec::with_capacity(self.options.batch_size);
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            // The first record of a batch: wait as long as it takes.
            let Some(job) = rx.recv().await else { break };
            let mut open = self.take(job, &mut batch, &mut waiters);
            let deadline = tokio::time::Instant::now() + self.options.flush_interval;
            let mut closed = false;
            // Then collect without waiting on the queue: a task parked in `recv` is woken by
            // every record (a thread switch per MCP call under load); draining what is there
            // and napping a few milliseconds in between costs one wake-up per nap instead.
            while open && batch.len() < self.options.batch_size {
                match rx.try_recv() {
                    Ok(job) => open = self.take(job, &mut batch, &mut waiters),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let now = tokio::time::Instant::now();
                        if now >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(deadline.min(now + COLLECT_NAP)).await;
                    }
                }
            }
            self.write(std::mem::take(&mut batch)).await;
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
            if closed {
                break;
            }
        }
        self.write(batch).await;
        for w in waiters {
            let _ = w.send(());
        }
    }

    /// Adds a job to the batch; `false` when a flush asks for the batch to be written now.
    fn take(
        &self,
        job: Job,
        batch: &mut Vec<(LogRecord, Option<Box<BodyParts>>)>,
        waiters: &mut Vec<oneshot::Sender<()>>,
    ) -> bool {
        match job {
            Job::Log(record, body) => {
                batch.push((*record, body));
                true
            }
            Job::Flush(done) => {
                waiters.push(done);
                false
            }
        }
    }

    async fn write(&self, batch: Vec<(LogRecord, Option<Box<BodyParts>>)>) {
        if batch.is_empty() {
            return;
        }
        let mut records = Vec::with_capacity(batch.len());
        let mut bodies = Vec::new();
        for (record, body) in batch {
            if let Some(body) = body {
                let doc = body.into_document(&record, &self.redactor);
                if let Ok(bytes) = serde_json::to_vec(&doc) {
                    bodies.push((
                        records.len(),
                        BodyItem {
                            id: record.id,
                            org_id: record.org_id,
                            created_at: record.created_at,
                            bytes: Arc::from(bytes),
                        },
                    ));
                }
            }
            records.push(record);
        }
        if let Some(sink) = &self.sink
            && !bodies.is_empty()
        {
            let items: Vec<BodyItem> = bodies.iter().map(|(_, b)| b.clone()).collect();
            if let Some(refs) = self.write_bodies(sink.as_ref(), &items).await {
                for ((i, _), r) in bodies.iter().zip(refs) {
                    if let Some(rec) = records.get_mut(*i) {
                        rec.body_ref = r;
                    }
                }
            }
        }
        self.insert(&records).await;
    }

    /// Writes bodies with retries; `None` when the sink stayed down (reported here).
    async fn write_bodies(&self, sink: &dyn LogSink, items: &[BodyItem]) -> Option<Vec<Option<String>>> {
        let mut backoff = self.options.initial_backoff;
        let mut attempt = 0;
        loop {
            match sink.write(items).await {
                Ok(refs) => {
                    metrics::counter!(LOG_SINK_WRITTEN_TOTAL, "sink" => sink.name())
                        .increment(items.len() as u64);
                    return Some(refs);
                }
                Err(err) if attempt < self.options.sink_retries => {
                    attempt += 1;
                    tracing::debug!(sink = sink.name(), attempt, error = %error_chain(&err), "log sink write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(Duration::from_secs(10));
                }
                Err(err) => {
                    metrics::counter!(LOG_SINK_FAILURES_TOTAL, "sink" => sink.name()).increment(1);
                    tracing::warn!(
                        sink = sink.name(),
                        bodies = items.len(),
                        retries = attempt,
                        error = %error_chain(&err),
                        "log sink unavailable: bodies not kept (index records are still written)"
                    );
                    return None;
                }
            }
        }
    }

    async fn insert(&self, records: &[LogRecord]) {
        let mut backoff = self.options.initial_backoff;
        let mut retries = 0;
        loop {
            let err = match self.store.insert_batch(records).await {
                Ok(()) => {
                    metrics::counter!(REQUEST_LOG_WRITTEN_TOTAL).increment(records.len() as u64);
                    return;
                }
                Err(err) => err,
            };
            let transient = matches!(err, StoreError::Unavailable(_));
            if transient && retries < self.options.max_retries {
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(5));
                continue;
            }
            let reason = if transient {
                "store_unavailable"
            } else {
                "store_error"
            };
            let n = records.len() as u64;
            self.shared.dropped.fetch_add(n, Ordering::Relaxed);
            metrics::counter!(REQUEST_LOG_DROPPED_TOTAL, "reason" => reason).increment(n);
            tracing::error!(records = n, retries, reason, error = %error_chain(&err), "request log batch lost");
            return;
        }
    }
}

/// Describes this module's metrics to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        REQUEST_LOG_DROPPED_TOTAL,
        "Request-log records never written, by reason (queue_full, store_unavailable, store_error, closed)"
    );
    metrics::describe_counter!(
        REQUEST_LOG_WRITTEN_TOTAL,
        "Request-log records written to log_index"
    );
    metrics::describe_counter!(
        LOG_SINK_FAILURES_TOTAL,
        "Body batches a log sink failed to take after its retries, by sink"
    );
    metrics::describe_counter!(LOG_SINK_WRITTEN_TOTAL, "Bodies written to a log sink, by sink");
}
