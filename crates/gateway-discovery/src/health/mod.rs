//! Health checks of registered servers, and the periodic roll-up of request logs into each
//! server's counters: the worker's registry jobs.
//!
//! Every `interval`, [`HealthJob::run_round`] checks each server that is not `inactive`
//! ([`check`]), records the result in `health_checks`, updates `server_stats`'
//! `consecutive_failures`, and moves the server's status along [`transitions`] with a
//! compare-and-set (an admin's concurrent change wins). The status write appends to the change
//! log, so every api replica refuses a `down` server's calls within about a second.
//!
//! Several workers may run. Each check takes the job lock `health:<server id>` (PostgreSQL
//! advisory lock; in-process on SQLite) and skips a server whose newest result is younger
//! than three quarters of the interval, so each server is checked about once per interval
//! however many workers there are. The roll-up ([`HealthJob::roll_up`]) runs once per
//! `stats_interval` boundary under the lock `server-stats`, and the store's roll-up mark
//! makes a repeated run add nothing.

pub mod check;
pub mod transitions;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gateway_transport::link::UpstreamSpec;
use gateway_types::config::HealthChecksConfig;
use gateway_types::error::BoxError;
use gateway_types::model::{HealthStatus, McpServer, NewHealthCheck, ServerStatsDelta, ServerStatus};
use gateway_types::store::{StoreError, Stores};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use check::{CheckOutcome, Checker};
pub use transitions::{Thresholds, next_status};

/// Turns a server record into what a connector needs, its secrets opened (the application
/// owns the keys; this crate never sees them).
pub trait UpstreamSpecs: Send + Sync {
    /// The spec of `server`.
    ///
    /// # Errors
    /// Its secrets cannot be opened with the configured keys.
    fn spec(&self, server: &McpServer) -> Result<UpstreamSpec, BoxError>;
}

/// The job's settings, from `health_checks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    /// Each server is checked this often.
    pub interval: Duration,
    /// A check fails after this.
    pub timeout: Duration,
    /// The status thresholds.
    pub thresholds: Thresholds,
    /// Checks running at once.
    pub concurrency: usize,
    /// Request logs are rolled into server counters at multiples of this.
    pub stats_interval: Duration,
    /// Results older than this are deleted (with each roll-up).
    pub retention: Duration,
}

impl From<&HealthChecksConfig> for HealthSettings {
    fn from(c: &HealthChecksConfig) -> Self {
        Self {
            interval: Duration::from_secs(c.interval_seconds.max(1)),
            timeout: Duration::from_secs(c.timeout_seconds.max(1)),
            thresholds: Thresholds {
                degraded_after: c.degraded_after,
                down_after: c.down_after,
                recover_after: c.recover_after,
            },
            concurrency: c.concurrency.max(1),
            stats_interval: Duration::from_secs(c.stats_interval_seconds.max(1)),
            retention: Duration::from_secs(u64::from(c.retention_days.max(1)) * 86_400),
        }
    }
}

/// What one check of one server did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckDone {
    /// Checked; the result and the status change, if any.
    Checked {
        /// The result.
        outcome: CheckOutcome,
        /// `(from, to)` when the status changed.
        transition: Option<(ServerStatus, ServerStatus)>,
    },
    /// Another worker holds its lock or checked it moments ago.
    Skipped,
}

/// The health-check and roll-up jobs over the stores.
#[derive(Clone)]
pub struct HealthJob {
    stores: Stores,
    checker: Checker,
    specs: Arc<dyn UpstreamSpecs>,
    settings: HealthSettings,
}

impl std::fmt::Debug for HealthJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthJob")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a check could not run or be recorded.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

impl HealthJob {
    /// A job checking with `checker`, reaching servers through `specs`.
    #[must_use]
    pub fn new(
        stores: Stores,
        checker: Checker,
        specs: Arc<dyn UpstreamSpecs>,
        settings: HealthSettings,
    ) -> Self {
        Self {
            stores,
            checker,
            specs,
            settings,
        }
    }

