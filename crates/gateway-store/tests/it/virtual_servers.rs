use gateway_types::ids::VirtualServerId;
use gateway_types::model::{AdapterType, NewVirtualServer, Sealed, ServerStatus, VirtualServerPatch};

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, change, changes_since, contract, namespace, org,
};

contract!(crud_conflicts_and_isolation);

fn new_virtual(name: &str) -> NewVirtualServer {
    NewVirtualServer {
        namespace_id: None,
        name: name.into(),
        description: Some("weather API".into()),
        adapter_type: AdapterType::Rest,
        endpoint_url: Some("https://api.example.invalid".into()),
        config: serde_json::json!({"base_path": "/v1"}),
        tools: serde_json::json!([{"name": "forecast", "method": "GET", "path": "/forecast"}]),
        credentials: Some(Sealed("k1:abc".into())),
    }
}

async fn crud_conflicts_and_isolation(db: &TestDb) {
    let s = &db.stores().virtual_servers;
    let o = org(db).await;
    let ns = namespace(db, o.id, "v").await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let w = s
        .create(
            o.id,
            NewVirtualServer {
                namespace_id: Some(ns.id),
                ..new_virtual("weather")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (w.status, w.adapter_type, w.namespace_id),
        (ServerStatus::Active, AdapterType::Rest, Some(ns.id))
    );
    assert_eq!(w.tools, new_virtual("x").tools);
    assert_eq!(s.get(o.id, w.id).await.unwrap(), Some(w.clone()));
    let a = s.create(o.id, new_virtual("atlas")).await.unwrap();
    assert_conflict(
        s.create(o.id, new_virtual("weather")).await,
        "virtual server name",
    );
    let names: Vec<_> = s.list(o.id).await.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["atlas", "weather"]);

    let patched = s
        .update(
            o.id,
            w.id,
            VirtualServerPatch {
                endpoint_url: Some(None),
                credentials: Some(None),
                status: Some(ServerStatus::Inactive),
                config: Some(serde_json::json!({"base_path": "/v2"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.endpoint_url, patched.credentials, patched.status),
        (None, None, ServerStatus::Inactive)
    );
    assert_eq!(patched.config["base_path"], "/v2");
    assert_eq!(patched.description, w.description);
    assert_conflict(
        s.update(
            o.id,
            a.id,
            VirtualServerPatch {
                name: Some("weather".into()),
                ..Default::default()
            },
        )
        .await,
        "virtual server name",
    );

    let theirs = org(db).await;
    let their_ns = namespace(db, theirs.id, "t").await;
    assert_eq!(s.get(theirs.id, w.id).await.unwrap(), None);
    assert!(s.list(theirs.id).await.unwrap().is_empty());
    assert_not_found(s.update(theirs.id, w.id, VirtualServerPatch::default()).await);
    assert_not_found(s.delete(theirs.id, w.id).await);
    assert_not_found(
        s.create(
            o.id,
            NewVirtualServer {
                namespace_id: Some(their_ns.id),
                ..new_virtual("x")
            },
        )
        .await,
    );
    assert_not_found(
        s.update(o.id, VirtualServerId::new(), VirtualServerPatch::default())
            .await,
    );

    s.delete(o.id, a.id).await.unwrap();
    assert_eq!(s.get(o.id, a.id).await.unwrap(), None);
    assert_not_found(s.delete(o.id, a.id).await);
    let ids = [w.id.to_string(), a.id.to_string()];
    let log: Vec<_> = changes_since(db, before)
        .await
        .into_iter()
        .filter(|c| ids.contains(&c.1))
        .collect();
    assert_eq!(
        log,
        [
            change("virtual_server", w.id, "create"),
            change("virtual_server", a.id, "create"),
            change("virtual_server", w.id, "update"),
            change("virtual_server", a.id, "delete"),
        ]
    );
}
