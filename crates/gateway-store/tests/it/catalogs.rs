use std::collections::BTreeMap;

use gateway_types::model::{ServerCatalog, ToolChange, ToolChangeStatus, ToolPin};
use serde_json::json;

use crate::harness::{TestDb, assert_not_found, at, contract, org, server};

contract!(put_replaces_and_reads_back, isolation_and_cascade);

fn sample(c: &mut ServerCatalog) {
    c.protocol_version = Some("2025-11-25".into());
    c.server_info = Some(json!({"name": "everything", "version": "1"}));
    c.capabilities = Some(json!({"tools": {"listChanged": true}}));
    c.instructions = Some("be nice".into());
    c.tools = vec![json!({"name": "echo", "description": "d", "inputSchema": {"type": "object"}})];
    c.resources = vec![json!({"uri": "test://1", "name": "one"})];
    c.resource_templates = vec![json!({"uriTemplate": "test://{id}", "name": "t"})];
    c.prompts = vec![json!({"name": "p"})];
    c.fingerprint = Some("ab".repeat(32));
    c.pins = BTreeMap::from([(
        "echo".to_owned(),
        ToolPin {
            fingerprint: "cd".repeat(32),
            definition: json!({"description": "d"}),
            pinned_at: at(5),
        },
    )]);
    c.changes = vec![ToolChange {
        tool: "echo".into(),
        old_fingerprint: "cd".repeat(32),
        new_fingerprint: "ef".repeat(32),
        old_definition: json!({"description": "d"}),
        new_definition: json!({"description": "e"}),
        detected_at: at(6),
        status: ToolChangeStatus::Pending,
        approved_at: None,
        approved_by: None,
    }];
    c.refreshed_at = Some(at(7));
}

async fn put_replaces_and_reads_back(db: &TestDb) {
    let s = &db.stores().catalogs;
    let o = org(db).await;
    let srv = server(db, o.id, "cat").await;
    assert_eq!(s.get(o.id, srv.id).await.unwrap(), None);
    let mut c = ServerCatalog::empty(o.id, srv.id, at(1));
    sample(&mut c);
    let latest = db.stores().changes.latest_id().await.unwrap();
    let saved = s.put(o.id, c.clone()).await.unwrap();
    assert_eq!(saved, c);
    assert_eq!(s.get(o.id, srv.id).await.unwrap(), Some(c.clone()));
    // Every write is announced to the other replicas.
    let entries = db.stores().changes.since(latest, 10).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.kind == "catalog" && e.entity_id == srv.id.to_string())
    );

    // A failed refresh: the catalog kept, the error recorded, one row still.
    c.last_error = Some("cannot connect to the server".into());
    c.attempted_at = at(9);
    s.put(o.id, c.clone()).await.unwrap();
    let all = s.list_all().await.unwrap();
    let mine: Vec<_> = all.iter().filter(|x| x.server_id == srv.id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0], &c);
}

async fn isolation_and_cascade(db: &TestDb) {
    let s = &db.stores().catalogs;
    let mine = org(db).await;
    let theirs = org(db).await;
    let srv = server(db, theirs.id, "theirs").await;
    s.put(theirs.id, ServerCatalog::empty(theirs.id, srv.id, at(1)))
        .await
        .unwrap();
    assert_eq!(s.get(mine.id, srv.id).await.unwrap(), None);
    assert_not_found(s.put(mine.id, ServerCatalog::empty(mine.id, srv.id, at(2))).await);
    assert_eq!(
        s.get(theirs.id, srv.id).await.unwrap().unwrap().attempted_at,
        at(1)
    );
    // Deleting the server deletes its catalog.
    db.stores().servers.delete(theirs.id, srv.id).await.unwrap();
    assert_eq!(s.get(theirs.id, srv.id).await.unwrap(), None);
    assert!(s.list_all().await.unwrap().iter().all(|c| c.server_id != srv.id));
}
