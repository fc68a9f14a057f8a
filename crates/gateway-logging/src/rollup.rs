//! Rollups and retention of the request log, run by the worker under its job lock.
//!
//! [`roll_up`] recomputes one bucket (an hour or a day) of one organization from `log_index`
//! and upserts the result into `log_aggregates`: recomputing the same bucket replaces the
//! same rows, so running it twice (or on two workers) is harmless. Dimensions: `total` (key
//! `""`), `server` (server id), `tool` (the item name of `tools/call`), `principal`
//! (`type:id`) and `method` (MCP method or REST route). Latency percentiles are nearest-rank
//! over the bucket's records.
//!
//! [`apply_retention`] deletes an organization's index rows older than its
//! `log_retention_days`, and its bodies in the sink.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use gateway_types::ids::{AggregateId, OrgId};
use gateway_types::model::{Granularity, LogAggregate, LogRecord};
use gateway_types::store::{LogQuery, LogStore};

use crate::error::LoggingError;
use crate::sink::LogSink;

/// Records read per query while rolling up.
const PAGE: u32 = 1_000;

/// The length of a bucket.
#[must_use]
pub fn bucket_length(granularity: Granularity) -> Duration {
    match granularity {
        Granularity::Hour => Duration::hours(1),
        Granularity::Day => Duration::days(1),
    }
}

/// The start of the bucket `at` falls in.
#[must_use]
pub fn bucket_start(granularity: Granularity, at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(bucket_length(granularity)).unwrap_or(at)
}

#[derive(Default)]
struct Acc {
    count: i64,
    errors: i64,
    total_latency: i64,
    latencies: Vec<i32>,
    request_bytes: i64,
    response_bytes: i64,
}

impl Acc {
    fn add(&mut self, r: &LogRecord) {
        self.count += 1;
        if r.status != "ok" {
            self.errors += 1;
        }
        self.total_latency += i64::from(r.latency_ms);
        self.latencies.push(r.latency_ms);
        self.request_bytes += r.request_bytes;
        self.response_bytes += r.response_bytes;
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i32], p: usize) -> Option<i32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The aggregates of `records` (one bucket of one organization).
#[must_use]
pub fn aggregate(
    org: OrgId,
    granularity: Granularity,
    bucket: DateTime<Utc>,
    records: &[LogRecord],
    now: DateTime<Utc>,
) -> Vec<LogAggregate> {
    let mut groups: BTreeMap<(&'static str, String), Acc> = BTreeMap::new();
    for r in records {
        groups.entry(("total", String::new())).or_default().add(r);
        groups.entry(("method", r.method.clone())).or_default().add(r);
        if let Some(s) = r.server_id {
            groups.entry(("server", s.to_string())).or_default().add(r);
        }
        if r.method == "tools/call"
            && let Some(name) = &r.name
        {
            groups.entry(("tool", name.clone())).or_default().add(r);
        }
        if let Some(id) = &r.principal_id {
            let key = format!("{}:{id}", r.principal_type.as_deref().unwrap_or("unknown"));
            groups.entry(("principal", key)).or_default().add(r);
        }
    }
    groups
        .into_iter()
        .map(|((dimension, key), mut acc)| {
            acc.latencies.sort_unstable();
            LogAggregate {
                id: AggregateId::new(),
                org_id: org,
                granularity,
                bucket_start: bucket,
                dimension: dimension.to_owned(),
                dimension_key: key,
                request_count: acc.count,
                error_count: acc.errors,
                total_latency_ms: acc.total_latency,
                p50_ms: percentile(&acc.latencies, 50),
                p95_ms: percentile(&acc.latencies, 95),
                p99_ms: percentile(&acc.latencies, 99),
                request_bytes: acc.request_bytes,
                response_bytes: acc.response_bytes,
                updated_at: now,
            }
        })
        .collect()
}

/// Recomputes one bucket of `org` from the index and upserts it; returns how many rows.
///
/// # Errors
/// The store failed.
pub async fn roll_up(
    store: &dyn LogStore,
    org: OrgId,
    granularity: Granularity,
    bucket: DateTime<Utc>,
) -> Result<usize, LoggingError> {
    let bucket = bucket_start(granularity, bucket);
    let end = bucket + bucket_length(granularity);
    let mut records = Vec::new();
    let mut before = None;
    loop {
        let query = LogQuery {
            from: Some(bucket),
            to: Some(end),
            before,
            ..LogQuery::default()
        };
        let page = store.query(org, query, PAGE).await?;
        let full = page.len() == PAGE as usize;
        before = page.last().map(|r| (r.created_at, r.id));
        records.extend(page);
        if !full {
            break;
        }
    }
    if records.is_empty() {
        return Ok(0);
    }
    let rows = aggregate(org, granularity, bucket, &records, Utc::now());
    store.upsert_aggregates(&rows).await?;
    Ok(rows.len())
}

/// Rolls up the buckets of `org` that `[since, until)` touches, at both granularities:
/// the worker calls it with the time since its previous run (overlap is harmless).
///
/// # Errors
/// The store failed.
pub async fn roll_up_range(
    store: &dyn LogStore,
    org: OrgId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<usize, LoggingError> {
    let mut rows = 0;
    for granularity in [Granularity::Hour, Granularity::Day] {
        let mut bucket = bucket_start(granularity, since);
        while bucket < until {
            rows += roll_up(store, org, granularity, bucket).await?;
            bucket += bucket_length(granularity);
        }
    }
    Ok(rows)
}

/// What [`apply_retention`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Index rows.
    pub records: u64,
    /// Body files or objects.
    pub bodies: u64,
}

/// Deletes `org`'s request-log records (and bodies, when a sink is given) older than
/// `retention_days` before `now`. A sink failure is logged and leaves the bodies for the next
/// run; the index rows are deleted regardless.
///
/// # Errors
/// The store failed.
pub async fn apply_retention(
    store: &dyn LogStore,
    sink: Option<&dyn LogSink>,
    org: OrgId,
    retention_days: i32,
    now: DateTime<Utc>,
) -> Result<RetentionReport, LoggingError> {
    let cutoff = now - TimeDelta::days(i64::from(retention_days.max(0)));
    let records = store.delete_before(org, cutoff).await?;
    let bodies = match sink {
        None => 0,
        Some(sink) => match sink.delete_before(org, cutoff).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    org.id = %org,
                    sink = sink.name(),
                    error = %gateway_types::error::error_chain(&e),
                    "cannot delete expired log bodies; the next run retries"
                );
                0
            }
        },
    };
    Ok(RetentionReport { records, bodies })
}

