use gateway_types::ids::ServerId;
use gateway_types::model::{HealthStatus, NewHealthCheck, ServerStatsDelta};

use crate::harness::{TestDb, assert_not_found, at, contract, org, server};

contract!(history_newest_first, stats_accumulate, isolation);

fn check(server: ServerId, secs: i64, status: HealthStatus) -> NewHealthCheck {
    NewHealthCheck {
        server_id: server,
        status,
        latency_ms: (status != HealthStatus::Unhealthy).then_some(10),
        error: (status == HealthStatus::Unhealthy).then(|| "connection refused".into()),
        checked_at: at(secs),
    }
}

async fn history_newest_first(db: &TestDb) {
    let s = &db.stores().health;
    let o = org(db).await;
    let srv = server(db, o.id, "h").await;
    let other = server(db, o.id, "other").await;
    let first = s
        .record(o.id, check(srv.id, 10, HealthStatus::Healthy))
        .await
        .unwrap();
    assert_eq!(
        (first.server_id, first.org_id, first.checked_at, first.latency_ms),
        (srv.id, o.id, at(10), Some(10))
    );
    s.record(o.id, check(srv.id, 30, HealthStatus::Unhealthy))
        .await
        .unwrap();
    s.record(o.id, check(srv.id, 20, HealthStatus::Degraded))
        .await
        .unwrap();
    s.record(o.id, check(other.id, 40, HealthStatus::Healthy))
        .await
        .unwrap();
    let history = s.history(o.id, srv.id, 10).await.unwrap();
    let times: Vec<_> = history.iter().map(|h| h.checked_at).collect();
    assert_eq!(times, [at(30), at(20), at(10)]);
    assert_eq!(history[0].error.as_deref(), Some("connection refused"));
    assert_eq!(history[2], first);
    assert_eq!(s.history(o.id, srv.id, 2).await.unwrap().len(), 2);

    assert_eq!(s.delete_before(at(25)).await.unwrap(), 2);
    assert_eq!(s.history(o.id, srv.id, 10).await.unwrap().len(), 1);
    assert_eq!(s.history(o.id, other.id, 10).await.unwrap().len(), 1);
    assert_not_found(
        s.record(o.id, check(ServerId::new(), 1, HealthStatus::Healthy))
            .await,
    );
}

async fn stats_accumulate(db: &TestDb) {
    let s = &db.stores().health;
    let o = org(db).await;
    let srv = server(db, o.id, "st").await;
    assert_eq!(s.stats(o.id, srv.id).await.unwrap(), None);

    let st = s
        .add_stats(
            o.id,
            srv.id,
            ServerStatsDelta {
                requests: 3,
                errors: 0,
                latency_ms: 30,
            },
            None,
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            st.total_requests,
            st.total_errors,
            st.total_latency_ms,
            st.consecutive_failures
        ),
        (3, 0, 30, 0)
    );
    assert_eq!(
        (st.last_request_at, st.last_error_at, st.updated_at),
        (Some(at(1)), None, at(1))
    );

    s.add_stats(o.id, srv.id, ServerStatsDelta::default(), Some(true), at(2))
        .await
        .unwrap();
    let st = s
        .add_stats(
            o.id,
            srv.id,
            ServerStatsDelta {
                requests: 2,
                errors: 1,
                latency_ms: 5,
            },
            Some(true),
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            st.total_requests,
            st.total_errors,
            st.total_latency_ms,
            st.consecutive_failures
        ),
        (5, 1, 35, 2)
    );
    assert_eq!((st.last_request_at, st.last_error_at), (Some(at(3)), Some(at(3))));
    let st = s
        .add_stats(o.id, srv.id, ServerStatsDelta::default(), None, at(4))
        .await
        .unwrap();
    assert_eq!(
        (st.consecutive_failures, st.last_request_at, st.updated_at),
        (2, Some(at(3)), at(4)),
        "None leaves the failure count"
    );
    let st = s
        .add_stats(o.id, srv.id, ServerStatsDelta::default(), Some(false), at(5))
        .await
        .unwrap();
    assert_eq!(st.consecutive_failures, 0);
    assert_eq!(s.stats(o.id, srv.id).await.unwrap(), Some(st));

    // Concurrent adds lose nothing.
    let store = db.stores().health.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..5 {
                store
                    .add_stats(
                        o.id,
                        srv.id,
                        ServerStatsDelta {
                            requests: 1,
                            errors: 0,
                            latency_ms: 1,
                        },
                        None,
                        at(6),
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(s.stats(o.id, srv.id).await.unwrap().unwrap().total_requests, 45);
}

async fn isolation(db: &TestDb) {
    let s = &db.stores().health;
    let mine = org(db).await;
    let theirs = org(db).await;
    let srv = server(db, theirs.id, "theirs").await;
    s.record(theirs.id, check(srv.id, 1, HealthStatus::Healthy))
        .await
        .unwrap();
    s.add_stats(
        theirs.id,
        srv.id,
        ServerStatsDelta {
            requests: 1,
            errors: 0,
            latency_ms: 1,
        },
        None,
        at(1),
    )
    .await
    .unwrap();
    assert_not_found(s.record(mine.id, check(srv.id, 2, HealthStatus::Healthy)).await);
    assert_not_found(
        s.add_stats(mine.id, srv.id, ServerStatsDelta::default(), Some(true), at(2))
            .await,
    );
    assert_eq!(s.history(mine.id, srv.id, 10).await.unwrap(), vec![]);
    assert_eq!(s.stats(mine.id, srv.id).await.unwrap(), None);
    assert_eq!(
        s.stats(theirs.id, srv.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        0
    );
}
