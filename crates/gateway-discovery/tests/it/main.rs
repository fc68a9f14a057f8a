//! The health-check job against the real store (SQLite, and PostgreSQL when `DATABASE_URL` is
//! set): status transitions as results accumulate, and one check per server and interval however
//! many workers ask at once.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use gateway_discovery::health::{CheckDone, Checker, HealthJob, HealthSettings, Thresholds, UpstreamSpecs};
use gateway_store::test_support::TestDb;
use gateway_transport::http::HttpConnector;
use gateway_transport::link::{Connectors, UpstreamSpec};
use gateway_transport::sse_client::SseConnector;
use gateway_transport::stdio::{ProcessTable, StdioConnector};
use gateway_transport::ws::WsConnector;
use gateway_types::error::BoxError;
use gateway_types::ids::OrgId;
use gateway_types::model::{
    HealthStatus, McpServer, NewMcpServer, NewOrganization, Plan, RecordSource, ServerProtocol, ServerStatus,
};
use gateway_types::store::Stores;

/// Specs straight from the record (these servers have no secrets to open).
struct PlainSpecs;

impl UpstreamSpecs for PlainSpecs {
    fn spec(&self, s: &McpServer) -> Result<UpstreamSpec, BoxError> {
        Ok(UpstreamSpec {
            server_id: s.id.to_string(),
            name: s.name.clone(),
            org_id: s.org_id.to_string(),
            protocol: s.protocol,
            url: s.url.clone(),
            command: s.command.clone(),
            args: s.args.clone(),
            env: vec![],
            working_dir: None,
            headers: vec![],
            timeout: Duration::from_secs(5),
            max_retries: 0,
            max_message_bytes: 1 << 20,
            legacy_only: false,
        })
    }
}

fn job(stores: Stores, interval: Duration) -> HealthJob {
    let client = gateway_transport::http::default_client().unwrap();
    let connectors = Connectors {
        stdio: Arc::new(StdioConnector::new(ProcessTable::new(0))),
        http: Arc::new(HttpConnector::new(client.clone())),
        sse: Arc::new(SseConnector::new(client.clone())),
        ws: Arc::new(WsConnector::new()),
    };
    let settings = HealthSettings {
        interval,
        timeout: Duration::from_secs(5),
        thresholds: Thresholds {
            degraded_after: 1,
            down_after: 2,
            recover_after: 2,
        },
        concurrency: 4,
        stats_interval: Duration::from_secs(3600),
        retention: Duration::from_secs(7 * 86_400),
    };
    HealthJob::new(
        stores,
        Checker::new(connectors, client, settings.timeout),
        Arc::new(PlainSpecs),
        settings,
    )
}