/// The worker's request-log job: every `interval`, under the job lock
/// [`MAINTENANCE_LOCK`] (so several workers run each round once), rolls up the hours and days
/// touched since two hours ago for every organization and applies each organization's
/// retention to its index rows and bodies.
pub struct Maintenance {
    /// The request log.
    pub logs: std::sync::Arc<dyn LogStore>,
    /// Organizations (their retention).
    pub organizations: std::sync::Arc<dyn gateway_types::store::OrganizationStore>,
    /// Job locks.
    pub locks: std::sync::Arc<dyn gateway_types::store::JobLocks>,
    /// The body sink, for retention of bodies.
    pub sink: Option<std::sync::Arc<dyn LogSink>>,
    /// Time between rounds.
    pub interval: std::time::Duration,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The job lock of [`Maintenance`].
pub const MAINTENANCE_LOCK: &str = "request-log-maintenance";

/// What one round of [`Maintenance`] did; `None` when another worker held the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Organizations processed.
    pub organizations: usize,
    /// Aggregate rows upserted.
    pub aggregates: usize,
    /// What retention deleted.
    pub retention: RetentionReport,
}

impl Maintenance {
    /// One round at `now`; `Ok(None)` when another worker holds the lock.
    ///
    /// # Errors
    /// The store failed (the round stops there; the next one starts over).
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Option<RoundReport>, LoggingError> {
        let Some(lock) = self.locks.try_lock(MAINTENANCE_LOCK).await? else {
            return Ok(None);
        };
        let result = self.round(now).await;
        lock.release().await;
        result.map(Some)
    }

    async fn round(&self, now: DateTime<Utc>) -> Result<RoundReport, LoggingError> {
        let mut report = RoundReport::default();
        for org in self.organizations.list().await? {
            report.organizations += 1;
            report.aggregates +=
                roll_up_range(self.logs.as_ref(), org.id, now - Duration::hours(2), now).await?;
            let r = apply_retention(
                self.logs.as_ref(),
                self.sink.as_deref(),
                org.id,
                org.log_retention_days,
                now,
            )
            .await?;
            report.retention.records += r.records;
            report.retention.bodies += r.bodies;
        }
        Ok(report)
    }

    /// Runs rounds until `stop` resolves (the first one at once). Failures are logged and
    /// retried at the next round.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            match self.run_once(Utc::now()).await {
                Ok(Some(r)) => tracing::info!(
                    organizations = r.organizations,
                    aggregates = r.aggregates,
                    retention.records = r.retention.records,
                    retention.bodies = r.retention.bodies,
                    "request-log rollup and retention done"
                ),
                Ok(None) => tracing::debug!("request-log maintenance runs on another worker"),
                Err(e) => tracing::warn!(
                    error = %gateway_types::error::error_chain(&e),
                    "request-log rollup or retention failed; the next round retries"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_types::ids::LogId;

    use super::*;

    fn rec(status: &str, latency: i32, name: Option<&str>) -> LogRecord {
        LogRecord {
            id: LogId::new(),
            org_id: OrgId::new(),
            namespace_id: None,
            server_id: None,
            principal_type: Some("user".into()),
            principal_id: Some("u1".into()),
            transport: "rpc".into(),
            protocol_era: None,
            method: "tools/call".into(),
            name: name.map(str::to_owned),
            status: status.into(),
            http_status: None,
            error_code: None,
            latency_ms: latency,
            request_bytes: 10,
            response_bytes: 20,
            client_ip: None,
            request_id: None,
            trace_id: None,
            body_ref: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn aggregates_count_errors_and_percentiles() {
        let mut records: Vec<_> = (1..=100).map(|i| rec("ok", i, Some("echo"))).collect();
        records.push(rec("error", 1000, Some("fail")));
        let rows = aggregate(OrgId::new(), Granularity::Hour, Utc::now(), &records, Utc::now());
        let total = rows.iter().find(|r| r.dimension == "total").cloned();
        let total = total.as_ref();
        assert_eq!(total.map(|t| t.request_count), Some(101));
        assert_eq!(total.map(|t| t.error_count), Some(1));
        assert_eq!(total.and_then(|t| t.p50_ms), Some(51));
        assert_eq!(total.and_then(|t| t.p99_ms), Some(100));
        let echo = rows
            .iter()
            .find(|r| r.dimension == "tool" && r.dimension_key == "echo");
        assert_eq!(echo.map(|t| (t.request_count, t.error_count)), Some((100, 0)));
        assert!(
            rows.iter()
                .any(|r| r.dimension == "principal" && r.dimension_key == "user:u1")
        );
    }
}
