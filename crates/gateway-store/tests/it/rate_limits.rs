use gateway_types::ids::RateLimitId;
use gateway_types::model::{NewRateLimitRule, RateLimitRulePatch, RateLimitScope, RateLimitUsage};

use crate::harness::{TestDb, assert_conflict, assert_not_found, at, change, changes_since, contract, org};

contract!(rules_crud_and_isolation, usage_accumulates);

fn rule(name: &str, enabled: bool) -> NewRateLimitRule {
    NewRateLimitRule {
        name: name.into(),
        scope: RateLimitScope::Tool,
        match_value: Some("read_file".into()),
        limit_count: 100,
        window_seconds: 60,
        enabled,
    }
}

async fn rules_crud_and_isolation(db: &TestDb) {
    let s = &db.stores().rate_limits;
    let o = org(db).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let b = s.create(o.id, rule("b-rule", true)).await.unwrap();
    let a = s.create(o.id, rule("a-rule", false)).await.unwrap();
    assert_eq!(
        (b.scope, b.limit_count, b.enabled),
        (RateLimitScope::Tool, 100, true)
    );
    assert_eq!(s.get(o.id, b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(s.get(o.id, RateLimitId::new()).await.unwrap(), None);
    assert_conflict(s.create(o.id, rule("b-rule", true)).await, "rate limit name");
    let names: Vec<_> = s.list(o.id).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a-rule", "b-rule"]);

    let other = org(db).await;
    let theirs = s.create(other.id, rule("b-rule", true)).await.unwrap();
    let enabled: Vec<_> = s
        .list_all_enabled()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(enabled.contains(&b.id) && enabled.contains(&theirs.id) && !enabled.contains(&a.id));

    let patched = s
        .update(
            o.id,
            a.id,
            RateLimitRulePatch {
                enabled: Some(true),
                match_value: Some(None),
                limit_count: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            patched.enabled,
            patched.match_value,
            patched.limit_count,
            patched.window_seconds
        ),
        (true, None, 5, 60)
    );
    assert_conflict(
        s.update(
            o.id,
            a.id,
            RateLimitRulePatch {
                name: Some("b-rule".into()),
                ..Default::default()
            },
        )
        .await,
        "rate limit name",
    );

    assert_eq!(s.get(other.id, b.id).await.unwrap(), None);
    assert_not_found(s.update(other.id, b.id, RateLimitRulePatch::default()).await);
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
            change("rate_limit", b.id, "create"),
            change("rate_limit", a.id, "create"),
            change("rate_limit", a.id, "update"),
            change("rate_limit", b.id, "delete"),
        ]
    );
}

async fn usage_accumulates(db: &TestDb) {
    let s = &db.stores().rate_limits;
    let o = org(db).await;
    let other = org(db).await;
    let r = s.create(o.id, rule("r", true)).await.unwrap();
    let their_rule = s.create(other.id, rule("t", true)).await.unwrap();
    let usage = |key: &str, window: i64, allowed, rejected, rule| RateLimitUsage {
        org_id: o.id,
        rate_limit_id: rule,
        rule_key: key.into(),
        window_start: at(window),
        allowed_count: allowed,
        rejected_count: rejected,
    };
    s.add_usage(&[
        usage("tool:read", 60, 5, 1, Some(r.id)),
        usage("ip:1", 0, 2, 0, None),
    ])
    .await
    .unwrap();
    s.add_usage(&[
        usage("tool:read", 60, 10, 2, Some(r.id)),
        usage("tool:read", 0, 1, 0, Some(r.id)),
    ])
    .await
    .unwrap();
    s.add_usage(&[]).await.unwrap();
    // A rule of another organization is not linked.
    s.add_usage(&[usage("tool:x", 60, 1, 0, Some(their_rule.id))])
        .await
        .unwrap();

    let got = s.usage(o.id, at(0), at(120)).await.unwrap();
    let rows: Vec<_> = got
        .iter()
        .map(|u| {
            (
                u.window_start,
                u.rule_key.as_str(),
                u.allowed_count,
                u.rejected_count,
                u.rate_limit_id,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (at(0), "ip:1", 2, 0, None),
            (at(0), "tool:read", 1, 0, Some(r.id)),
            (at(60), "tool:read", 15, 3, Some(r.id)),
            (at(60), "tool:x", 1, 0, None),
        ],
        "ordered by window then key, counts added"
    );
    assert_eq!(s.usage(o.id, at(0), at(60)).await.unwrap().len(), 2, "[from, to)");
    assert_eq!(s.usage(other.id, at(0), at(120)).await.unwrap(), vec![]);

    // Deleting the rule deletes its usage.
    s.delete(o.id, r.id).await.unwrap();
    let left: Vec<_> = s
        .usage(o.id, at(0), at(120))
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.rule_key)
        .collect();
    assert_eq!(left, ["ip:1", "tool:x"]);
}
