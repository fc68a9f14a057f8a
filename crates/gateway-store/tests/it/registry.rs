//! The server registry's storage: the server limit inside the create transaction, status
//! compare-and-set, declarative namespaces, a namespace's sessions, the request roll-up into
//! server counters, and the job locks that make worker jobs run once.

use std::sync::Arc;

use gateway_types::ids::{LogId, OrgId, ServerId, SessionId};
use gateway_types::model::{
    LogRecord, McpSessionPatch, NewMcpServer, NewMcpSession, NewNamespace, OrganizationPatch, Page,
    RecordSource, ServerStatus, SessionProtocol, SessionStatus,
};
use gateway_types::store::StoreError;

use crate::harness::{
    TestDb, assert_not_found, at, change, changes_since, contract, namespace, new_server, org, server,
};

contract!(
    server_limit_holds_under_concurrent_creates,
    set_status_is_compare_and_set,
    namespaces_carry_their_source,
    sessions_of_a_namespace,
    roll_up_counts_each_record_once,
    job_locks_exclude_each_other
);

async fn limit(db: &TestDb, org: OrgId, max: i32) {
    db.stores()
        .organizations
        .update(
            org,
            OrganizationPatch {
                max_servers: Some(max),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn server_limit_holds_under_concurrent_creates(db: &TestDb) {
    let s = &db.stores().servers;
    let o = org(db).await;
    limit(db, o.id, 2).await;
    server(db, o.id, "one").await;
    server(db, o.id, "two").await;
    match s.create(o.id, new_server("three")).await {
        Err(StoreError::LimitReached { what, limit }) => assert_eq!((what.as_str(), limit), ("servers", 2)),
        other => panic!("expected the limit, got {other:?}"),
    }
    // Declared in configuration: counted, never refused.
    let declared = s
        .create(
            o.id,
            NewMcpServer {
                source: RecordSource::Config,
                ..new_server("declared")
            },
        )
        .await
        .unwrap();
    assert_eq!(declared.source, RecordSource::Config);
    assert_eq!(s.count(o.id).await.unwrap(), 3);
    // Another organization's count is its own.
    let other = org(db).await;
    server(db, other.id, "one").await;

    // Concurrent creates never exceed the limit: the count and the insert are one transaction.
    let racing = org(db).await;
    limit(db, racing.id, 5).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let servers = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            servers.create(racing.id, new_server(&format!("s{i}"))).await
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitReached { .. }) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, refused), (5, 11));
    assert_eq!(s.count(racing.id).await.unwrap(), 5);
}

async fn set_status_is_compare_and_set(db: &TestDb) {
    let s = &db.stores().servers;
    let o = org(db).await;
    let srv = server(db, o.id, "checked").await;
    let before = db.stores().changes.latest_id().await.unwrap();

    assert!(
        s.set_status(o.id, srv.id, ServerStatus::Active, ServerStatus::Down)
            .await
            .unwrap()
    );
    let after = s.get(o.id, srv.id).await.unwrap().unwrap();
    assert_eq!(after.status, ServerStatus::Down);
    assert_eq!(
        after.updated_at, srv.updated_at,
        "a status is not a configuration change"
    );
    assert_eq!(
        changes_since(db, before).await,
        [change("server", srv.id, "update")]
    );

    // Expected status no longer holds (an admin changed it meanwhile): nothing happens.
    let before = db.stores().changes.latest_id().await.unwrap();
    assert!(
        !s.set_status(o.id, srv.id, ServerStatus::Active, ServerStatus::Degraded)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get(o.id, srv.id).await.unwrap().unwrap().status,
        ServerStatus::Down
    );
    assert!(changes_since(db, before).await.is_empty());

    let other = org(db).await;
    assert_not_found(
        s.set_status(other.id, srv.id, ServerStatus::Down, ServerStatus::Active)
            .await,
    );
    assert_not_found(
        s.set_status(o.id, ServerId::new(), ServerStatus::Down, ServerStatus::Active)
            .await,
    );
    assert_eq!(
        s.get(o.id, srv.id).await.unwrap().unwrap().status,
        ServerStatus::Down
    );
}

