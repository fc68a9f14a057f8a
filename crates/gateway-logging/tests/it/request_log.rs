//! The request log below HTTP: the logger batches records into the real store, bodies go
//! redacted to every sink (rotating files, object storage through `object_store`'s
//! local-filesystem backend — the same code path as S3 — and stdout JSON), a failing sink
//! neither blocks nor loses index records, rollups are idempotent, and retention deletes
//! exactly the expired records.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use gateway_logging::redact::{REDACTED, Redactor};
use gateway_logging::request_log::{BodyParts, RequestLogger, RequestLoggerOptions};
use gateway_logging::rollup::{apply_retention, roll_up, roll_up_range};
use gateway_logging::sink::{BodyItem, FileSink, LogSink, SinkError, StdoutSink};
use gateway_store::test_support::TestDb;
use gateway_types::config::FileSinkConfig;
use gateway_types::ids::{LogId, OrgId, ServerId};
use gateway_types::model::{Granularity, LogRecord, NewOrganization, Plan};
use gateway_types::store::LogQuery;
use serde_json::json;

macro_rules! both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = gateway_store::test_support::TestDb::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = gateway_store::test_support::TestDb::postgres().await {
                    super::$case(&db).await;
                }
            }
        }
    )+};
}

both_backends!(
    records_are_batched_into_the_store,
    every_sink_gets_redacted_bodies,
    a_failing_sink_is_retried_then_reported,
    rollups_are_idempotent,
    retention_deletes_exactly_the_expired_records,
    the_maintenance_job_runs_once_under_its_lock
);

const SECRETS: [&str; 6] = [
    "SECRET-BEARER-1",
    "SECRET-PASSWORD-2",
    "SECRET-DSN-3",
    "SECRET-RESULT-4",
    "SECRET-TOKEN-5",
    "SECRET-COOKIE-6",
];

