//! The [`Auditor`]: records audit events off the request path.
//!
//! A handler calls [`Auditor::record`], which puts the event in a bounded queue and returns at
//! once; one writer task on the shared runtime appends queued events, in order, through
//! [`AuditStore::append`] with the [`Sha256AuditHasher`]. Recording never blocks and never
//! fails the request: when the queue is full the event is dropped and counted, and when the
//! store stays unavailable through the retries the event is reported lost. Every loss is
//! counted in `gateway_audit_dropped_total{reason}` (`queue_full`, `store_unavailable`,
//! `store_error`, `closed`) and logged at `error` level (queue overflows at most once a
//! second).
//!
//! Delivery is at least once under ambiguous failures: an append whose commit succeeded but
//! whose answer was lost (`Unavailable`) is retried and appears twice, each copy properly
//! chained. A duplicate is a better failure than a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_types::error::error_chain;
use gateway_types::ids::OrgId;
use gateway_types::model::NewAuditLog;
use gateway_types::store::{AuditStore, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::event::{AuditEvent, PolicyDenial};
use super::hash::Sha256AuditHasher;
use crate::error::LoggingError;

/// The counter of audit events that were never written, by `reason`.
pub const AUDIT_DROPPED_TOTAL: &str = "gateway_audit_dropped_total";

/// Tuning of the [`Auditor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditorOptions {
    /// Events waiting to be written; more are dropped (and counted). At least 1.
    pub queue_capacity: usize,
    /// Further attempts after an append fails with [`StoreError::Unavailable`].
    pub max_retries: u32,
    /// Wait before the first retry; doubles for each further one, up to [`Self::max_backoff`].
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for AuditorOptions {
    /// 10 000 queued events; 4 retries waiting 250 ms, 500 ms, 1 s, 2 s (about 4 s in all,
    /// enough for a pool to reconnect or a PostgreSQL failover to finish).
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            max_retries: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

enum Job {
    Append { org: OrgId, log: Box<NewAuditLog> },
    Flush(oneshot::Sender<()>),
}

/// State shared by the handles and the writer.
#[derive(Debug)]
struct Shared {
    dropped: AtomicU64,
    /// Queue-full reports are throttled: the second (since `epoch`) of the last one, plus one.
    last_overflow_report: AtomicU64,
    epoch: Instant,
}

/// A handle for recording audit events. Cheap to clone; every clone feeds the same writer.
///
/// The writer task stops when the last handle is dropped, after writing what is queued. Call
/// [`Auditor::flush`] before shutting the runtime down, or queued events are lost.
#[derive(Clone, Debug)]
pub struct Auditor {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Append { org, log } => f
                .debug_struct("Append")
                .field("org", org)
                .field("action", &log.action)
                .finish_non_exhaustive(),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Auditor {
    /// Starts the writer task on `runtime` (the binary's shared runtime: a task spawned on an
    /// actix worker's runtime would die with that worker) and returns the first handle.
    #[must_use]
    pub fn spawn(
        store: Arc<dyn AuditStore>,
        runtime: &tokio::runtime::Handle,
        options: AuditorOptions,
    ) -> Self {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            last_overflow_report: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        runtime.spawn(run(rx, store, options, Arc::clone(&shared)));
        Self { tx, shared }
    }

    /// Queues `event` for `org`'s chain and returns at once: `true` if it was queued, `false`
    /// if it was dropped (queue full, writer stopped), which is counted and logged here.
    ///
    /// Events of one handle are appended in the order they were recorded.
    pub fn record(&self, org: OrgId, event: AuditEvent) -> bool {
        let log = Box::new(event.into_log());
        match self.tx.try_send(Job::Append { org, log }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.shared.note_loss();
                if self.shared.should_report_overflow() {
                    tracing::error!(
                        org.id = %org,
                        audit.action = %job_action(&job),
                        dropped_total = self.shared.dropped.load(Ordering::Relaxed),
                        "audit queue full: audit event dropped"
                    );
                }
                metrics::counter!(AUDIT_DROPPED_TOTAL, "reason" => "queue_full").increment(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(job)) => {
                self.shared.note_loss();
                tracing::error!(
                    org.id = %org,
                    audit.action = %job_action(&job),
                    "audit writer stopped: audit event dropped"
                );
                metrics::counter!(AUDIT_DROPPED_TOTAL, "reason" => "closed").increment(1);
                false
            }
        }
    }

    /// Records a request the policy engine denied (see [`PolicyDenial::into_event`]); for the
    /// MCP pipeline, which calls it for every denied message. Never blocks.
    pub fn policy_denied(&self, org: OrgId, denial: PolicyDenial) -> bool {
        self.record(org, denial.into_event())
    }

    /// Waits until every event recorded (through any handle) before this call has been
    /// written or given up on. For shutdown and tests; may wait for queue space.
    ///
    /// # Errors
    /// [`LoggingError::AuditWriterStopped`] if the writer task is gone (its runtime shut down).
    pub async fn flush(&self) -> Result<(), LoggingError> {
        let (done, finished) = oneshot::channel();
        self.tx
            .send(Job::Flush(done))
            .await
            .map_err(|_| LoggingError::AuditWriterStopped)?;
        finished.await.map_err(|_| LoggingError::AuditWriterStopped)
    }

    /// Events lost since the writer started (dropped from a full queue, or given up on after
    /// store failures).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn job_action(job: &Job) -> &str {
    match job {
        Job::Append { log, .. } => &log.action,
        Job::Flush(_) => "-",
    }
}

impl Shared {
    fn note_loss(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// At most one queue-overflow report per second.
    fn should_report_overflow(&self) -> bool {
        let second = self.epoch.elapsed().as_secs().saturating_add(1);
        self.last_overflow_report.swap(second, Ordering::Relaxed) != second
    }
}

/// The writer: appends queued events in order until every handle is gone.
async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn AuditStore>,
    options: AuditorOptions,
    shared: Arc<Shared>,
) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Append { org, log } => append(store.as_ref(), org, *log, &options, &shared).await,
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Appends one event, retrying a transient outage; reports the loss when it gives up.
async fn append(
    store: &dyn AuditStore,
    org: OrgId,
    log: NewAuditLog,
    options: &AuditorOptions,
    shared: &Shared,
) {
    let mut backoff = options.initial_backoff;
    let mut retries = 0;
    loop {
        let err = match store.append(org, log.clone(), &Sha256AuditHasher).await {
            Ok(_) => return,
            Err(err) => err,
        };
        let transient = matches!(err, StoreError::Unavailable(_));
        if transient && retries < options.max_retries {
            retries += 1;
            tracing::warn!(
                org.id = %org,
                audit.action = %log.action,
                attempt = retries,
                error = %error_chain(&err),
                "audit store unavailable; retrying the append"
            );
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(options.max_backoff);
            continue;
        }
        let reason = if transient {
            "store_unavailable"
        } else {
            "store_error"
        };
        shared.note_loss();
        tracing::error!(
            org.id = %org,
            audit.action = %log.action,
            audit.actor_type = %log.actor_type,
            audit.actor_id = log.actor_id.as_deref().unwrap_or("-"),
            audit.target_type = log.target_type.as_deref().unwrap_or("-"),
            audit.target_id = log.target_id.as_deref().unwrap_or("-"),
            retries,
            reason,
            error = %error_chain(&err),
            "audit event lost: it could not be written"
        );
        metrics::counter!(AUDIT_DROPPED_TOTAL, "reason" => reason).increment(1);
        return;
    }
}
