//! `/health`, `/health/live`, and `/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gateway_e2e::{TcpProxy, TestApp};
use gateway_store::test_support::TestDb;
use gateway_types::store::{StoreError, StoreHealth, StoreResult};
use serde_json::Value;

#[tokio::test]
async fn readiness_reports_each_component() {
    let app = TestApp::spawn().await;
    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert!(body["components"]["store"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(body["uptime_seconds"].as_u64().is_some());
    insta::assert_json_snapshot!(body, {
        ".version" => "[version]",
        ".uptime_seconds" => "[uptime]",
        ".components.store.latency_ms" => "[latency]",
    });
}

#[tokio::test]
async fn liveness_is_ok() {
    let app = TestApp::spawn().await;
    let res = app.get("/health/live").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));

    let head = app.client.head(app.url("/health/live")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");
}

#[tokio::test]
async fn root_redirects_to_the_dashboard() {
    let app = TestApp::spawn().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/ui/");
}

/// A store whose database stopped answering: every ping hangs.
struct HungDatabase {
    backend: &'static str,
}

#[async_trait]
impl StoreHealth for HungDatabase {
    async fn ping(&self) -> StoreResult<()> {
        std::future::pending().await
    }
    fn backend(&self) -> &'static str {
        self.backend
    }
}

/// A store whose database refuses connections.
struct RefusingDatabase {
    backend: &'static str,
}

#[async_trait]
impl StoreHealth for RefusingDatabase {
    async fn ping(&self) -> StoreResult<()> {
        Err(StoreError::Unavailable(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect to 10.9.9.9:5432: connection refused",
        ))))
    }
    fn backend(&self) -> &'static str {
        self.backend
    }
}

// The liveness half of these stores is replaced; the app keeps the real SQLite store for
// everything else. Failures of the real backends are covered by `postgres_outage_*`.
#[tokio::test]
async fn a_hung_store_is_degraded_not_an_error() {
    let app = TestApp::builder()
        .map_stores(|mut stores| {
            stores.status = Arc::new(HungDatabase {
                backend: stores.status.backend(),
            });
            stores
        })
        .spawn()
        .await;
    let started = Instant::now();
    let res = app.get("/health").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the ping has a short timeout"
    );
    assert_eq!(res.status(), 200, "a database blip does not take the gateway out");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    let store = &body["components"]["store"];
    assert_eq!(store["status"], "unavailable");
    assert_eq!(store["backend"], "sqlite");
    assert_eq!(store["error"], "ping timed out");
}

#[tokio::test]
async fn a_refusing_store_is_degraded_without_leaking_the_cause() {
    let app = TestApp::builder()
        .map_stores(|mut stores| {
            stores.status = Arc::new(RefusingDatabase {
                backend: stores.status.backend(),
            });
            stores
        })
        .spawn()
        .await;
    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains("10.9.9.9"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["components"]["store"]["error"], "ping failed");
}

/// A real outage: the gateway reaches PostgreSQL through a proxy that the test cuts. Runs when
/// `DATABASE_URL` is set (as in CI); a set but unreachable server fails in `TestDb`.
#[tokio::test]
async fn a_postgres_outage_is_degraded_not_an_error() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("DATABASE_URL is not set: the PostgreSQL outage test has nothing to cut");
        return;
    };
    let mut url = url::Url::parse(db.url()).unwrap();
    let host = url.host_str().expect("DATABASE_URL names a TCP host").to_owned();
    let proxy = TcpProxy::start(format!("{host}:{}", url.port().unwrap_or(5432))).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.address().port())).unwrap();

    let app = TestApp::builder().database_url(url.as_str()).spawn().await;
    let body: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["components"]["store"]["backend"], "postgres");

    proxy.cut();
    let started = Instant::now();
    let res = app.get("/health").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["components"]["store"]["status"], "unavailable");
    assert!(!body.to_string().contains(&host) || host == "127.0.0.1");
    drop(app);
    drop(db);
}