async fn org(db: &TestDb) -> OrgId {
    let slug = format!("org-{}", uuid::Uuid::new_v4().simple());
    db.stores()
        .organizations
        .create(NewOrganization {
            name: slug.clone(),
            slug,
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id
}

fn record(org: OrgId, at: DateTime<Utc>, name: &str, status: &str, latency: i32) -> LogRecord {
    LogRecord {
        id: LogId::new(),
        org_id: org,
        namespace_id: None,
        server_id: None,
        principal_type: Some("user".into()),
        principal_id: Some("u-1".into()),
        transport: "rpc".into(),
        protocol_era: Some("legacy".into()),
        method: "tools/call".into(),
        name: Some(name.into()),
        status: status.into(),
        http_status: None,
        error_code: None,
        latency_ms: latency,
        request_bytes: 100,
        response_bytes: 200,
        client_ip: Some("10.0.0.1".into()),
        request_id: Some("req-1".into()),
        trace_id: None,
        body_ref: None,
        created_at: at,
    }
}

/// A body carrying every kind of secret the redaction rules cover.
fn secret_body() -> BodyParts {
    BodyParts {
        headers: Some(Arc::new(vec![
            ("Authorization".into(), format!("Bearer {}", SECRETS[0])),
            ("Cookie".into(), format!("sid={}", SECRETS[5])),
            ("Accept".into(), "application/json".into()),
        ])),
        request: Some(json!({
            "name": "deploy",
            "arguments": {"password": SECRETS[1], "config": {"dsn": SECRETS[2]}, "target": "prod"}
        })),
        result: Some(json!({
            "content": [{"type": "text", "text": SECRETS[3]}],
            "meta": {"refresh_token": SECRETS[4]}
        })),
        error: None,
    }
}

fn redactor() -> Arc<Redactor> {
    Arc::new(Redactor::new(&["arguments.config.dsn", "result.content.*.text"]))
}

fn options() -> RequestLoggerOptions {
    RequestLoggerOptions {
        queue_capacity: 1000,
        batch_size: 50,
        flush_interval: Duration::from_millis(50),
        max_retries: 2,
        sink_retries: 2,
        initial_backoff: Duration::from_millis(10),
    }
}

fn logger(db: &TestDb, sink: Option<Arc<dyn LogSink>>) -> RequestLogger {
    RequestLogger::spawn(
        db.stores().logs.clone(),
        sink,
        redactor(),
        &tokio::runtime::Handle::current(),
        options(),
    )
}

async fn records_are_batched_into_the_store(db: &TestDb) {
    let org = org(db).await;
    let other = self::org(db).await;
    let log = logger(db, None);
    let now = Utc::now();
    for i in 0..120 {
        assert!(log.log(record(org, now, &format!("tool-{i}"), "ok", i), None));
    }
    log.log(record(other, now, "elsewhere", "ok", 1), None);
    log.flush().await.unwrap();
    let rows = db
        .stores()
        .logs
        .query(org, LogQuery::default(), 500)
        .await
        .unwrap();
    assert_eq!(rows.len(), 120);
    assert!(rows.iter().all(|r| r.org_id == org && r.body_ref.is_none()));
    let found = db
        .stores()
        .logs
        .query(
            org,
            LogQuery {
                name_contains: Some("OOL-11".into()),
                ..LogQuery::default()
            },
            500,
        )
        .await
        .unwrap();
    // tool-11 and tool-110..119
    assert_eq!(found.len(), 11, "{found:?}");
    assert!(
        db.stores().logs.get(other, rows[0].id).await.unwrap().is_none(),
        "scoped by org"
    );
    assert_eq!(
        db.stores().logs.get(org, rows[0].id).await.unwrap().as_ref(),
        Some(&rows[0])
    );
}

fn assert_clean(text: &str, sink: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{sink} holds {secret}: {text}");
    }
    assert!(text.contains(REDACTED), "{sink}: {text}");
    assert!(
        text.contains("\"target\":\"prod\""),
        "{sink} keeps what is not secret: {text}"
    );
}

/// Every file below `dir`, concatenated.
fn read_all(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

async fn every_sink_gets_redacted_bodies(db: &TestDb) {
    let org = org(db).await;
    let dir = tempfile::tempdir().unwrap();
    let file_dir = dir.path().join("files");
    let object_dir = dir.path().join("objects");
    std::fs::create_dir_all(&object_dir).unwrap();
    let stdout_path = dir.path().join("stdout.jsonl");
    let stdout_file = tokio::fs::File::create(&stdout_path).await.unwrap();

    let mut sinks: Vec<(&str, Arc<dyn LogSink>)> = vec![
        (
            "file",
            Arc::new(FileSink::new(&FileSinkConfig {
                dir: file_dir.display().to_string(),
                ..FileSinkConfig::default()
            })),
        ),
        ("stdout", Arc::new(StdoutSink::to_writer(stdout_file))),
    ];
    // The object-storage sink over object_store's local-filesystem backend: the same code as
    // on S3 (there is no S3-compatible server on this machine).
    #[cfg(feature = "object-store")]
    let object =
        gateway_logging::sink::ObjectStoreSink::from_config(&gateway_types::config::ObjectStoreSinkConfig {
            url: Some(format!("file://{}", object_dir.display())),
            endpoint: None,
        })
        .unwrap();
    #[cfg(feature = "object-store")]
    sinks.push(("object_store", Arc::new(object)));

    for (name, sink) in sinks {
        let log = logger(db, Some(Arc::clone(&sink)));
        let rec = record(org, Utc::now(), "deploy", "ok", 5);
        let id = rec.id;
        assert!(log.log(rec, Some(secret_body())));
        log.flush().await.unwrap();
        let stored = db.stores().logs.get(org, id).await.unwrap().unwrap();
        if name == "stdout" {
            assert!(stored.body_ref.is_none(), "stdout keeps nothing to fetch");
        } else {
            let body_ref = stored.body_ref.as_deref().unwrap();
            let body = sink.read(org, body_ref).await.unwrap().unwrap();
            let body = String::from_utf8(body).unwrap();
            assert_clean(&body, name);
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(doc["headers"]["authorization"], REDACTED, "{name}");
            assert_eq!(doc["headers"]["accept"], "application/json", "{name}");
            assert_eq!(doc["request"]["arguments"]["config"]["dsn"], REDACTED, "{name}");
            assert_eq!(doc["result"]["content"][0]["text"], REDACTED, "{name}");
            assert!(
                sink.read(OrgId::new(), body_ref).await.unwrap().is_none(),
                "{name}: another org"
            );
        }
    }
    assert_clean(&read_all(&file_dir), "file (on disk)");
    if cfg!(feature = "object-store") {
        assert_clean(&read_all(&object_dir), "object_store (on disk)");
    }
    assert_clean(&std::fs::read_to_string(&stdout_path).unwrap(), "stdout");
}

/// A sink that is down for the first `failures` writes.
#[derive(Debug)]
struct Flaky {
    failures: u32,
    calls: AtomicU32,
}

#[async_trait]
impl LogSink for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn write(&self, items: &[BodyItem]) -> Result<Vec<Option<String>>, SinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return Err(SinkError::Io(std::io::Error::other("sink down")));
        }
        Ok(items.iter().map(|i| Some(format!("flaky:{}", i.id))).collect())
    }

    async fn read(&self, _org: OrgId, _body_ref: &str) -> Result<Option<Vec<u8>>, SinkError> {
        Ok(None)
    }

    async fn delete_before(&self, _org: OrgId, _before: DateTime<Utc>) -> Result<u64, SinkError> {
        Ok(0)
    }
}

