use gateway_types::model::{NewNamespace, NewOrganization, Plan};

use crate::harness::{TestDb, at, change, changes_since, contract};

contract!(since_latest_and_prune, ids_follow_commit_order_under_concurrency);

async fn since_latest_and_prune(db: &TestDb) {
    let st = db.stores();
    assert_eq!(
        st.changes.latest_id().await.unwrap(),
        0,
        "a new database has no changes"
    );
    assert_eq!(st.changes.since(0, 10).await.unwrap(), vec![]);
    let o = st
        .organizations
        .create(NewOrganization {
            name: "c".into(),
            slug: "c".into(),
            plan: Plan::Free,
        })
        .await
        .unwrap();
    let ns = st
        .namespaces
        .create(
            o.id,
            NewNamespace {
                name: "n".into(),
                slug: "n".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap();
    let entries = st.changes.since(0, 10).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].id < entries[1].id);
    assert_eq!(
        (
            entries[1].org_id,
            entries[1].kind.as_str(),
            entries[1].op.as_str()
        ),
        (o.id, "namespace", "create")
    );
    assert_eq!(st.changes.latest_id().await.unwrap(), entries[1].id);
    assert_eq!(
        changes_since(db, entries[0].id).await,
        [change("namespace", ns.id, "create")]
    );
    assert_eq!(st.changes.since(0, 1).await.unwrap(), entries[..1]);
    assert_eq!(st.changes.since(entries[1].id, 10).await.unwrap(), vec![]);

    assert_eq!(
        st.changes.prune(at(0)).await.unwrap(),
        0,
        "nothing older than a past instant"
    );
    assert_eq!(
        st.changes
            .prune(chrono::Utc::now() + chrono::Duration::seconds(5))
            .await
            .unwrap(),
        2
    );
    assert_eq!(st.changes.since(0, 10).await.unwrap(), vec![]);
    // Ids keep growing after a prune.
    st.namespaces
        .create(
            o.id,
            NewNamespace {
                name: "m".into(),
                slug: "m".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap();
    assert!(st.changes.latest_id().await.unwrap() > entries[1].id);
}

/// Concurrent writers: a reader that saw id N never later finds a new id below N.
async fn ids_follow_commit_order_under_concurrency(db: &TestDb) {
    let st = db.stores().clone();
    let o = crate::harness::org(db).await;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let st = st.clone();
        writers.spawn(async move {
            for i in 0..10 {
                st.namespaces
                    .create(
                        o.id,
                        NewNamespace {
                            name: "x".into(),
                            slug: format!("w{w}-{i}"),
                            description: None,
                            source: gateway_types::model::RecordSource::Api,
                        },
                    )
                    .await
                    .unwrap();
            }
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut last = 0;
    loop {
        let finished = writers.is_empty();
        for e in st.changes.since(last, 100).await.unwrap() {
            assert!(e.id > last);
            last = e.id;
            assert!(seen.insert(e.id));
        }
        if finished {
            break;
        }
        if let Some(done) = writers.try_join_next() {
            done.unwrap();
        }
        tokio::task::yield_now().await;
    }
    // Everything polled incrementally equals everything there is: no id was skipped.
    let all: std::collections::BTreeSet<_> = st
        .changes
        .since(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(seen, all);
}
