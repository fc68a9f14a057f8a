//! Backend behaviour beyond the contract: concurrency across pools and unreachable servers.

use gateway_types::config::DatabaseConfig;
use gateway_types::model::NewNamespace;
use gateway_types::store::StoreError;

use crate::harness::{TestDb, at, contract, org, server};

contract!(two_pools_write_the_same_database_concurrently);

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