async fn a_failing_sink_is_retried_then_reported(db: &TestDb) {
    let org = org(db).await;
    // Down for good: after the retries the index rows are still written, without bodies.
    let down = Arc::new(Flaky {
        failures: u32::MAX,
        calls: AtomicU32::new(0),
    });
    let log = logger(db, Some(down.clone()));
    let rec = record(org, Utc::now(), "down", "ok", 1);
    let id = rec.id;
    assert!(
        log.log(rec, Some(secret_body())),
        "logging never fails while the sink is down"
    );
    log.flush().await.unwrap();
    assert_eq!(down.calls.load(Ordering::SeqCst), 3, "one try and two retries");
    let stored = db.stores().logs.get(org, id).await.unwrap().unwrap();
    assert!(stored.body_ref.is_none());

    // Down briefly: a retry succeeds and the body is referenced.
    let flaky = Arc::new(Flaky {
        failures: 1,
        calls: AtomicU32::new(0),
    });
    let log = logger(db, Some(flaky.clone()));
    let rec = record(org, Utc::now(), "flaky", "ok", 1);
    let id = rec.id;
    log.log(rec, Some(secret_body()));
    log.flush().await.unwrap();
    let stored = db.stores().logs.get(org, id).await.unwrap().unwrap();
    assert_eq!(stored.body_ref, Some(format!("flaky:{id}")));
}

