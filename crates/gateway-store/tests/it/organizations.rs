use gateway_types::ids::OrgId;
use gateway_types::model::{
    HealthStatus, NewHealthCheck, NewNamespace, NewOrganization, OrganizationPatch, Plan,
};

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, at, change, changes_since, contract, key, namespace, server,
    user,
};

contract!(create_get_list_update_delete, delete_cascades_to_everything_owned);

async fn create_get_list_update_delete(db: &TestDb) {
    let s = &db.stores().organizations;
    let zeta = s
        .create(NewOrganization {
            name: "Zeta".into(),
            slug: "zeta".into(),
            plan: Plan::Free,
        })
        .await
        .unwrap();
    let acme = s
        .create(NewOrganization {
            name: "Acme".into(),
            slug: "acme".into(),
            plan: Plan::Team,
        })
        .await
        .unwrap();
    assert_eq!(acme.plan, Plan::Team);
    assert_eq!(
        (acme.max_servers, acme.max_sessions, acme.log_retention_days),
        Plan::Team.default_limits()
    );
    assert_eq!(acme.created_at, acme.updated_at);

    assert_eq!(s.get(acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(s.get_by_slug("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(s.get(OrgId::new()).await.unwrap(), None);
    assert_eq!(s.get_by_slug("nope").await.unwrap(), None);
    let slugs: Vec<_> = s.list().await.unwrap().into_iter().map(|o| o.slug).collect();
    assert_eq!(slugs, ["acme", "zeta"], "ordered by slug");

    assert_conflict(
        s.create(NewOrganization {
            name: "Other".into(),
            slug: "acme".into(),
            plan: Plan::Free,
        })
        .await,
        "organization slug",
    );

    let updated = s
        .update(
            acme.id,
            OrganizationPatch {
                name: Some("Acme Inc".into()),
                max_servers: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Acme Inc");
    assert_eq!(updated.max_servers, 5);
    assert_eq!(updated.plan, Plan::Team, "untouched fields stay");
    assert!(updated.updated_at >= acme.updated_at);
    assert_eq!(s.get(acme.id).await.unwrap(), Some(updated));
    assert_not_found(s.update(OrgId::new(), OrganizationPatch::default()).await);

    s.delete(zeta.id).await.unwrap();
    assert_eq!(s.get(zeta.id).await.unwrap(), None);
    assert_not_found(s.delete(zeta.id).await);

    let log = changes_since(db, 0).await;
    assert_eq!(
        log,
        [
            change("organization", zeta.id, "create"),
            change("organization", acme.id, "create"),
            change("organization", acme.id, "update"),
            change("organization", zeta.id, "delete"),
        ]
    );
}

async fn delete_cascades_to_everything_owned(db: &TestDb) {
    let st = db.stores();
    let doomed = crate::harness::org(db).await;
    let kept = crate::harness::org(db).await;
    for o in [&doomed, &kept] {
        namespace(db, o.id, "ns").await;
        let u = user(db, o.id, &format!("{}@example.com", o.slug)).await;
        key(db, o.id, &format!("hash-{}", o.slug), Some(u.id)).await;
        let srv = server(db, o.id, "srv").await;
        st.health
            .record(
                o.id,
                NewHealthCheck {
                    server_id: srv.id,
                    status: HealthStatus::Healthy,
                    latency_ms: Some(3),
                    error: None,
                    checked_at: at(0),
                },
            )
            .await
            .unwrap();
    }
    let before = st.changes.latest_id().await.unwrap();
    st.organizations.delete(doomed.id).await.unwrap();

    assert_eq!(st.namespaces.get_by_slug(doomed.id, "ns").await.unwrap(), None);
    assert_eq!(
        st.users
            .find_by_email(&format!("{}@example.com", doomed.slug))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        st.api_keys
            .find_by_hash(&format!("hash-{}", doomed.slug))
            .await
            .unwrap(),
        None
    );
    let all = st.servers.list_all().await.unwrap();
    assert!(all.iter().all(|s| s.org_id == kept.id), "{all:?}");
    assert_eq!(all.len(), 1);
    // The other organization is untouched.
    assert!(st.namespaces.get_by_slug(kept.id, "ns").await.unwrap().is_some());
    assert!(
        st.api_keys
            .find_by_hash(&format!("hash-{}", kept.slug))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(st.health.history(kept.id, all[0].id, 10).await.unwrap().len(), 1);
    // The deletion itself is recorded and outlives the organization.
    assert_eq!(
        changes_since(db, before).await,
        [change("organization", doomed.id, "delete")]
    );
    // A namespace cannot be created in a deleted organization.
    assert_not_found(
        st.namespaces
            .create(
                doomed.id,
                NewNamespace {
                    name: "x".into(),
                    slug: "x".into(),
                    description: None,
                    source: gateway_types::model::RecordSource::Api,
                },
            )
            .await,
    );
}