    /// Checks every server that is not `inactive` (at most `concurrency` at once) and returns
    /// what each check did, by server.
    ///
    /// # Errors
    /// The servers cannot be listed. A failure of one server's check is logged and skipped.
    pub async fn run_round(&self) -> Result<Vec<(McpServer, CheckDone)>, HealthError> {
        let servers: Vec<McpServer> = self
            .stores
            .servers
            .list_all()
            .await?
            .into_iter()
            .filter(|s| s.status != ServerStatus::Inactive)
            .collect();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = JoinSet::new();
        for server in servers {
            let job = self.clone();
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let done = job.check_server(&server).await;
                (server, done)
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((server, Ok(d))) => done.push((server, d)),
                Ok((server, Err(err))) => tracing::warn!(
                    org.id = %server.org_id,
                    server.id = %server.id,
                    error.chain = gateway_types::error::error_chain(&err),
                    "health check could not be recorded"
                ),
                Err(err) => tracing::error!(error = %err, "a health check task failed"),
            }
        }
        Ok(done)
    }

    /// Checks one server under its job lock, records the result and moves its status.
    ///
    /// # Errors
    /// The store failed.
    pub async fn check_server(&self, server: &McpServer) -> Result<CheckDone, HealthError> {
        let Some(lock) = self
            .stores
            .locks
            .try_lock(&format!("health:{}", server.id))
            .await?
        else {
            return Ok(CheckDone::Skipped);
        };
        let result = self.check_locked(server).await;
        lock.release().await;
        result
    }

    async fn check_locked(&self, server: &McpServer) -> Result<CheckDone, HealthError> {
        let (org, id) = (server.org_id, server.id);
        // Checked moments ago by another worker: once per interval is enough.
        let fresh = self.settings.interval.mul_f64(0.75);
        let newest = self.stores.health.history(org, id, 1).await?;
        if let Some(last) = newest.first()
            && (Utc::now() - last.checked_at)
                .to_std()
                .is_ok_and(|age| age < fresh)
        {
            return Ok(CheckDone::Skipped);
        }
        // The record as it is now (the list may be a round old).
        let Some(server) = self.stores.servers.get(org, id).await? else {
            return Ok(CheckDone::Skipped);
        };
        if server.status == ServerStatus::Inactive {
            return Ok(CheckDone::Skipped);
        }
        let outcome = match self.specs.spec(&server) {
            Ok(spec) => {
                self.checker
                    .check(&spec, server.health_check_url.as_deref())
                    .await
            }
            Err(err) => {
                tracing::warn!(
                    org.id = %org,
                    server.id = %id,
                    error.chain = gateway_types::error::error_chain(err.as_ref()),
                    "cannot prepare a health check: the server's secrets do not open"
                );
                CheckOutcome {
                    status: HealthStatus::Unhealthy,
                    latency: Duration::ZERO,
                    error: Some("the server's secrets cannot be opened with the configured keys".into()),
                }
            }
        };
        let failed = outcome.status == HealthStatus::Unhealthy;
        match self
            .stores
            .health
            .record(
                org,
                NewHealthCheck {
                    server_id: id,
                    status: outcome.status,
                    latency_ms: Some(i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX)),
                    error: outcome.error.clone(),
                    checked_at: Utc::now(),
                },
            )
            .await
        {
            Ok(_) => {}
            // Deleted while being checked.
            Err(StoreError::NotFound) => return Ok(CheckDone::Skipped),
            Err(err) => return Err(err.into()),
        }
        match self
            .stores
            .health
            .add_stats(org, id, ServerStatsDelta::default(), Some(failed), Utc::now())
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
        let recent: Vec<HealthStatus> = self
            .stores
            .health
            .history(org, id, self.settings.thresholds.window())
            .await?
            .into_iter()
            .map(|h| h.status)
            .collect();
        let next = next_status(server.status, &recent, self.settings.thresholds);
        let mut transition = None;
        if next != server.status {
            match self.stores.servers.set_status(org, id, server.status, next).await {
                Ok(true) => {
                    tracing::info!(
                        org.id = %org,
                        server.id = %id,
                        server.name = %server.name,
                        from = server.status.as_str(),
                        to = next.as_str(),
                        "server status changed by health checks"
                    );
                    transition = Some((server.status, next));
                }
                Ok(false) | Err(StoreError::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(CheckDone::Checked { outcome, transition })
    }

    /// Rolls request logs up to `until` into every server's counters and deletes health-check
    /// results older than the retention before `until` (once, under a lock).
    /// Returns how many servers' counters changed, or `None` when another worker is at it.
    ///
    /// # Errors
    /// The store failed.
    pub async fn roll_up(&self, until: DateTime<Utc>) -> Result<Option<u64>, HealthError> {
        let Some(lock) = self.stores.locks.try_lock("server-stats").await? else {
            return Ok(None);
        };
        let result = self.roll_up_locked(until).await;
        lock.release().await;
        result.map(Some)
    }

    async fn roll_up_locked(&self, until: DateTime<Utc>) -> Result<u64, HealthError> {
        let changed = self.stores.health.roll_up_requests(until).await?;
        let horizon = chrono::TimeDelta::from_std(self.settings.retention).unwrap_or(chrono::TimeDelta::MAX);
        let pruned = self.stores.health.delete_before(until - horizon).await?;
        if pruned > 0 {
            tracing::info!(rows = pruned, "old health-check results deleted");
        }
        Ok(changed)
    }

    /// Runs rounds every `interval` and roll-ups at every `stats_interval` boundary until
    /// `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tracing::info!(
            interval_seconds = self.settings.interval.as_secs(),
            timeout_seconds = self.settings.timeout.as_secs(),
            "health checks started"
        );
        let mut stop = std::pin::pin!(stop);
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rolled_up_to: Option<DateTime<Utc>> = None;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {}
            }
            let round = self.run_round();
            tokio::select! {
                () = &mut stop => break,
                result = round => if let Err(err) = result {
                    tracing::warn!(error.chain = gateway_types::error::error_chain(&err), "health-check round failed; will retry");
                },
            }
            let until = roll_up_boundary(Utc::now(), self.settings.stats_interval);
            if rolled_up_to.is_none_or(|done| done < until) {
                match self.roll_up(until).await {
                    Ok(changed) => {
                        rolled_up_to = Some(until);
                        if let Some(n) = changed.filter(|n| *n > 0) {
                            tracing::info!(servers = n, until = %until, "request logs rolled up into server counters");
                        }
                    }
                    Err(err) => tracing::warn!(
                        error.chain = gateway_types::error::error_chain(&err),
                        "request roll-up failed; will retry"
                    ),
                }
            }
        }
        tracing::info!("health checks stopped");
    }
}

/// Late request-log records (written in batches) have this long to arrive before their
/// window is rolled up.
const ROLL_UP_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The newest multiple of `every` (since the epoch) at least [`ROLL_UP_GRACE`] in the past.
#[must_use]
pub fn roll_up_boundary(now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX).max(1);
    let at = (now - ROLL_UP_GRACE).timestamp();
    DateTime::from_timestamp(at - at.rem_euclid(every), 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn roll_ups_happen_at_whole_intervals_after_a_grace() {
        let hour = Duration::from_secs(3600);
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).single().unwrap();
        assert_eq!(roll_up_boundary(at(10, 30, 0), hour), at(10, 0, 0));
        assert_eq!(
            roll_up_boundary(at(10, 0, 30), hour),
            at(9, 0, 0),
            "within the grace"
        );
        assert_eq!(roll_up_boundary(at(10, 1, 0), hour), at(10, 0, 0));
        assert_eq!(
            roll_up_boundary(at(10, 1, 0), Duration::from_secs(600)),
            at(10, 0, 0)
        );
    }
}