async fn rollups_are_idempotent(db: &TestDb) {
    let org = org(db).await;
    let hour = gateway_logging::rollup::bucket_start(Granularity::Hour, Utc::now() - TimeDelta::hours(3));
    let server = ServerId::new();
    let mut records = Vec::new();
    for i in 0..10 {
        let mut r = record(
            org,
            hour + TimeDelta::minutes(i),
            if i < 7 { "echo" } else { "add" },
            "ok",
            10 * (i as i32 + 1),
        );
        r.server_id = Some(server);
        if i == 9 {
            r.status = "error".into();
        }
        records.push(r);
    }
    // One in the next hour.
    records.push(record(org, hour + TimeDelta::minutes(61), "echo", "ok", 1));
    db.stores().logs.insert_batch(&records).await.unwrap();

    let n = roll_up(db.stores().logs.as_ref(), org, Granularity::Hour, hour)
        .await
        .unwrap();
    assert!(n > 0);
    let first = db
        .stores()
        .logs
        .aggregates(org, Granularity::Hour, hour, hour + TimeDelta::hours(1))
        .await
        .unwrap();
    // Twice more (two workers, a rerun): the same rows.
    roll_up(db.stores().logs.as_ref(), org, Granularity::Hour, hour)
        .await
        .unwrap();
    roll_up_range(
        db.stores().logs.as_ref(),
        org,
        hour,
        hour + TimeDelta::minutes(90),
    )
    .await
    .unwrap();
    let again = db
        .stores()
        .logs
        .aggregates(org, Granularity::Hour, hour, hour + TimeDelta::hours(1))
        .await
        .unwrap();
    let strip = |rows: &[gateway_types::model::LogAggregate]| {
        rows.iter()
            .map(|r| {
                (
                    r.dimension.clone(),
                    r.dimension_key.clone(),
                    r.request_count,
                    r.error_count,
                    r.p50_ms,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&first), strip(&again));
    let total = first.iter().find(|r| r.dimension == "total").unwrap();
    assert_eq!((total.request_count, total.error_count), (10, 1));
    assert_eq!(total.total_latency_ms, (1..=10).map(|i| i * 10).sum::<i64>());
    let echo = first
        .iter()
        .find(|r| r.dimension == "tool" && r.dimension_key == "echo")
        .unwrap();
    assert_eq!(echo.request_count, 7);
    let by_server = first.iter().find(|r| r.dimension == "server").unwrap();
    assert_eq!(
        (by_server.dimension_key.as_str(), by_server.request_count),
        (server.to_string().as_str(), 10)
    );
    let day = db
        .stores()
        .logs
        .aggregates(
            org,
            Granularity::Day,
            gateway_logging::rollup::bucket_start(Granularity::Day, hour),
            hour + TimeDelta::days(1),
        )
        .await
        .unwrap();
    let day_total: i64 = day
        .iter()
        .filter(|r| r.dimension == "total")
        .map(|r| r.request_count)
        .sum();
    assert_eq!(day_total, 11, "the daily rollup covers both hours: {day:?}");
}

async fn retention_deletes_exactly_the_expired_records(db: &TestDb) {
    let org = org(db).await;
    let other = self::org(db).await;
    let now = Utc::now();
    let retention = 7;
    let cutoff = now - TimeDelta::days(retention);
    let mut records = Vec::new();
    let mut expired = 0;
    for (i, age) in [
        TimeDelta::days(30),
        TimeDelta::days(8),
        TimeDelta::days(7) + TimeDelta::seconds(5),
        TimeDelta::days(7) - TimeDelta::seconds(60),
        TimeDelta::days(1),
        TimeDelta::zero(),
    ]
    .into_iter()
    .enumerate()
    {
        let at = now - age;
        if at < cutoff {
            expired += 1;
        }
        records.push(record(org, at, &format!("t{i}"), "ok", 1));
        records.push(record(other, at, &format!("t{i}"), "ok", 1));
    }
    db.stores().logs.insert_batch(&records).await.unwrap();
    let report = apply_retention(db.stores().logs.as_ref(), None, org, retention as i32, now)
        .await
        .unwrap();
    assert_eq!(report.records, expired);
    assert_eq!(expired, 3);
    let left = db
        .stores()
        .logs
        .query(org, LogQuery::default(), 100)
        .await
        .unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|r| r.created_at >= cutoff));
    let untouched = db
        .stores()
        .logs
        .query(other, LogQuery::default(), 100)
        .await
        .unwrap();
    assert_eq!(untouched.len(), 6, "another organization's records stay");
}

async fn the_maintenance_job_runs_once_under_its_lock(db: &TestDb) {
    use gateway_logging::rollup::{MAINTENANCE_LOCK, Maintenance};

    let org = org(db).await;
    let retention = db
        .stores()
        .organizations
        .get(org)
        .await
        .unwrap()
        .unwrap()
        .log_retention_days;
    let now = Utc::now();
    let old = record(
        org,
        now - TimeDelta::days(i64::from(retention) + 1),
        "old",
        "ok",
        1,
    );
    let fresh = record(org, now - TimeDelta::minutes(5), "fresh", "ok", 1);
    db.stores()
        .logs
        .insert_batch(&[old.clone(), fresh.clone()])
        .await
        .unwrap();
    let job = Maintenance {
        logs: db.stores().logs.clone(),
        organizations: db.stores().organizations.clone(),
        locks: db.stores().locks.clone(),
        sink: None,
        interval: Duration::from_secs(60),
    };
    // Another worker holds the lock: this one does nothing.
    let held = db
        .stores()
        .locks
        .try_lock(MAINTENANCE_LOCK)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_once(now).await.unwrap(), None);
    held.release().await;
    let report = job.run_once(now).await.unwrap().unwrap();
    assert_eq!(report.retention.records, 1);
    assert!(db.stores().logs.get(org, old.id).await.unwrap().is_none());
    assert!(db.stores().logs.get(org, fresh.id).await.unwrap().is_some());
    let hour = gateway_logging::rollup::bucket_start(Granularity::Hour, fresh.created_at);
    let rows = db
        .stores()
        .logs
        .aggregates(org, Granularity::Hour, hour, hour + TimeDelta::hours(1))
        .await
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.dimension == "total" && r.request_count == 1),
        "{rows:?}"
    );
}
