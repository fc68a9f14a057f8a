use gateway_types::ids::ApiKeyId;
use gateway_types::model::ApiKeyType;

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, at, change, changes_since, contract, key, namespace, new_key,
    org, user,
};

contract!(
    create_find_list,
    conflicts_and_cross_tenant_references,
    revoke_is_idempotent,
    touch_last_used_batch
);

async fn create_find_list(db: &TestDb) {
    let s = &db.stores().api_keys;
    let o = org(db).await;
    let u = user(db, o.id, "keys@example.com").await;
    let ns = namespace(db, o.id, "ns").await;
    let first = s
        .create(o.id, new_key("h1", Some(u.id), Some(ns.id)))
        .await
        .unwrap();
    assert_eq!(first.key_type, ApiKeyType::User);
    assert_eq!(first.permissions, ["servers:read", "tools:call"]);
    assert_eq!(
        (first.user_id, first.namespace_id, first.expires_at),
        (Some(u.id), Some(ns.id), Some(at(3600)))
    );
    assert_eq!((first.last_used_at, first.revoked_at), (None, None));
    let second = key(db, o.id, "h2", None).await;
    let third = key(db, o.id, "h3", Some(u.id)).await;

    assert_eq!(s.get(o.id, first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(s.find_by_hash("h2").await.unwrap(), Some(second.clone()));
    assert_eq!(s.find_by_hash("nope").await.unwrap(), None);
    let all: Vec<_> = s
        .list(o.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(all, [third.id, second.id, first.id], "newest first");
    let users: Vec<_> = s
        .list(o.id, Some(u.id))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(users, [third.id, first.id]);
}

async fn conflicts_and_cross_tenant_references(db: &TestDb) {
    let s = &db.stores().api_keys;
    let o = org(db).await;
    let other = org(db).await;
    key(db, o.id, "dup", None).await;
    assert_conflict(s.create(other.id, new_key("dup", None, None)).await, "api key");

    let their_user = user(db, other.id, "their@example.com").await;
    let their_ns = namespace(db, other.id, "their").await;
    assert_not_found(s.create(o.id, new_key("x1", Some(their_user.id), None)).await);
    assert_not_found(s.create(o.id, new_key("x2", None, Some(their_ns.id))).await);
    let k = key(db, other.id, "theirs", None).await;
    assert_eq!(s.get(o.id, k.id).await.unwrap(), None);
    assert!(s.list(o.id, None).await.unwrap().iter().all(|k| k.org_id == o.id));
    assert_not_found(s.revoke(o.id, k.id, at(0)).await);
    assert_eq!(s.get(other.id, k.id).await.unwrap().unwrap().revoked_at, None);
}

async fn revoke_is_idempotent(db: &TestDb) {
    let s = &db.stores().api_keys;
    let o = org(db).await;
    let k = key(db, o.id, "rev", None).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    s.revoke(o.id, k.id, at(10)).await.unwrap();
    s.revoke(o.id, k.id, at(20)).await.unwrap();
    assert_eq!(
        s.get(o.id, k.id).await.unwrap().unwrap().revoked_at,
        Some(at(10)),
        "the first time stays"
    );
    // Revoked keys are still found: the caller decides.
    assert_eq!(
        s.find_by_hash("rev").await.unwrap().unwrap().revoked_at,
        Some(at(10))
    );
    assert_not_found(s.revoke(o.id, ApiKeyId::new(), at(0)).await);
    assert_eq!(
        changes_since(db, before).await,
        [change("api_key", k.id, "update")]
    );
}

async fn touch_last_used_batch(db: &TestDb) {
    let s = &db.stores().api_keys;
    let o = org(db).await;
    let a = key(db, o.id, "ta", None).await;
    let b = key(db, o.id, "tb", None).await;
    let c = key(db, o.id, "tc", None).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    s.touch_last_used(&[
        (a.id, at(5)),
        (b.id, at(7)),
        (a.id, at(9)),
        (a.id, at(6)),
        (ApiKeyId::new(), at(1)),
    ])
    .await
    .unwrap();
    s.touch_last_used(&[]).await.unwrap();
    assert_eq!(
        s.get(o.id, a.id).await.unwrap().unwrap().last_used_at,
        Some(at(9)),
        "the latest in a batch wins"
    );
    assert_eq!(
        s.get(o.id, b.id).await.unwrap().unwrap().last_used_at,
        Some(at(7))
    );
    assert_eq!(s.get(o.id, c.id).await.unwrap().unwrap().last_used_at, None);
    // An older time never moves it back.
    s.touch_last_used(&[(a.id, at(8)), (b.id, at(70))]).await.unwrap();
    assert_eq!(
        s.get(o.id, a.id).await.unwrap().unwrap().last_used_at,
        Some(at(9))
    );
    assert_eq!(
        s.get(o.id, b.id).await.unwrap().unwrap().last_used_at,
        Some(at(70))
    );
    assert_eq!(
        changes_since(db, before).await,
        [],
        "usage is not a configuration change"
    );
}
