use gateway_types::ids::PolicyId;
use gateway_types::model::{NewPolicy, PolicyPatch, RecordSource};
use serde_json::json;

use crate::harness::{TestDb, assert_conflict, assert_not_found, change, changes_since, contract, org};

contract!(policies_crud_isolation_and_cascade);

fn policy(name: &str, enabled: bool) -> NewPolicy {
    NewPolicy {
        id: PolicyId::new(),
        name: name.into(),
        rule: json!({"effect": "deny", "actions": ["call"], "resources": [{"kind": "tool", "name": "get-*"}],
                     "conditions": {"arguments": [{"path": "/a/0", "op": "in", "value": [1, "x", null]}]}}),
        enabled,
        source: RecordSource::Api,
    }
}

async fn policies_crud_isolation_and_cascade(db: &TestDb) {
    let s = &db.stores().policies;
    let o = org(db).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let b = s.create(o.id, policy("b-rule", true)).await.unwrap();
    let a = s.create(o.id, policy("a-rule", false)).await.unwrap();
    assert_eq!(
        b.rule,
        policy("x", true).rule,
        "the rule document round-trips exactly"
    );
    assert_eq!((b.enabled, b.source), (true, RecordSource::Api));
    assert_eq!(s.get(o.id, b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(s.get(o.id, PolicyId::new()).await.unwrap(), None);
    assert_conflict(s.create(o.id, policy("b-rule", true)).await, "policy name");
    let names: Vec<_> = s.list(o.id).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["a-rule", "b-rule"]);

    let other = org(db).await;
    let theirs = s.create(other.id, policy("b-rule", true)).await.unwrap();
    let all: Vec<_> = s.list_all().await.unwrap().into_iter().map(|p| p.id).collect();
    assert!(all.contains(&a.id) && all.contains(&b.id) && all.contains(&theirs.id));

    let patched = s
        .update(
            o.id,
            a.id,
            PolicyPatch {
                enabled: Some(true),
                rule: Some(json!({"effect": "allow"})),
                name: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.enabled, patched.rule.clone()),
        (true, json!({"effect": "allow"}))
    );
    assert!(patched.updated_at >= a.updated_at);
    assert_conflict(
        s.update(
            o.id,
            a.id,
            PolicyPatch {
                name: Some("b-rule".into()),
                ..Default::default()
            },
        )
        .await,
        "policy name",
    );

    assert_eq!(
        s.get(other.id, b.id).await.unwrap(),
        None,
        "another organization's rule is invisible"
    );
    assert_not_found(s.update(other.id, b.id, PolicyPatch::default()).await);
    assert_not_found(s.delete(other.id, b.id).await);
    s.delete(o.id, b.id).await.unwrap();
    assert_not_found(s.delete(o.id, b.id).await);

    let ids = [a.id.to_string(), b.id.to_string()];
    let log: Vec<_> = changes_since(db, before)
        .await
        .into_iter()
        .filter(|c| ids.contains(&c.1))
        .collect();
    assert_eq!(
        log,
        [
            change("policy", b.id, "create"),
            change("policy", a.id, "create"),
            change("policy", a.id, "update"),
            change("policy", b.id, "delete"),
        ]
    );

    db.stores().organizations.delete(other.id).await.unwrap();
    assert!(
        !s.list_all().await.unwrap().iter().any(|p| p.id == theirs.id),
        "deleted with its organization"
    );
}
