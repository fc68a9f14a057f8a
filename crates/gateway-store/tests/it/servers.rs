use gateway_types::ids::ServerId;
use gateway_types::model::{
    HealthStatus, McpServerPatch, NewHealthCheck, NewMcpServer, Page, RecordSource, Sealed, ServerFilter,
    ServerProtocol, ServerStatsDelta, ServerStatus,
};

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, at, change, changes_since, contract, namespace, new_server,
    org, server,
};

contract!(
    crud_round_trips_every_field,
    list_filters_and_pages,
    tenant_isolation,
    delete_removes_health_and_stats
);

async fn crud_round_trips_every_field(db: &TestDb) {
    let s = &db.stores().servers;
    let o = org(db).await;
    let ns = namespace(db, o.id, "tools").await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let new = NewMcpServer {
        namespace_id: Some(ns.id),
        name: "files".into(),
        description: None,
        protocol: ServerProtocol::Stdio,
        url: None,
        command: Some("npx".into()),
        args: vec!["-y".into(), "@mcp/files".into(), "--root=/tmp/a b".into()],
        environment: Some(Sealed("k1:c2VjcmV0".into())),
        credentials: Some(Sealed("k1:dG9rZW4=".into())),
        working_dir: Some("/srv".into()),
        timeout_seconds: 12,
        max_retries: 0,
        status: ServerStatus::Inactive,
        health_check_url: Some("http://127.0.0.1:9/health".into()),
        tags: vec!["fs".into(), "local".into()],
        metadata: serde_json::json!({"owner": "ops", "nested": {"n": [1, 2.5, null, "x"]}}),
        source: RecordSource::Config,
    };
    let created = s.create(o.id, new.clone()).await.unwrap();
    assert_eq!(
        (
            created.namespace_id,
            &created.name,
            &created.args,
            &created.environment,
            &created.credentials
        ),
        (
            Some(ns.id),
            &new.name,
            &new.args,
            &new.environment,
            &new.credentials
        )
    );
    assert_eq!(
        (&created.tags, &created.metadata, created.source),
        (&new.tags, &new.metadata, RecordSource::Config)
    );
    assert_eq!(s.get(o.id, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(s.get_by_name(o.id, "files").await.unwrap(), Some(created.clone()));
    assert_eq!(s.get_by_name(o.id, "nope").await.unwrap(), None);
    assert_eq!(s.get(o.id, ServerId::new()).await.unwrap(), None);
    assert_conflict(s.create(o.id, new_server("files")).await, "server name");

    let patched = s
        .update(
            o.id,
            created.id,
            McpServerPatch {
                namespace_id: Some(None),
                description: Some(Some("now described".into())),
                environment: Some(None),
                tags: Some(vec!["fs".into()]),
                status: Some(ServerStatus::Unhealthy),
                timeout_seconds: Some(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.namespace_id, None);
    assert_eq!(patched.description.as_deref(), Some("now described"));
    assert_eq!(patched.environment, None);
    assert_eq!(patched.credentials, new.credentials, "untouched");
    assert_eq!(
        (patched.tags.as_slice(), patched.status, patched.timeout_seconds),
        (&["fs".to_owned()][..], ServerStatus::Unhealthy, 60)
    );
    assert_eq!(patched.args, new.args);
    assert_eq!(s.get(o.id, created.id).await.unwrap(), Some(patched.clone()));

    let other = server(db, o.id, "other").await;
    assert_conflict(
        s.update(
            o.id,
            other.id,
            McpServerPatch {
                name: Some("files".into()),
                ..Default::default()
            },
        )
        .await,
        "server name",
    );
    assert_not_found(s.update(o.id, ServerId::new(), McpServerPatch::default()).await);
    assert_eq!(s.count(o.id).await.unwrap(), 2);

    s.delete(o.id, other.id).await.unwrap();
    assert_not_found(s.delete(o.id, other.id).await);
    assert_eq!(s.count(o.id).await.unwrap(), 1);
    assert_eq!(
        changes_since(db, before).await,
        [
            change("server", created.id, "create"),
            change("server", created.id, "update"),
            change("server", other.id, "create"),
            change("server", other.id, "delete"),
        ]
    );
}

async fn list_filters_and_pages(db: &TestDb) {
    let s = &db.stores().servers;
    let o = org(db).await;
    let ns = namespace(db, o.id, "n").await;
    let mk = |name: &str, protocol, status, tags: &[&str], in_ns: bool, source| NewMcpServer {
        namespace_id: in_ns.then_some(ns.id),
        protocol,
        status,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        source,
        ..new_server(name)
    };
    for new in [
        mk(
            "delta",
            ServerProtocol::Http,
            ServerStatus::Active,
            &["a", "b"],
            true,
            RecordSource::Api,
        ),
        mk(
            "alpha",
            ServerProtocol::Sse,
            ServerStatus::Active,
            &["b"],
            false,
            RecordSource::Api,
        ),
        mk(
            "charlie",
            ServerProtocol::Http,
            ServerStatus::Error,
            &["ab"],
            true,
            RecordSource::Config,
        ),
        mk(
            "bravo",
            ServerProtocol::Ws,
            ServerStatus::Active,
            &[],
            false,
            RecordSource::Api,
        ),
    ] {
        s.create(o.id, new).await.unwrap();
    }
    let names = |p: gateway_types::model::Paged<gateway_types::model::McpServer>| {
        (p.total, p.items.into_iter().map(|s| s.name).collect::<Vec<_>>())
    };
    let all = s
        .list(o.id, ServerFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(
        names(all),
        (
            4,
            vec!["alpha".into(), "bravo".into(), "charlie".into(), "delta".into()]
        )
    );
    let page = s
        .list(o.id, ServerFilter::default(), Page { offset: 1, limit: 2 })
        .await
        .unwrap();
    assert_eq!(names(page), (4, vec!["bravo".into(), "charlie".into()]));

    let filter = |f: ServerFilter| async move { names(s.list(o.id, f, Page::default()).await.unwrap()).1 };
    assert_eq!(
        filter(ServerFilter {
            namespace_id: Some(ns.id),
            ..Default::default()
        })
        .await,
        ["charlie", "delta"]
    );
    assert_eq!(
        filter(ServerFilter {
            protocol: Some(ServerProtocol::Http),
            ..Default::default()
        })
        .await,
        ["charlie", "delta"]
    );
    assert_eq!(
        filter(ServerFilter {
            status: Some(ServerStatus::Active),
            ..Default::default()
        })
        .await,
        ["alpha", "bravo", "delta"]
    );
    assert_eq!(
        filter(ServerFilter {
            tag: Some("b".into()),
            ..Default::default()
        })
        .await,
        ["alpha", "delta"],
        "whole tags only"
    );
    assert_eq!(
        filter(ServerFilter {
            tag: Some("%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        filter(ServerFilter {
            source: Some(RecordSource::Config),
            ..Default::default()
        })
        .await,
        ["charlie"]
    );
    assert_eq!(
        filter(ServerFilter {
            search: Some("HAR".into()),
            ..Default::default()
        })
        .await,
        ["charlie"],
        "name search ignores case"
    );
    assert_eq!(
        filter(ServerFilter {
            search: Some("%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    let combined = ServerFilter {
        protocol: Some(ServerProtocol::Http),
        status: Some(ServerStatus::Active),
        tag: Some("a".into()),
        ..Default::default()
    };
    let page = s.list(o.id, combined, Page::default()).await.unwrap();
    assert_eq!(names(page), (1, vec!["delta".into()]));

    // list_all spans organizations, ordered by id.
    let other = org(db).await;
    server(db, other.id, "zulu").await;
    let everything = s.list_all().await.unwrap();
    let ids: Vec<_> = everything.iter().map(|s| s.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(everything.len(), 5);
}

async fn tenant_isolation(db: &TestDb) {
    let s = &db.stores().servers;
    let mine = org(db).await;
    let theirs = org(db).await;
    let their_ns = namespace(db, theirs.id, "ns").await;
    let srv = server(db, theirs.id, "shared-name").await;
    // Names are per organization.
    server(db, mine.id, "shared-name").await;
    assert_eq!(s.get(mine.id, srv.id).await.unwrap(), None);
    assert_ne!(
        s.get_by_name(mine.id, "shared-name").await.unwrap().unwrap().id,
        srv.id
    );
    assert_eq!(s.count(mine.id).await.unwrap(), 1);
    assert_not_found(
        s.update(
            mine.id,
            srv.id,
            McpServerPatch {
                max_retries: Some(9),
                ..Default::default()
            },
        )
        .await,
    );
    assert_not_found(s.delete(mine.id, srv.id).await);
    // A namespace of another organization cannot be referenced.
    assert_not_found(
        s.create(
            mine.id,
            NewMcpServer {
                namespace_id: Some(their_ns.id),
                ..new_server("x")
            },
        )
        .await,
    );
    let own = s.get_by_name(mine.id, "shared-name").await.unwrap().unwrap();
    assert_not_found(
        s.update(
            mine.id,
            own.id,
            McpServerPatch {
                namespace_id: Some(Some(their_ns.id)),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(s.get(theirs.id, srv.id).await.unwrap().unwrap().max_retries, 2);
}

async fn delete_removes_health_and_stats(db: &TestDb) {
    let st = db.stores();
    let o = org(db).await;
    let srv = server(db, o.id, "checked").await;
    st.health
        .record(
            o.id,
            NewHealthCheck {
                server_id: srv.id,
                status: HealthStatus::Healthy,
                latency_ms: Some(1),
                error: None,
                checked_at: at(0),
            },
        )
        .await
        .unwrap();
    st.health
        .add_stats(
            o.id,
            srv.id,
            ServerStatsDelta {
                requests: 1,
                errors: 0,
                latency_ms: 5,
            },
            None,
            at(0),
        )
        .await
        .unwrap();
    st.servers.delete(o.id, srv.id).await.unwrap();
    assert_eq!(st.health.history(o.id, srv.id, 10).await.unwrap(), vec![]);
    assert_eq!(st.health.stats(o.id, srv.id).await.unwrap(), None);
}
