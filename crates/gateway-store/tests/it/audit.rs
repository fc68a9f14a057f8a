use std::collections::HashSet;
use std::sync::Arc;

use gateway_types::ids::OrgId;
use gateway_types::model::{AuditLog, NewAuditLog};
use gateway_types::store::{AuditChainHead, AuditFilter, AuditHasher};

use crate::harness::{TestDb, assert_not_found, contract, org};

contract!(
    append_links_the_chain,
    list_filters_newest_first,
    chains_are_per_organization,
    concurrent_appends_never_fork,
    head_follows_the_newest_record
);

/// A deterministic stand-in for the real (SHA-256) hasher.
struct TestHasher;

impl AuditHasher for TestHasher {
    fn genesis(&self, org: OrgId) -> String {
        format!("genesis:{org}")
    }

    fn hash(&self, record: &AuditLog) -> String {
        assert!(record.hash.is_empty(), "hashed with its hash field empty");
        let text = format!(
            "{}|{}|{}|{}|{}",
            record.prev_hash, record.seq, record.action, record.id, record.org_id
        );
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

fn event(action: &str, actor: &str) -> NewAuditLog {
    NewAuditLog {
        actor_type: "user".into(),
        actor_id: Some(actor.into()),
        action: action.into(),
        target_type: Some("server".into()),
        target_id: Some("s1".into()),
        before_state: None,
        after_state: Some(serde_json::json!({"name": "files"})),
        ip: Some("127.0.0.1".into()),
        request_id: Some("req-1".into()),
    }
}

/// Asserts `records` (ascending) is a complete, linked chain from seq 1.
#[track_caller]
fn assert_linked(org: OrgId, records: &[AuditLog]) {
    let mut prev = TestHasher.genesis(org);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "seqs are 1..N without gaps");
        assert_eq!(r.prev_hash, prev, "record {} links to its predecessor", r.seq);
        let mut unhashed = r.clone();
        unhashed.hash = String::new();
        assert_eq!(r.hash, TestHasher.hash(&unhashed));
        prev = r.hash.clone();
    }
}

