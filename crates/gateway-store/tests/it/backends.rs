//! Backend behaviour beyond the contract: concurrency across pools and unreachable servers.

use gateway_types::config::DatabaseConfig;
use gateway_types::model::NewNamespace;
use gateway_types::store::StoreError;

use crate::harness::{TestDb, at, contract, org, server};

contract!(
    two_pools_write_the_same_database_concurrently,
    cancelled_calls_leave_the_pool_usable
);

/// Two independent pools (as two processes would have) writing at once: no write fails with
/// "database is locked" on SQLite, and nothing is lost on either backend.
async fn two_pools_write_the_same_database_concurrently(db: &TestDb) {
    let o = org(db).await;
    let srv = server(db, o.id, "counted").await;
    let second = gateway_store::connect(db.config()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (p, stores) in [db.stores().clone(), second].into_iter().enumerate() {
        for t in 0..4 {
            let stores = stores.clone();
            tasks.spawn(async move {
                for i in 0..10 {
                    let slug = format!("p{p}-t{t}-{i}");
                    stores
                        .namespaces
                        .create(
                            o.id,
                            NewNamespace {
                                name: slug.clone(),
                                slug,
                                description: None,
                                source: gateway_types::model::RecordSource::Api,
                            },
                        )
                        .await
                        .unwrap();
                    stores.changes.latest_id().await.unwrap();
                    // Reads, then writes, in one transaction.
                    let delta = gateway_types::model::ServerStatsDelta {
                        requests: 1,
                        errors: 0,
                        latency_ms: 1,
                    };
                    stores
                        .health
                        .add_stats(o.id, srv.id, delta, None, at(i))
                        .await
                        .unwrap();
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let page = db
        .stores()
        .namespaces
        .list(
            o.id,
            gateway_types::model::Page {
                offset: 0,
                limit: 500,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 80);
    assert_eq!(
        db.stores()
            .health
            .stats(o.id, srv.id)
            .await
            .unwrap()
            .unwrap()
            .total_requests,
        80
    );
}

/// A server that does not answer is `Unavailable`, at connect time and later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_unavailable() {
    // Port 1 on the loopback: nothing listens there.
    let cfg = DatabaseConfig {
        url: "postgres://gateway:secret@127.0.0.1:1/gateway".to_owned().into(),
        connect_timeout_seconds: 2,
        acquire_timeout_seconds: 2,
        ..Default::default()
    };
    let err = gateway_store::connect(&cfg).await.unwrap_err();
    match &err {
        gateway_store::ConnectError::Connect(StoreError::Unavailable(_)) => {}
        other => panic!("expected Connect(Unavailable), got {other:?}"),
    }
    let chain = gateway_types::error::error_chain(&err);
    assert!(!chain.contains("secret"), "{chain}");
}

/// Store calls dropped mid-flight (a cancelled request, a timeout around the call) neither
/// poison the pool nor leave half-done transactions behind.
async fn cancelled_calls_leave_the_pool_usable(db: &TestDb) {
    use std::future::Future;
    use std::task::{Context, Waker};

    let st = db.stores();
    let o = org(db).await;
    let srv = server(db, o.id, "cancelled").await;
    let mut cx = Context::from_waker(Waker::noop());
    let mut started = 0;
    for i in 0..40 {
        let slug = format!("cancelled-{i}");
        let delta = gateway_types::model::ServerStatsDelta {
            requests: 1,
            errors: 0,
            latency_ms: 1,
        };
        // Poll once (the call checks out a connection and starts its first statement), then drop.
        let pending = if i % 2 == 0 {
            let mut call = std::pin::pin!(st.namespaces.create(
                o.id,
                NewNamespace {
                    name: slug.clone(),
                    slug,
                    description: None,
                    source: gateway_types::model::RecordSource::Api
                }
            ));
            call.as_mut().poll(&mut cx).is_pending()
        } else {
            let mut call = std::pin::pin!(st.health.add_stats(o.id, srv.id, delta, Some(true), at(i)));
            call.as_mut().poll(&mut cx).is_pending()
        };
        started += usize::from(pending);
    }
    assert!(started > 0, "no call was cancelled mid-flight");
    // Every later call works (the pool holds 8 connections; 40 were abandoned).
    for i in 0..20 {
        let slug = format!("after-{i}");
        st.namespaces
            .create(
                o.id,
                NewNamespace {
                    name: slug.clone(),
                    slug,
                    description: None,
                    source: gateway_types::model::RecordSource::Api,
                },
            )
            .await
            .unwrap();
        st.health.stats(o.id, srv.id).await.unwrap();
    }
    // Abandoned transactions were rolled back or completed, never left half-applied.
    let namespaces = st
        .namespaces
        .list(
            o.id,
            gateway_types::model::Page {
                offset: 0,
                limit: 500,
            },
        )
        .await
        .unwrap();
    let log = st.changes.since(0, 1000).await.unwrap();
    let logged = log
        .iter()
        .filter(|c| c.kind == "namespace" && c.op == "create")
        .count();
    assert_eq!(
        namespaces.total as usize, logged,
        "every namespace has its change-log entry and no more"
    );
}

/// A SQLite call abandoned while its statement still waits on the blocking pool (here: for
/// another process's write lock) leaves the pool usable and its write undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_call_abandoned_while_blocked_does_not_poison_the_pool() {
    use std::future::Future;
    use std::task::{Context, Waker};

    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    let db = TestDb::sqlite().await;
    let o = org(&db).await;
    const BUSY_TIMEOUT_MS: u64 = 30_000;
    let single = DatabaseConfig {
        max_connections: 1,
        sqlite_busy_timeout_ms: BUSY_TIMEOUT_MS,
        ..db.config().clone()
    };
    let store = gateway_store::connect(&single).await.unwrap();
    // Another "process" holds the write lock.
    let path = db.url().strip_prefix("sqlite://").unwrap().to_owned();
    let mut other = diesel::SqliteConnection::establish(&path).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();

    {
        let mut call = std::pin::pin!(store.namespaces.create(
            o.id,
            NewNamespace {
                name: "blocked".into(),
                slug: "blocked".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api
            }
        ));
        // Its BEGIN IMMEDIATE now waits for the lock on the blocking pool.
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }
    // The only pooled connection was abandoned mid-statement; the next call still works.
    assert_eq!(
        store.organizations.get(o.id).await.unwrap().map(|x| x.id),
        Some(o.id)
    );
    other.batch_execute("COMMIT").unwrap();
    store
        .namespaces
        .create(
            o.id,
            NewNamespace {
                name: "after".into(),
                slug: "after".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.namespaces.get_by_slug(o.id, "blocked").await.unwrap(),
        None,
        "the abandoned write never happened"
    );
}