async fn fixture(db: &TestDb) -> (OrgId, McpServer) {
    let org = db
        .stores()
        .organizations
        .create(NewOrganization {
            name: "acme".into(),
            slug: "acme".into(),
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id;
    // Nothing listens on port 9 of the loopback: every check fails at once.
    let server = db
        .stores()
        .servers
        .create(
            org,
            NewMcpServer {
                namespace_id: None,
                name: "unreachable".into(),
                description: None,
                protocol: ServerProtocol::Http,
                url: Some("http://127.0.0.1:9/mcp".into()),
                command: None,
                args: vec![],
                environment: None,
                credentials: None,
                working_dir: None,
                timeout_seconds: 5,
                max_retries: 0,
                status: ServerStatus::Active,
                health_check_url: None,
                tags: vec![],
                metadata: serde_json::json!({}),
                source: RecordSource::Api,
            },
        )
        .await
        .unwrap();
    (org, server)
}

macro_rules! on_both {
    ($($case:ident),+) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(&gateway_store::test_support::TestDb::sqlite().await).await;
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

on_both!(
    failures_degrade_then_take_a_server_down,
    concurrent_workers_check_once,
    roll_up_prunes_old_results_once
);

async fn failures_degrade_then_take_a_server_down(db: &TestDb) {
    let (org, server) = fixture(db).await;
    // No freshness window: every call checks.
    let job = job(db.stores().clone(), Duration::ZERO);
    let mut seen = Vec::new();
    for _ in 0..3 {
        match job.check_server(&server).await.unwrap() {
            CheckDone::Checked { outcome, transition } => {
                assert_eq!(outcome.status, HealthStatus::Unhealthy);
                // The gateway's own words, never the upstream's.
                assert_eq!(outcome.error.as_deref(), Some("initialize answered error -32000"));
                seen.push(transition);
            }
            CheckDone::Skipped => panic!("nothing else holds the lock"),
        }
    }
    assert_eq!(
        seen,
        [
            Some((ServerStatus::Active, ServerStatus::Degraded)),
            Some((ServerStatus::Degraded, ServerStatus::Down)),
            None,
        ]
    );
    let st = db.stores();
    assert_eq!(
        st.servers.get(org, server.id).await.unwrap().unwrap().status,
        ServerStatus::Down
    );
    assert_eq!(st.health.history(org, server.id, 10).await.unwrap().len(), 3);
    assert_eq!(
        st.health
            .stats(org, server.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        3
    );

    // An admin switches it off: never checked again.
    st.servers
        .set_status(org, server.id, ServerStatus::Down, ServerStatus::Inactive)
        .await
        .unwrap();
    assert_eq!(job.check_server(&server).await.unwrap(), CheckDone::Skipped);
    let round = job.run_round().await.unwrap();
    assert!(round.iter().all(|(s, _)| s.id != server.id), "{round:?}");
}

async fn concurrent_workers_check_once(db: &TestDb) {
    let (org, server) = fixture(db).await;
    // Two workers: on PostgreSQL two processes' worth of connections; on SQLite one process.
    let other = match db.backend() {
        gateway_types::config::DatabaseBackend::Postgres => {
            gateway_store::connect(db.config()).await.unwrap()
        }
        gateway_types::config::DatabaseBackend::Sqlite => db.stores().clone(),
    };
    let a = job(db.stores().clone(), Duration::from_secs(3600));
    let b = job(other, Duration::from_secs(3600));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let job = if i % 2 == 0 { a.clone() } else { b.clone() };
        let server = server.clone();
        tasks.push(tokio::spawn(
            async move { job.check_server(&server).await.unwrap() },
        ));
    }
    let mut checked = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), CheckDone::Checked { .. }) {
            checked += 1;
        }
    }
    assert_eq!(checked, 1, "one check per interval, whoever asks");
    assert_eq!(
        db.stores()
            .health
            .history(org, server.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn roll_up_prunes_old_results_once(db: &TestDb) {
    let (org, server) = fixture(db).await;
    let st = db.stores();
    let now = chrono::Utc::now();
    for days in [30, 8, 1] {
        st.health
            .record(
                org,
                gateway_types::model::NewHealthCheck {
                    server_id: server.id,
                    status: HealthStatus::Healthy,
                    latency_ms: Some(1),
                    error: None,
                    checked_at: now - chrono::TimeDelta::days(days),
                },
            )
            .await
            .unwrap();
    }
    let job = job(st.clone(), Duration::from_secs(30));
    // Another worker at it: nothing happens here.
    let held = st.locks.try_lock("server-stats").await.unwrap().unwrap();
    assert_eq!(job.roll_up(now).await.unwrap(), None);
    assert_eq!(st.health.history(org, server.id, 10).await.unwrap().len(), 3);
    held.release().await;
    assert_eq!(job.roll_up(now).await.unwrap(), Some(0));
    let kept = st.health.history(org, server.id, 10).await.unwrap();
    assert_eq!(kept.len(), 1, "results older than 7 days are gone: {kept:?}");
    assert!(
        st.health.stats(org, server.id).await.unwrap().is_some(),
        "the roll-up gave it counters"
    );
}