async fn append_links_the_chain(db: &TestDb) {
    let s = &db.stores().audit;
    let o = org(db).await;
    let first = s
        .append(o.id, event("server.create", "u1"), &TestHasher)
        .await
        .unwrap();
    assert_eq!(
        (first.seq, first.prev_hash.as_str()),
        (1, TestHasher.genesis(o.id).as_str())
    );
    assert_eq!(first.after_state, Some(serde_json::json!({"name": "files"})));
    let second = s
        .append(o.id, event("server.update", "u1"), &TestHasher)
        .await
        .unwrap();
    assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
    for i in 0..5 {
        s.append(o.id, event(&format!("a{i}"), "u2"), &TestHasher)
            .await
            .unwrap();
    }
    let chain = s.chain(o.id, 0, 100).await.unwrap();
    assert_eq!(chain.len(), 7);
    assert_eq!(chain[0], first, "stored exactly as returned");
    assert_linked(o.id, &chain);
    // Paging through the chain.
    let page: Vec<_> = s
        .chain(o.id, 2, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(page, [3, 4, 5]);
    assert_eq!(s.chain(o.id, 7, 10).await.unwrap(), vec![]);
    // An unknown organization has no chain to extend.
    assert_not_found(s.append(OrgId::new(), event("x", "u"), &TestHasher).await);
}

async fn list_filters_newest_first(db: &TestDb) {
    let s = &db.stores().audit;
    let o = org(db).await;
    for (action, actor) in [
        ("login", "a"),
        ("server.create", "b"),
        ("login", "b"),
        ("server.delete", "a"),
    ] {
        s.append(o.id, event(action, actor), &TestHasher).await.unwrap();
    }
    let seqs = |v: Vec<AuditLog>| v.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(s.list(o.id, AuditFilter::default(), 10).await.unwrap()),
        [4, 3, 2, 1]
    );
    assert_eq!(
        seqs(s.list(o.id, AuditFilter::default(), 2).await.unwrap()),
        [4, 3]
    );
    assert_eq!(
        seqs(
            s.list(
                o.id,
                AuditFilter {
                    before_seq: Some(3),
                    ..Default::default()
                },
                10
            )
            .await
            .unwrap()
        ),
        [2, 1]
    );
    assert_eq!(
        seqs(
            s.list(
                o.id,
                AuditFilter {
                    action: Some("login".into()),
                    ..Default::default()
                },
                10
            )
            .await
            .unwrap()
        ),
        [3, 1]
    );
    assert_eq!(
        seqs(
            s.list(
                o.id,
                AuditFilter {
                    actor_id: Some("a".into()),
                    ..Default::default()
                },
                10
            )
            .await
            .unwrap()
        ),
        [4, 1]
    );
    let all = s.list(o.id, AuditFilter::default(), 10).await.unwrap();
    let (t1, t3) = (all[3].created_at, all[1].created_at);
    let window = s
        .list(
            o.id,
            AuditFilter {
                from: Some(t1),
                to: Some(t3),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert!(
        window.iter().all(|r| r.created_at >= t1 && r.created_at < t3),
        "{window:?}"
    );
    assert!(window.iter().any(|r| r.seq == 1));
    assert!(!window.iter().any(|r| r.seq == 3 || r.seq == 4));
    let empty = s.list(
        o.id,
        AuditFilter {
            from: Some(all[0].created_at + chrono::Duration::seconds(1)),
            ..Default::default()
        },
        10,
    );
    assert_eq!(empty.await.unwrap(), vec![]);
}

async fn chains_are_per_organization(db: &TestDb) {
    let s = &db.stores().audit;
    let a = org(db).await;
    let b = org(db).await;
    s.append(a.id, event("x", "u"), &TestHasher).await.unwrap();
    s.append(a.id, event("y", "u"), &TestHasher).await.unwrap();
    let b1 = s.append(b.id, event("z", "u"), &TestHasher).await.unwrap();
    assert_eq!((b1.seq, b1.prev_hash), (1, TestHasher.genesis(b.id)));
    assert_eq!(s.list(b.id, AuditFilter::default(), 10).await.unwrap().len(), 1);
    assert_eq!(s.chain(a.id, 0, 10).await.unwrap().len(), 2);
    // Deleting an organization deletes its chain.
    db.stores().organizations.delete(a.id).await.unwrap();
    assert_eq!(s.chain(a.id, 0, 10).await.unwrap(), vec![]);
}

async fn concurrent_appends_never_fork(db: &TestDb) {
    const TASKS: usize = 8;
    const EACH: usize = 10;
    let s = db.stores().audit.clone();
    let o = org(db).await;
    let other = org(db).await;
    let hasher = Arc::new(TestHasher);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (s, hasher) = (s.clone(), hasher.clone());
        let target = if t % 4 == 3 { other.id } else { o.id };
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                seqs.push(
                    s.append(target, event(&format!("t{t}-{i}"), "u"), hasher.as_ref())
                        .await
                        .unwrap()
                        .seq,
                );
            }
            seqs
        });
    }
    let mut returned = Vec::new();
    while let Some(seqs) = tasks.join_next().await {
        returned.extend(seqs.unwrap());
    }
    assert_eq!(returned.len(), TASKS * EACH);

    for (org_id, tasks_of_org) in [(o.id, 6), (other.id, 2)] {
        let chain = s.chain(org_id, 0, 1000).await.unwrap();
        assert_eq!(chain.len(), tasks_of_org * EACH);
        assert_linked(org_id, &chain);
        let actions: HashSet<_> = chain.iter().map(|r| r.action.clone()).collect();
        assert_eq!(
            actions.len(),
            chain.len(),
            "every append is in the chain exactly once"
        );
    }
}

async fn head_follows_the_newest_record(db: &TestDb) {
    let s = &db.stores().audit;
    let o = org(db).await;
    let other = org(db).await;
    assert_eq!(s.head(o.id).await.unwrap(), None, "no appends yet");
    let first = s.append(o.id, event("a", "u"), &TestHasher).await.unwrap();
    assert_eq!(
        s.head(o.id).await.unwrap(),
        Some(AuditChainHead {
            last_seq: 1,
            last_hash: first.hash.clone()
        })
    );
    let second = s.append(o.id, event("b", "u"), &TestHasher).await.unwrap();
    assert_eq!(
        s.head(o.id).await.unwrap(),
        Some(AuditChainHead {
            last_seq: 2,
            last_hash: second.hash
        })
    );
    assert_eq!(
        s.head(other.id).await.unwrap(),
        None,
        "heads are per organization"
    );
    assert_eq!(s.head(OrgId::new()).await.unwrap(), None);
}
