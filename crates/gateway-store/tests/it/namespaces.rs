use gateway_types::ids::NamespaceId;
use gateway_types::model::{NamespacePatch, NewMcpServer, NewNamespace, Page};

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, change, changes_since, contract, namespace, new_key,
    new_server, org,
};

contract!(
    crud_and_conflicts,
    pagination_and_cap,
    tenant_isolation,
    delete_detaches_servers_and_deletes_keys
);

async fn crud_and_conflicts(db: &TestDb) {
    let s = &db.stores().namespaces;
    let o = org(db).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let ns = s
        .create(
            o.id,
            NewNamespace {
                name: "Prod".into(),
                slug: "prod".into(),
                description: Some("p".into()),
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap();
    assert_eq!(ns.org_id, o.id);
    assert_eq!(s.get(o.id, ns.id).await.unwrap(), Some(ns.clone()));
    assert_eq!(s.get_by_slug(o.id, "prod").await.unwrap(), Some(ns.clone()));
    assert_eq!(s.get(o.id, NamespaceId::new()).await.unwrap(), None);

    assert_conflict(
        s.create(
            o.id,
            NewNamespace {
                name: "again".into(),
                slug: "prod".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await,
        "namespace slug",
    );
    // The same slug in another organization is fine.
    let other = org(db).await;
    namespace(db, other.id, "prod").await;

    let dev = namespace(db, o.id, "dev").await;
    let patched = s
        .update(
            o.id,
            ns.id,
            NamespacePatch {
                description: Some(None),
                name: Some("Production".into()),
                slug: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.description, None, "Some(None) clears");
    assert_eq!(patched.name, "Production");
    assert_eq!(patched.slug, "prod");
    assert_conflict(
        s.update(
            o.id,
            dev.id,
            NamespacePatch {
                slug: Some("prod".into()),
                ..Default::default()
            },
        )
        .await,
        "namespace slug",
    );
    assert_not_found(
        s.update(o.id, NamespaceId::new(), NamespacePatch::default())
            .await,
    );

    s.delete(o.id, dev.id).await.unwrap();
    assert_eq!(s.get(o.id, dev.id).await.unwrap(), None);
    assert_not_found(s.delete(o.id, dev.id).await);

    let ids = [ns.id.to_string(), dev.id.to_string()];
    let log: Vec<_> = changes_since(db, before)
        .await
        .into_iter()
        .filter(|c| ids.contains(&c.1))
        .collect();
    assert_eq!(
        log,
        [
            change("namespace", ns.id, "create"),
            change("namespace", dev.id, "create"),
            change("namespace", ns.id, "update"),
            change("namespace", dev.id, "delete"),
        ]
    );
}

async fn pagination_and_cap(db: &TestDb) {
    let s = &db.stores().namespaces;
    let o = org(db).await;
    for slug in ["e", "c", "a", "d", "b"] {
        namespace(db, o.id, slug).await;
    }
    let page = s.list(o.id, Page { offset: 1, limit: 2 }).await.unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        page.items.iter().map(|n| n.slug.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    let past_end = s.list(o.id, Page { offset: 10, limit: 2 }).await.unwrap();
    assert_eq!((past_end.total, past_end.items.len()), (5, 0));

    // Page limits are capped at Page::MAX_LIMIT.
    let big = org(db).await;
    for i in 0..(Page::MAX_LIMIT + 3) {
        namespace(db, big.id, &format!("ns{i:04}")).await;
    }
    let capped = s
        .list(
            big.id,
            Page {
                offset: 0,
                limit: u32::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(capped.total, u64::from(Page::MAX_LIMIT + 3));
    assert_eq!(capped.items.len(), Page::MAX_LIMIT as usize);
}

async fn tenant_isolation(db: &TestDb) {
    let s = &db.stores().namespaces;
    let mine = org(db).await;
    let theirs = org(db).await;
    let ns = namespace(db, theirs.id, "secret").await;
    assert_eq!(s.get(mine.id, ns.id).await.unwrap(), None);
    assert_eq!(s.get_by_slug(mine.id, "secret").await.unwrap(), None);
    assert_eq!(s.list(mine.id, Page::default()).await.unwrap().total, 0);
    assert_not_found(
        s.update(
            mine.id,
            ns.id,
            NamespacePatch {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .await,
    );
    assert_not_found(s.delete(mine.id, ns.id).await);
    assert_eq!(s.get(theirs.id, ns.id).await.unwrap(), Some(ns));
}

async fn delete_detaches_servers_and_deletes_keys(db: &TestDb) {
    let st = db.stores();
    let o = org(db).await;
    let ns = namespace(db, o.id, "team").await;
    let srv = st
        .servers
        .create(
            o.id,
            NewMcpServer {
                namespace_id: Some(ns.id),
                ..new_server("in-ns")
            },
        )
        .await
        .unwrap();
    let scoped = st
        .api_keys
        .create(o.id, new_key("scoped", None, Some(ns.id)))
        .await
        .unwrap();
    let unscoped = st
        .api_keys
        .create(o.id, new_key("unscoped", None, None))
        .await
        .unwrap();
    let before = st.changes.latest_id().await.unwrap();

    st.namespaces.delete(o.id, ns.id).await.unwrap();

    assert_eq!(
        st.servers.get(o.id, srv.id).await.unwrap().unwrap().namespace_id,
        None
    );
    assert_eq!(st.api_keys.get(o.id, scoped.id).await.unwrap(), None);
    assert!(st.api_keys.get(o.id, unscoped.id).await.unwrap().is_some());
    assert_eq!(
        changes_since(db, before).await,
        [
            change("api_key", scoped.id, "delete"),
            change("server", srv.id, "update"),
            change("namespace", ns.id, "delete"),
        ]
    );
}
