use gateway_types::ids::SessionId;
use gateway_types::model::{McpSessionPatch, NewMcpSession, Page, SessionProtocol, SessionStatus};

use crate::harness::{TestDb, assert_conflict, assert_not_found, at, contract, key, org, server, user};

contract!(
    create_get_update,
    list_count_and_close_idle,
    references_stay_in_the_organization
);

fn new_session(server: Option<gateway_types::ids::ServerId>) -> NewMcpSession {
    NewMcpSession {
        id: SessionId::new(),
        server_id: server,
        namespace_id: None,
        user_id: None,
        api_key_id: None,
        protocol: SessionProtocol::StreamableHttp,
        protocol_version: Some("2025-06-18".into()),
        client_info: Some(serde_json::json!({"name": "inspector", "version": "1.0"})),
    }
}

async fn create_get_update(db: &TestDb) {
    let s = &db.stores().sessions;
    let o = org(db).await;
    let srv = server(db, o.id, "s").await;
    let u = user(db, o.id, "sess@example.com").await;
    let k = key(db, o.id, "sess-key", Some(u.id)).await;
    let new = NewMcpSession {
        user_id: Some(u.id),
        api_key_id: Some(k.id),
        ..new_session(Some(srv.id))
    };
    let created = s.create(o.id, new.clone()).await.unwrap();
    assert_eq!(
        (created.id, created.status, created.closed_at),
        (new.id, SessionStatus::Active, None)
    );
    assert_eq!(created.created_at, created.last_activity_at);
    assert_eq!(created.client_info, new.client_info);
    assert_eq!(s.get(o.id, created.id).await.unwrap(), Some(created.clone()));
    assert_conflict(s.create(o.id, new).await, "session id");

    let patched = s
        .update(
            o.id,
            created.id,
            McpSessionPatch {
                status: Some(SessionStatus::Idle),
                process_pid: Some(Some(4242)),
                process_status: Some(Some("running".into())),
                last_activity_at: Some(at(30)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.status, patched.process_pid, patched.last_activity_at),
        (SessionStatus::Idle, Some(4242), at(30))
    );
    assert_eq!(patched.protocol_version.as_deref(), Some("2025-06-18"));
    let cleared = s
        .update(
            o.id,
            created.id,
            McpSessionPatch {
                process_pid: Some(None),
                exit_code: Some(Some(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((cleared.process_pid, cleared.exit_code), (None, Some(1)));
    assert_eq!(
        s.update(o.id, created.id, McpSessionPatch::default())
            .await
            .unwrap(),
        cleared,
        "an empty patch changes nothing"
    );
    assert_not_found(s.update(o.id, SessionId::new(), McpSessionPatch::default()).await);
    assert_not_found(
        s.update(
            o.id,
            SessionId::new(),
            McpSessionPatch {
                status: Some(SessionStatus::Closed),
                ..Default::default()
            },
        )
        .await,
    );
}

async fn list_count_and_close_idle(db: &TestDb) {
    let s = &db.stores().sessions;
    let o = org(db).await;
    let srv = server(db, o.id, "s").await;
    let a = s.create(o.id, new_session(Some(srv.id))).await.unwrap();
    let b = s.create(o.id, new_session(None)).await.unwrap();
    let c = s.create(o.id, new_session(Some(srv.id))).await.unwrap();
    let ids = |p: gateway_types::model::Paged<gateway_types::model::McpSession>| {
        (p.total, p.items.into_iter().map(|s| s.id).collect::<Vec<_>>())
    };
    assert_eq!(
        ids(s.list(o.id, None, false, Page::default()).await.unwrap()),
        (3, vec![c.id, b.id, a.id]),
        "newest first"
    );
    assert_eq!(
        ids(s.list(o.id, Some(srv.id), false, Page::default()).await.unwrap()),
        (2, vec![c.id, a.id])
    );
    assert_eq!(
        ids(s
            .list(o.id, None, false, Page { offset: 1, limit: 1 })
            .await
            .unwrap()),
        (3, vec![b.id])
    );
    assert_eq!(s.count_open(o.id).await.unwrap(), 3);

    s.update(
        o.id,
        a.id,
        McpSessionPatch {
            last_activity_at: Some(at(10)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update(
        o.id,
        b.id,
        McpSessionPatch {
            last_activity_at: Some(at(100)),
            status: Some(SessionStatus::Idle),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update(
        o.id,
        c.id,
        McpSessionPatch {
            last_activity_at: Some(at(5)),
            status: Some(SessionStatus::Closed),
            closed_at: Some(at(6)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.count_open(o.id).await.unwrap(), 2);
    assert_eq!(
        ids(s.list(o.id, None, true, Page::default()).await.unwrap()),
        (2, vec![b.id, a.id])
    );

    // Only open sessions idle since before `before` close; closed ones keep their close time.
    assert_eq!(s.close_idle(at(50), at(60)).await.unwrap(), 1);
    let closed = s.get(o.id, a.id).await.unwrap().unwrap();
    assert_eq!(
        (closed.status, closed.closed_at),
        (SessionStatus::Closed, Some(at(60)))
    );
    assert_eq!(s.get(o.id, c.id).await.unwrap().unwrap().closed_at, Some(at(6)));
    assert_eq!(s.count_open(o.id).await.unwrap(), 1);
}

async fn references_stay_in_the_organization(db: &TestDb) {
    let s = &db.stores().sessions;
    let mine = org(db).await;
    let theirs = org(db).await;
    let their_srv = server(db, theirs.id, "s").await;
    let their_user = user(db, theirs.id, "their-sess@example.com").await;
    assert_not_found(s.create(mine.id, new_session(Some(their_srv.id))).await);
    assert_not_found(
        s.create(
            mine.id,
            NewMcpSession {
                user_id: Some(their_user.id),
                ..new_session(None)
            },
        )
        .await,
    );
    let theirs_session = s
        .create(theirs.id, new_session(Some(their_srv.id)))
        .await
        .unwrap();
    assert_eq!(s.get(mine.id, theirs_session.id).await.unwrap(), None);
    assert_eq!(
        s.list(mine.id, None, false, Page::default()).await.unwrap().total,
        0
    );
    assert_eq!(s.count_open(mine.id).await.unwrap(), 0);
    assert_not_found(
        s.update(
            mine.id,
            theirs_session.id,
            McpSessionPatch {
                status: Some(SessionStatus::Closed),
                ..Default::default()
            },
        )
        .await,
    );
    // Deleting the server detaches its sessions.
    db.stores().servers.delete(theirs.id, their_srv.id).await.unwrap();
    assert_eq!(
        s.get(theirs.id, theirs_session.id)
            .await
            .unwrap()
            .unwrap()
            .server_id,
        None
    );
}
