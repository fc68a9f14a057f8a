//! `GET /admin/stats` (`logs:read`): the caller's organization's traffic from the rollups in
//! `log_aggregates` (written by the worker) and its live session count from this process.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use gateway_auth::rbac::Permission;
use gateway_logging::rollup::bucket_start;
use gateway_transport::hub::SessionScope;
use gateway_types::error::ErrorCode;
use gateway_types::model::{Granularity, LogAggregate};
use serde::{Deserialize, Serialize};

use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// Entries in each top list.
const TOP: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    /// `hour` (default) or `day`.
    granularity: Option<String>,
    /// From (inclusive); default 24 hours (hourly) or 30 days (daily) before `to`.
    from: Option<DateTime<Utc>>,
    /// To (exclusive); default now.
    to: Option<DateTime<Utc>>,
}

#[derive(Serialize, Default)]
struct Totals {
    requests: i64,
    errors: i64,
    error_rate: f64,
    avg_latency_ms: f64,
    /// Request-weighted mean of the buckets' percentiles (an approximation across buckets).
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    request_bytes: i64,
    response_bytes: i64,
}

#[derive(Serialize)]
struct Bucket {
    start: DateTime<Utc>,
    requests: i64,
    errors: i64,
    error_rate: f64,
    avg_latency_ms: f64,
    p50_ms: Option<i32>,
    p95_ms: Option<i32>,
    p99_ms: Option<i32>,
}

#[derive(Serialize)]
struct TopEntry {
    key: String,
    requests: i64,
    errors: i64,
    error_rate: f64,
    avg_latency_ms: f64,
}

#[derive(Serialize)]
struct Stats {
    granularity: &'static str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    totals: Totals,
    buckets: Vec<Bucket>,
    top_tools: Vec<TopEntry>,
    top_servers: Vec<TopEntry>,
    top_principals: Vec<TopEntry>,
    top_methods: Vec<TopEntry>,
    active_sessions: usize,
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn totals(rows: &[&LogAggregate]) -> Totals {
    let mut t = Totals::default();
    let (mut latency, mut w50, mut w95, mut w99, mut weight) = (0_i64, 0.0, 0.0, 0.0, 0_i64);
    for r in rows {
        t.requests += r.request_count;
        t.errors += r.error_count;
        t.request_bytes += r.request_bytes;
        t.response_bytes += r.response_bytes;
        latency += r.total_latency_ms;
        if let (Some(a), Some(b), Some(c)) = (r.p50_ms, r.p95_ms, r.p99_ms) {
            let w = r.request_count as f64;
            w50 += f64::from(a) * w;
            w95 += f64::from(b) * w;
            w99 += f64::from(c) * w;
            weight += r.request_count;
        }
    }
    t.error_rate = rate(t.errors, t.requests);
    t.avg_latency_ms = rate(latency, t.requests);
    if weight > 0 {
        let w = weight as f64;
        t.p50_ms = Some(w50 / w);
        t.p95_ms = Some(w95 / w);
        t.p99_ms = Some(w99 / w);
    }
    t
}

fn top(rows: &[LogAggregate], dimension: &str) -> Vec<TopEntry> {
    let mut sums: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for r in rows.iter().filter(|r| r.dimension == dimension) {
        let e = sums.entry(r.dimension_key.as_str()).or_default();
        e.0 += r.request_count;
        e.1 += r.error_count;
        e.2 += r.total_latency_ms;
    }
    let mut out: Vec<TopEntry> = sums
        .into_iter()
        .map(|(key, (n, e, l))| TopEntry {
            key: key.to_owned(),
            requests: n,
            errors: e,
            error_rate: rate(e, n),
            avg_latency_ms: rate(l, n),
        })
        .collect();
    out.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
    out.truncate(TOP);
    out
}

/// `GET /admin/stats[?granularity=hour|day&from=&to=]`.
pub(crate) async fn stats(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::LogsRead)?;
    let q = q.into_inner();
    let granularity = match q.granularity.as_deref().unwrap_or("hour") {
        "hour" => Granularity::Hour,
        "day" => Granularity::Day,
        _ => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "granularity must be hour or day",
            ));
        }
    };
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or_else(|| match granularity {
        Granularity::Hour => to - Duration::hours(24),
        Granularity::Day => to - Duration::days(30),
    });
    if from >= to {
        return Err(ApiError::new(ErrorCode::Validation, "from must be before to"));
    }
    let rows = state
        .stores
        .logs
        .aggregates(p.org_id, granularity, bucket_start(granularity, from), to)
        .await?;
    let total_rows: Vec<&LogAggregate> = rows.iter().filter(|r| r.dimension == "total").collect();
    let buckets = total_rows
        .iter()
        .map(|r| Bucket {
            start: r.bucket_start,
            requests: r.request_count,
            errors: r.error_count,
            error_rate: rate(r.error_count, r.request_count),
            avg_latency_ms: rate(r.total_latency_ms, r.request_count),
            p50_ms: r.p50_ms,
            p95_ms: r.p95_ms,
            p99_ms: r.p99_ms,
        })
        .collect();
    let active_sessions = state
        .hub
        .sessions_in(&SessionScope {
            namespace_id: p.namespace,
            ..SessionScope::org(p.org_id)
        })
        .len();
    Ok(HttpResponse::Ok().json(Stats {
        granularity: granularity.as_str(),
        from,
        to,
        totals: totals(&total_rows),
        buckets,
        top_tools: top(&rows, "tool"),
        top_servers: top(&rows, "server"),
        top_principals: top(&rows, "principal"),
        top_methods: top(&rows, "method"),
        active_sessions,
    }))
}