async fn namespaces_carry_their_source(db: &TestDb) {
    let s = &db.stores().namespaces;
    let o = org(db).await;
    let declared = s
        .create(
            o.id,
            NewNamespace {
                name: "Tools".into(),
                slug: "tools".into(),
                description: None,
                source: RecordSource::Config,
            },
        )
        .await
        .unwrap();
    assert_eq!(declared.source, RecordSource::Config);
    let api = namespace(db, o.id, "apps").await;
    assert_eq!(api.source, RecordSource::Api);
    assert_eq!(
        s.get(o.id, declared.id).await.unwrap().unwrap().source,
        RecordSource::Config
    );
    let other = org(db).await;
    namespace(db, other.id, "zzz").await;
    let all = s.list_all(o.id).await.unwrap();
    assert_eq!(
        all.iter().map(|n| n.slug.as_str()).collect::<Vec<_>>(),
        ["apps", "tools"]
    );
}

fn session(server: Option<ServerId>, namespace: Option<gateway_types::ids::NamespaceId>) -> NewMcpSession {
    NewMcpSession {
        id: SessionId::new(),
        server_id: server,
        namespace_id: namespace,
        user_id: None,
        api_key_id: None,
        protocol: SessionProtocol::StreamableHttp,
        protocol_version: None,
        client_info: None,
    }
}

async fn sessions_of_a_namespace(db: &TestDb) {
    let st = db.stores();
    let o = org(db).await;
    let ns = namespace(db, o.id, "prod").await;
    let elsewhere = namespace(db, o.id, "dev").await;
    let inside = st
        .servers
        .create(
            o.id,
            NewMcpServer {
                namespace_id: Some(ns.id),
                ..new_server("inside")
            },
        )
        .await
        .unwrap();
    let outside = server(db, o.id, "outside").await;
    // Recorded with the namespace; on a server of the namespace (recorded before it moved
    // there, without one); elsewhere.
    let a = st
        .sessions
        .create(o.id, session(Some(outside.id), Some(ns.id)))
        .await
        .unwrap();
    let b = st
        .sessions
        .create(o.id, session(Some(inside.id), None))
        .await
        .unwrap();
    let c = st
        .sessions
        .create(o.id, session(Some(outside.id), Some(elsewhere.id)))
        .await
        .unwrap();
    st.sessions
        .update(
            o.id,
            b.id,
            McpSessionPatch {
                status: Some(SessionStatus::Closed),
                closed_at: Some(at(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let ids = |page: gateway_types::model::Paged<gateway_types::model::McpSession>| {
        let mut ids: Vec<SessionId> = page.items.iter().map(|s| s.id).collect();
        ids.sort();
        (page.total, ids)
    };
    let mut both = vec![a.id, b.id];
    both.sort();
    let all = st
        .sessions
        .list_in_namespace(o.id, ns.id, false, Page::default())
        .await
        .unwrap();
    assert_eq!(ids(all), (2, both));
    let open = st
        .sessions
        .list_in_namespace(o.id, ns.id, true, Page::default())
        .await
        .unwrap();
    assert_eq!(ids(open), (1, vec![a.id]));
    let page = st
        .sessions
        .list_in_namespace(o.id, ns.id, false, Page { offset: 1, limit: 1 })
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    let dev = st
        .sessions
        .list_in_namespace(o.id, elsewhere.id, false, Page::default())
        .await
        .unwrap();
    assert_eq!(ids(dev), (1, vec![c.id]));
    // Another organization sees none of them.
    let other = org(db).await;
    let none = st
        .sessions
        .list_in_namespace(other.id, ns.id, false, Page::default())
        .await
        .unwrap();
    assert_eq!(ids(none), (0, vec![]));
}

fn record(org: OrgId, server: ServerId, secs: i64, status: &str, latency_ms: i32) -> LogRecord {
    LogRecord {
        id: LogId::new(),
        org_id: org,
        namespace_id: None,
        server_id: Some(server),
        principal_type: None,
        principal_id: None,
        transport: "streamable_http".into(),
        protocol_era: None,
        method: "tools/call".into(),
        name: Some("echo".into()),
        status: status.into(),
        http_status: None,
        error_code: None,
        latency_ms,
        request_bytes: 10,
        response_bytes: 10,
        client_ip: None,
        request_id: None,
        trace_id: None,
        body_ref: None,
        created_at: at(secs),
    }
}

async fn roll_up_counts_each_record_once(db: &TestDb) {
    let st = db.stores();
    let o = org(db).await;
    let a = server(db, o.id, "a").await;
    let b = server(db, o.id, "b").await;
    let other = org(db).await;
    let c = server(db, other.id, "c").await;
    st.logs
        .insert_batch(&[
            record(o.id, a.id, 10, "ok", 5),
            record(o.id, a.id, 20, "error", 7),
            record(o.id, a.id, 3600, "ok", 100), // exactly at the first mark: included
            record(o.id, b.id, 30, "ok", 1),
            record(other.id, c.id, 40, "denied", 2),
            record(o.id, a.id, 4000, "ok", 1000), // after the first mark
        ])
        .await
        .unwrap();

    assert_eq!(st.health.roll_up_requests(at(3600)).await.unwrap(), 3);
    let stats = |org: OrgId, id: ServerId| async move { st.health.stats(org, id).await.unwrap().unwrap() };
    let sa = stats(o.id, a.id).await;
    assert_eq!(
        (sa.total_requests, sa.total_errors, sa.total_latency_ms),
        (3, 1, 112)
    );
    assert_eq!(
        (sa.last_request_at, sa.last_error_at),
        (Some(at(3600)), Some(at(20)))
    );
    let sb = stats(o.id, b.id).await;
    assert_eq!((sb.total_requests, sb.total_errors), (1, 0));
    let sc = stats(other.id, c.id).await;
    assert_eq!((sc.total_requests, sc.total_errors), (1, 1));

    // The same mark again, or an earlier one: nothing more is counted.
    assert_eq!(st.health.roll_up_requests(at(3600)).await.unwrap(), 0);
    assert_eq!(st.health.roll_up_requests(at(100)).await.unwrap(), 0);
    assert_eq!(stats(o.id, a.id).await.total_requests, 3);

    // The next window counts only what came after the mark.
    let d = server(db, o.id, "d").await;
    st.logs
        .insert_batch(&[record(o.id, d.id, 50, "ok", 9)])
        .await
        .unwrap();
    assert_eq!(st.health.roll_up_requests(at(7200)).await.unwrap(), 2);
    let sa = stats(o.id, a.id).await;
    assert_eq!(
        (sa.total_requests, sa.total_latency_ms, sa.last_request_at),
        (4, 1112, Some(at(4000)))
    );
    // A server first rolled up now gets everything it has.
    assert_eq!(stats(o.id, d.id).await.total_requests, 1);
}

async fn job_locks_exclude_each_other(db: &TestDb) {
    let locks = &db.stores().locks;
    let held = locks.try_lock("health:x").await.unwrap().unwrap();
    assert!(locks.try_lock("health:x").await.unwrap().is_none());
    let other = locks.try_lock("health:y").await.unwrap();
    assert!(other.is_some());
    held.release().await;
    let again = locks.try_lock("health:x").await.unwrap().unwrap();

    if db.backend() == gateway_types::config::DatabaseBackend::Postgres {
        // Another process (its own pool): the advisory lock holds across connections, and a
        // lock dropped without release is freed when its connection closes.
        let second = gateway_store::connect(db.config()).await.unwrap();
        assert!(second.locks.try_lock("health:x").await.unwrap().is_none());
        again.release().await;
        let theirs = second.locks.try_lock("health:x").await.unwrap().unwrap();
        assert!(locks.try_lock("health:x").await.unwrap().is_none());
        drop(theirs);
        let mut freed = None;
        for _ in 0..100 {
            freed = locks.try_lock("health:x").await.unwrap();
            if freed.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(freed.is_some(), "a dropped lock is freed with its connection");
    } else {
        again.release().await;
    }
}
